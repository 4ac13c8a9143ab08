"""Enhancement against classical baselines, on CT phantoms (HU) and held-out brain-mri slices.

For each case, trains the same generator twice through the engine (L1 only, and L1 + PatchGAN
adversary), then scores on held-out images (another seed of the degradation): the degraded
input, the classical baselines (for denoising non-local means and BM3D, given the noise
level of the training pairs and their parameters tuned on them; bicubic for
super-resolution), L1 only and the GAN: PSNR / SSIM / MAE on the data's own
range, the high-frequency energy ratio (1 = as sharp as the truth) and the power-spectrum
error over the upper half of the frequencies (dB, 0 = the truth's texture). Writes a
side-by-side picture into the GAN run (shown by its report) and prints one JSON object.

    python benchmarks/enhance_quality.py [--steps 1500] [--cases ct-denoise ct-sr2 mri-rician mri-sr2] [--runs-dir bench-runs]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from medgan.tasks.enhance.classical import classical_baselines
from medgan.tasks.enhance.degrade import upsample_bicubic
from medgan.tasks.enhance.inference import enhance_image
from medgan.tasks.enhance.evaluate import enhancement_model, enhancement_scores, enhancement_test_set, evaluate_enhancement_run
from medgan.report.grid import image_grid
from medgan.report.html import build_report
from medgan.train import TrainConfig, Trainer

PHANTOMS = {"source": "phantom", "options": {"size": 64, "n": 400, "kind": "head"}, "holdout": 0.1}
BRAIN = {"source": "brain-mri", "options": {"size": 64}, "holdout": 0.1}
CT_WINDOW = (-160.0, 240.0)  # soft tissue: centre 40, width 400 HU
CASES = {
    "ct-denoise": {"data": PHANTOMS, "enhance": {"mode": "denoise", "degradation": "lowdose-ct:dose=0.25"}, "display": CT_WINDOW},
    "ct-sr2": {"data": PHANTOMS, "enhance": {"mode": "sr", "degradation": "sr:factor=2,method=bicubic"}, "display": CT_WINDOW},
    "mri-rician": {"data": BRAIN, "enhance": {"mode": "denoise", "degradation": "rician:snr=8"}, "display": None},
    "mri-sr2": {"data": BRAIN, "enhance": {"mode": "sr", "degradation": "sr:factor=2,method=bicubic"}, "display": None},
}


def train(case: dict, adversarial: bool, steps: int, batch: int, run_dir: Path, reuse: bool = False) -> Path:
    if reuse and (run_dir / "generator" / "config.json").is_file():
        return run_dir  # scored again, not retrained
    config = TrainConfig.from_dict({
        "task": "enhance", "data": case["data"], "enhance": {**case["enhance"], "adversarial": adversarial},
        "model": {"name": "pix2pix" if case["enhance"]["mode"] == "denoise" else "srgan", "net": {"width": 32}},
        "loss": {"name": "lsgan"},
        "loop": {"steps": steps, "batch_size": batch, "ema": 0.0, "augment": "", "log_every": 25,
                 "sample_every": max(steps // 4, 1), "checkpoint_every": steps, "n_samples": 12},
    })
    return Trainer(config, run_dir, progress=False).fit()


def validation_pairs(run: Path, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``(degraded, clean)`` of ``n`` training images spread over the set, degraded with a
    third seed: what the network saw, on which the classical baselines are tuned (never the
    test images)."""
    from medgan.evaluate import run_holdout
    from medgan.tasks.enhance.degrade import Degradation

    _, dataset, _ = run_holdout(run)
    images = dataset.data.images if dataset.data.images.ndim == 3 else dataset.data.images[:, 0]
    clean = images[np.linspace(0, len(images) - 1, min(n, len(images))).astype(int)].astype(np.float32)
    info = json.loads((run / "generator" / "config.json").read_text())
    return Degradation.from_dict(info["degradation"]).apply(clean, seed=2).astype(np.float32), clean


def classical(degraded: np.ndarray, scale: int, run: Path, intensity) -> tuple[dict[str, np.ndarray], dict]:
    """Bicubic upsampling for super-resolution; for noise, non-local means and BM3D (when
    installed) given the noise level of the training pairs and tuned on them
    (:mod:`medgan.tasks.enhance.classical`)."""
    if scale > 1:
        return {"bicubic": np.stack([upsample_bicubic(d, scale) for d in degraded])}, {}
    val_degraded, val_clean = validation_pairs(run)
    out = classical_baselines(val_degraded, val_clean, degraded, intensity.low, intensity.high)
    tuning = {name: {"params": t.params, "sigma": round(t.sigma, 3), "validation_psnr": t.validation_psnr} for name, (_, t) in out.items()}
    return {f"{name} (tuned)": images for name, (images, _) in out.items()}, tuning


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--runs-dir", default="bench-runs")
    parser.add_argument("--reuse", action="store_true", help="score runs already in --runs-dir instead of training them")
    args = parser.parse_args()
    report: dict = {"steps": args.steps, "batch": args.batch, "cases": {}}
    for name in args.cases:
        case = CASES[name]
        root = Path(args.runs_dir) / name
        t = time.perf_counter()
        runs = {"l1": train(case, False, args.steps, args.batch, root / "l1-only", args.reuse),
                "gan": train(case, True, args.steps, args.batch, root / "gan", args.reuse)}
        train_seconds = time.perf_counter() - t
        clean, degraded, info, intensity = enhancement_test_set(runs["gan"])
        scale, data_range = int(info.get("scale", 1)), intensity.high - intensity.low
        rows = {"degraded input" if scale == 1 else "bicubic": degraded if scale == 1 else np.stack([upsample_bicubic(d, scale) for d in degraded])}
        base, tuning = classical(degraded, scale, runs["gan"], intensity)
        if scale == 1:
            rows.update(base)
        outputs = {}
        for key, run in runs.items():
            model = enhancement_model(run)
            outputs[key] = np.stack([enhance_image(model, d) for d in degraded])
            evaluate_enhancement_run(run)  # into each run's metrics.jsonl
        rows["L1 only"], rows["GAN (L1 + adversarial)"] = outputs["l1"], outputs["gan"]
        scores = {k: enhancement_scores(clean, v, data_range) for k, v in rows.items()}
        # side by side: input | classical | L1 | GAN | clean, for 4 held-out images
        # four of the larger images (edge slices of a head show little), spread over the set
        foreground = (clean > clean.min() + 0.05 * data_range).mean(axis=(1, 2))
        large = np.sort(np.argsort(-foreground)[: max(4, len(clean) // 2)])
        pick = large[np.linspace(0, len(large) - 1, 4).astype(int)]
        # the low-resolution input itself (pixel-replicated) for SR, since bicubic is the baseline column
        shown_input = degraded if scale == 1 else degraded.repeat(scale, axis=-2).repeat(scale, axis=-1)
        classical_key = next(k for k in (*base, "bicubic") if k in rows)
        tiles = np.stack([x[i] for i in pick for x in (shown_input, rows[classical_key], outputs["l1"], outputs["gan"], clean)])
        window = case["display"] or (float(np.percentile(clean, 0.5)), float(np.percentile(clean, 99.5)))
        picture = image_grid(tiles, value_range=window, ncol=5, scale=3)
        picture.save(runs["gan"] / "comparison.png")
        picture.save(root / "comparison.png")
        build_report(runs["gan"])
        report["cases"][name] = {"degradation": info["degradation"], "n_test": int(len(clean)), "data_range": data_range,
                                 "units": intensity.units, "train_seconds_both": train_seconds, "scores": scores, "classical_tuning": tuning,
                                 "comparison": str(root / "comparison.png")}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
