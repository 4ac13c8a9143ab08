"""Evaluation of an enhancement run: the held-out clean images, their degraded versions
(the run's own degradation, another seed than training), and the degraded input (or bicubic
upsampling) and the model's output scored against the truth alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from medgan.data.intensity import IntensityMap
from medgan.runs import run_holdout
from medgan.io.records import append_jsonl, utc_now
from medgan.tasks.enhance.model import load_model

__all__ = ["enhancement_scores", "enhancement_test_set", "evaluate_enhancement_run"]


def enhancement_test_set(run_dir: Path, seed: int = 1) -> tuple[np.ndarray, np.ndarray, dict, IntensityMap]:
    """Held-out clean images of an enhancement run and their degraded versions (data units).

    The degradation is the run's own, drawn with another seed than the training pairs.
    """
    from medgan.tasks.enhance.degrade import Degradation

    from medgan.errors import MedganError

    _, dataset, holdout = run_holdout(run_dir)
    info = json.loads((Path(run_dir) / "generator" / "config.json").read_text())
    if info["degradation"]["kind"] == "none":
        raise MedganError("this model was trained on noisy images with no clean version, so there is nothing to score it against",
                          path=run_dir, hint="measure the recipe on clean images with a simulated --degradation (e.g. gaussian:sigma=20)")
    clean = holdout.images if holdout.images.ndim == 3 else holdout.images[:, 0]
    degraded = Degradation.from_dict(info["degradation"]).apply(clean, seed=seed)
    return clean.astype(np.float32), degraded.astype(np.float32), info, dataset.intensity


def enhancement_scores(clean: np.ndarray, output: np.ndarray, data_range: float, metrics: list[str] | None = None) -> dict:
    """The fidelity metrics (default: every one registered in :data:`medgan.metrics.registry.FIDELITY`):
    PSNR / SSIM / MAE / RMSE on the data's own range, the high-frequency energy ratio (1 = as
    sharp as the truth, < 1 over-smoothed, > 1 noisier) and the power-spectrum error over the
    upper half of the frequencies (dB, 0 = the truth's texture; signed twin: < 0 smoother);
    see :mod:`medgan.metrics.texture`."""
    from medgan.metrics.registry import FIDELITY, FidelityInputs

    return FIDELITY.compute(FidelityInputs(clean, output, data_range), metrics)


def describe_training(info: dict[str, Any]) -> str:
    """``"dncnn, L2 alone"`` or ``"pix2pix, L1 + adversary"``: what the exported generator learnt from."""
    loss = str(info.get("recon_loss", "l1")).upper()  # exports before the choice was recorded trained on L1
    return f"{info.get('model', 'generator')}, {loss} + adversary" if info.get("adversarial") else f"{info.get('model', 'generator')}, {loss} alone"


def evaluate_enhancement_run(run_dir: str | Path, seed: int = 1, metrics: list[str] | None = None, **_: object) -> dict:
    """The degraded input and the model's output scored against the held-out clean images by
    the fidelity metrics named in ``metrics`` (default: all); appended to ``metrics.jsonl``."""
    from medgan.metrics.registry import FIDELITY
    from medgan.tasks.enhance.degrade import upsample_bicubic
    from medgan.tasks.enhance.inference import enhance_image

    FIDELITY.check(metrics)  # an unknown name is refused before any image is scored
    run_dir = Path(run_dir)
    clean, degraded, info, intensity = enhancement_test_set(run_dir, seed)
    model = load_model(run_dir)
    scale = model.scale
    data_range = intensity.high - intensity.low
    baseline = degraded if scale == 1 else np.stack([upsample_bicubic(d, scale) for d in degraded])
    output = np.stack([enhance_image(model, d) for d in degraded])
    record = {"kind": "evaluate", "task": "enhance", "time": utc_now(), "step": info.get("step"), "n_test": len(clean),
              "data_range": data_range, "units": intensity.units, "degradation": info["degradation"],
              "metrics": {**{f"input_{k}": v for k, v in enhancement_scores(clean, baseline, data_range, metrics).items()},
                          **{f"model_{k}": v for k, v in enhancement_scores(clean, output, data_range, metrics).items()}},
              "settings": {"input": "degraded" if scale == 1 else "bicubic upsampling", "seed": seed,
                           "model": describe_training(info)}}
    append_jsonl(run_dir / "metrics.jsonl", record)
    return record
