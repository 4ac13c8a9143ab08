"""``medgan classify MODEL INPUT --out OUT``: the class of every image, slice and volume.

Each input (an image, a NIfTI volume, a DICOM series) is read as the shared walker reads it
(:func:`medgan.infer.apply_to_files`), brought to the training units (the training source's
window or normalisation, checked units), each slice fitted to the model's square as in
training (:func:`medgan.data.geometry.fit_square`) and classified alone. ``OUT`` receives
``predictions.csv`` (one row per image or slice, and one per volume: the mean of its
slices' probabilities) and ``summary.json``; cells a spreadsheet would run as formulas are
escaped (:func:`medgan.io.output.csv_cell`).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from medgan.infer import Input, apply_to_files, prepare_like_training

__all__ = ["classify_path", "classify_slices"]


def classify_slices(model, slices: np.ndarray) -> np.ndarray:
    """Class probabilities ``(N, K)`` of grey slices ``(N, H, W)`` in the training units,
    each resized to the model's square as in training."""
    from medgan.data.geometry import fit_square

    fit = model.info.get("resize") or {}
    size, mode = int(fit.get("size") or model.info["net"]["image_size"]), str(fit.get("mode", "pad"))
    return model.predict_proba(np.stack([fit_square(s.astype(np.float32), size, mode) for s in slices]))


class _ClassifyJob:
    """One :func:`classify_path` call (a :class:`medgan.infer.InputJob`): the rows so far."""

    verb = "classify"

    def __init__(self, model):
        self.model, self.rows = model, []

    def _row(self, name: str, level: str, index: int | None, p: np.ndarray) -> dict[str, Any]:
        k = int(p.argmax())
        return {"input": name, "level": level, "slice": index, "class": self.model.class_names[k], "probability": float(p[k]),
                **{f"p_{c}": float(v) for c, v in zip(self.model.class_names, p)}}

    def run(self, item: Input, out: Path, bar: Any) -> None:
        array = prepare_like_training(item.image, self.model.info, self.model.info.get("units"), item.files[0], "classify")
        volume = array.ndim == 3
        probs = classify_slices(self.model, array if volume else array[None])  # (N, K)
        for i, p in enumerate(probs):
            self.rows.append(self._row(item.name, "slice" if volume else "image", i if volume else None, p))
        if volume:
            self.rows.append(self._row(item.name, "volume", None, probs.mean(0)))

    def finish(self, out: Path) -> None:
        from medgan.io.output import csv_cell

        names = ["input", "level", "slice", "class", "probability", *(f"p_{c}" for c in self.model.class_names)]
        with open(out / "predictions.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows({k: csv_cell("" if v is None else v) for k, v in row.items()} for row in self.rows)
        with open(out / "summary.json", "w") as f:
            json.dump({"class_names": self.model.class_names, "source": self.model.info.get("source"), "rows": self.rows}, f, indent=1)


def classify_path(model, input_path: str | os.PathLike, out_path: str | os.PathLike, *, overwrite: bool = False,
                  progress: bool = True) -> Path:
    """Classify an image file, a volume or a folder tree of them into the folder ``out_path``
    (see the module doc; walking, reading and atomicity are :func:`medgan.infer.apply_to_files`'s).

    Raises:
        MedganError: as :func:`medgan.infer.apply_to_files`, units that are not the model's,
            colour images, an existing output without ``overwrite``.
    """
    return apply_to_files(_ClassifyJob(model), input_path, out_path, overwrite=overwrite, progress=progress)
