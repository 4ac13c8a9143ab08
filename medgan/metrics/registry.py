"""Metrics by name: one registered function each, picked with ``--metrics``; tasks name
their defaults.

Four families, each a :class:`MetricFamily` of functions of one inputs record:

- :data:`REALISM` (synthesis): :class:`RealismInputs`, the real and generated images in
  [-1, 1], the seed, and the Inception features computed once on first use and shared by
  every metric that needs them;
- :data:`FIDELITY` (enhancement, reconstruction): :class:`FidelityInputs`, reference and
  output images in data units and the data range;
- :data:`SEGMENTATION`: :class:`SegmentationInputs`, predicted and true label maps (one
  image or one volume's slices), scored once for Dice/IoU, surface distances and NSD;
- :data:`CLASSIFICATION`: :class:`ClassificationInputs`, true classes and predicted
  probabilities.

Registering a metric is one decorated function here::

    @register_realism("swd")
    def _swd(inputs):
        return {"swd": swd(inputs.real, inputs.fake, seed=inputs.seed)["swd_x1e3_avg"]}

:meth:`MetricFamily.compute` runs the chosen ones (all by default) and times each.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medgan.errors import MedganError, MedganWarning
from medgan.metrics.realism import fid_from_features, kid_from_features, ms_ssim_diversity, pixel_features, prdc, swd

__all__ = [
    "CLASSIFICATION", "ClassificationInputs", "FIDELITY", "FidelityInputs", "MetricFamily", "REALISM", "RealismInputs",
    "SEGMENTATION", "SegmentationInputs",
    "compute_realism", "register_realism",
]


@dataclass(frozen=True)
class _Metric:
    fn: Callable[[Any], dict[str, Any]]
    #: ``inputs -> bool``: whether the inputs allow the metric (else it is listed as skipped).
    available: Callable[[Any], bool]


class MetricFamily:
    """Metrics of one kind of inputs, by name, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self.metrics: dict[str, _Metric] = {}

    def register(self, name: str, available: Callable[[Any], bool] | None = None):
        """Register ``fn(inputs) -> {figure: value}`` under ``name`` (a decorator)."""
        def decorate(fn):
            if name in self.metrics:
                raise ValueError(f"{self.kind} metric {name!r} registered twice")
            self.metrics[name] = _Metric(fn, available or (lambda inputs: True))
            return fn
        return decorate

    def __contains__(self, name: object) -> bool:
        return name in self.metrics

    def __iter__(self):
        return iter(self.metrics)

    def __getitem__(self, name: str) -> _Metric:
        return self.metrics[name]

    def check(self, names: list[str] | None) -> list[str]:
        """The chosen names in order (default: all), or one clear error naming the known ones."""
        chosen = list(self.metrics) if not names else list(dict.fromkeys(names))
        unknown = [n for n in chosen if n not in self.metrics]
        if unknown:
            raise MedganError(f"unknown {self.kind} metric {', '.join(map(repr, unknown))}", hint=f"choose from {', '.join(self.metrics)}")
        return chosen

    def compute(self, inputs: Any, names: list[str] | None = None, seconds: dict[str, float] | None = None,
                skipped: list[str] | None = None) -> dict[str, float]:
        """Run the named metrics (default: all) on ``inputs``; the time of each goes into
        ``seconds`` and the names the inputs do not allow into ``skipped``.

        Raises:
            MedganError: an unknown name (listing the known ones).
        """
        seconds = {} if seconds is None else seconds
        figures: dict[str, float] = {}
        for name in self.check(names):
            metric = self.metrics[name]
            if not metric.available(inputs):
                if skipped is not None:
                    skipped.append(name)
                continue
            t = time.perf_counter()
            figures.update({k: float(v) for k, v in metric.fn(inputs).items()})
            seconds[name] = time.perf_counter() - t
        return figures


@dataclass
class RealismInputs:
    """What a realism metric may use.

    Attributes:
        real, fake: ``(N, C, H, W)`` images in [-1, 1].
        seed: seed of any subsampling.
        features: ``extractor(images) -> (N, D)`` Inception features (``None`` without weights).
        seconds: filled by :func:`compute_realism`: the time of each metric.
        skipped: filled by :func:`compute_realism`: the chosen metrics that needed features
            and had none.
    """

    real: np.ndarray
    fake: np.ndarray
    seed: int = 0
    features: Callable[[np.ndarray], np.ndarray] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    _inception: tuple[np.ndarray, np.ndarray] | None = None

    def inception(self) -> tuple[np.ndarray, np.ndarray]:
        """``(real, fake)`` Inception features, computed once (timed as ``inception_features``)."""
        if self._inception is None:
            t = time.perf_counter()
            self._inception = (self.features(self.real), self.features(self.fake))
            self.seconds["inception_features"] = time.perf_counter() - t
        return self._inception


REALISM = MetricFamily("realism")
_NEEDS_INCEPTION: set[str] = set()


def register_realism(name: str, needs_inception: bool = False):
    """Register ``fn(inputs: RealismInputs) -> {figure: value}`` under ``name``."""
    if needs_inception:
        _NEEDS_INCEPTION.add(name)
    return REALISM.register(name, (lambda inputs: inputs.features is not None) if needs_inception else None)


@register_realism("fid", needs_inception=True)
def _fid(inputs: RealismInputs) -> dict:
    return {"fid": fid_from_features(*inputs.inception())}


@register_realism("kid", needs_inception=True)
def _kid(inputs: RealismInputs) -> dict:
    mean, std = kid_from_features(*inputs.inception(), seed=inputs.seed)
    return {"kid_mean": mean, "kid_std": std}


#: PRDC's neighbourhood size (both papers'); each set needs more images than this.
PRDC_K = 5


def _enough_for_prdc(inputs: RealismInputs) -> bool:
    """A small held-out set (a few patients of a small folder) leaves precision/recall out of
    the real floor with a warning instead of failing the whole evaluation."""
    n_real, n_fake = len(inputs.real), len(inputs.fake)
    if min(n_real, n_fake) > PRDC_K:
        return True
    warnings.warn(f"precision/recall left out: {n_real} and {n_fake} images, and k = {PRDC_K} nearest neighbours need more "
                  f"than {PRDC_K} in each set (the real floor's held-out images are few: hold out more, or evaluate more --n)",
                  MedganWarning, stacklevel=2)
    return False


@register_realism("inception_prdc", needs_inception=True)
def _inception_prdc(inputs: RealismInputs) -> dict:
    if not _enough_for_prdc(inputs):
        return {}
    return {f"inception_{k}": v for k, v in prdc(*inputs.inception(), k=PRDC_K).items()}


@register_realism("swd")
def _swd(inputs: RealismInputs) -> dict:
    return {"swd": swd(inputs.real, inputs.fake, seed=inputs.seed)["swd_x1e3_avg"]}


@register_realism("pixel_prdc")
def _pixel_prdc(inputs: RealismInputs) -> dict:
    if not _enough_for_prdc(inputs):
        return {}
    return {f"pixel_{k}": v for k, v in prdc(pixel_features(inputs.real), pixel_features(inputs.fake), k=PRDC_K).items()}


@register_realism("ms_ssim")
def _ms_ssim(inputs: RealismInputs) -> dict:
    return {"ms_ssim_diversity_generated": ms_ssim_diversity(inputs.fake, seed=inputs.seed),
            "ms_ssim_diversity_real": ms_ssim_diversity(inputs.real, seed=inputs.seed)}


def compute_realism(inputs: RealismInputs, names: list[str] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Run the named realism metrics (default: all; those needing Inception are skipped, and
    listed in ``inputs.skipped``, when ``inputs.features`` is ``None``).

    Returns:
        ``(figures, seconds)``: every figure as a float, and the time of each metric (plus
        ``inception_features`` when they were computed).

    Raises:
        MedganError: an unknown name (listing the known ones).
    """
    chosen = REALISM.check(names)
    if inputs.features is not None and _NEEDS_INCEPTION.intersection(chosen):
        inputs.inception()  # once, before the metrics that share them, and timed on its own
    figures = REALISM.compute(inputs, chosen, inputs.seconds, inputs.skipped)
    return figures, inputs.seconds


# ----------------------------------------------------------------------------- fidelity


@dataclass
class FidelityInputs:
    """Reference (ground truth) and output images, ``(N, H, W)`` in the data's units, and
    the data range (CT window width, 255 ...) for PSNR and SSIM."""

    reference: np.ndarray
    output: np.ndarray
    data_range: float


FIDELITY = MetricFamily("fidelity")


@FIDELITY.register("psnr_ssim")
def _psnr_ssim(inputs: FidelityInputs) -> dict:
    from medgan.metrics.image_quality import enhancement_metrics

    return {k: v for k, v in enhancement_metrics(inputs.reference, inputs.output, inputs.data_range).items() if k != "per_image"}


@FIDELITY.register("hf_energy")
def _hf_energy(inputs: FidelityInputs) -> dict:
    from medgan.metrics.texture import hf_energy_ratio

    return {"hf_energy_ratio": hf_energy_ratio(inputs.reference, inputs.output)}


@FIDELITY.register("spectrum")
def _spectrum(inputs: FidelityInputs) -> dict:
    from medgan.metrics.texture import spectrum_bias_db, spectrum_error_db

    return {"spectrum_error_db": spectrum_error_db(inputs.reference, inputs.output),
            "spectrum_bias_db": spectrum_bias_db(inputs.reference, inputs.output)}


# ----------------------------------------------------------------------------- segmentation


@dataclass
class SegmentationInputs:
    """Predicted and true integer label maps of one image ``(H, W)`` or one volume as a stack
    of slices ``(N, H, W)``, the pixel spacing (mm, ``(2,)`` or per slice ``(N, 2)``; pixels
    when ``None``), the foreground labels to score (``None``: any non-zero label as one
    foreground) and the normalised surface Dice's tolerance (units of ``spacing``).

    The scores follow :func:`medgan.metrics.segmentation.slice_stack_metrics`'s rules
    (overlap pooled over the stack, surface distances in each slice's plane) and are computed
    once, on first use, for every metric that reads them.
    """

    pred: np.ndarray
    target: np.ndarray
    spacing: np.ndarray | tuple[float, ...] | float | None = None
    labels: list[int] | None = None
    tolerance: float = 2.0
    _scores: dict[int, dict[str, float]] | None = None

    def scores(self) -> dict[int, dict[str, float]]:
        """``{label: {"dice", "iou", "hd95", "asd", "nsd", "missed_slices", "extra_slices"}}``."""
        if self._scores is None:
            from medgan.metrics.segmentation import slice_stack_metrics

            pred, target = np.asarray(self.pred), np.asarray(self.target)
            labels = self.labels
            if labels is None:  # any non-zero label: one foreground
                pred, target, labels = (pred != 0).astype(np.uint8), (target != 0).astype(np.uint8), [1]
            stack = (lambda x: x[None]) if pred.ndim == 2 else (lambda x: x)  # (N, H, W)
            self._scores = slice_stack_metrics(stack(pred), stack(target), labels, self.spacing, tolerance=self.tolerance)
        return self._scores


SEGMENTATION = MetricFamily("segmentation")


@SEGMENTATION.register("overlap")
def _overlap(inputs: SegmentationInputs) -> dict:
    return _per_label(inputs, ("dice", "iou"))


@SEGMENTATION.register("surface")
def _surface(inputs: SegmentationInputs) -> dict:
    return _per_label(inputs, ("hd95", "asd", "missed_slices", "extra_slices"))


@SEGMENTATION.register("nsd")
def _nsd(inputs: SegmentationInputs) -> dict:
    return _per_label(inputs, ("nsd",))


def _per_label(inputs: SegmentationInputs, names: tuple[str, ...]) -> dict[str, float]:
    """``name`` (the mean over the labels where it is defined, ``nan`` where none is) and
    ``name_<label>`` for each score; one foreground (``labels`` ``None``) gives ``name`` alone."""
    scores = inputs.scores()
    out = {}
    for name in names:
        values = {label: s[name] for label, s in scores.items()}
        finite = [v for v in values.values() if np.isfinite(v)]
        out[name] = float(np.mean(finite)) if finite else float("nan")
        if inputs.labels is not None:
            out.update({f"{name}_{label}": v for label, v in values.items()})
    return out


# ----------------------------------------------------------------------------- classification


@dataclass
class ClassificationInputs:
    """True class indices ``(N,)`` and predicted class probabilities ``(N, K)``."""

    labels: np.ndarray
    probabilities: np.ndarray


CLASSIFICATION = MetricFamily("classification")


@CLASSIFICATION.register("accuracy")
def _accuracy(inputs: ClassificationInputs) -> dict:
    from medgan.metrics.classification import accuracy

    return {"accuracy": accuracy(inputs.labels, inputs.probabilities)}


@CLASSIFICATION.register("balanced_accuracy")
def _balanced_accuracy(inputs: ClassificationInputs) -> dict:
    from medgan.metrics.classification import balanced_accuracy

    return {"balanced_accuracy": balanced_accuracy(inputs.labels, inputs.probabilities)}


@CLASSIFICATION.register("auroc")
def _auroc(inputs: ClassificationInputs) -> dict:
    from medgan.metrics.classification import auroc_ovr

    return {"auroc": auroc_ovr(inputs.labels, inputs.probabilities)}


@CLASSIFICATION.register("ece")
def _ece(inputs: ClassificationInputs) -> dict:
    from medgan.metrics.classification import expected_calibration_error

    return {"ece": expected_calibration_error(inputs.labels, inputs.probabilities)}
