"""Does a GAN find lesions better than plain rules? f-AnoGAN and GANomaly against an
autoencoder, a nearest-normal-patch distance and the trivial intensity rule, trained on normal
images only, scored the same way, one after another on the same data.

Methods:

- ``fanogan``, ``ganomaly``, ``ae``: ``medgan train anomaly --method ...`` (the same DCGAN-shaped
  encoder / decoder; f-AnoGAN's steps are split between its WGAN-GP and its encoder);
- ``restore``: ``--method restore``, a U-Net that removes coarse noise from normal images;
- ``<method>+norm``: the same with ``--normalise-residual on`` (maps are z-scores of the residual
  against its per-pixel mean and spread on the calibration normals; the calibration normals'
  own maps cross-fitted as ``medgan train`` makes them); ``restore+critic``: with
  its PatchGAN critic (``--adversarial on``);
- ``knn``: every 8x8 patch (stride 4) of the training normals in [-1, 1] is a bank; a test
  patch's score is its distance to the nearest bank patch, the image's the largest, the map
  the patch scores spread over their pixels (no training);
- ``mean``: the trivial rule, each pixel's deviation from the normal training images' mean
  image in units of their standard deviation (an atlas z-score), the image's score the
  mean absolute z inside the body; a lesion is often just darker or brighter than its tissue.

Cases: ``phantom`` (CT head phantoms through a brain window) and ``brain`` (the embedded MR
slices; train on one head, test on the other). Every method is calibrated on the same held-out
normals and checked on others (conformal threshold at ``--alpha``). Per run: image AUROC /
AUPRC, pixel AUROC / AUPRC, best Dice, sensitivity at 95% specificity, the false-positive
rate on the check normals and the sensitivity at the calibrated threshold, seconds.

Test lesions: :func:`medgan.tasks.anomaly.evaluate.lesion_set` (what ``medgan evaluate`` tests a
run on) draws them into the check normals' brain (the MR slices' brain mask; the phantoms'
brain tissue less its border pixels, ventricles excluded), seeded by the run's seed + 1000, one kind per image taken in turn from
``--lesion-kinds`` (default ``mix``: bright, dark, texture, mass effect, missing structure,
evenly), so every lesion figure is given overall and per kind (``by_kind``); the
false-positive rates concern normals only and are given once. Nothing is chosen by looking at the lesions: the methods are calibrated on
normals, and each is scored at its last training step. On phantoms the intensity and texture
contrasts are 0.7-0.95 of the brain's 24-42 HU (about the phantom generator's own ±20-60 HU
lesions); on the MR slices the simulator's default 0.25-0.5. A kind that no image kept is
listed with ``n_lesion`` 0: on phantoms, whose brain is flat but for a grey-white step of
about 10 HU (less than the 10-15 HU the truth asks of a removed structure), a missing
structure rarely removes anything visible.

    python benchmarks/anomaly_vs_baselines.py [--cases phantom,brain] [--methods ...] [--seeds 0,1,2] [--steps 1000]
                                              [--lesion-kinds mix|hyper,hypo,texture,mass,missing] [--set noise_grid=16 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medgan.data.training import DataConfig, load_training_data
from medgan.datasets.lesions import KINDS, LesionConfig
from medgan.errors import MedganError
from medgan.metrics.anomaly import anomaly_metrics, auprc, auroc, sensitivity_at_specificity
from medgan.tasks.anomaly.calibration import calibrate, check_false_positive_rate
from medgan.tasks.anomaly.evaluate import _normalised, _split_volumes, lesion_set, pixel_threshold
from medgan.tasks.anomaly.model import body, gaussian_blur, load_model, map_peak, residual_set, score_set
from medgan.train import TrainConfig, Trainer

CASES = {
    "phantom": {"source": "phantom", "options": {"size": 64, "n": 400, "window": "40,160"}, "holdout": 0.3},
    "brain": {"source": "brain-mri", "options": {"size": 64}, "holdout": 0.5},
}
#: medgan's trained methods; ``+norm`` (the residual z-scored against the calibration normals,
#: --normalise-residual on) and ``+critic`` (restore's PatchGAN critic, --adversarial on) are
#: variants of them, e.g. ``restore+critic+norm``.
LEARNED = ("fanogan", "ganomaly", "ae", "restore")
METHODS = ("fanogan", "ganomaly", "ae", "restore", "ae+norm", "restore+norm", "restore+critic+norm", "knn", "mean")


def medgan_model(case: dict, method: str, seed: int, steps: int, batch: int, run_dir: Path, width: int, options: dict | None = None):
    """A trained run of ``method`` (its base and ``+critic``), always with ``--normalise-residual
    on``: normalisation is fitted after training and changes nothing in it, so the raw and
    ``+norm`` rows of one method score one model (:func:`medgan_scorer`)."""
    base, *variants = method.split("+")
    gan_steps = steps // 2 if base == "fanogan" else steps
    values = {"task": "anomaly", "data": {"source": case["source"], "options": dict(case["options"]), "holdout": case["holdout"]},
              "model": {"name": "auto", "net": {"width": width}},
              "loop": {"steps": gan_steps, "batch_size": batch, "seed": seed, "log_every": max(1, steps // 10), "sample_every": steps,
                       "checkpoint_every": steps, "n_samples": 16, "ema": 0.0},
              "anomaly": {"method": base, "encoder_steps": steps - gan_steps if base == "fanogan" else 0, "normalise_residual": "on",
                          "adversarial": "on" if "critic" in variants else "off", **(options or {})}}
    Trainer(TrainConfig.from_dict(values), run_dir, progress=False).fit()
    return load_model(run_dir)


def medgan_scorer(model, method: str):
    """``method``'s scorer from its trained ``model``: maps normalised for ``+norm``, raw else."""
    if "norm" not in method.split("+"):
        model = dataclasses.replace(model, normalisation=None)
    return lambda images: score_set(model, images, image_score="method")


def crossfitted_scorer(model, groups: np.ndarray):
    """The ``+norm`` scorer of the calibration normals, whose volumes ``groups`` are those the
    run calibrated on: each fold's maps normalised by the statistics of the other folds, as
    ``medgan train`` scores them (an image scored against statistics that include its own
    residual gets small z-scores, and a threshold set on those is too low)."""

    def score(images: np.ndarray):
        scores, maps, fitted = _normalised(model, residual_set(model, images), groups, np.arange(len(images)), np.zeros(0, int))
        assert np.allclose(fitted.mean, model.normalisation.mean), "the run's normalisation was fitted on other normals"
        return scores, maps

    return score


def training_key(method: str) -> str:
    """The run a learned method's rows share: its name less ``+norm``."""
    return "+".join(v for v in method.split("+") if v != "norm")


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


def lesion_figures(alpha: float, scored: dict, bodies: dict, masks: np.ndarray, pick: np.ndarray) -> dict:
    """Every figure that involves the lesions, for the lesion images ``pick``: image figures
    (the method's own score and ``map_max_``), pixel AUROC / AUPRC and best Dice over the
    check normals and these images, and the Dice at the pixel threshold calibrated as medgan
    calibrates it (over the calibration normals' body pixels)."""
    row = {"n_lesion": int(len(pick))}
    for prefix, k in (("", 0), ("map_max_", 1)):
        row.update(image_figures(prefix, alpha, scored["cal"][k], scored["normal"][k], scored["lesion"][k][pick]))
    normal_maps, lesion_maps, truth = scored["normal"][2], scored["lesion"][2][pick], masks[pick] > 0
    labels = np.r_[np.zeros(len(normal_maps)), np.ones(len(lesion_maps))]
    pixel = anomaly_metrics(labels, np.r_[scored["normal"][0], scored["lesion"][0][pick]],
                            np.concatenate([np.zeros(normal_maps.shape, np.uint8), truth.astype(np.uint8)]),
                            np.concatenate([normal_maps, lesion_maps]), max_pixels=200_000, seed=0)
    row.update({k: pixel[k] for k in ("pixel_auroc", "pixel_auprc", "best_dice")})
    threshold = pixel_threshold(scored["cal"][2][bodies["cal"]], alpha)
    called = (lesion_maps > threshold) & bodies["lesion"][pick]
    row["dice_at_threshold"] = float(2 * (called & truth).sum() / max(1, called.sum() + truth.sum()))
    return row


NORMAL_ONLY = ("fpr_at_alpha", "fpr_ci95", "map_max_fpr_at_alpha", "map_max_fpr_ci95")  # the same for every kind


def run_case(name: str, methods: list[str], seed: int, steps: int, batch: int, alpha: float, root: Path, width: int,
             kinds: str = "mix", options: dict | None = None) -> list[dict]:
    case = CASES[name]
    config = DataConfig(source=case["source"], holdout=case["holdout"])
    for key, value in case["options"].items():
        setattr(config.options, key, value)
    dataset, holdout = load_training_data(config)
    groups = holdout.groups if holdout.groups is not None else np.arange(len(holdout))
    cal, check = _split_volumes(groups, 0.5, 0)
    normals = holdout.subset(check)

    lesions, masks, lesion_kinds = lesion_set(case["source"], normals, seed, kinds)
    out, trained_models = [], {}  # training key -> (model, seconds it took)
    for method in methods:
        start = time.perf_counter()
        if method.split("+")[0] in LEARNED:
            key = training_key(method)
            if key in trained_models:
                model, took = trained_models[key]
                start -= took  # a row's seconds count its model's training, though an earlier row paid for it
            else:
                model = medgan_model(case, key, seed, steps, batch, root / f"{name}-{key}-{seed}", width, options)
                trained_models[key] = (model, time.perf_counter() - start)
            scorer = medgan_scorer(model, method)
        elif method == "knn":
            scorer = with_smoothed_maps(knn_scorer(dataset.data.images, dataset.intensity, seed=seed))
        else:
            scorer = with_smoothed_maps(mean_scorer(dataset.data.images, dataset.intensity))
        cal_scorer = crossfitted_scorer(model, groups[cal]) if "norm" in method.split("+") else scorer
        trained = time.perf_counter() - start
        scored, bodies = {}, {}
        for part, images in (("cal", holdout.images[cal]), ("normal", normals.images), ("lesion", lesions)):
            scores, maps = (cal_scorer if part == "cal" else scorer)(images)
            bodies[part] = body(_to_unit(images, dataset.intensity)).numpy()
            scored[part] = (scores, map_peak(torch.from_numpy(maps), torch.from_numpy(bodies[part])).numpy().astype(np.float64), maps)
        row = {"case": name, "method": method, "seed": seed, "train_seconds": round(trained, 1), "n_calibration": int(len(cal)),
               "n_normal": int(len(normals))}
        row.update(lesion_figures(alpha, scored, bodies, masks, np.arange(len(lesions))))
        threshold = pixel_threshold(scored["cal"][2][bodies["cal"]], alpha)
        row["pixel_fpr_at_alpha"] = float((scored["normal"][2] > threshold)[bodies["normal"]].mean())
        row["by_kind"] = {}
        for kind in LesionConfig(kind=kinds).kinds:  # a kind no image kept (nothing visible removed) says n_lesion 0
            pick = np.flatnonzero(lesion_kinds == kind)
            figures = lesion_figures(alpha, scored, bodies, masks, pick) if len(pick) else {"n_lesion": 0}
            row["by_kind"][kind] = {k: v for k, v in figures.items() if k not in NORMAL_ONLY}
        row["seconds"] = round(time.perf_counter() - start, 1)
        row = _rounded(row)
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def _rounded(row: dict) -> dict:
    return {k: (round(float(v), 4) if isinstance(v, (float, np.floating)) else _rounded(v) if isinstance(v, dict) else v)
            for k, v in row.items()}


FIGURES = ("auroc", "auprc", "sensitivity_at_95spec", "fpr_at_alpha", "sensitivity_at_alpha", "map_max_auroc", "map_max_auprc",
           "map_max_sensitivity_at_95spec", "map_max_fpr_at_alpha", "map_max_sensitivity_at_alpha", "pixel_auroc", "pixel_auprc",
           "best_dice", "dice_at_threshold", "pixel_fpr_at_alpha", "seconds")


def _mean_sd(cells: list[dict]) -> dict:
    """``"mean ± sd"`` over seeds of every figure the cells share (n_lesion summed)."""
    cells = [c for c in cells if c.get("n_lesion", 1)] or cells[:1]
    out = {k: f"{np.mean([c[k] for c in cells]):.3f} ± {np.std([c[k] for c in cells]):.3f}" for k in FIGURES if k in cells[0]}
    if "n_lesion" in cells[0]:
        out["n_lesion"] = int(sum(c["n_lesion"] for c in cells))
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
    parser.add_argument("--lesion-kinds", default="mix",
                        help=f"lesion kinds taken in turn by the test images: mix (= {','.join(KINDS)}) or a comma-separated list of them")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE",
                        help="an anomaly option for every learned method, as in its config (e.g. noise_grid=16), repeatable")
    args = parser.parse_args()
    try:
        LesionConfig(kind=args.lesion_kinds)
    except MedganError as exc:
        parser.error(f"--lesion-kinds: {exc}")
    options = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if not value:
            parser.error(f"--set {item}: use OPTION=VALUE")
        try:
            options[key] = json.loads(value)  # numbers and true / false
        except json.JSONDecodeError:
            options[key] = value
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="anomaly-bench-"))
    runs = []
    try:
        for seed in [int(s) for s in args.seeds.split(",")]:
            for case in args.cases.split(","):
                runs += run_case(case, args.methods.split(","), seed, args.steps, args.batch_size, args.alpha, root, args.width,
                                 args.lesion_kinds, options)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cells: dict[str, list[dict]] = {}
    for r in runs:
        cells.setdefault(f"{r['case']} / {r['method']}", []).append(r)
    summary = {}
    for key, rows in cells.items():
        summary[key] = _mean_sd(rows)
        summary[key]["by_kind"] = {kind: _mean_sd([r["by_kind"][kind] for r in rows if kind in r["by_kind"]])
                                   for kind in dict.fromkeys(k for r in rows for k in r["by_kind"])}
    print(json.dumps({"benchmark": "anomaly_vs_baselines", "steps": args.steps, "batch_size": args.batch_size, "width": args.width, "alpha": args.alpha,
                      "lesion_kinds": args.lesion_kinds, "options": options, "torch_threads": torch.get_num_threads(), "runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
