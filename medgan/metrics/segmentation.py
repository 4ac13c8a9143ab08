"""Segmentation overlap and surface-distance metrics: Dice, IoU, HD95, ASD and (for slice
stacks) normalised surface Dice.

Inputs are label maps of one image or volume: ``(H, W)`` or ``(D, H, W)`` arrays (numpy
or torch) of integer labels, 0 being background. Without ``labels`` the maps must be
binary (any single non-zero value is foreground) and every function returns a float; with
``labels=[1, 2, ...]`` it returns ``{label: score, ..., "mean": mean over those labels}``.
Pass only foreground labels: background overlap is large and flatters every score. A
batch of 2-D slices stacked as ``(N, H, W)`` would be treated as a volume: call the
functions per slice instead.

Conventions (the same as MONAI and medpy unless said otherwise):

* **Surfaces** are the boundary voxels of a mask, ``mask & ~binary_erosion(mask)``, with
  the erosion's structuring element of ``connectivity=1`` (a cross, face neighbours only),
  as in ``monai.metrics.utils.get_mask_edges`` and medpy. The image border counts as
  background, so a mask touching the border has a surface there.
* **Distances** are Euclidean in physical units: ``scipy.ndimage.distance_transform_edt``
  with ``sampling=spacing`` (``(sy, sx)`` or ``(sz, sy, sx)``, in array axis order; unit
  spacing if not given, i.e. distances in voxels).
* **HD95** is by default the 95th percentile of the *union* of both directed distance sets
  (medpy's ``hd95``). ``mode="max"`` takes the larger of the two directed 95th percentiles
  instead, MONAI's ``compute_hausdorff_distance(percentile=95)``; the two agree when the
  surfaces are symmetric and differ by at most a few voxels otherwise.
* **ASD** (symmetric) is the mean over the union of both directed distance sets, as
  MONAI's ``compute_average_surface_distance(symmetric=True)``; medpy's ``assd`` averages
  the two directed means instead, which differs when the surfaces have different sizes.
* **Empty masks**: both empty -> Dice/IoU 1.0 and distances 0.0 (a correct "nothing
  here"); one empty -> Dice/IoU 0.0 and distances ``inf``. With ``nan_for_empty=True``
  every undefined case (both empty for Dice/IoU, either empty for distances) is ``nan``
  so that ``np.nanmean`` over a dataset skips it. The ``"mean"`` over labels ignores nan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from medgan.errors import MedganError
from medgan.metrics._arrays import to_numpy

Scores = float | dict[int | str, float]


# ---- input checks ---------------------------------------------------------------------

def _as_label_map(x: Any, name: str) -> np.ndarray:
    array = to_numpy(x)
    if array.dtype.kind == "f" and np.isnan(array).any():
        raise MedganError(f"{name} contains NaN values", hint="pass a label map (integers or booleans), not a raw network output")
    if array.dtype.kind not in "biuf":
        raise MedganError(f"{name} has dtype {array.dtype}, not a label map", hint="pass integer or boolean masks")
    return array


def _pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_label_map(pred, "pred"), _as_label_map(target, "target")
    if p.shape != t.shape:
        raise MedganError(f"pred has shape {p.shape} but target has shape {t.shape}", hint="resample the prediction to the target's grid")
    if p.ndim == 0 or p.size == 0:
        raise MedganError(f"masks must be non-empty arrays, got shape {p.shape}", hint="pass (H, W) or (D, H, W) label maps")
    return p, t


def _binary_foreground(array: np.ndarray, name: str) -> np.ndarray:
    """Foreground of a binary mask; refuse multi-label maps and probabilities rather than guess."""
    if array.dtype == bool:
        return array
    values = np.unique(array)
    if np.count_nonzero(values) > 1:
        shown = ", ".join(f"{v:g}" for v in values[values != 0][:5])
        raise MedganError(
            f"{name} has several non-zero values ({shown}...) but no labels were given",
            hint="pass labels=[1, 2, ...] for per-label scores, or threshold probabilities first (e.g. pred > 0.5)",
        )
    return array != 0


def _check_spacing(spacing: Sequence[float] | float | None, shape: tuple[int, ...]) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * len(shape)
    values = (float(spacing),) * len(shape) if np.isscalar(spacing) else tuple(float(s) for s in spacing)  # type: ignore[union-attr]
    if len(values) != len(shape):
        raise MedganError(
            f"spacing {tuple(values)} has {len(values)} values but the masks have shape {shape}",
            hint="give one spacing per array axis, e.g. (sy, sx) for images or (sz, sy, sx) for volumes",
        )
    if not all(np.isfinite(s) and s > 0 for s in values):
        raise MedganError(f"spacing must be positive, got {tuple(values)}", hint="pass voxel sizes in mm, e.g. (1.0, 0.7, 0.7)")
    return values


def _per_label(
    score: Callable[[np.ndarray, np.ndarray], float], pred: Any, target: Any, labels: Sequence[int] | None
) -> Scores:
    """Apply a binary ``score`` to the foreground (no labels) or to each label in turn."""
    p, t = _pair(pred, target)
    if labels is None:
        return score(_binary_foreground(p, "pred"), _binary_foreground(t, "target"))
    if len(labels) == 0:
        raise MedganError("labels is empty", hint="pass the foreground labels to score, e.g. labels=[1, 2]")
    result: dict[int | str, float] = {}
    for label in labels:
        key = int(label) if float(label).is_integer() else label
        result[key] = score(p == label, t == label)
    result["mean"] = _nanmean(list(result.values()))
    return result


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


# ---- overlap --------------------------------------------------------------------------

def _dice(p: np.ndarray, t: np.ndarray, nan_for_empty: bool) -> float:
    total = int(p.sum()) + int(t.sum())
    if total == 0:
        return float("nan") if nan_for_empty else 1.0
    return 2.0 * int(np.logical_and(p, t).sum()) / total


def _iou(p: np.ndarray, t: np.ndarray, nan_for_empty: bool) -> float:
    union = int(np.logical_or(p, t).sum())
    if union == 0:
        return float("nan") if nan_for_empty else 1.0
    return int(np.logical_and(p, t).sum()) / union


def dice(pred: Any, target: Any, labels: Sequence[int] | None = None, *, nan_for_empty: bool = False) -> Scores:
    """Dice coefficient ``2 |P & T| / (|P| + |T|)``.

    Args:
        pred: predicted label map, ``(H, W)`` or ``(D, H, W)``.
        target: ground-truth label map, same shape.
        labels: labels to score; None means binary masks (non-zero is foreground).
        nan_for_empty: return nan instead of 1.0 when both masks are empty.

    Returns:
        A float (binary), or ``{label: dice, ..., "mean": mean over labels}``.

    Raises:
        MedganError: shape mismatch, NaN values, or a multi-label map without ``labels``.
    """
    return _per_label(lambda p, t: _dice(p, t, nan_for_empty), pred, target, labels)


def iou(pred: Any, target: Any, labels: Sequence[int] | None = None, *, nan_for_empty: bool = False) -> Scores:
    """Intersection over union (Jaccard) ``|P & T| / |P | T|``; arguments as :func:`dice`."""
    return _per_label(lambda p, t: _iou(p, t, nan_for_empty), pred, target, labels)


# ---- surface distances ----------------------------------------------------------------

def _surface_distances(
    p: np.ndarray, t: np.ndarray, spacing: tuple[float, ...], connectivity: int
) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each surface voxel of ``p`` to the surface of ``t``, and back.

    Both masks must be non-empty.
    """
    # Crop to the bounding box of the union: outside it both masks are background, so the
    # surfaces and the nearest-surface distances are unchanged, and the EDT gets cheaper.
    box = ndimage.find_objects((p | t).astype(np.uint8))[0]
    p, t = p[box], t[box]
    surface_p, surface_t = _surface(p, connectivity), _surface(t, connectivity)
    to_t = ndimage.distance_transform_edt(~surface_t, sampling=spacing)  # distance to T's surface
    to_p = ndimage.distance_transform_edt(~surface_p, sampling=spacing)
    return to_t[surface_p], to_p[surface_t]


def _surface(mask: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """The boundary pixels of a binary mask (the image border counts as background)."""
    structure = ndimage.generate_binary_structure(mask.ndim, connectivity)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _empty_distance(p: np.ndarray, t: np.ndarray, nan_for_empty: bool) -> float | None:
    """The distance for empty masks (0 for both empty, inf for one), or None if both have voxels."""
    has_p, has_t = bool(p.any()), bool(t.any())
    if has_p and has_t:
        return None
    if nan_for_empty:
        return float("nan")
    return 0.0 if not (has_p or has_t) else float("inf")


def _hd(
    p: np.ndarray, t: np.ndarray, spacing: tuple[float, ...], percentile: float, mode: str, connectivity: int, nan_for_empty: bool
) -> float:
    empty = _empty_distance(p, t, nan_for_empty)
    if empty is not None:
        return empty
    d_pt, d_tp = _surface_distances(p, t, spacing, connectivity)
    if mode == "union":
        return float(np.percentile(np.concatenate([d_pt, d_tp]), percentile))
    return float(max(np.percentile(d_pt, percentile), np.percentile(d_tp, percentile)))


def _asd(
    p: np.ndarray, t: np.ndarray, spacing: tuple[float, ...], symmetric: bool, connectivity: int, nan_for_empty: bool
) -> float:
    empty = _empty_distance(p, t, nan_for_empty)
    if empty is not None:
        return empty
    d_pt, d_tp = _surface_distances(p, t, spacing, connectivity)
    return float(np.concatenate([d_pt, d_tp]).mean() if symmetric else d_pt.mean())


def _check_distance_options(mode: str, percentile: float, connectivity: int, ndim: int) -> None:
    if mode not in ("union", "max"):
        raise MedganError(f"unknown Hausdorff mode {mode!r}", hint="use 'union' (medpy) or 'max' (MONAI)")
    if not 0 <= percentile <= 100:
        raise MedganError(
            f"percentile must be in [0, 100], got {percentile!r}", hint="use 95 for HD95 or 100 for the classic Hausdorff distance"
        )
    if not 1 <= connectivity <= ndim:
        raise MedganError(
            f"connectivity must be between 1 and {ndim} for {ndim}-D masks, got {connectivity!r}",
            hint="1 (face neighbours) is the MONAI/medpy default",
        )


def hausdorff95(
    pred: Any,
    target: Any,
    spacing: Sequence[float] | float | None = None,
    *,
    labels: Sequence[int] | None = None,
    percentile: float = 95.0,
    mode: Literal["union", "max"] = "union",
    connectivity: int = 1,
    nan_for_empty: bool = False,
) -> Scores:
    """95th-percentile symmetric Hausdorff distance between the mask surfaces.

    Args:
        pred: predicted label map, ``(H, W)`` or ``(D, H, W)``.
        target: ground-truth label map, same shape.
        spacing: voxel size per axis in array order (e.g. mm); None means 1 (voxel units).
        labels: labels to score; None means binary masks.
        percentile: 95 for HD95; 100 gives the classic (maximum) Hausdorff distance.
        mode: ``"union"``: percentile of both directed distance sets pooled (medpy);
            ``"max"``: the larger directed percentile (MONAI).
        connectivity: of the erosion that defines surfaces (1: face neighbours).
        nan_for_empty: nan instead of 0 (both empty) or inf (one empty).

    Returns:
        A float in the units of ``spacing``, or a per-label dict with ``"mean"``.

    Raises:
        MedganError: shape mismatch, bad spacing/options, or a multi-label map without ``labels``.
    """
    p, t = _pair(pred, target)
    sp = _check_spacing(spacing, p.shape)
    _check_distance_options(mode, percentile, connectivity, p.ndim)
    return _per_label(lambda a, b: _hd(a, b, sp, percentile, mode, connectivity, nan_for_empty), p, t, labels)


def average_surface_distance(
    pred: Any,
    target: Any,
    spacing: Sequence[float] | float | None = None,
    symmetric: bool = True,
    *,
    labels: Sequence[int] | None = None,
    connectivity: int = 1,
    nan_for_empty: bool = False,
) -> Scores:
    """Average surface distance; symmetric by default (mean over both surfaces' distances).

    With ``symmetric=False`` it is the directed mean distance from the prediction's
    surface to the target's. Other arguments as :func:`hausdorff95`.
    """
    p, t = _pair(pred, target)
    sp = _check_spacing(spacing, p.shape)
    _check_distance_options("union", 95.0, connectivity, p.ndim)
    return _per_label(lambda a, b: _asd(a, b, sp, symmetric, connectivity, nan_for_empty), p, t, labels)


def slice_stack_metrics(
    pred: Any,
    target: Any,
    labels: Sequence[int],
    spacing: np.ndarray | Sequence[float] | None = None,
    tolerance: float = 2.0,
) -> dict[int, dict[str, float]]:
    """Per-label scores of one volume given as a stack of 2-D slices ``(N, H, W)`` that need
    not be contiguous (slices of a scan with empty ones left out, or a few sampled planes).

    Rules, for each label:

    * **Dice / IoU** are pooled over every pixel of the stack (3-D overlap of the volume).
      The label absent from both prediction and truth: ``nan`` (not scored, as MONAI's
      ``ignore_empty``); present in one only: 0.
    * **HD95 / ASD** are 2-D, in each slice's plane (``spacing`` ``(N, 2)`` or ``(2,)`` mm,
      rows/columns; pixels if ``None``): the surface distances of every slice where both
      prediction and truth hold the label are pooled, then HD95 is their 95th percentile
      and ASD their mean. Slices where only one of them holds the label give no distance
      and are counted in ``missed_slices`` (truth only) and ``extra_slices`` (prediction
      only); with no slice holding both: ``nan``.
    * **NSD** (normalised surface Dice, Nikolov et al. 2021, MONAI's ``compute_surface_dice``)
      at ``tolerance`` (units of ``spacing``): the share of both surfaces' pixels lying within
      the tolerance of the other surface, pooled over the stack; the surface of a slice
      where only one side holds the label counts as outside. Absent from both: ``nan``.

    Returns:
        ``{label: {"dice", "iou", "hd95", "asd", "nsd", "missed_slices", "extra_slices"}}``.
    """
    p, t = _pair(pred, target)
    if p.ndim != 3:
        raise MedganError(f"expected a stack of slices (N, H, W), got shape {p.shape}")
    sp = np.ones((len(p), 2)) if spacing is None else np.broadcast_to(np.asarray(spacing, np.float64), (len(p), 2))
    out: dict[int, dict[str, float]] = {}
    for label in labels:
        a, b = p == label, t == label
        scores = {"dice": _dice(a, b, True), "iou": _iou(a, b, True)}
        distances, missed, extra, lone_surface = [], 0, 0, 0
        for i in range(len(p)):
            has_a, has_b = bool(a[i].any()), bool(b[i].any())
            if has_a and has_b:
                d_ab, d_ba = _surface_distances(a[i], b[i], _check_spacing(tuple(sp[i]), a[i].shape), connectivity=1)
                distances += [d_ab, d_ba]
            elif has_a or has_b:
                lone_surface += int(_surface(a[i] if has_a else b[i]).sum())
            missed += has_b and not has_a
            extra += has_a and not has_b
        pooled = np.concatenate(distances) if distances else np.zeros(0)
        scores["hd95"] = float(np.percentile(pooled, 95)) if len(pooled) else float("nan")
        scores["asd"] = float(pooled.mean()) if len(pooled) else float("nan")
        surface = len(pooled) + lone_surface
        scores["nsd"] = float((pooled <= tolerance).sum() / surface) if surface else float("nan")
        scores["missed_slices"], scores["extra_slices"] = float(missed), float(extra)
        out[int(label)] = scores
    return out


def segmentation_metrics(
    pred: Any,
    target: Any,
    spacing: Sequence[float] | float | None = None,
    labels: Sequence[int] | None = None,
    *,
    nan_for_empty: bool = False,
) -> dict[str, float]:
    """Dice, IoU, HD95 (union) and symmetric ASD in one pass (surfaces computed once per label).

    Returns:
        ``{"dice", "iou", "hd95", "asd"}``; with ``labels`` these are the means over the
        labels (nan ignored) and ``"dice_<label>"`` etc. are added for each label.
    """
    p, t = _pair(pred, target)
    sp = _check_spacing(spacing, p.shape)

    def scores(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        result = {"dice": _dice(a, b, nan_for_empty), "iou": _iou(a, b, nan_for_empty)}
        empty = _empty_distance(a, b, nan_for_empty)
        if empty is not None:
            result["hd95"] = result["asd"] = empty
        else:
            d_ab, d_ba = _surface_distances(a, b, sp, connectivity=1)
            both = np.concatenate([d_ab, d_ba])
            result["hd95"], result["asd"] = float(np.percentile(both, 95)), float(both.mean())
        return result

    if labels is None:
        return scores(_binary_foreground(p, "pred"), _binary_foreground(t, "target"))
    if len(labels) == 0:
        raise MedganError("labels is empty", hint="pass the foreground labels to score, e.g. labels=[1, 2]")
    per_label = {label: scores(p == label, t == label) for label in labels}
    flat: dict[str, float] = {}
    for name in ("dice", "iou", "hd95", "asd"):
        flat[name] = _nanmean([s[name] for s in per_label.values()])
    for label, s in per_label.items():
        key = int(label) if float(label).is_integer() else label
        flat.update({f"{name}_{key}": value for name, value in s.items()})
    return flat
