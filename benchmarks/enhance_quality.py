"""Enhancement against classical baselines given the same knowledge, on real brain MRI first.

Cases (real anatomy first): the embedded brain-MRI slices (train on one head, test on the
other) with Gaussian noise at sigma 10 / 20 / 40 and Rician noise at SNR 5 / 10 / 20 (on the
data's 0..255 scale); then CT head phantoms (low-dose CT, super-resolution) and brain-MRI
super-resolution. For a noise case, a learned method trains either one model per level
(``dncnn-l2``: the default use, a model for the noise of one's own scanner) or **one blind
model over all the levels** (``EnhanceConfig.levels``), scored at each level separately:

- ``dncnn-l2``: a plain DnCNN-style residual CNN with L2 (paired), one model per level;
- ``dncnn-l2-blind``: the same, one blind model for all the levels;
- ``unet-l1``: the U-Net generator with L1 alone (paired);
- ``gan``: the same U-Net with L1 + PatchGAN adversary (pix2pix, paired);
- ``self``: the U-Net trained on the noisy images alone (Neighbor2Neighbor; never sees a clean image);
- ``unpaired``: the U-Net trained by CycleGAN between one half of the training images noisy
  and the other half clean (no pairs).

Artefact cases (``--mode artefact``): undersampled brain MRI at 4x and 8x, motion at shifts of
1 and 3 pixels, sparse-view CT phantoms at 60, 30 and 15 angles; methods ``dncnn-l2-blind``,
``unet-l1`` (with data consistency for undersampled MRI, the default), ``unet-l1-nodc`` (the
same trained and applied without it) and ``gan``.

Baselines, given what the paired networks are given (:mod:`medgan.tasks.enhance.classical`):
non-local means and BM3D with the noise level measured on training pairs and their
parameters tuned on them, per level; for Rician noise also unbiased non-local means; for
undersampled MRI TV-regularised compressed sensing (its weight tuned alike). The
degraded input itself is the floor. Test images are degraded with seed 1, tuning pairs with
seed 2, training pairs with the run's degradation seed 0; only the training seed changes
between seeds.

Per case, level and method: PSNR / SSIM / MAE on the data's range, PSNR inside the object
(``psnr_fg``: pixels of the clean image above 10% of its maximum, where the anatomy is), SSIM over the image and inside the object (``ssim_fg``), the
high-frequency energy ratio and the high-frequency spectrum error (texture, see
:mod:`medgan.metrics.texture`), each as ``[mean, std]`` over seeds; training seconds per
method (CPU seconds of the training process). Writes ``RUNS/<case>/comparison-<level>.png`` (input | best classical | each method | truth,
with absolute-error maps under each row; first seed) and prints one JSON object.

    python benchmarks/enhance_quality.py [--cases mri-gaussian mri-rician] [--methods dncnn-l2 dncnn-l2-blind unet-l1 gan self unpaired]
        [--seeds 0 1 2] [--steps 600] [--n-test 220] [--runs-dir bench-runs]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from roof import machine

from medgan.report.grid import image_grid
from medgan.tasks.enhance.classical import classical_baselines
from medgan.tasks.enhance.degrade import Degradation, parse_degradation, upsample_bicubic
from medgan.tasks.enhance.evaluate import enhancement_scores
from medgan.tasks.enhance.inference import enhance_image
from medgan.tasks.enhance.model import load_model
from medgan.train import TrainConfig, Trainer

PHANTOMS = {"source": "phantom", "options": {"size": 64, "n": 400, "kind": "head"}, "holdout": 0.1}
BRAIN = {"source": "brain-mri", "holdout": 0.1}  # 64x64, 0..255; the holdout is the second head
CT_WINDOW = (-160.0, 240.0)  # soft tissue: centre 40, width 400 HU
CASES = {
    "mri-gaussian": {"data": BRAIN, "mode": "denoise", "degradation": "gaussian:sigma=20", "levels": [10, 20, 40]},
    "mri-rician": {"data": BRAIN, "mode": "denoise", "degradation": "rician:snr=10", "levels": [5, 10, 20]},
    "ct-denoise": {"data": PHANTOMS, "mode": "denoise", "degradation": "lowdose-ct:dose=0.25", "levels": [], "display": CT_WINDOW},
    "ct-sr2": {"data": PHANTOMS, "mode": "sr", "degradation": "sr:factor=2,method=bicubic", "levels": [], "display": CT_WINDOW},
    "mri-sr2": {"data": BRAIN, "mode": "sr", "degradation": "sr:factor=2,method=bicubic", "levels": []},
    # artefacts (--mode artefact): one blind model over the levels, scored per level
    "mri-undersample": {"data": BRAIN, "mode": "artefact", "degradation": "undersample-mri:accel=4,center=0.08", "levels": [4, 8]},
    "mri-motion": {"data": BRAIN, "mode": "artefact", "degradation": "motion-mri:lines=0.1,shift=2", "levels": [1, 3]},
    "ct-sparse": {"data": PHANTOMS, "mode": "artefact", "degradation": "sparse-view-ct:angles=60", "levels": [60, 30, 15],
                  "display": CT_WINDOW},  # 64 px: 60 angles is near full sampling (pi/2 * 64 ~ 100), 15 is sparse
}
# Each method: model, its net fields, and the enhance options it sets (denoising; super-resolution
# keeps unet-l1 and gan, with the SR generator).
METHODS = {
    "dncnn-l2": {"model": "dncnn", "net": {"width": 32, "layers": 10}, "enhance": {"adversarial": False, "recon_loss": "l2"},
                 "per_level": True},
    "dncnn-l2-blind": {"model": "dncnn", "net": {"width": 32, "layers": 10}, "enhance": {"adversarial": False, "recon_loss": "l2"}},
    "unet-l1": {"model": "pix2pix", "net": {"width": 32}, "enhance": {"adversarial": False}},
    # undersampled MRI: the same U-Net trained and applied without data consistency
    "unet-l1-nodc": {"model": "pix2pix", "net": {"width": 32}, "enhance": {"adversarial": False, "data_consistency": "off"}},
    "gan": {"model": "pix2pix", "net": {"width": 32}, "enhance": {"adversarial": True}},
    "self": {"model": "pix2pix", "net": {"width": 32}, "enhance": {"supervision": "self"}},
    "unpaired": {"model": "pix2pix", "net": {"width": 32}, "enhance": {"supervision": "unpaired"}},
}
SR_METHODS = ("unet-l1", "gan")
ARTEFACT_METHODS = ("dncnn-l2-blind", "unet-l1", "unet-l1-nodc", "gan")
SCORES = ("psnr", "psnr_fg", "ssim", "ssim_fg", "mae", "hf_energy_ratio", "spectrum_error_db", "spectrum_bias_db")


def train(case: dict, method: str, seed: int, steps: int, batch: int, run_dir: Path, reuse: bool,
          level: float | None = None) -> tuple[Path, float]:
    """Train one method through the engine; ``(run folder, CPU seconds)``. With ``level``, a
    model for that noise level alone; without, one blind model over the case's levels.

    CPU time of this process (all its threads), not wall time: with ``--threads 1`` it is the
    single-core budget ("CPU-minutes") and holds when other work shares the machine. A reused
    run gives the engine's logged wall time of its training loop instead (the same figure when
    it ran with one thread on a core of its own)."""
    if reuse and (run_dir / "generator" / "config.json").is_file():
        rows = (run_dir / "stats.jsonl").read_text().splitlines()
        return run_dir, float(json.loads(rows[-1]).get("elapsed", float("nan"))) if rows else float("nan")
    m = METHODS[method]
    sr = case["mode"] == "sr"
    levels = ",".join(format(v, "g") for v in case["levels"]) if level is None else ""
    degradation = case["degradation"] if level is None else parse_degradation(case["degradation"]).at_level(level).spec()
    config = TrainConfig.from_dict({
        "task": "enhance", "data": case["data"],
        "enhance": {"mode": case["mode"], "degradation": degradation, "levels": levels, **m["enhance"]},
        "model": {"name": "srgan" if sr else m["model"], "net": m["net"]},
        "loss": {"name": "lsgan"},
        "loop": {"steps": steps, "batch_size": batch, "seed": seed, "ema": 0.0, "augment": "", "log_every": 25,
                 "sample_every": max(steps // 4, 1), "checkpoint_every": steps, "n_samples": 12},
    })
    t = time.process_time()
    run = Trainer(config, run_dir, progress=False).fit()
    return run, time.process_time() - t


def held_out(run: Path, n_test: int) -> tuple[np.ndarray, np.ndarray, object]:
    """``(test clean, tuning clean, intensity)``: up to ``n_test`` held-out images spread
    over the set, and 8 training images spread over the set (for tuning the baselines)."""
    from medgan.runs import run_holdout

    _, dataset, holdout = run_holdout(run)
    squeeze = lambda a: (a if a.ndim == 3 else a[:, 0]).astype(np.float32)  # noqa: E731
    test, train = squeeze(holdout.images), squeeze(dataset.data.images)
    test = test[np.linspace(0, len(test) - 1, min(n_test, len(test))).astype(int)]
    return test, train[np.linspace(0, len(train) - 1, 8).astype(int)], dataset.intensity


def anatomy(clean: np.ndarray) -> np.ndarray:
    """Where one clean ``(H, W)`` image is above 10% of its range: the anatomy, not the empty background."""
    return clean > clean.min() + 0.1 * (clean.max() - clean.min())


def foreground_psnr(clean: np.ndarray, output: np.ndarray, data_range: float) -> float:
    """Mean over images of the PSNR over the :func:`anatomy` pixels."""
    values = []
    for c, o in zip(clean, output):
        mask = anatomy(c)
        mse = float(np.mean((c[mask] - o[mask]) ** 2))
        values.append(10 * np.log10(data_range**2 / max(mse, 1e-12)))
    return float(np.mean(values))


def foreground_ssim(clean: np.ndarray, output: np.ndarray, data_range: float) -> float:
    """Mean over images of the SSIM map (the settings of :func:`medgan.metrics.ssim`: Gaussian
    window of sigma 1.5, Wang et al.'s constants) averaged over the :func:`anatomy` pixels."""
    from skimage.metrics import structural_similarity

    values = []
    for c, o in zip(clean, output):
        _, local = structural_similarity(c, o, data_range=data_range, gaussian_weights=True, sigma=1.5, win_size=11,
                                         use_sample_covariance=False, full=True)
        values.append(float(local[anatomy(c)].mean()))
    return float(np.mean(values))


def score(clean: np.ndarray, output: np.ndarray, data_range: float) -> dict[str, float]:
    s = enhancement_scores(clean, output, data_range)
    s["psnr_fg"] = foreground_psnr(clean, output, data_range)
    s["ssim_fg"] = foreground_ssim(clean, output, data_range)
    return {k: float(s[k]) for k in SCORES if k in s}


def mean_std(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    return {k: [round(float(np.mean([r[k] for r in rows])), 4), round(float(np.std([r[k] for r in rows])), 4)] for k in rows[0]}


def comparison_picture(columns: dict[str, np.ndarray], clean: np.ndarray, window: tuple[float, float], n: int = 4):
    """Rows of ``columns`` (each ``(N, H, W)``, captioned with its name) for ``n`` of the images
    with the most anatomy, each followed by a row of absolute-error maps against ``clean``
    (magma, black = 0, white = a quarter of the display window); the truth column's error
    tile is left black and carries the scale."""
    import matplotlib

    foreground = (clean > window[0] + 0.05 * (window[1] - window[0])).mean(axis=(1, 2))
    large = np.sort(np.argsort(-foreground)[: max(n, len(clean) // 2)])
    pick = large[np.linspace(0, len(large) - 1, n).astype(int)]
    top = 0.25 * (window[1] - window[0])
    grey = lambda a: np.repeat(np.clip((a - window[0]) / (window[1] - window[0]), 0, 1)[None], 3, axis=0)  # noqa: E731  (3, H, W)
    heat = lambda a, c: np.moveaxis(matplotlib.colormaps["magma"](np.clip(np.abs(a - c) / top, 0, 1))[..., :3], -1, 0)  # noqa: E731
    tiles, captions = [], []
    for row, i in enumerate(pick):
        tiles += [grey(col[i]) for col in columns.values()]
        captions += list(columns) if row == 0 else [""] * len(columns)
        tiles += [heat(col[i], clean[i]) if name != "truth" else np.zeros_like(tiles[-1]) for name, col in columns.items()]
        captions += [""] * (len(columns) - 1) + ([f"|err| 0-{top:.3g}"] if row == 0 else [""])
    return image_grid(np.stack(tiles), value_range=(0.0, 1.0), ncol=len(columns), captions=captions, scale=3)


def run_case(name: str, args) -> dict:
    case = CASES[name]
    sr, artefact = case["mode"] == "sr", case["mode"] == "artefact"
    methods = [m for m in args.methods if (not sr or m in SR_METHODS) and (not artefact or m in ARTEFACT_METHODS)
               and (m != "unet-l1-nodc" or "undersample" in case["degradation"])]
    root = Path(args.runs_dir) / name
    base = parse_degradation(case["degradation"])
    levels = case["levels"] or [None]
    at = lambda level: base if level is None else base.at_level(level)  # noqa: E731

    # Train every method and seed first (the runs share nothing but the data); a per-level
    # method trains a model per level (key: the level), a blind one a model for all (key None).
    runs: dict[str, dict[float | None, list[Path]]] = {m: {} for m in methods}
    seconds: dict[str, list[float]] = {m: [] for m in methods}
    for seed in args.seeds:
        for method in methods:
            for level in (case["levels"] if METHODS[method].get("per_level") and case["levels"] else [None]):
                name = f"{method}-seed{seed}" if level is None else f"{method}-{level:g}-seed{seed}"
                run, s = train(case, method, seed, args.steps, args.batch, root / name, args.reuse, level)
                runs[method].setdefault(level, []).append(run)
                seconds[method].append(s)
    first = next(iter(runs[methods[0]].values()))[0]
    clean, tune_clean, intensity = held_out(first, args.n_test)
    low, high = intensity.low, intensity.high
    data_range = high - low
    models = {m: {level: [load_model(r) for r in rs] for level, rs in by_level.items()} for m, by_level in runs.items()}

    out: dict = {"degradation": base.to_dict(), "levels": case["levels"], "n_test": int(len(clean)), "data_range": data_range,
                 "units": intensity.units, "train_cpu_seconds": {m: round(float(np.mean(s)), 1) for m, s in seconds.items()},  # per model
                 "by_level": {}, "classical_tuning": {}}
    for level in levels:
        degradation: Degradation = at(level)
        degraded = degradation.apply(clean, seed=1).astype(np.float32)
        rows: dict[str, list[dict[str, float]]] = {}  # method -> scores per seed (one for the deterministic ones)
        if sr:
            rows["bicubic"] = [score(clean, np.stack([upsample_bicubic(d, base.factor) for d in degraded]), data_range)]
        else:
            rows["degraded input"] = [score(clean, degraded, data_range)]
            val_degraded = degradation.apply(tune_clean, seed=2).astype(np.float32)
            classical = classical_baselines(val_degraded, tune_clean, degraded, low, high, rician=base.kind == "rician",
                                            undersampled=base.kind == "undersample-mri")
            for key, (images, tuned) in classical.items():
                rows[f"{key} (tuned)"] = [score(clean, images, data_range)]
                out["classical_tuning"].setdefault(str(level), {})[key] = {"params": tuned.params, "sigma": round(tuned.sigma, 3),
                                                                          "validation_psnr": tuned.validation_psnr}
        outputs = {}
        for method in methods:
            per_seed = []
            for i, model in enumerate(models[method].get(level) or models[method][None]):
                images = np.stack([enhance_image(model, d) for d in degraded])
                per_seed.append(score(clean, images, data_range))
                if i == 0:
                    outputs[method] = images
            rows[method] = per_seed
        table = {key: mean_std(row) for key, row in rows.items()}
        out["by_level"][str(level if level is not None else "")] = table
        # input | best classical | each learned method | clean, with error maps under, for 4 of the
        # larger images; one picture per level
        best = max((k for k in table if "tuned" in k or k == "bicubic"), key=lambda k: table[k]["psnr_fg"][0], default=None)
        extra = {best: classical[best.split(" ")[0]][0] if not sr else np.stack([upsample_bicubic(d, base.factor) for d in degraded])} if best else {}
        shown = degraded if not sr else degraded.repeat(base.factor, axis=-2).repeat(base.factor, axis=-1)
        columns = {"input": shown, **extra, **outputs, "truth": clean}
        window = case.get("display") or (float(np.percentile(clean, 0.5)), float(np.percentile(clean, 99.5)))
        file = root / ("comparison.png" if level is None else f"comparison-{level:g}.png")
        comparison_picture(columns, clean, window).save(file)
        out.setdefault("comparison", {})[str(level if level is not None else "")] = {"file": str(file), "columns": list(columns)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["mri-gaussian", "mri-rician", "ct-denoise"], choices=list(CASES))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--n-test", type=int, default=220, help="held-out images scored, spread over the set")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--runs-dir", default="bench-runs")
    parser.add_argument("--reuse", action="store_true", help="score runs already in --runs-dir instead of training them")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"machine": machine(), "steps": args.steps, "batch": args.batch, "seeds": args.seeds, "cases": {}}
    for name in args.cases:
        report["cases"][name] = run_case(name, args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
