"""The template task's evaluation: held-out images reconstructed through E and G, scored
with the registered fidelity metrics, appended to the run's ``metrics.jsonl``; plus the
picture its report shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medgan.data.training import load_training_data
from medgan.errors import MedganError
from medgan.runs import run_config
from medgan.io.records import append_jsonl, utc_now
from medgan.io.output import atomic_path
from medgan.metrics.registry import FIDELITY, FidelityInputs
from medgan.report.grid import image_grid
from medgan.tasks import load_model


def evaluate_template_run(run_dir: str | Path, metrics: list[str] | None = None) -> dict:
    run_dir = Path(run_dir)
    _, holdout = load_training_data(run_config(run_dir).data)
    if holdout is None or not len(holdout):
        raise MedganError("the run has no held-out images", path=run_dir, hint="train with --holdout > 0")
    model = load_model(run_dir)
    clean = holdout.images.astype(np.float32)  # (N, S, S) in data units
    rec = model.reconstruct(clean)
    data_range = model.intensity.high - model.intensity.low
    figures = FIDELITY.compute(FidelityInputs(clean, rec, data_range), metrics or ["psnr_ssim"])
    record = {"kind": "evaluate", "task": "template", "time": utc_now(), "step": model.info.get("step"),
              "n_test": len(clean), "data_range": data_range, "metrics": figures,
              "score_mean": float(model.score(clean).mean())}
    pairs = np.stack([clean[:8], rec[:8]], axis=1).reshape(-1, *clean.shape[1:])
    with atomic_path(run_dir / "reconstructions.png", overwrite=True) as tmp:
        image_grid(pairs, value_range=(model.intensity.low, model.intensity.high), ncol=4).save(tmp, format="PNG")
    append_jsonl(run_dir / "metrics.jsonl", record)
    return record
