"""Calibrating an anomaly run on its held-out normal volumes, and evaluating it against lesions.

After training (:meth:`AnomalyTask.after_training`) the run's held-out volumes, all normal
(the training data must be normal images), are split at the volume (patient) level: a share
``calibration_fraction`` calibrates the image-level threshold and p-values, and the rest
checks the false-positive rate reached (with its exact 95% interval). Volume-level scores
(the maximum over a volume's slices) are calibrated on the calibration volumes when there
are enough of them; otherwise ``calibration.json`` says how many are needed. Everything is
written to ``RUN/calibration.json``, which :func:`medgan.tasks.anomaly.model.load_model` loads
with the networks.

With ``--normalise-residual on`` the maps are z-scores of the residual against its per-pixel
mean and spread (:class:`~medgan.tasks.anomaly.model.ResidualNormalisation`), fitted on the
*calibration* volumes only and saved as ``RUN/normalisation.safetensors``; the check volumes
never enter it, so the rate they measure is the rate on new normals. The calibration scores
themselves are cross-fitted: the calibration volumes are cut into up to
:data:`NORMALISATION_FOLDS` folds and each fold's maps are normalised by statistics of the
other folds, so no calibration image is scored against statistics that include its own
residual (which would make its z-scores small and the thresholds too low). The saved
statistics, from all calibration volumes, are what ``medgan detect`` and the check use.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from medgan.errors import MedganError
from medgan.io.records import utc_now
from medgan.tasks.anomaly.calibration import calibrate, check_false_positive_rate, needed_for
from medgan.tasks.anomaly.model import (CALIBRATION, NORMALISATION, body, body_mask, fit_normalisation, load_model, maps_of,
                                        residual_set, score_images, score_set)

__all__ = ["CALIBRATION", "NORMALISATION_FOLDS", "PICTURE", "baseline_record", "calibrate_run", "calibrate_source",
           "evaluate_anomaly_run", "intensity_rule", "lesion_set", "verdict"]

PICTURE = "anomaly-heatmaps.png"  # drawn by medgan evaluate for the embedded sources
NORMALISATION_FOLDS = 5  # cross-fitting of the calibration scores against the residual statistics


def _split_volumes(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, check) image indices, whole volumes on each side; a lone volume is split
    into interleaved slices instead (every ``1/fraction``-th slice calibrates), which are
    not independent patients, as the record then says."""
    volumes = np.unique(groups)
    if len(volumes) == 1 and fraction < 1:
        chosen = np.zeros(len(groups), bool)
        chosen[np.unique(np.round(np.linspace(0, len(groups) - 1, max(1, round(fraction * len(groups))))).astype(int))] = True
        return np.flatnonzero(chosen), np.flatnonzero(~chosen)
    order = np.random.default_rng(seed).permutation(volumes)
    n_cal = len(volumes) if fraction >= 1 else min(len(volumes) - 1, max(1, round(fraction * len(volumes))))
    chosen = np.isin(groups, order[:n_cal])
    return np.flatnonzero(chosen), np.flatnonzero(~chosen)


def _volume_scores(scores: np.ndarray, groups: np.ndarray) -> np.ndarray:
    return np.array([scores[groups == g].max() for g in np.unique(groups)])


def calibrate_run(run_dir: str | Path) -> dict:
    """Calibrate a finished anomaly run on its held-out normal volumes; writes and returns
    ``calibration.json``'s record (levels that could not be calibrated say why)."""
    from medgan.runs import run_holdout

    run_dir = Path(run_dir)
    config, _, holdout = run_holdout(run_dir, "normal volumes to calibrate on")
    a = config.task_config
    return _calibrate(run_dir, load_model(run_dir), holdout, a.alpha, a.calibration_fraction, config.data.split_seed,
                      "the run's held-out normal volumes")


def calibrate_source(run_dir: str | Path, source: str, alpha: float | None = None, fraction: float | None = None) -> dict:
    """Recalibrate a trained run on another site's normal images (any source medgan reads,
    read with the run's options: size, window, normalisation), without retraining; the
    previous ``calibration.json`` is kept beside it with its time in the name."""
    from dataclasses import replace as dc_replace

    from medgan.data.sources import load_source
    from medgan.runs import run_config

    run_dir = Path(run_dir)
    config = run_config(run_dir)
    model = load_model(run_dir)
    a = config.task_config
    data = load_source(source, dc_replace(config.data.options, masks=None, lesion_fraction=0.0))
    old = run_dir / CALIBRATION
    if old.is_file():
        stamp = json.loads(old.read_text()).get("time", "old").replace(":", "").replace("-", "")
        old.replace(run_dir / f"calibration-{stamp}.json")
        if (run_dir / NORMALISATION).is_file():
            (run_dir / NORMALISATION).replace(run_dir / f"normalisation-{stamp}.safetensors")
    return _calibrate(run_dir, model, data, alpha or a.alpha, fraction or a.calibration_fraction, config.data.split_seed, str(source))


def _calibrate(run_dir: Path, model, normals, alpha: float, fraction: float, seed: int, what: str) -> dict:
    groups = normals.groups if normals.groups is not None else np.arange(len(normals))
    cal, check = _split_volumes(groups, fraction, seed)
    levels, notes = {}, []
    residuals = residual_set(model, normals.images)
    normalisation = None
    if model.option("normalise_residual", "off") == "on":
        try:
            scores, maps, normalisation = _normalised(model, residuals, groups, cal, check)
        except MedganError as exc:
            notes.append(f"the residual is not normalised: {exc.message}")
    if normalisation is None:
        scores, maps = maps_of(model, residuals, None)
    for level, cal_scores, check_scores in (
        ("image", scores[cal], scores[check]),
        ("volume", _volume_scores(scores[cal], groups[cal]), _volume_scores(scores[check], groups[check]) if len(check) else np.zeros(0)),
    ):
        try:
            calibration = calibrate(cal_scores, alpha, level)
        except MedganError as exc:
            levels[level] = {"error": exc.message, "n": len(cal_scores)}
            notes.append(f"{level} level: {exc.message}")
            continue
        levels[level] = calibration.to_dict()
        if len(check_scores):
            levels[level]["check"] = check_false_positive_rate(calibration, check_scores).to_dict()
    body = body_mask(model, normals.images)
    cal_pixels = maps[cal][body[cal]]
    if len(cal_pixels) >= needed_for(alpha):
        threshold = pixel_threshold(cal_pixels, alpha)
        levels["pixel"] = {"level": "pixel", "alpha": alpha, "threshold": threshold, "n": int(len(cal_pixels))}
        if len(check):
            flagged = maps[check][body[check]] > threshold
            levels["pixel"]["check"] = {"n": int(flagged.size), "rate": float(flagged.mean()) if flagged.size else None}
    if len(np.unique(groups)) == 1 and len(check):
        notes.append("one normal volume: calibration and check are interleaved slices of it, not independent patients; "
                     "calibrate on several patients' normals for a rate that holds on new patients")
    record = {"time": utc_now(), "method": model.method, "step": model.info.get("step"), "alpha": alpha, "normals": what,
              "n_calibration_images": int(len(cal)), "n_check_images": int(len(check)),
              "n_calibration_volumes": int(len(np.unique(groups[cal]))), "n_check_volumes": int(len(np.unique(groups[check]))),
              "levels": levels, "notes": notes}
    if normalisation is not None:  # its statistics beside calibration.json, its settings inside
        normalisation.save(run_dir / NORMALISATION)
        record["normalisation"] = {**normalisation.settings, "file": NORMALISATION,
                                   "fitted_on": "the calibration images (cross-fitted for their own scores), never the check images"}
    else:
        (run_dir / NORMALISATION).unlink(missing_ok=True)  # a stale file: this calibration's maps are raw residuals
    model.normalisation = normalisation
    tmp = run_dir / (CALIBRATION + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(run_dir / CALIBRATION)
    return record


def _normalised(model, residuals, groups: np.ndarray, cal: np.ndarray, check: np.ndarray):
    """``(scores (N,), maps (N, S, S), normalisation)`` of the normals with a residual
    normalisation fitted on the calibration images ``cal``: the check images' maps by it,
    the calibration images' by the statistics of the other folds of calibration volumes
    (whole volumes; interleaved slices of a lone volume)."""
    method_scores, raw, x = residuals
    inside = body(torch.from_numpy(x)).numpy()
    fitted = fit_normalisation(raw[cal], inside[cal])
    scores = np.zeros(len(raw))
    maps = np.zeros(raw.shape, np.float32)
    pick = lambda i: (method_scores[i], raw[i], x[i])  # noqa: E731
    if len(check):
        scores[check], maps[check] = maps_of(model, pick(check), fitted)
    volumes = np.unique(groups[cal])
    unit = groups[cal] if len(volumes) >= 2 else np.arange(len(cal))  # what a fold is made of
    ids = np.unique(unit)
    k = min(NORMALISATION_FOLDS, len(ids))
    fold_of = dict(zip(ids, np.arange(len(ids)) % k))
    folds = np.array([fold_of[u] for u in unit])
    for f in range(k):
        part, rest = cal[folds == f], cal[folds != f]
        scores[part], maps[part] = maps_of(model, pick(part), fit_normalisation(raw[rest], inside[rest]))
    return scores, maps, fitted


def pixel_threshold(pixels: np.ndarray, alpha: float) -> float:
    """The conformal rank ``ceil((n + 1)(1 - alpha))`` of normal body pixels' map values.
    Pixels of one image are not exchangeable with each other: the rate it keeps is a mean
    over normal images' pixels, not a per-pixel guarantee."""
    n = len(pixels)
    k = int(np.ceil((n + 1) * (1 - alpha) - 1e-9))
    return float(np.partition(np.asarray(pixels, np.float64), k - 1)[k - 1])


def lesion_set(source: str, normals, seed: int, kinds: str = "mix") -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Simulated lesions in held-out normals of an embedded source, to test a run on.

    Args:
        source: the run's data source: ``"phantom"`` (lesions in the brain tissue of the
            head phantoms, less its border: :func:`~medgan.datasets.phantom.tissue_masks`,
            contrast :data:`~medgan.datasets.phantom.LESION_CONTRAST`) or ``"brain-mri"``
            (inside the slices' brain mask, the simulator's default contrast); any other
            source, a user's data, holds no known anomalies.
        normals: the held-out normal images (:class:`~medgan.data.imageset.ImageSet`).
        seed: the lesions are seeded by ``seed + 1000``.
        kinds: :class:`~medgan.datasets.lesions.LesionConfig` ``kind``; ``"mix"``: bright,
            dark, texture, mass effect and missing structure in turn.

    Returns:
        ``(images, masks, kinds)`` of the images whose lesions left a mask (a missing
        structure in flat tissue may remove nothing), or ``None``.
    """
    from medgan.datasets.lesions import LesionConfig, simulate_lesions
    from medgan.datasets.phantom import LESION_CONTRAST, tissue_masks

    if source == "phantom" and (normals.extra or {}).get("kind") == "head":
        regions, config = tissue_masks(normals, "brain"), LesionConfig(kind=kinds, contrast=LESION_CONTRAST)
    elif source == "brain-mri" and normals.masks is not None:
        regions, config = normals.masks > 0, LesionConfig(kind=kinds)
    else:
        return None
    images, masks, kind = simulate_lesions(normals.images, regions, seed=seed + 1000, config=config, return_kinds=True)
    keep = masks.any(axis=(1, 2))
    return images[keep], masks[keep], kind[keep]


def draw_heatmaps(path: Path, model, normals: np.ndarray, normal_scores: np.ndarray, lesions: np.ndarray, masks: np.ndarray,
                  lesion_scores: np.ndarray, k: int = 3) -> None:
    """Rows of image | reconstruction (restored) | heat map (fixed scale) | truth: the ``k`` highest- and
    ``k`` lowest-scoring images with lesions, then the 2 highest-scoring normals (the false
    alarms, if any); the caption gives the score and, when calibrated, the p-value."""
    from medgan.report.grid import save_grid
    from medgan.tasks.anomaly.detect import heat_overlay

    order = np.argsort(-lesion_scores)
    picks = [("lesion", i) for i in order[:k]] + [("lesion", i) for i in order[::-1][:k] if i not in order[:k]]
    picks += [("normal", i) for i in np.argsort(-normal_scores)[:2]]
    calibration = model.calibration.get("image")
    sigma = float(model.info["anomaly"].get("map_sigma", 0.0))
    tiles, captions, outlines = [], [], []
    redrawn = "restored" if model.method == "restore" else "reconstruction"
    for kind, i in picks:
        image = (lesions if kind == "lesion" else normals)[i]
        score = (lesion_scores if kind == "lesion" else normal_scores)[i]
        x = torch.from_numpy(model.intensity.forward(image.astype(np.float32))[None, None])
        _, m, rec = score_images(model, x, sigma)
        back = model.intensity.inverse(rec[0, 0].numpy())
        truth = masks[i] > 0 if kind == "lesion" else np.zeros(image.shape, bool)
        blank = np.zeros_like(image)
        tiles.append(heat_overlay(model, np.stack([image, back, image, image]), np.stack([blank, blank, m[0].numpy(), blank])))
        outlines += [np.zeros(image.shape, np.uint8)] * 3 + [truth.astype(np.uint8)]
        p = f" p={calibration.p_values(score)[0]:.2f}" if calibration is not None else ""
        captions += [f"{kind} {score:.3g}{p}", redrawn, "z-scored map" if model.normalisation is not None else "map", "truth"]
    scale = max(1, -(-128 // max(lesions.shape[-2:])))
    save_grid(path, np.concatenate(tiles), value_range=(0, 255), ncol=4, masks=np.stack(outlines), captions=captions, scale=scale,
              overwrite=True)


def evaluate_anomaly_run(run_dir: str | Path, metrics: list[str] | None = None) -> dict:
    """The false-positive rate on the run's check normals at the calibrated threshold and,
    for the embedded sources, image and pixel AUROC / AUPRC, sensitivity at 95% specificity
    and best Dice against lesions (appended to ``metrics.jsonl``).

    Raises:
        MedganError: ``metrics`` given: these figures come together, there is none to choose.
    """
    if metrics:
        raise MedganError(f"an anomaly run is evaluated by one fixed set of figures, not --metrics {','.join(metrics)}",
                          path=run_dir, hint="leave --metrics out")
    from medgan.runs import run_holdout
    from medgan.io.records import append_jsonl

    run_dir = Path(run_dir)
    config, dataset, holdout = run_holdout(run_dir, "normal volumes")
    model = load_model(run_dir)
    groups = holdout.groups if holdout.groups is not None else np.arange(len(holdout))
    _, check = _split_volumes(groups, config.task_config.calibration_fraction, config.data.split_seed)
    normals = holdout.subset(check) if len(check) else holdout
    normal_scores, normal_maps = score_set(model, normals.images)
    figures: dict[str, float] = {}
    if "image" in model.calibration:
        fpr = check_false_positive_rate(model.calibration["image"], normal_scores)
        figures.update(fpr_at_alpha=fpr.rate, fpr_ci_low=fpr.low, fpr_ci_high=fpr.high)
    anomalous = lesion_set(config.data.source, normals, config.loop.seed)
    n_anomalous, by_kind, baseline = 0, {}, None
    if anomalous is not None:
        images, masks, kinds = anomalous
        scores, maps = score_set(model, images)
        n_anomalous = len(images)
        figures.update(detection_figures((normal_scores, normal_maps), (scores, maps), masks))
        if "image" in model.calibration:
            figures["sensitivity_at_alpha"] = float(model.calibration["image"].flagged(scores).mean())
        if model.pixel_threshold is not None:
            called = (maps > model.pixel_threshold) & body_mask(model, images)
            truth = masks > 0
            figures["dice_at_threshold"] = float(2 * (called & truth).sum() / max(1, called.sum() + truth.sum()))
        draw_heatmaps(run_dir / PICTURE, model, normals.images, normal_scores, images, masks, scores)
        rule = intensity_rule(dataset, model)
        rule_normals, rule_lesions = score_set(rule, normals.images), score_set(rule, images)
        baseline = baseline_record(rule, detection_figures(rule_normals, rule_lesions, masks), figures)
        for kind in dict.fromkeys(kinds):  # each kind of lesion alone against the same normals: what a method cannot see
            pick = kinds == kind
            ours = detection_figures((normal_scores, normal_maps), (scores[pick], maps[pick]), masks[pick])
            theirs = detection_figures(rule_normals, (rule_lesions[0][pick], rule_lesions[1][pick]), masks[pick])
            by_kind[str(kind)] = {"n": int(pick.sum()), **{k: ours[k] for k in KIND_FIGURES},
                                  **{f"rule_{k}": theirs[k] for k in KIND_FIGURES}}
    if model.pixel_threshold is not None:
        figures["pixel_fpr_at_alpha"] = float((normal_maps > model.pixel_threshold)[body_mask(model, normals.images)].mean())
    record = {"kind": "evaluate", "task": "anomaly", "time": utc_now(), "step": model.info.get("step"), "method": model.method,
              "n_test": int(len(normals) + n_anomalous), "n_normal": int(len(normals)), "n_anomalous": n_anomalous,
              "alpha": config.task_config.alpha, "metrics": {k: float(v) for k, v in figures.items()},
              "settings": {"normals": "held-out normal volumes not used for calibration",
                           "anomalous": "none known" if anomalous is None else
                           f"simulated lesions (bright, dark, texture, mass effect, missing structure) in those normals of the "
                           f"{config.data.source} source"}}
    if baseline is not None:
        record["baseline"] = baseline
        record["by_kind"] = by_kind
    append_jsonl(run_dir / "metrics.jsonl", record)
    return record


# ---------------------------------------------------------------------------- the baseline beside every result


def intensity_rule(dataset, model):
    """The z-score rule (:class:`~medgan.tasks.anomaly.methods.zscore.ZScore`) fitted on every
    image of a run's training ``dataset``, scored with ``model``'s map smoothing and image
    score: the plain alternative a run's figures are shown beside."""
    from medgan.tasks.anomaly.methods.zscore import ZScore
    from medgan.tasks.anomaly.model import AnomalyModel

    size, channels = dataset.image_size[0], dataset.channels
    atlas = ZScore.build("atlas", {"image_size": size, "channels": channels})
    for start in range(0, len(dataset), 256):
        atlas.add(dataset.batch(torch.arange(start, min(start + 256, len(dataset))))["image"])  # (B, C, S, S) in [-1, 1]
    info = {"method": ZScore.name, "step": None, "anomaly": dict(model.info["anomaly"]),
            "net": {"image_size": size, "channels": channels}}
    return AnomalyModel(ZScore.name, {"atlas": atlas.eval()}, model.intensity, 1.0, info)


#: the figures given per lesion kind, the model's and the rule's.
KIND_FIGURES = ("auroc", "pixel_auprc")


def detection_figures(normal: tuple[np.ndarray, np.ndarray], lesion: tuple[np.ndarray, np.ndarray], masks: np.ndarray) -> dict:
    """Image and pixel figures (:func:`~medgan.metrics.anomaly.anomaly_metrics`) of ``(scores (N,),
    maps (N, S, S))`` of normal images against those of images with lesions ``masks``."""
    from medgan.metrics.anomaly import anomaly_metrics

    labels = np.r_[np.zeros(len(normal[0])), np.ones(len(lesion[0]))]
    truth = np.concatenate([np.zeros(normal[1].shape, np.uint8), (masks > 0).astype(np.uint8)])
    return {k: float(v) for k, v in anomaly_metrics(labels, np.r_[normal[0], lesion[0]], truth, np.concatenate([normal[1], lesion[1]]),
                                                    max_pixels=200_000, seed=0).items()}


def baseline_record(rule, metrics: dict, figures: dict) -> dict:
    """The rule's :func:`detection_figures` on the same held-out normals and lesions as a
    run's ``figures``, and the one-line :func:`verdict` between them."""
    return {"method": rule.method, "fitted_on": "the run's training images", "metrics": metrics, "verdict": verdict(figures, metrics)}


#: the figure a verdict compares, the first both records have.
VERDICT_KEYS = (("pixel_auprc", "pixel AUPRC"), ("auroc", "image AUROC"))


def verdict(figures: dict, baseline: dict) -> str:
    """One line: does the model beat the intensity rule (on pixel AUPRC, else image AUROC)?"""
    for key, label in VERDICT_KEYS:
        ours, theirs = figures.get(key), baseline.get(key)
        if ours is None or theirs is None or not (np.isfinite(ours) and np.isfinite(theirs)):
            continue
        if round(ours, 2) == round(theirs, 2):
            return f"ties with the intensity rule on {label}: {ours:.2f} vs {theirs:.2f}"
        word = "beats" if ours > theirs else "loses to"
        return f"{word} the intensity rule on {label}: {ours:.2f} vs {theirs:.2f}"
    return "no figure to compare with the intensity rule"
