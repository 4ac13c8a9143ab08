"""Intensity transforms: CT windows, MRI percentile normalisation, [-1, 1] and back.

Networks see images in [-1, 1] (the generator ends in tanh); users think in their data's
units (Hounsfield units for CT, scanner intensity for MRI, 0..255 for 8-bit files). An
:class:`IntensityMap` is the pair of affine maps between the two. It is plain data, so it
travels in a run's config and turns generated images back into HU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from medgan.errors import MedganError

# (center, width) in HU. Values follow common radiology practice (e.g. Radiopaedia's
# "windowing (CT)" article); a user's own window is given as "center,width".
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (50.0, 400.0),
    "liver": (30.0, 150.0),
    "bone": (400.0, 1800.0),
}


def parse_window(spec: str | tuple[float, float]) -> tuple[float, float]:
    """Turn a preset name (``"lung"``) or ``"center,width"`` into ``(center, width)`` in HU.

    Raises:
        MedganError: unknown preset, unparsable numbers or a width that is not positive.
    """
    if isinstance(spec, tuple):
        center, width = spec
    elif spec.lower() in CT_WINDOWS:
        center, width = CT_WINDOWS[spec.lower()]
    else:
        try:
            center, width = (float(v) for v in spec.split(","))
        except ValueError:
            names = ", ".join(CT_WINDOWS)
            raise MedganError(f"unknown CT window {spec!r}", hint=f"use one of {names} or 'center,width' in HU, e.g. 40,80") from None
    if width <= 0:
        raise MedganError(f"CT window width must be positive, got {width:g}", hint="give 'center,width' with width > 0")
    return float(center), float(width)


def window_bounds(center: float, width: float) -> tuple[float, float]:
    """The ``(low, high)`` HU limits of a window."""
    return center - width / 2.0, center + width / 2.0


def apply_window(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """Clip HU values to a window (values stay in HU; use :class:`IntensityMap` to rescale)."""
    low, high = window_bounds(center, width)
    return np.clip(hu, low, high)


def percentile_range(
    image: np.ndarray, lower: float = 0.5, upper: float = 99.5, mask: np.ndarray | None = None
) -> tuple[float, float]:
    """Robust ``(low, high)`` of an MRI image or volume: percentiles over ``mask`` (default:
    the non-zero voxels, since MRI background is zero and would pull the lower bound down).
    """
    values = image[mask] if mask is not None else image[image != 0]
    if values.size == 0:
        values = image.ravel()
    low, high = percentiles(values, [lower, upper])  # without a second, sorted copy of the values
    if high <= low:  # a constant image: any non-empty range maps it to -1
        high = low + 1.0
    return float(low), float(high)


def normalize_percentile(image: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """MRI normalisation: map the ``lower``/``upper`` percentiles to 0/1 and clip."""
    low, high = percentile_range(image, lower, upper)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def percentiles(values: np.ndarray, q: list[float], chunk: int = 1 << 20) -> np.ndarray:
    """``np.percentile(values, q)`` (the default ``linear`` method), to the bit, without
    the copy of the whole array ``np.percentile`` sorts in: a training set's range is taken
    on the kept set, and that copy would double the set's memory at the very end of a read.

    The order statistics the percentiles interpolate between are found exactly by a radix
    selection on the float32 bit patterns (mapped to integers that sort like the floats): a
    histogram of the high 16 bits of every value, then of the low 16 bits of the values in
    the bins that hold the wanted ranks; two passes, at most ``chunk`` values (and 1/16 of
    the array) at a time. Other dtypes, and arrays that are not contiguous, go to
    ``np.percentile``.

    Returns:
        float64 array of the percentiles, as ``np.percentile`` returns for float32 input.
    """
    if values.dtype != np.float32 or not values.flags.c_contiguous or values.size == 0:
        return np.percentile(values, q)
    flat, n = values.reshape(-1), values.size
    # numpy's linear method: virtual index (n - 1) * q / 100, between its floor and floor + 1
    # (the last value past the end: numpy's index -1, kept for its interpolation weight)
    virtual = (n - 1) * np.true_divide(np.asarray(q, np.float64), 100)
    previous = np.floor(virtual)
    following = previous + 1
    previous[virtual >= n - 1], following[virtual >= n - 1] = -1, -1
    previous, following = previous.astype(np.intp), following.astype(np.intp)
    ranks = sorted({int(r) % n for r in np.concatenate([previous, following])})

    def keys(block: np.ndarray) -> np.ndarray:  # float32 -> int32 that sorts like the floats (no NaN here)
        bits = block.view(np.int32)
        key = bits >> 31  # -1 for negative floats: flip their magnitude bits, so larger magnitudes sort lower
        key &= 0x7FFFFFFF
        key ^= bits
        return key

    # Chunks of at most 1/16 of the array: the few int32 temporaries per chunk stay well
    # below the copy np.percentile would make.
    chunk = max(1, min(chunk, max(1 << 16, n // 16)))
    high = np.zeros(1 << 16, np.int64)
    for start in range(0, n, chunk):
        top = keys(flat[start : start + chunk]) >> 16
        top += 1 << 15  # high 16 bits, signed, to a bin 0 .. 65535
        high += np.bincount(top, minlength=1 << 16)
    below_high = np.concatenate([[0], np.cumsum(high)])
    wanted = {r: int(np.searchsorted(below_high, r, side="right")) - 1 for r in ranks}  # rank -> its bin
    low = {b: np.zeros(1 << 16, np.int64) for b in set(wanted.values())}
    for start in range(0, n, chunk):
        key = keys(flat[start : start + chunk])
        top = key >> 16
        top += 1 << 15
        for top_bin, counts in low.items():
            counts += np.bincount(key[top == top_bin] & 0xFFFF, minlength=1 << 16)
    found = {}
    for rank, top_bin in wanted.items():
        bits_low = int(np.searchsorted(np.cumsum(low[top_bin]), rank - int(below_high[top_bin]), side="right"))
        key = ((top_bin - (1 << 15)) << 16) | bits_low
        found[rank] = np.array([key ^ 0x7FFFFFFF if key < 0 else key], np.int32).view(np.float32)[0]
    a = np.array([found[int(r) % n] for r in previous], np.float32)
    b = np.array([found[int(r) % n] for r in following], np.float32)
    gamma = virtual - previous  # numpy's lerp, in its dtypes
    diff = b - a
    result = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=result, where=gamma >= 0.5, casting="unsafe", dtype=type(result.dtype))
    return result


@dataclass(frozen=True)
class IntensityMap:
    """Affine map of ``[low, high]`` (data units) onto ``[-1, 1]``, and its inverse.

    ``forward`` clips to ``[low, high]`` first (a window), so ``inverse(forward(x)) == x``
    exactly (to float rounding) for ``x`` inside the range and equals the nearest bound
    outside it.

    Attributes:
        low: data value mapped to -1.
        high: data value mapped to +1.
        units: the data's units, e.g. ``"HU"``, kept so outputs can be written back in them.
    """

    low: float
    high: float
    units: str | None = None

    def __post_init__(self) -> None:
        if not np.isfinite([self.low, self.high]).all() or self.high <= self.low:
            raise MedganError(f"intensity range [{self.low}, {self.high}] is empty or not finite", hint="give low < high")

    @classmethod
    def from_window(cls, spec: str | tuple[float, float]) -> "IntensityMap":
        """A map for a CT window preset or ``"center,width"``."""
        return cls(*window_bounds(*parse_window(spec)), units="HU")

    def forward(self, x: np.ndarray, clip: bool = True) -> np.ndarray:
        """Data units -> [-1, 1] (float32); ``clip=False`` maps values outside the range
        linearly beyond [-1, 1] (a zero-filled MRI image keeps its exactly empty k-space lines)."""
        x = np.asarray(x, dtype=np.float64)
        x = np.clip(x, self.low, self.high) if clip else x
        return (2.0 * (x - self.low) / (self.high - self.low) - 1.0).astype(np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """[-1, 1] -> data units (float32); values of ``y`` outside [-1, 1] are clipped."""
        y = np.clip(np.asarray(y, dtype=np.float64), -1.0, 1.0)
        return ((y + 1.0) * 0.5 * (self.high - self.low) + self.low).astype(np.float32)

    def to_dict(self) -> dict:
        return asdict(self)
