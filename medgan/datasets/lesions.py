"""A seeded lesion simulator for real slices: blobs of changed intensity inside an organ mask,
with their ground-truth masks (for anomaly detection on the embedded brain MRI).

A lesion is drawn per image as follows (every draw from a generator seeded by
``(seed, image index)``, so an image gets the same lesions whatever else is simulated):

- **location**: the centre is a random pixel of the image's region mask (the brain: grey
  plus white matter) at least ``margin`` pixels inside it; the lesion is clipped to the mask,
  so it never spills into CSF or background;
- **size and shape**: an ellipse of mean radius drawn from ``radius`` (pixels), axes
  0.7-1.0 of it, a random angle and a wobbly outline (random radius harmonics of relative
  amplitude up to ``irregularity``);
- **intensity**: relative to the tissue it replaces, ``x * (1 + c)`` with ``|c|`` drawn
  from ``contrast`` and the sign from ``polarity`` (``"both"``, ``"hypo"`` darker,
  ``"hyper"`` brighter); the change fades over ``edge`` pixels at the border (a partial-volume
  rim), so the ground truth is where the full-strength interior reaches at least half;
- **texture**: the change is multiplied by ``1 + texture * f`` with ``f`` smooth noise of
  unit variance (a lesion is rarely uniform).

The ground-truth mask is 1 where the change is at least half its full strength; pixels
outside every lesion stay bit-identical to the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medgan.errors import MedganError

__all__ = ["LesionConfig", "simulate_lesions"]


@dataclass(frozen=True)
class LesionConfig:
    """What the simulated lesions look like (see the module doc).

    Attributes:
        count: lesions per image, drawn uniformly from ``[low, high]``.
        radius: mean radius in pixels, drawn uniformly from ``[low, high]``.
        contrast: relative intensity change ``|c|``, drawn uniformly from ``[low, high]``.
        polarity: ``"both"`` (each lesion darker or brighter at random), ``"hypo"`` or ``"hyper"``.
        irregularity: relative amplitude of the outline's wobble (0: ellipses).
        texture: relative standard deviation of the change inside the lesion.
        edge: width in pixels of the soft border (0: a hard edge).
        margin: the centre lies at least this many pixels inside the region mask.
    """

    count: tuple[int, int] = (1, 2)
    radius: tuple[float, float] = (2.0, 5.0)
    contrast: tuple[float, float] = (0.25, 0.5)
    polarity: str = "both"
    irregularity: float = 0.25
    texture: float = 0.15
    edge: float = 1.0
    margin: float = 2.0

    def __post_init__(self) -> None:
        checks = [
            (1 <= self.count[0] <= self.count[1], f"count {self.count} must be 1 <= low <= high"),
            (0 < self.radius[0] <= self.radius[1], f"radius {self.radius} must be 0 < low <= high (pixels)"),
            (0 < self.contrast[0] <= self.contrast[1], f"contrast {self.contrast} must be 0 < low <= high"),
            (self.polarity in ("both", "hypo", "hyper"), f"polarity {self.polarity!r} must be both, hypo or hyper"),
            (self.polarity != "hypo" or self.contrast[1] < 1, f"a hypo-intense contrast {self.contrast[1]} must stay below 1"),
            (min(self.irregularity, self.texture, self.edge, self.margin) >= 0, "irregularity, texture, edge and margin must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise MedganError(f"lesion simulator: {message}")


def _blob(shape: tuple[int, int], cy: float, cx: float, radius: float, rng: np.random.Generator,
          irregularity: float) -> np.ndarray:
    """Signed distance-like map ``(H, W)``: > 0 inside the wobbly ellipse, in pixels of radius."""
    ay, ax = radius * rng.uniform(0.7, 1.0), radius * rng.uniform(0.7, 1.0)
    angle = rng.uniform(0, np.pi)
    harmonics = np.arange(1, 5)
    amplitude = rng.uniform(0, irregularity, 4) / harmonics
    phase = rng.uniform(0, 2 * np.pi, 4)
    y, x = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    dy, dx = y - cy, x - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    rho = np.hypot(u / ax, v / ay)  # 1 on the ellipse
    theta = np.arctan2(v, u)
    outline = 1 + (amplitude[:, None, None] * np.cos(harmonics[:, None, None] * theta + phase[:, None, None])).sum(0)
    return (outline - rho) * min(ax, ay)  # about the distance inside the outline, in pixels


def _texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth unit-variance noise ``(H, W)`` (blobs of a few pixels)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    return field / (field.std() + 1e-8)


def simulate_lesions(images: np.ndarray, regions: np.ndarray, seed: int = 0,
                     config: LesionConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Add lesions to every image inside its region mask.

    Args:
        images: ``(N, H, W)`` intensities (e.g. MR in 0..255; values > 0 in the region).
        regions: ``(N, H, W)`` where lesions may lie (e.g. ``brain_masks > 0``).
        seed: the simulation's seed; image ``i`` draws from ``(seed, i)``.
        config: the lesions' look (default :class:`LesionConfig`).

    Returns:
        ``(images with lesions (N, H, W) float32, lesion masks (N, H, W) uint8)``; an image
        whose region is too small for the margin is returned unchanged with an empty mask.

    Raises:
        MedganError: shapes that differ or are not ``(N, H, W)``.
    """
    config = config or LesionConfig()
    images = np.asarray(images, np.float32)
    regions = np.asarray(regions).astype(bool)
    if images.ndim != 3 or images.shape != regions.shape:
        raise MedganError(f"lesion simulator: images {images.shape} and regions {regions.shape} must both be (N, H, W)")
    out, masks = images.copy(), np.zeros(images.shape, np.uint8)
    for i in range(len(images)):
        rng = np.random.default_rng([seed, i])
        inner = ndimage.distance_transform_edt(regions[i]) > config.margin
        where = np.argwhere(inner)
        if not len(where):
            continue
        change = np.zeros(images.shape[1:], np.float64)  # relative change, full strength inside
        strength = np.zeros(images.shape[1:], np.float64)
        for _ in range(int(rng.integers(config.count[0], config.count[1] + 1))):
            cy, cx = where[rng.integers(len(where))]
            depth = _blob(images.shape[1:], float(cy), float(cx), rng.uniform(*config.radius), rng, config.irregularity)
            ramp = np.clip(depth / config.edge + 0.5, 0, 1) if config.edge > 0 else (depth >= 0).astype(np.float64)
            sign = {"hypo": -1.0, "hyper": 1.0}.get(config.polarity) or float(rng.choice((-1.0, 1.0)))
            c = sign * rng.uniform(*config.contrast) * (1 + config.texture * _texture(images.shape[1:], rng))
            take = ramp > strength  # where lesions overlap, the stronger one wins
            change[take], strength[take] = c[take] * ramp[take], ramp[take]
        strength *= regions[i]
        change *= regions[i]
        touched = strength > 0
        out[i][touched] = (images[i][touched] * (1 + np.maximum(change[touched], -1.0))).astype(np.float32)
        masks[i] = (strength >= 0.5).astype(np.uint8)
    return out, masks
