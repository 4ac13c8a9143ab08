"""Screening new images with a calibrated anomaly model: ``medgan detect MODEL INPUT --out OUT``.

Each image (or each slice of a volume) is prepared as the training images were (the
source's window or normalisation, then :func:`medgan.data.geometry.fit_square` to the
model's size), scored alone (:func:`medgan.tasks.anomaly.evaluate.score_set`) and its map
taken back to the image's own pixels (:func:`medgan.data.geometry.unfit_square`). Nothing is
rescaled over the images given: a score is compared with the calibration saved with the
model only.

Written into a new folder (mirroring the input's relative paths):

- ``scores.csv``: per image or slice its score, conformal p-value and decision at the
  calibrated false-positive rate, and the body pixels above the calibrated pixel threshold; per volume (NIfTI, DICOM series) a row with the slices'
  maximum, its p-value and decision against the volume-level calibration where the model
  has one; ``summary.json``: the same, with the calibration used;
- anomaly maps in the input's format: NIfTI for NIfTI volumes (the input's affine); for a
  DICOM series a derived DICOM series beside it (``series-N.map/``: same patient and study,
  one file per slice referencing its source, ImageType DERIVED\\SECONDARY, RescaleType
  ``US``: stored value times ``MAP_SLOPE`` is the map in [-1, 1] units, or ``Z_SLOPE`` for a
  model that normalises the residual, whose maps are z-scores) and the same as NIfTI
  (the series' affine); a float32 TIFF for PNG/TIFF images;
- a heat-map overlay PNG per input (a mosaic of the 16 highest-scoring slices of a volume):
  the map over the image, drawn on one fixed scale for every image (|x - x^| from 0 to
  ``HEAT_SCALE`` in [-1, 1] units; z-scores from 0 to ``Z_HEAT_SCALE`` for a model that
  normalises the residual), never stretched per image, so a normal image looks quiet.

A derived DICOM map series that cannot be written for a series (a multi-frame or colour
source, a header the writer refuses) is skipped with one warning naming the file; the
series' NIfTI map, overlay and rows are written, and ``summary.json``'s ``skipped`` lists
what was left out and why. Text cells of ``scores.csv`` go through
:func:`medgan.io.output.csv_cell` (a file named ``=HYPERLINK(...)`` is not a formula).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from medgan.errors import warn
from medgan.infer import Input, apply_to_files, optional_output, prepare_like_training

__all__ = ["HEAT_SCALE", "Z_HEAT_SCALE", "detect_path", "detect_slices", "heat_overlay", "map_units"]

HEAT_SCALE = 0.5  # map values (|x - x^| in [-1, 1] units) drawn at full colour
MAP_SLOPE = 1e-4  # DICOM maps: stored value * slope = |x - x^| in [-1, 1] units (0..2 -> 0..20000)
MAP_SERIES_OFFSET = 2000  # SeriesNumber of a DICOM map series: the source's + this
MAP_DESCRIPTION = "Anomaly map |image - reconstruction of a normal image| in the model's [-1, 1] units"
Z_HEAT_SCALE = 4.0  # normalised maps (z-scores of the residual) drawn at full colour
Z_SLOPE = 1e-3  # DICOM maps of z-scores: stored value * slope (0..65.5)
Z_DESCRIPTION = "Anomaly map: z-score of |image - reconstruction| against its spread on normal images"


def map_units(model) -> tuple[float, float, str]:
    """``(heat scale, DICOM slope, description)`` of the model's maps: residuals in [-1, 1]
    units, or z-scores when the model normalises the residual, or the scale of a rule's own
    maps (its method's ``map_description``: standard deviations, patch distances), drawn and
    stored as z-scores are."""
    from medgan.tasks.anomaly.methods import method_class

    if getattr(model, "normalisation", None) is not None:
        return Z_HEAT_SCALE, Z_SLOPE, Z_DESCRIPTION
    own = method_class(model.method).map_description
    if own is not None:
        return Z_HEAT_SCALE, Z_SLOPE, own
    return HEAT_SCALE, MAP_SLOPE, MAP_DESCRIPTION


def detect_slices(model, slices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (N,), maps (N, H, W))`` of grey slices ``(N, H, W)`` in the training units,
    each resized to the model's square as in training and its map back to ``(H, W)``."""
    from medgan.data.geometry import fit_square, unfit_square
    from medgan.tasks.anomaly.model import score_set

    fit = model.info.get("resize") or {}
    size, mode = int(fit.get("size") or slices.shape[-1]), str(fit.get("mode", "pad"))
    squares = np.stack([fit_square(s.astype(np.float32), size, mode) for s in slices])
    scores, maps = score_set(model, squares)
    back = np.stack([unfit_square(m, s.shape, mode) for m, s in zip(maps, slices)])
    return scores, back


def heat_overlay(model, slices: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """``(n, 3, H, W)`` RGB in 0..255: the grey image (the training range) with the map in
    colour over it, on the fixed scale of :func:`map_units` (never stretched per image)."""
    import matplotlib

    low, high = model.intensity.low, model.intensity.high
    grey = np.clip((slices - low) / (high - low), 0, 1)[..., None] * 255  # (n, H, W, 1)
    level = np.clip(maps / map_units(model)[0], 0, 1)
    a = level[..., None]
    colour = matplotlib.colormaps["inferno"](level)[..., :3] * 255
    return np.moveaxis(grey * (1 - 0.6 * a) + colour * 0.6 * a, -1, 1)  # (n, 3, H, W)


def _heat(path: Path, model, slices: np.ndarray, maps: np.ndarray, scores: np.ndarray, captions: list[str]) -> None:
    """The overlay PNG of an input (its 16 highest-scoring slices)."""
    from medgan.report.grid import save_grid

    order = np.argsort(-scores)[:16] if len(slices) > 16 else np.arange(len(slices))
    scale = max(1, -(-192 // max(slices.shape[-2:])))
    save_grid(path, heat_overlay(model, slices[order], maps[order]), value_range=(0, 255),
              captions=[captions[i] for i in order], scale=scale, overwrite=True)


class _DetectJob:
    """One :func:`detect_path` call (a :class:`medgan.infer.InputJob`): the model, the rows
    scored so far and the outputs skipped."""

    verb = "detect"

    def __init__(self, model, presumed_normal: bool, where: str):
        self.model, self.presumed_normal, self.where = model, presumed_normal, where
        self.image_cal = model.calibration.get("image")
        self.volume_cal = model.calibration.get("volume")
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[dict[str, str]] = []  # outputs not written, and why

    def _decide(self, calibration, scores: np.ndarray) -> tuple[list, list]:
        if calibration is None:
            return [None] * len(scores), [None] * len(scores)
        return [float(p) for p in calibration.p_values(scores)], [bool(f) for f in calibration.flagged(scores)]

    def _score(self, name: str, slices: np.ndarray, volume: bool, bar: Any) -> tuple[np.ndarray, np.ndarray]:
        task = bar.add_task("slices", total=len(slices)) if volume else None
        scores, maps = [], []
        for start in range(0, len(slices), 32):  # chunks: a progress line, bounded memory
            s, m = detect_slices(self.model, slices[start : start + 32])
            scores.append(s)
            maps.append(m)
            if task is not None:
                bar.advance(task, len(s))
        if task is not None:
            bar.remove_task(task)
        scores, maps = np.concatenate(scores), np.concatenate(maps)
        p, flags = self._decide(self.image_cal, scores)
        pixels: list = [None] * len(scores)
        if self.model.pixel_threshold is not None:
            from medgan.tasks.anomaly.model import body_mask

            pixels = [int(v) for v in ((maps > self.model.pixel_threshold) & body_mask(self.model, slices)).sum(axis=(1, 2))]
        for i, (s, pv, fl, px) in enumerate(zip(scores, p, flags, pixels)):
            self.rows.append({"input": name, "level": "slice" if volume else "image", "slice": i if volume else None,
                              "score": float(s), "p_value": pv, "flagged": fl, "flagged_pixels": px})
        if volume:
            top = float(scores.max())
            (pv,), (fl,) = self._decide(self.volume_cal, np.array([top]))
            self.rows.append({"input": name, "level": "volume", "slice": int(scores.argmax()), "score": top, "p_value": pv, "flagged": fl,
                              "flagged_pixels": None if pixels[0] is None else int(sum(pixels))})
        return scores, maps

    def run(self, item: Input, out: Path, bar: Any) -> None:
        array = prepare_like_training(item.image, self.model.info, self.model.intensity.units, item.files[0], "detect")
        if item.fmt not in ("dicom", "nifti"):  # an image: its map as float32 TIFF
            from PIL import Image as PILImage

            from medgan.io.output import atomic_path

            scores, maps = self._score(item.name, array[None], False, bar)
            with atomic_path(item.output(out, ".map.tif"), False) as tmp:
                PILImage.fromarray(maps[0].astype(np.float32), mode="F").save(tmp, format="TIFF")
            _heat(item.output(out, ".heat.png"), self.model, array[None], maps, scores, [f"{scores[0]:.3g}"])
            return
        from medgan.io.nifti import write_nifti

        slices = array if array.ndim == 3 else array[None]
        scores, maps = self._score(item.name, slices, True, bar)
        write_nifti(item.output(out, ".map.nii.gz"), maps.astype(np.float32), affine=item.image.meta.affine)
        _heat(item.output(out, ".heat.png"), self.model, slices, maps, scores, [f"slice {i} {s:.3g}" for i, s in enumerate(scores)])
        if item.fmt == "dicom":
            folder = item.output(out, ".map")
            with optional_output(folder, out, self.skipped, source=item.files[0].parent, folder=True,
                                 consequence="the anomaly maps are written as NIfTI only, without a DICOM map series"):
                self.dicom_maps(item, maps, folder)

    def dicom_maps(self, item: Input, maps: np.ndarray, folder: Path) -> None:
        """The maps as a derived DICOM series beside the source's (same patient and study, one
        file per slice, referencing its source instance). The writer refuses a multi-frame or
        colour source and a missing header attribute (:func:`medgan.io.derived.check_derivable`)."""
        from medgan.io.derived import check_derivable, derived_series_uid, write_derived_dicom

        for ds in item.headers:
            check_derivable(ds, item.files[0])
        uid = derived_series_uid()
        scale, slope, description = map_units(self.model)
        folder.mkdir(parents=True, exist_ok=True)
        for k, ds in enumerate(item.headers):  # slice order, as the maps
            number = int(ds.get("SeriesNumber", 0) or 0) + MAP_SERIES_OFFSET
            write_derived_dicom(folder / f"{k:04d}.dcm", maps[k], ds, series_uid=uid, series_number=number,
                                description=description, model_name=self.model.label, rescale=(slope, 0.0),
                                window=(scale / 2, scale))

    def finish(self, out: Path) -> None:
        shift = None
        if self.presumed_normal and self.image_cal is not None:
            from medgan.tasks.anomaly.calibration import check_uniform_p_values

            scores = np.array([r["score"] for r in self.rows if r["level"] != "volume"])
            shift = check_uniform_p_values(self.image_cal, scores, where=self.where)
            if shift:
                warn(shift)
        _write_tables(out, self.model, self.rows, {"presumed_normal": self.presumed_normal, "domain_shift": shift, "skipped": self.skipped})


def detect_path(model, input_path: str | os.PathLike, out_path: str | os.PathLike, *, overwrite: bool = False,
                progress: bool = True, presumed_normal: bool = False) -> Path:
    """Screen an image file, a volume or a folder tree of them into the folder ``out_path``
    (see the module doc for what is written; walking, reading and atomicity are
    :func:`medgan.infer.apply_to_files`'s).

    Args:
        presumed_normal: the inputs are believed normal (a new site's first scans): their
            scores are tested against the calibration's (:func:`check_uniform_p_values`) and
            a domain shift is warned about, naming the remedy; the test goes into ``summary.json``.

    Raises:
        MedganError: as :func:`medgan.infer.apply_to_files`, units that are not the model's, colour
            images, an existing output without ``overwrite`` (``out_path`` is then left as it was).
    """
    if not model.calibration:
        warn(f"the model ({model.label}) is not calibrated: "
             "scores only, no p-values or decisions", hint="calibrate it with medgan calibrate MODEL NORMAL_SOURCE")
    job = _DetectJob(model, presumed_normal, str(input_path))
    return apply_to_files(job, input_path, out_path, overwrite=overwrite, progress=progress)


def _write_tables(folder: Path, model, rows: list[dict[str, Any]], checks: dict[str, Any]) -> None:
    from medgan.io.output import csv_cell

    with open(folder / "scores.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["input", "level", "slice", "score", "p_value", "flagged", "flagged_pixels"])
        writer.writeheader()
        writer.writerows({k: csv_cell("" if v is None else v) for k, v in row.items()} for row in rows)
    calibration = {level: {"alpha": c.alpha, "threshold": c.threshold, "n": c.n} for level, c in model.calibration.items()}
    if model.pixel_threshold is not None:
        calibration["pixel"] = {"threshold": model.pixel_threshold}
    if model.normalisation is not None:
        calibration["normalisation"] = {**model.normalisation.settings, "maps": "z-scores of the residual"}
    with open(folder / "summary.json", "w") as f:
        json.dump({"model": model.label, "calibration": calibration or None,
                   "note": "scores are compared with the model's calibration only, never rescaled over these inputs",
                   **checks, "rows": rows}, f, indent=1)

