"""Does a GAN find lesions better than plain rules? f-AnoGAN and GANomaly against an
autoencoder, a nearest-normal-patch distance and the trivial intensity rule, trained on normal
images only, scored the same way, one after another on the same data.

Methods:

- ``fanogan``, ``ganomaly``, ``ae``: ``medgan train anomaly --method ...`` (the same DCGAN-shaped
  encoder / decoder; f-AnoGAN's steps are split between its WGAN-GP and its encoder);
- ``knn``: every 8x8 patch (stride 4) of the training normals in [-1, 1] is a bank; a test
  patch's score is its distance to the nearest bank patch, the image's the largest, the map
  the patch scores spread over their pixels (no training);
- ``mean``: the trivial rule, each pixel's deviation from the normal training images' mean
  image in units of their standard deviation (an atlas z-score), the image's score the
  mean absolute z inside the body; a lesion is often just darker or brighter than its tissue.

Cases: ``phantom`` (CT head phantoms through a brain window; test lesions from the phantom
generator) and ``brain`` (the embedded MR slices; train on one head, test on the other with
lesions from :mod:`medgan.datasets.lesions`). Every method is calibrated on the same held-out
normals and checked on others (conformal threshold at ``--alpha``). Per run: image AUROC /
AUPRC, pixel AUROC / AUPRC, best Dice, sensitivity at 95% specificity, the false-positive
rate on the check normals and the sensitivity at the calibrated threshold, seconds.

    python benchmarks/anomaly_vs_baselines.py [--cases phantom,brain] [--methods ...] [--seeds 0,1,2] [--steps 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medgan.data.training import DataConfig, load_training_data
from medgan.metrics.anomaly import anomaly_metrics, auprc, auroc, sensitivity_at_specificity
from medgan.tasks.anomaly.calibration import calibrate, check_false_positive_rate
from medgan.tasks.anomaly.evaluate import _anomalous_set, _split_volumes, pixel_threshold
from medgan.tasks.anomaly.model import body, gaussian_blur, load_model, map_peak, score_set
from medgan.train import TrainConfig, Trainer

CASES = {
    "phantom": {"source": "phantom", "options": {"size": 64, "n": 400, "window": "40,160"}, "holdout": 0.3},
    "brain": {"source": "brain-mri", "options": {"size": 64}, "holdout": 0.5},
}
METHODS = ("fanogan", "ganomaly", "ae", "knn", "mean")


def medgan_scorer(case: dict, method: str, seed: int, steps: int, batch: int, run_dir: Path, width: int):
    gan_steps = steps // 2 if method == "fanogan" else steps
    values = {"task": "anomaly", "data": {"source": case["source"], "options": dict(case["options"]), "holdout": case["holdout"]},
              "model": {"name": "dcgan", "net": {"width": width}},
              "loop": {"steps": gan_steps, "batch_size": batch, "seed": seed, "log_every": max(1, steps // 10), "sample_every": steps,
                       "checkpoint_every": steps, "n_samples": 16, "ema": 0.0},
              "anomaly": {"method": method, "encoder_steps": steps - gan_steps if method == "fanogan" else 0}}
    Trainer(TrainConfig.from_dict(values), run_dir, progress=False).fit()
    model = load_model(run_dir)
    return lambda images: score_set(model, images, image_score="method")


def _to_unit(images: np.ndarray, intensity) -> torch.Tensor:
    return torch.from_numpy(intensity.forward(np.asarray(images, np.float32)))[:, None]  # (N, 1, S, S)


def knn_scorer(train: np.ndarray, intensity, patch: int = 8, stride: int = 4, bank: int = 20000, seed: int = 0):
    x = _to_unit(train, intensity)
    patches = F.unfold(x, patch, stride=stride).transpose(1, 2).reshape(-1, patch * patch)  # (N * L, p*p)
    keep = torch.from_numpy(np.random.default_rng(seed).permutation(len(patches))[:bank])
    memory = patches[keep]

    def score(images: np.ndarray):
        y = _to_unit(images, intensity)
        scores, maps = [], []
        for start in range(0, len(y), 16):
            part = y[start : start + 16]
            q = F.unfold(part, patch, stride=stride).transpose(1, 2)  # (B, L, p*p)
            d = torch.cdist(q.reshape(-1, patch * patch), memory).min(1).values.view(len(part), -1)  # (B, L)
            scores.append(d.max(1).values)
            spread = F.fold(d[:, None].expand(-1, patch * patch, -1).contiguous(), part.shape[-2:], patch, stride=stride)
            count = F.fold(torch.ones_like(d)[:, None].expand(-1, patch * patch, -1).contiguous(), part.shape[-2:], patch, stride=stride)
            maps.append((spread / count.clamp(min=1))[:, 0])
        return torch.cat(scores).numpy().astype(np.float64), torch.cat(maps).numpy()

    return score


def mean_scorer(train: np.ndarray, intensity):
    x = _to_unit(train, intensity)[:, 0]
    mean, std = x.mean(0), x.std(0).clamp(min=0.05)

    def score(images: np.ndarray):
        y = _to_unit(images, intensity)[:, 0]
        z = ((y - mean) / std).abs()
        body = (y > -0.95) | (mean > -0.95)
        return ((z * body).flatten(1).sum(1) / body.flatten(1).sum(1).clamp(min=1)).numpy().astype(np.float64), z.numpy()

    return score


def with_smoothed_maps(score):
    """A baseline scorer whose maps are smoothed as medgan's are (``map_sigma`` 1), so every
    method's map is drawn and peaked alike."""

    def scorer(images: np.ndarray):
        scores, maps = score(images)
        return scores, gaussian_blur(torch.from_numpy(np.ascontiguousarray(maps, np.float32)), 1.0).numpy()

    return scorer


def image_figures(prefix: str, alpha: float, cal: np.ndarray, normal: np.ndarray, lesion: np.ndarray) -> dict:
    """Calibrate one image score on ``cal``, check it on ``normal``, rank ``lesion`` against ``normal``."""
    calibration = calibrate(cal, alpha)
    fpr = check_false_positive_rate(calibration, normal)
    labels = np.r_[np.zeros(len(normal)), np.ones(len(lesion))]
    scores = np.r_[normal, lesion]
    sens, _ = sensitivity_at_specificity(labels, scores, 0.95)
    return {f"{prefix}auroc": auroc(labels, scores), f"{prefix}auprc": auprc(labels, scores), f"{prefix}sensitivity_at_95spec": sens,
            f"{prefix}fpr_at_alpha": fpr.rate, f"{prefix}fpr_ci95": [round(fpr.low, 4), round(fpr.high, 4)],
            f"{prefix}sensitivity_at_alpha": float(calibration.flagged(lesion).mean())}


def run_case(name: str, methods: list[str], seed: int, steps: int, batch: int, alpha: float, root: Path, width: int) -> list[dict]:
    case = CASES[name]
    config = DataConfig(source=case["source"], holdout=case["holdout"])
    for key, value in case["options"].items():
        setattr(config.options, key, value)
    dataset, holdout = load_training_data(config)
    groups = holdout.groups if holdout.groups is not None else np.arange(len(holdout))
    cal, check = _split_volumes(groups, 0.5, 0)
    normals = holdout.subset(check)

    class _Config:  # what _anomalous_set reads of a run's config
        data, loop = config, type("L", (), {"seed": seed})

    lesions, masks = _anomalous_set(_Config, normals)
    out = []
    for method in methods:
        start = time.perf_counter()
        if method in ("fanogan", "ganomaly", "ae"):
            scorer = medgan_scorer(case, method, seed, steps, batch, root / f"{name}-{method}-{seed}", width)
        elif method == "knn":
            scorer = with_smoothed_maps(knn_scorer(dataset.data.images, dataset.intensity, seed=seed))
        else:
            scorer = with_smoothed_maps(mean_scorer(dataset.data.images, dataset.intensity))
        trained = time.perf_counter() - start
        scored, bodies = {}, {}
        for part, images in (("cal", holdout.images[cal]), ("normal", normals.images), ("lesion", lesions)):
            scores, maps = scorer(images)
            bodies[part] = body(_to_unit(images, dataset.intensity)).numpy()
            scored[part] = (scores, map_peak(torch.from_numpy(maps), torch.from_numpy(bodies[part])).numpy().astype(np.float64), maps)
        row = {"case": name, "method": method, "seed": seed, "train_seconds": round(trained, 1), "n_calibration": int(len(cal)),
               "n_normal": int(len(normals)), "n_lesion": int(len(lesions))}
        for prefix, k in (("", 0), ("map_max_", 1)):
            row.update(image_figures(prefix, alpha, scored["cal"][k], scored["normal"][k], scored["lesion"][k]))
        normal_maps, lesion_maps = scored["normal"][2], scored["lesion"][2]
        truth = np.concatenate([np.zeros(normal_maps.shape, np.uint8), (masks > 0).astype(np.uint8)])
        all_maps = np.concatenate([normal_maps, lesion_maps])
        labels = np.r_[np.zeros(len(normal_maps)), np.ones(len(lesion_maps))]
        pixel = anomaly_metrics(labels, np.r_[scored["normal"][0], scored["lesion"][0]], truth, all_maps, max_pixels=200_000, seed=0)
        row.update({k: pixel[k] for k in ("pixel_auroc", "pixel_auprc", "best_dice")})
        # the pixel threshold calibrated as medgan calibrates it: over the calibration normals' body pixels
        threshold = pixel_threshold(scored["cal"][2][bodies["cal"]], alpha)
        called = (lesion_maps > threshold) & bodies["lesion"]
        row["dice_at_threshold"] = float(2 * (called & (masks > 0)).sum() / max(1, called.sum() + (masks > 0).sum()))
        row["pixel_fpr_at_alpha"] = float((normal_maps > threshold)[bodies["normal"]].mean())
        row["seconds"] = round(time.perf_counter() - start, 1)
        row = {k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=32, help="the networks' base width")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="anomaly-bench-"))
    runs = []
    try:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for case in args.cases.split(","):
                runs += run_case(case, args.methods.split(","), seed, args.steps, args.batch_size, args.alpha, root, args.width)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    summary: dict[str, dict] = {}
    for r in runs:
        cell = summary.setdefault(f"{r['case']} / {r['method']}", {})
        for k in ("auroc", "auprc", "sensitivity_at_95spec", "fpr_at_alpha", "sensitivity_at_alpha", "map_max_auroc", "map_max_auprc",
                  "map_max_sensitivity_at_95spec", "map_max_fpr_at_alpha", "map_max_sensitivity_at_alpha", "pixel_auroc", "pixel_auprc",
                  "best_dice", "dice_at_threshold", "pixel_fpr_at_alpha", "seconds"):
            cell.setdefault(k, []).append(r[k])
    summary = {key: {k: f"{np.mean(v):.3f} ± {np.std(v):.3f}" for k, v in cell.items()} for key, cell in summary.items()}
    print(json.dumps({"benchmark": "anomaly_vs_baselines", "steps": args.steps, "batch_size": args.batch_size, "width": args.width, "alpha": args.alpha,
                      "torch_threads": torch.get_num_threads(), "runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
