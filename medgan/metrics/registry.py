"""Realism metrics by name: one registered function each, picked with ``--metrics``.

A metric is a function of :class:`RealismInputs` (the real and generated images in
[-1, 1], the seed, and the Inception features computed once on first use and shared by
every metric that needs them) returning named figures. Registering one is one decorated
function here::

    @register_realism("swd")
    def _swd(inputs):
        return {"swd": swd(inputs.real, inputs.fake, seed=inputs.seed)["swd_x1e3_avg"]}

:func:`compute_realism` runs the chosen ones (all by default) and times each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medgan.errors import MedganError
from medgan.metrics.realism import fid_from_features, kid_from_features, ms_ssim_diversity, pixel_features, prdc, swd

__all__ = ["REALISM", "RealismInputs", "compute_realism", "register_realism"]


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


@dataclass(frozen=True)
class _Metric:
    fn: Callable[[RealismInputs], dict[str, Any]]
    needs_inception: bool


REALISM: dict[str, _Metric] = {}


def register_realism(name: str, needs_inception: bool = False):
    """Register ``fn(inputs) -> {figure: value}`` under ``name``."""
    def decorate(fn):
        if name in REALISM:
            raise ValueError(f"realism metric {name!r} registered twice")
        REALISM[name] = _Metric(fn, needs_inception)
        return fn
    return decorate


@register_realism("fid", needs_inception=True)
def _fid(inputs: RealismInputs) -> dict:
    return {"fid": fid_from_features(*inputs.inception())}


@register_realism("kid", needs_inception=True)
def _kid(inputs: RealismInputs) -> dict:
    mean, std = kid_from_features(*inputs.inception(), seed=inputs.seed)
    return {"kid_mean": mean, "kid_std": std}


@register_realism("inception_prdc", needs_inception=True)
def _inception_prdc(inputs: RealismInputs) -> dict:
    return {f"inception_{k}": v for k, v in prdc(*inputs.inception()).items()}


@register_realism("swd")
def _swd(inputs: RealismInputs) -> dict:
    return {"swd": swd(inputs.real, inputs.fake, seed=inputs.seed)["swd_x1e3_avg"]}


@register_realism("pixel_prdc")
def _pixel_prdc(inputs: RealismInputs) -> dict:
    return {f"pixel_{k}": v for k, v in prdc(pixel_features(inputs.real), pixel_features(inputs.fake)).items()}


@register_realism("ms_ssim")
def _ms_ssim(inputs: RealismInputs) -> dict:
    return {"ms_ssim_diversity_generated": ms_ssim_diversity(inputs.fake, seed=inputs.seed),
            "ms_ssim_diversity_real": ms_ssim_diversity(inputs.real, seed=inputs.seed)}


def compute_realism(inputs: RealismInputs, names: list[str] | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """Run the named metrics (default: all; those needing Inception are skipped, and listed
    in ``inputs.skipped``, when ``inputs.features`` is ``None``).

    Returns:
        ``(figures, seconds)``: every figure as a float, and the time of each metric (plus
        ``inception_features`` when they were computed).

    Raises:
        MedganError: an unknown name (listing the known ones).
    """
    chosen = list(REALISM) if not names else list(dict.fromkeys(names))
    unknown = [n for n in chosen if n not in REALISM]
    if unknown:
        raise MedganError(f"unknown metric {', '.join(map(repr, unknown))}", hint=f"choose from {', '.join(REALISM)}")
    if inputs.features is not None and any(REALISM[n].needs_inception for n in chosen):
        inputs.inception()  # once, before the metrics that share them, and timed on its own
    figures: dict[str, float] = {}
    for name in chosen:
        metric = REALISM[name]
        if metric.needs_inception and inputs.features is None:
            inputs.skipped.append(name)
            continue
        t = time.perf_counter()
        figures.update({k: float(v) for k, v in metric.fn(inputs).items()})
        inputs.seconds[name] = time.perf_counter() - t
    return figures, inputs.seconds
