"""Applying a trained segmentor to images, volumes, files and folders.

A :class:`~medgan.tasks.segment.recipe.SegmentationModel` maps an image in [-1, 1] to class
logits. What it saw in training fixes how a new image is prepared:

- **intensity**: the training source's preparation (CT window, MR percentile normalisation
  of whole volumes; :func:`medgan.data.sources.source_intensity`), then the training range
  to [-1, 1];
- **scale**: training images were resized to ``--size`` (:func:`medgan.data.geometry.fit_square`);
  a new image is resized by the same factor (its long side to ``size`` for ``pad``, its short
  side for ``crop``), but neither padded nor cropped: the network runs over the whole image
  in tiles (:func:`medgan.infer.tiled_apply`), and its class probabilities are resized back
  to the image's own pixels before the argmax. An image of the training size is segmented
  exactly as in training.

:func:`segment_path` writes, into an output folder mirroring the input's relative paths:

- NIfTI in: a label map of the same name (uint8/uint16, the input's affine), slice by slice
  along the stored third axis;
- PNG / TIFF / JPEG in: a label-map PNG of the same stem (the model's label values);
- DICOM in (a file, a series, a study): per series a **DICOM SEG** (highdicom; one segment
  per foreground class named after it, frames referencing the source instances, algorithm
  identification naming the model) ``series-<number>.seg.dcm``, and its label map as NIfTI
  ``series-<number>.nii.gz`` with the series' affine (a PNG ``series-<number>.png`` for a
  2D image without position and orientation);
- for each input an overlay PNG (``<name>.overlay.png``; a mosaic of up to 16 slices for
  volumes), and for all of them ``volumes.csv`` and ``summary.json``: per input and class
  the pixel count, the area (mm², 2D) or volume (mL, 3D) where the files give spacing.

One output format that cannot be written for an input does not cost the others: a DICOM
SEG that highdicom refuses (a CT slice without FrameOfReferenceUID, a file without
PatientID) is skipped with one warning naming the file, the label map, overlay and table
rows are written, and the input's ``skipped`` entry in ``summary.json`` says what and why.
Text cells of ``volumes.csv`` go through :func:`medgan.io.output.csv_cell` (a file named
``=HYPERLINK(...)`` is not a formula). The folder is written into a temporary one that
replaces ``out`` only when every input succeeded.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medgan.data.geometry import fitted_shape, resize_image
from medgan.errors import MedganError
from medgan.infer import Input, apply_to_files, optional_output, per_slice, prepare_like_training, progress_bar, tiled_apply
from medgan.tasks.segment.model import SegmentationModel

__all__ = ["segment_image", "segment_images", "segment_path", "segment_volume"]


class _Probabilities(torch.nn.Module):
    """Softmax over the classes of a segmentor's logits (what the tiles blend)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x).float(), 1)


def _label_map(model: SegmentationModel, probabilities: np.ndarray) -> np.ndarray:
    values = np.asarray(model.label_values)
    dtype = np.uint8 if values.max() <= 255 else np.uint16
    return values[probabilities.argmax(0)].astype(dtype)


@torch.no_grad()
def segment_image(model: SegmentationModel, image: np.ndarray, *, resize: bool = True, tile: int = 256,
                  device: str | torch.device = "cpu", batch_size: int = 4) -> np.ndarray:
    """The label map ``(H, W)`` (the model's label values) of one grey image ``(H, W)`` in the
    training units (prepared as the module docstring says; :func:`segment_path` does that).

    Args:
        resize: resize by the training scale (``False``: the image is already at it, e.g. a
            held-out image read with the run's options).
        tile: largest tile side fed to the network.
    """
    image = np.asarray(image, np.float32)
    if image.ndim != 2 or image.size == 0:
        raise MedganError(f"expected a 2D (H, W) image, got shape {image.shape}", hint="segment volumes with segment_volume")
    if not np.all(np.isfinite(image)):
        raise MedganError("image holds NaN or infinite values", hint="fix or mask the input first")
    resized = image
    fit = model.info.get("resize") or {}
    if resize and fit.get("size"):
        resized = resize_image(image, fitted_shape(image.shape, int(fit["size"]), str(fit.get("mode", "pad"))))
    x = model.intensity.forward(resized)
    net = model.segmentor
    was_training = net.training
    net.to(device).eval()
    try:
        p = tiled_apply(_Probabilities(net), x, multiple=model.multiple, tile=tile, overlap=min(32, tile // 4),
                        batch_size=batch_size, device=device)  # (K, h, w)
    finally:
        net.train(was_training)
    if p.ndim == 2:
        p = p[None]
    if p.shape[1:] != image.shape:
        p = resize_image(p, image.shape)
    return _label_map(model, p)


def segment_images(model: SegmentationModel, images: np.ndarray, **kw: Any) -> np.ndarray:
    """Label maps ``(N, H, W)`` of images already at the training scale and units (a run's
    held-out set): each image on its own, in eval mode, so the batch never changes a result."""
    images = np.asarray(images)
    images = images if images.ndim == 3 else images[:, 0]
    return np.stack([segment_image(model, im, resize=False, **kw) for im in images])


def segment_volume(model: SegmentationModel, volume: np.ndarray, bar: Any = None, **kw: Any) -> np.ndarray:
    """Label maps of the ``(D, H, W)`` slices of a volume (along axis 0), with a progress line on ``bar``."""
    if bar is None:
        with progress_bar(False) as silent:
            return per_slice(lambda sl: segment_image(model, sl, **kw), volume, silent)
    return per_slice(lambda sl: segment_image(model, sl, **kw), volume, bar)


# --------------------------------------------------------------------------- files


def _prepare(model: SegmentationModel, image, path: Path) -> np.ndarray:
    """An image or volume as read -> the training units (window / normalisation)."""
    return prepare_like_training(image, model.info, model.intensity.units, path, "segment")


def _measure(model: SegmentationModel, labels: np.ndarray, spacing: tuple[float, ...] | None) -> dict[str, dict[str, float]]:
    """Per foreground class: pixels, and mm² (2D) or mL (3D) where the spacing is known."""
    out = {}
    for value, name in zip(model.label_values[1:], model.class_names[1:]):
        n = int((labels == value).sum())
        row: dict[str, float] = {"label": int(value), "pixels": n}
        if spacing is not None and labels.ndim == 3 and len(spacing) == 3:
            row["volume_ml"] = round(n * float(np.prod(spacing)) / 1000.0, 4)
        elif spacing is not None and labels.ndim == 2:
            row["area_mm2"] = round(n * float(np.prod(spacing[-2:])), 3)
        out[name] = row
    return out


def _overlay(path: Path, model: SegmentationModel, array: np.ndarray, labels: np.ndarray) -> None:
    """An overlay PNG: the image with its classes in colour (a mosaic of <= 16 slices of a volume)."""
    from medgan.report.grid import save_grid
    from medgan.tasks.segment.model import to_indices

    if array.ndim == 2:
        array, labels = array[None], labels[None]
    index = np.arange(len(array))
    if len(index) > 16:
        hit = np.flatnonzero((labels != model.label_values[0]).reshape(len(labels), -1).any(1))
        pool = hit if len(hit) >= 16 else index
        index = pool[np.round(np.linspace(0, len(pool) - 1, 16)).astype(int)]
    low, high = model.intensity.low, model.intensity.high
    captions = [f"slice {i}" for i in index] if len(array) > 1 else None
    scale = max(1, -(-192 // max(array.shape[-2:])))  # small images drawn at least 192 px wide
    save_grid(path, array[index], value_range=(low, high), masks=to_indices(labels[index], model.label_values, str(path)),
              captions=captions, scale=scale, overwrite=True)


class _SegmentJob:
    """One :func:`segment_path` call (a :class:`medgan.infer.InputJob`): the model, options
    and what was measured so far."""

    verb = "segment"

    def __init__(self, model: SegmentationModel, tile: int, device: str | torch.device):
        self.model, self.kw = model, {"tile": tile, "device": device}
        self.summary: dict[str, Any] = {}

    def run(self, item: Input, out: Path, bar: Any) -> None:
        array = _prepare(self.model, item.image, item.files[0])
        labels = segment_volume(self.model, array, bar, **self.kw) if array.ndim == 3 else segment_image(self.model, array, **self.kw)
        outputs: list[Path] = []
        skipped: list[dict[str, str]] = []
        if item.fmt == "dicom":
            import pydicom

            seg = item.output(out, ".seg.dcm")
            with optional_output(seg, out, skipped, source=item.files[0],
                                 consequence="the label map, overlay and volumes are written without it"):
                volume = labels if labels.ndim == 3 else labels[None]  # (F, H, W), frames in slice order
                write_dicom_seg(seg, volume, [pydicom.dcmread(f) for f in item.files], self.model)
                outputs.append(seg)
        # The label map: NIfTI with the input's affine; PNG for an image, and for a 2D DICOM without position.
        if item.fmt == "nifti" or (item.fmt == "dicom" and (labels.ndim == 3 or item.image.meta.affine is not None)):
            from medgan.io.nifti import write_nifti

            outputs.append(item.output(out, ".nii.gz"))
            write_nifti(outputs[-1], labels, affine=item.image.meta.affine, dtype=labels.dtype)
        else:
            outputs.append(item.output(out, ".png"))
            _write_label_png(outputs[-1], labels)
        outputs.append(item.output(out, ".overlay.png"))
        _overlay(outputs[-1], self.model, array, labels)
        spacing = item.image.meta.spacing
        self.summary[item.name] = {"kind": item.fmt if item.fmt in ("dicom", "nifti") else "image", "shape": list(labels.shape),
                                   "spacing_mm": None if spacing is None else [float(v) for v in spacing],
                                   "outputs": [str(p.relative_to(out)) for p in outputs], "skipped": skipped,
                                   "classes": _measure(self.model, labels, spacing)}

    def finish(self, out: Path) -> None:
        from medgan.io.output import csv_cell

        with open(out / "summary.json", "w") as f:
            json.dump({"model": self.model.label, "classes": self.model.class_names, "label_values": self.model.label_values,
                       "inputs": self.summary}, f, indent=1)
        with open(out / "volumes.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["input", "class", "label", "pixels", "area_mm2", "volume_ml"])
            for name, entry in self.summary.items():
                for cls, row in entry["classes"].items():
                    cells = [name, cls, row["label"], row["pixels"], row.get("area_mm2", ""), row.get("volume_ml", "")]
                    writer.writerow([csv_cell(v) for v in cells])


def _write_label_png(path: Path, labels: np.ndarray) -> None:
    """A 2D label map as PNG with the model's label values (uint8 -> L, uint16 -> I;16)."""
    from PIL import Image as PILImage

    from medgan.io.output import atomic_path

    with atomic_path(path, False) as tmp:
        PILImage.fromarray(labels).save(tmp, format="PNG")


def write_dicom_seg(path: Path, labels: np.ndarray, sources: list, model: SegmentationModel) -> None:
    """A DICOM Segmentation (binary, one segment per foreground class) of ``labels``
    ``(F, H, W)``, whose frames are the ``sources`` datasets (one per frame, in order; or one
    multi-frame source), through highdicom (:func:`medgan.io.seg.write_seg`).

    It belongs to the source's patient and study (a new series; SEG objects sit beside the
    images they annotate), says in SeriesDescription and ContentDescription that medgan's
    model made it, and names the model in each segment's algorithm identification.
    """
    from medgan.io.seg import write_seg
    from medgan.privacy import shareable_source  # a model exported before exports were shareable names its data path
    from medgan.tasks.segment.model import to_indices

    index = to_indices(labels, model.label_values, str(path))  # (F, H, W) 0..K-1
    write_seg(path, index, sources, model.class_names, algorithm=f"medgan {model.info.get('model', 'unet')}",
              parameters={"step": str(model.info.get("step")), "source": shareable_source(model.info.get("source"))[:64]},
              model_name=model.label, content_description="Automatic segmentation by medgan",
              series_description=f"medgan segmentation ({', '.join(model.class_names[1:])})")


def segment_path(model: SegmentationModel, input_path: str | os.PathLike, out_path: str | os.PathLike, *, overwrite: bool = False,
                 tile: int = 256, device: str | torch.device = "cpu", progress: bool = True) -> Path:
    """Segment an image file, a volume or a folder tree of them into the folder ``out_path``
    (the outputs are listed in the module docstring; walking, reading and atomicity are
    :func:`medgan.infer.apply_to_files`'s).

    Returns:
        ``out_path``.

    Raises:
        MedganError: missing input, unsupported or colour images, units that are not the
            model's, output equal to or inside the input, an existing output without
            ``overwrite``, and everything the readers raise (``out_path`` is left as it was).
    """
    return apply_to_files(_SegmentJob(model, tile, device), input_path, out_path, overwrite=overwrite, progress=progress)
