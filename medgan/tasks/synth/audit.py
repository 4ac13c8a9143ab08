"""Memorisation audit of a synthesis run: the nearest training image of every generated
image, against the distances of held-out patients' real images (:mod:`medgan.metrics.memorization`).

Writes ``audit/summary.json`` and ``audit/closest-pairs.png`` and appends a record to the
run's ``metrics.jsonl``; the report's audit section reads them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medgan.errors import MedganError
from medgan.io.output import atomic_path
from medgan.io.records import append_jsonl, utc_now
from medgan.metrics import memorization
from medgan.report.grid import image_grid
from medgan.runs import real_images
from medgan.tasks.synth.evaluate import generated_images, inception_extractor, inception_features

__all__ = ["audit_run"]


def audit_run(run_dir: str | Path, n: int = 1000, seed: int = 0, quantile: float = 0.01,
              inception_weights: str | None = None, pairs: int = 16) -> dict:
    """Memorisation audit of a run: writes ``audit/summary.json``, ``audit/closest-pairs.png``
    and appends a record to ``metrics.jsonl``."""
    run_dir = Path(run_dir)
    train, holdout, _ = real_images(run_dir)
    if holdout is None:
        raise MedganError("the run has no held-out patients to calibrate the audit", path=run_dir,
                          hint="train with --holdout > 0 on data with at least two patients/volumes")
    fake = generated_images(run_dir, n, seed)
    features = {}
    extractor = inception_extractor(inception_weights)
    if extractor is not None:
        features["inception"] = tuple(inception_features(extractor, x) for x in (fake, train, holdout))
    result = memorization.audit(fake, train, holdout, features=features, quantile=quantile)
    summary = {"kind": "audit", "time": utc_now(), "seed": seed, **result.summary()}
    pixel = result.spaces[0]
    order = np.argsort(pixel.distances)[:pairs]
    tiles, captions = [], []
    for i in order:
        tiles += [fake[i, 0], train[pixel.indices[i], 0]]
        captions += [f"gen {pixel.distances[i]:.3f}" + (" !" if result.flagged[i] else ""), f"train #{pixel.indices[i]}"]
    summary["closest_pairs"] = [{"generated": int(i), "train": int(pixel.indices[i]), "pixel_distance": float(pixel.distances[i]),
                                 "flagged": bool(result.flagged[i])} for i in order]
    folder = run_dir / "audit"
    folder.mkdir(exist_ok=True)
    grid = image_grid(np.stack(tiles), value_range=(-1, 1), ncol=8, captions=captions)
    with atomic_path(folder / "closest-pairs.png", overwrite=True) as tmp:
        grid.save(tmp, format="PNG")
    with atomic_path(folder / "summary.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    append_jsonl(run_dir / "metrics.jsonl", {k: v for k, v in summary.items() if k != "closest_pairs"})
    return summary
