"""A seeded lesion simulator for real slices: lesions of several kinds inside an organ mask,
with their ground-truth masks (for anomaly detection on the embedded brain MRI).

Lesions are drawn per image as follows (every draw from a generator seeded by
``(seed, image index)``, so an image gets the same lesions whatever else is simulated):

- **location**: the centre is a random pixel of the image's region mask (the brain: grey
  plus white matter) at least ``margin`` pixels inside it; every change is clipped to the
  mask, so it never spills into CSF or background;
- **size and shape**: an ellipse of mean radius drawn from ``radius`` (pixels), axes
  0.7-1.0 of it, a random angle and a wobbly outline (random radius harmonics of relative
  amplitude up to ``irregularity``); the change fades over ``edge`` pixels at the border
  (a partial-volume rim).

What a lesion does to the tissue is its **kind**; every lesion of one image has the same
kind, recorded per image (``return_kinds``) so figures can be split by it:

- ``intensity`` (the default): relative to the tissue it replaces, ``x * (1 + c)`` with
  ``|c|`` drawn from ``contrast`` and the sign from ``polarity`` (``"both"``, ``"hypo"``
  darker, ``"hyper"`` brighter), times ``1 + texture * f`` with ``f`` smooth unit-variance
  noise (a lesion is rarely uniform); recorded as ``hyper`` / ``hypo`` when the polarity is
  fixed, ``intensity`` when each lesion draws its sign;
- ``hyper`` / ``hypo``: the same, brighter / darker (exactly ``intensity`` with that polarity);
- ``texture``: the same mean, another pattern: ``x * (1 + a * (g - k))`` with ``a`` drawn
  from ``contrast``, ``g`` fine unit-variance noise (about a pixel, finer than the
  tissue's) and ``k`` the constant that keeps the lesion's summed intensity unchanged;
- ``mass``: an isointense mass that pushes the anatomy outward: the image is resampled
  (cubic) along a radial displacement ``u = A (p - centre) (1 - (s/2.5)^2)^2`` for ``s < 2.5``
  and 0 beyond, ``s`` the distance from the centre in units of the lesion's outline; its
  peak, at ``s`` about 1.1, is ``mass`` times the radius (below 0.7 so that the warp never
  folds); the lesion's centre is magnified, the tissue around it compressed;
- ``missing``: a structure removed: the lesion is filled with the local smooth background,
  the Gaussian-weighted mean (width ``max(2, radius)`` pixels) of the region's pixels that
  no lesion touches (an inpainting from the surroundings).

The ground-truth mask is 1 where the change is at least half its full strength: for
``intensity`` / ``hyper`` / ``hypo`` / ``texture``, where the rim reaches at least half;
for ``mass``, the mass itself (inside its outline) and every pixel displaced by at least half
a pixel (a shift of less than that moves an edge by less than half its contrast); for
``missing``, where the removed structure ``|x - background|``, faded by the rim, is at least
half the weakest intensity lesion's change (``contrast[0] / 2`` of the background): the
structure the detector could see go, not the homogeneous tissue filled with itself.

Pixels outside every lesion stay bit-identical to the input: outside the rim for the
intensity, texture and missing kinds, and for ``mass`` outside ``s < 2.5`` (2.5 times the
lesion's outline) where the displacement is exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medgan.errors import MedganError

__all__ = ["KINDS", "LesionConfig", "simulate_lesions"]

KINDS = ("hyper", "hypo", "texture", "mass", "missing")  # what ``kind="mix"`` mixes, evenly
_SUPPORT = 2.5  # a mass displaces tissue out to this many times its outline
_PEAK = 0.7155417527421187  # max of s (1 - (s / _SUPPORT)^2)^2, reached at s = _SUPPORT / sqrt(5)


@dataclass(frozen=True)
class LesionConfig:
    """What the simulated lesions look like (see the module doc).

    Attributes:
        count: lesions per image, drawn uniformly from ``[low, high]``.
        radius: mean radius in pixels, drawn uniformly from ``[low, high]``.
        contrast: relative intensity change ``|c|`` (for ``texture``, the pattern's relative
            standard deviation), drawn uniformly from ``[low, high]``; ``contrast[0] / 2`` is
            also the least removed structure a ``missing`` lesion's truth counts.
        polarity: ``"both"`` (each lesion darker or brighter at random), ``"hypo"`` or ``"hyper"``.
        irregularity: relative amplitude of the outline's wobble (0: ellipses).
        texture: relative standard deviation of an intensity lesion's change (not the ``texture`` kind).
        edge: width in pixels of the soft border (0: a hard edge).
        margin: the centre lies at least this many pixels inside the region mask.
        kind: what a lesion does: ``"intensity"`` (brighter or darker by ``polarity``),
            ``"hyper"``, ``"hypo"``, ``"texture"``, ``"mass"``, ``"missing"``, or several
            of them comma-separated (``"texture,mass"``), or ``"mix"`` for all of
            :data:`KINDS`; images take the listed kinds in turn (from a seeded start),
            so a mix is even.
        mass: peak displacement of a ``mass`` lesion relative to its radius, drawn
            uniformly from ``[low, high]``, ``high < 0.7``.
    """

    count: tuple[int, int] = (1, 2)
    radius: tuple[float, float] = (2.0, 5.0)
    contrast: tuple[float, float] = (0.25, 0.5)
    polarity: str = "both"
    irregularity: float = 0.25
    texture: float = 0.15
    edge: float = 1.0
    margin: float = 2.0
    kind: str = "intensity"
    mass: tuple[float, float] = (0.3, 0.5)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds images take in turn."""
        return KINDS if self.kind == "mix" else tuple(k.strip() for k in self.kind.split(","))

    def __post_init__(self) -> None:
        known = ("intensity",) + KINDS
        bad = [k for k in self.kinds if k not in known]
        checks = [
            (not bad, f"kind {self.kind!r} must be mix or a comma-separated list of {', '.join(known)}"),
            (self.polarity == "both" or self.kinds == ("intensity",),
             f"polarity {self.polarity!r} applies to kind intensity only; use kind hyper or hypo in a list"),
            ("hypo" not in self.kinds or self.contrast[1] < 1, f"a hypo-intense contrast {self.contrast[1]} must stay below 1"),
            (0 < self.mass[0] <= self.mass[1] < 0.7, f"mass {self.mass} must be 0 < low <= high < 0.7 (a larger push folds the warp)"),
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


def _outline(shape: tuple[int, int], cy: float, cx: float, radius: float, rng: np.random.Generator,
             irregularity: float) -> tuple[np.ndarray, np.ndarray, float]:
    """A wobbly ellipse: ``(rho, outline, scale)``, ``rho`` ``(H, W)`` the elliptic radius (1 on
    the ellipse), ``outline`` ``(H, W)`` the wobbly outline's radius at each pixel's angle, and
    ``scale`` the short axis in pixels."""
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
    return rho, outline, min(ax, ay)


def _texture(shape: tuple[int, int], rng: np.random.Generator, sigma: float = 1.5) -> np.ndarray:
    """Smooth unit-variance noise ``(H, W)`` (blobs of about ``sigma`` pixels)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (field.std() + 1e-8)


def _kinds_of(n: int, seed: int, config: LesionConfig) -> np.ndarray:
    """The kind each of ``n`` images takes: the listed kinds in turn from a start drawn from ``seed``."""
    kinds = config.kinds
    start = int(np.random.default_rng(seed).integers(len(kinds))) if len(kinds) > 1 else 0
    return np.array([kinds[(start + i) % len(kinds)] for i in range(n)])


def simulate_lesions(images: np.ndarray, regions: np.ndarray, seed: int = 0, config: LesionConfig | None = None,
                     return_kinds: bool = False) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add lesions to every image inside its region mask.

    Args:
        images: ``(N, H, W)`` intensities (e.g. MR in 0..255; values > 0 in the region).
        regions: ``(N, H, W)`` where lesions may lie (e.g. ``brain_masks > 0``).
        seed: the simulation's seed; image ``i`` draws from ``(seed, i)``.
        config: the lesions' look (default :class:`LesionConfig`).
        return_kinds: also return each image's lesion kind.

    Returns:
        ``(images with lesions (N, H, W) float32, lesion masks (N, H, W) uint8)``, and with
        ``return_kinds`` each image's kind ``(N,)`` str (``hyper``, ``hypo``, ``intensity``,
        ``texture``, ``mass``, ``missing``; ``none`` for an image whose region is too small
        for the margin, returned unchanged with an empty mask). A ``missing`` lesion in
        homogeneous tissue removes nothing visible and may leave an empty mask.

    Raises:
        MedganError: shapes that differ or are not ``(N, H, W)``.
    """
    config = config or LesionConfig()
    images = np.asarray(images, np.float32)
    regions = np.asarray(regions).astype(bool)
    if images.ndim != 3 or images.shape != regions.shape:
        raise MedganError(f"lesion simulator: images {images.shape} and regions {regions.shape} must both be (N, H, W)")
    out, masks = images.copy(), np.zeros(images.shape, np.uint8)
    kinds = _kinds_of(len(images), seed, config)
    recorded = kinds.astype("<U9")
    shape = images.shape[1:]
    for i in range(len(images)):
        rng = np.random.default_rng([seed, i])
        inner = ndimage.distance_transform_edt(regions[i]) > config.margin
        where = np.argwhere(inner)
        if not len(where):
            recorded[i] = "none"
            continue
        kind, x = kinds[i], images[i]
        if kind == "intensity" and config.polarity != "both":
            recorded[i] = config.polarity
        change = np.zeros(shape, np.float64)  # relative change, full strength inside
        strength = np.zeros(shape, np.float64)
        push = np.zeros((2,) + shape, np.float64)  # a mass's displacement (dy, dx), pixels
        inside = np.zeros(shape, bool)  # inside a mass's outline
        widest = 0.0
        for _ in range(int(rng.integers(config.count[0], config.count[1] + 1))):
            cy, cx = where[rng.integers(len(where))]
            radius = rng.uniform(*config.radius)
            rho, outline, scale = _outline(shape, float(cy), float(cx), radius, rng, config.irregularity)
            depth = (outline - rho) * scale  # about the distance inside the outline, in pixels
            ramp = np.clip(depth / config.edge + 0.5, 0, 1) if config.edge > 0 else (depth >= 0).astype(np.float64)
            widest = max(widest, radius)
            if kind == "mass":
                a = rng.uniform(*config.mass) / _PEAK  # < 1: r - |u(r)| increases along every ray
                s = rho / outline
                fall = np.where(s < _SUPPORT, (1 - (s / _SUPPORT) ** 2) ** 2, 0.0)
                y, x_ = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
                push += a * np.stack([y - cy, x_ - cx]) * fall
                inside |= depth >= 0
                continue
            if kind == "missing":
                take = ramp > strength
                strength[take] = ramp[take]
                continue
            if kind == "texture":
                a = rng.uniform(*config.contrast)
                g = np.clip(_texture(shape, rng, 0.7), -2, 2)
                weight = x * ramp * regions[i]
                g -= (weight * g).sum() / max(weight.sum(), 1e-12)  # the lesion's summed intensity unchanged
                c = a * g
            else:
                sign = {"hyper": 1.0, "hypo": -1.0}.get(kind) or {"hypo": -1.0, "hyper": 1.0}.get(config.polarity) \
                    or float(rng.choice((-1.0, 1.0)))
                c = sign * rng.uniform(*config.contrast) * (1 + config.texture * _texture(shape, rng))
            take = ramp > strength  # where lesions overlap, the stronger one wins
            change[take], strength[take] = c[take] * ramp[take], ramp[take]
        if kind == "mass":
            moved = (np.abs(push).sum(0) > 0) & regions[i]
            y, x_ = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
            warped = ndimage.map_coordinates(x.astype(np.float64), [y - push[0], x_ - push[1]], order=3, mode="nearest")
            out[i][moved] = np.clip(warped[moved], x.min(), x.max()).astype(np.float32)
            masks[i] = ((inside | (np.hypot(*push) >= 0.5)) & regions[i]).astype(np.uint8)
            continue
        if kind == "missing":
            strength *= regions[i]
            known = regions[i] & (strength == 0)
            sigma = max(2.0, widest)
            weight = ndimage.gaussian_filter(known.astype(np.float64), sigma)
            background = ndimage.gaussian_filter(np.where(known, x, 0).astype(np.float64), sigma) / np.maximum(weight, 1e-12)
            if known.any():
                background[weight < 1e-6] = x[known].mean()  # no known pixel within reach: the region's mean
            touched = strength > 0
            removed = strength * (background - x)  # (H, W) the change, faded by the rim
            out[i][touched] = (x[touched] + removed[touched]).astype(np.float32)
            masks[i] = (touched & (np.abs(removed) >= 0.5 * config.contrast[0] * np.abs(background))).astype(np.uint8)
            continue
        strength *= regions[i]
        change *= regions[i]
        if kind == "texture":  # overlapping lesions: keep their union's summed intensity too
            change -= strength * (x * change).sum() / max((x * strength).sum(), 1e-12)
        touched = strength > 0
        out[i][touched] = (images[i][touched] * (1 + np.maximum(change[touched], -1.0))).astype(np.float32)
        masks[i] = (strength >= 0.5).astype(np.uint8)
    return (out, masks, recorded) if return_kinds else (out, masks)
