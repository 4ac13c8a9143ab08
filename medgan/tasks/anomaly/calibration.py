"""Conformal calibration of anomaly scores: p-values, a threshold with a stated false-positive
rate, and the checks that tell a user whether that promise holds on their data.

A detector gives every image a score (higher: more anomalous). Calibration keeps the scores
of ``n`` held-out *normal* images (patients never seen in training). For a new image with
score ``s``:

- its **conformal p-value** is ``(1 + #{calibration scores >= s}) / (n + 1)``;
- at a false-positive rate ``alpha`` the **threshold** is the calibration score of rank
  ``k = ceil((n + 1)(1 - alpha))`` (1 = lowest), and the image is flagged when ``s > threshold``.

If the new normal image is exchangeable with the calibration normals (same population,
scanner and protocol), ``P(flagged) = (n + 1 - k) / (n + 1) <= alpha``, whatever the score's
distribution, and ``p <= alpha`` exactly when the image is flagged. This needs ``k <= n``,
i.e. ``n >= 1/alpha - 1`` calibration images; with fewer, :func:`calibrate` refuses and says
how many are needed, rather than return a threshold that cannot keep its promise.

Scores are never rescaled over the images being scored (the reference code's min-max over
the test set makes one image's score depend on the others); a calibration is a fixed list of
numbers saved with the model. The same calibration applies to per-volume scores (the
maximum over a volume's slices, calibrated on normal volumes) and to pixel scores (the
pixels inside the organ mask of normal calibration images; pixels of one image are not
exchangeable with each other, so there the rate is a mean over images, not a guarantee).

Hand-written: the rule is three lines, and no maintained library we install (MONAI,
scikit-learn, torchmetrics) implements split-conformal p-values for anomaly scores; the
confidence interval and the uniformity test are scipy's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from medgan.errors import MedganError

__all__ = ["Calibration", "FPRCheck", "calibrate", "check_false_positive_rate", "check_uniform_p_values", "needed_for"]


def needed_for(alpha: float) -> int:
    """The fewest calibration scores for which a threshold at rate ``alpha`` exists."""
    return max(1, math.ceil(1 / alpha - 1 - 1e-9))


@dataclass(frozen=True)
class Calibration:
    """Calibration scores of normal images and the threshold at ``alpha``.

    Attributes:
        scores: ``(n,)`` calibration scores, sorted ascending.
        alpha: the false-positive rate the threshold keeps.
        threshold: the score of rank ``ceil((n + 1)(1 - alpha))``; flagged means ``score > threshold``.
        level: what the scores are of (``"image"``, ``"volume"``, ``"pixel"``), for messages.
    """

    scores: np.ndarray
    alpha: float
    threshold: float
    level: str = "image"

    @property
    def n(self) -> int:
        return len(self.scores)

    def p_values(self, scores: np.ndarray | float) -> np.ndarray:
        """``(1 + #{calibration >= s}) / (n + 1)`` for each score (one score alone is fine)."""
        s = np.atleast_1d(np.asarray(scores, np.float64))
        at_least = self.n - np.searchsorted(self.scores, s, side="left")  # calibration scores >= s
        return (1 + at_least) / (self.n + 1)

    def flagged(self, scores: np.ndarray | float) -> np.ndarray:
        """``score > threshold`` for each score."""
        return np.atleast_1d(np.asarray(scores, np.float64)) > self.threshold

    def at(self, alpha: float) -> Calibration:
        """The same calibration scores with the threshold of another rate."""
        return calibrate(self.scores, alpha, self.level)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "alpha": self.alpha, "threshold": self.threshold, "n": self.n,
                "scores": [float(v) for v in self.scores]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """From :meth:`to_dict` (the model's ``calibration.json``); the threshold is recomputed
        from the scores, so a hand-edited threshold cannot break the promise silently."""
        try:
            return calibrate(np.asarray(data["scores"], np.float64), float(data["alpha"]), str(data.get("level", "image")))
        except (KeyError, TypeError, ValueError):
            raise MedganError("the calibration lacks its scores or alpha", hint="recalibrate with medgan calibrate MODEL NORMAL_SOURCE") from None


def calibrate(scores: np.ndarray, alpha: float = 0.05, level: str = "image") -> Calibration:
    """Calibrate on the scores of held-out normal images.

    Args:
        scores: ``(n,)`` anomaly scores of normal images not used in training.
        alpha: the false-positive rate to keep, in (0, 1).
        level: ``"image"``, ``"volume"`` or ``"pixel"`` (for messages).

    Returns:
        A :class:`Calibration`.

    Raises:
        MedganError: ``alpha`` outside (0, 1), non-finite scores, or fewer than
            :func:`needed_for` ``(alpha)`` scores.
    """
    if not 0 < alpha < 1:
        raise MedganError(f"the false-positive rate {alpha} must lie in (0, 1)", hint="e.g. --alpha 0.05")
    s = np.sort(np.asarray(scores, np.float64).ravel())
    if not np.isfinite(s).all():
        raise MedganError(f"{int((~np.isfinite(s)).sum())} calibration scores are not finite", hint="check the calibration images")
    need = needed_for(alpha)
    if len(s) < need:
        raise MedganError(f"{len(s)} normal calibration {level}s are too few for a false-positive rate of {alpha:g}: "
                          f"{need} are needed", hint=f"give at least {need} normal {level}s, or a larger --alpha")
    k = math.ceil((len(s) + 1) * (1 - alpha) - 1e-9)  # 1-based rank
    return Calibration(scores=s, alpha=float(alpha), threshold=float(s[k - 1]), level=level)


@dataclass(frozen=True)
class FPRCheck:
    """The false-positive rate reached on normal images that calibration did not see."""

    n: int
    false_positives: int
    rate: float
    low: float
    high: float
    alpha: float

    @property
    def holds(self) -> bool:
        """The promised rate lies inside (or above) the 95% interval of the measured one."""
        return self.low <= self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "false_positives": self.false_positives, "rate": self.rate, "ci95": [self.low, self.high],
                "alpha": self.alpha, "holds": self.holds}


def check_false_positive_rate(calibration: Calibration, normal_scores: np.ndarray) -> FPRCheck:
    """Flag rate on other held-out normals, with its exact (Clopper-Pearson) 95% interval."""
    from scipy.stats import binomtest

    flags = calibration.flagged(normal_scores)
    n, k = len(flags), int(flags.sum())
    if n == 0:
        raise MedganError("no normal images to check the false-positive rate on")
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return FPRCheck(n=n, false_positives=k, rate=k / n, low=float(ci.low), high=float(ci.high), alpha=calibration.alpha)


def check_uniform_p_values(calibration: Calibration, normal_scores: np.ndarray, where: str = "",
                           significance: float = 0.01) -> str | None:
    """A warning when the scores of presumed normal images do not look like the calibration
    normals' (a domain shift: another scanner or protocol), or ``None``.

    Under exchangeability the *smoothed* conformal p-values
    ``(#{cal > s} + U (1 + #{cal == s})) / (n + 1)``, ``U ~ U(0, 1)``, are exactly uniform
    (the plain ones live on a grid of ``n + 1`` values, which a continuous test would call
    non-uniform once there are many images); they are tested against U(0, 1) by
    Kolmogorov-Smirnov, with ``U`` drawn from a fixed seed. At least 10 images are needed."""
    from scipy.stats import kstest

    s = np.asarray(normal_scores, np.float64).ravel()
    if len(s) < 10:
        return None
    above = calibration.n - np.searchsorted(calibration.scores, s, side="right")
    ties = np.searchsorted(calibration.scores, s, side="right") - np.searchsorted(calibration.scores, s, side="left")
    u = np.random.default_rng(0).random(len(s))
    smoothed = (above + u * (1 + ties)) / (calibration.n + 1)
    test = kstest(smoothed, "uniform")
    if test.pvalue >= significance:
        return None
    flagged = float(calibration.flagged(s).mean())
    return (f"the scores of {len(s)} presumed normal {calibration.level}s{' in ' + where if where else ''} differ from the "
            f"calibration normals' (Kolmogorov-Smirnov p = {test.pvalue:.2g} on their p-values; {flagged:.0%} flagged at "
            f"alpha {calibration.alpha:g}): another scanner, protocol or population? Recalibrate on this site's normals "
            "with medgan calibrate MODEL NORMAL_SOURCE")
