"""Enhancement against classical baselines, on CT phantoms (HU) and held-out brain-mri slices.

For each case, trains the same generator twice through the engine (L1 only, and L1 + PatchGAN
adversary), then scores on held-out images (another seed of the degradation): the degraded
input, the classical baseline (non-local means and BM3D when installed for denoising;
bicubic for super-resolution), L1 only and the GAN: PSNR / SSIM / MAE on the data's own
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


def classical(degraded: np.ndarray, scale: int, data_range: float) -> tuple[str, np.ndarray]:
    """Non-local means (scikit-image, σ estimated per image) — or BM3D when installed — for
    noise; bicubic upsampling for super-resolution."""
    if scale > 1:
        return "bicubic", np.stack([upsample_bicubic(d, scale) for d in degraded])
    try:
        import bm3d
    except ImportError:
        bm3d = None
    from skimage.restoration import denoise_nl_means, estimate_sigma

    out_nlm, out_bm3d = [], []
    for d in degraded:
        x = (d - d.min()) / max(float(d.max() - d.min()), 1e-6)  # NLM/BM3D work on [0, 1]
        sigma = float(estimate_sigma(x))
        y = denoise_nl_means(x, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)
        out_nlm.append(y * (d.max() - d.min()) + d.min())
        if bm3d is not None:
            out_bm3d.append(bm3d.bm3d(x, sigma) * (d.max() - d.min()) + d.min())
    result = {"nlm": np.stack(out_nlm)}
    if out_bm3d:
        result["bm3d"] = np.stack(out_bm3d)
    return "nlm+bm3d" if out_bm3d else "nlm", result


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
        label, base = classical(degraded, scale, data_range)
        if isinstance(base, dict):
            rows.update(base)
        elif label != "bicubic":
            rows[label] = base
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
        classical_key = next(k for k in rows if k not in ("degraded input", "L1 only", "GAN (L1 + adversarial)"))
        tiles = np.stack([x[i] for i in pick for x in (shown_input, rows[classical_key], outputs["l1"], outputs["gan"], clean)])
        window = case["display"] or (float(np.percentile(clean, 0.5)), float(np.percentile(clean, 99.5)))
        picture = image_grid(tiles, value_range=window, ncol=5, scale=3)
        picture.save(runs["gan"] / "comparison.png")
        picture.save(root / "comparison.png")
        build_report(runs["gan"])
        report["cases"][name] = {"degradation": info["degradation"], "n_test": int(len(clean)), "data_range": data_range,
                                 "units": intensity.units, "train_seconds_both": train_seconds, "scores": scores,
                                 "comparison": str(root / "comparison.png")}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
