"""Applying a trained enhancement generator (denoising, artefact removal, super-resolution).

An enhancement generator ``G`` maps ``(B, 1, h, w)`` in [-1, 1] to ``(B, 1, h*s, w*s)`` in
[-1, 1]; its exported ``config.json`` (``info``) gives the intensity range it was trained
on (``info["intensity"]``, an :class:`IntensityMap`), the scale ``s`` (``info["scale"]``)
and the size multiple its input needs (``info["multiple"]``, e.g. 16 for a U-Net of depth
4). The functions here turn that into images in the data's own units:

- :func:`enhance_image`: one ``(H, W)`` image, tiled and blended when large.
- :func:`enhance_volume`: a ``(D, H, W)`` volume, slice by slice.
- :func:`enhance_path`: files and folders (DICOM, NIfTI, PNG/TIFF) in, the same format out,
  geometry and units kept, atomically.

**Residual preservation.** The model only ever saw values inside its training range
``[low, high]`` (e.g. a CT window): ``IntensityMap.forward`` clips, and the tanh output
cannot leave it either. What the clip removed is added back to the model's output::

    out = inverse(G(forward(x))) + up(x - clip(x, low, high))
        = base + (inverse(G(forward(x))) - base_seen)

where ``up`` is the identity at scale 1 and bicubic upsampling at scale > 1 (linear, so
``up(x - clip(x)) = base - base_seen`` with ``base = up(x)``, ``base_seen = up(clip(x))``).
Where the input lies inside the range the result is exactly the model's output; a pixel
outside it (bone above a soft-tissue window, air or padding below it) keeps its own excess
over the window's edge plus whatever the model made of the edge value, instead of being
flattened to the window. An identity model returns the input unchanged (to float32
rounding); a nearest-neighbour x2 model returns ``nearest(clip(x)) + bicubic(excess)``.

**Tiling** (large images in overlapping, seamlessly blended tiles, padded to the model's
size multiple) is the shared :func:`medgan.infer.tiled_apply`; see its module for the
blending weights and where tiled and untiled results may differ.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.tasks.enhance.degrade import upsample_bicubic
from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.infer import tiled_apply
from medgan.io.base import Image, ImageMeta
from medgan.io.output import atomic_dir, check_output_file

__all__ = ["check_info", "enhance_image", "enhance_path", "enhance_volume", "upsampled_affine"]

_SERIES_NUMBER_OFFSET = 1000


# --------------------------------------------------------------------------- the model contract


def check_info(info: dict[str, Any]) -> tuple[IntensityMap, int, int]:
    """Validate an enhancement generator's ``config.json``.

    Returns:
        ``(intensity map, scale, multiple)``.

    Raises:
        MedganError: not an enhancement model, or missing / invalid keys.
    """
    task = info.get("task")
    if task != "enhance":
        raise MedganError(f"this model was trained for the task {task!r}, not 'enhance'", hint="give the run folder of a model trained with the enhance task")
    if not isinstance(info.get("intensity"), dict):
        raise MedganError("the model's config has no 'intensity' range", hint="re-export the model with a current medgan")
    imap = IntensityMap(**info["intensity"])
    scale, multiple = info.get("scale", 1), info.get("multiple", 1)
    if not isinstance(scale, int) or scale < 1:
        raise MedganError(f"the model's scale {scale!r} is not a positive integer", hint="check the model's config.json")
    if not isinstance(multiple, int) or multiple < 1:
        raise MedganError(f"the model's size multiple {multiple!r} is not a positive integer", hint="check the model's config.json")
    return imap, scale, multiple


def _model_label(info: dict[str, Any]) -> str:
    name = str(info.get("model", "unknown"))
    return f"{name} step {info['step']}" if info.get("step") is not None else name


def _description(info: dict[str, Any]) -> str:
    scale = int(info.get("scale", 1))
    text = "Enhanced" if scale == 1 else f"Super-resolved x{scale}"
    degradation = info.get("degradation") or {}
    if degradation:
        text += " (trained to undo " + ", ".join(f"{k}={v}" for k, v in degradation.items()) + ")"
    return text


# --------------------------------------------------------------------------- one image


def enhance_image(
    G: nn.Module,
    info: dict[str, Any],
    image: np.ndarray,
    *,
    tile: int = 256,
    overlap: int = 32,
    device: str | torch.device = "cpu",
    batch_size: int = 4,
) -> np.ndarray:
    """Enhance one ``(H, W)`` image given in data units (HU, stored PNG values ...).

    Residual preservation, padding and tiling are described in the module docstring.

    Args:
        G: the enhancement generator (put in eval mode for the call, then restored).
        info: its ``config.json`` (``task``, ``intensity``, ``scale``, ``multiple``).
        image: ``(H, W)`` values in the units of ``info["intensity"]``.
        tile: largest tile side fed to G (rounded down to a multiple of ``info["multiple"]``).
        overlap: pixels shared by neighbouring tiles (``0 <= overlap < tile``).
        device: where to run G.
        batch_size: tiles per forward pass.

    Returns:
        ``(H*s, W*s)`` float32 in data units.

    Raises:
        MedganError: invalid ``info``, image not 2D or not finite, bad tile/overlap, a
            model whose output shape does not match its declared scale.
    """
    imap, scale, multiple = check_info(info)
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise MedganError(f"expected a 2D (H, W) image, got shape {image.shape}", hint="enhance volumes slice by slice with enhance_volume")
    if not np.all(np.isfinite(image)):
        raise MedganError("image holds NaN or infinite values", hint="fix or mask the input first")

    # Normalise exactly as IntensityMap.forward, kept in float64 until the network.
    clipped = np.clip(image, imap.low, imap.high)
    x = 2.0 * (clipped - imap.low) / (imap.high - imap.low) - 1.0
    was_training = G.training
    G.to(device).eval()
    try:
        y = tiled_apply(G, x, scale=scale, multiple=multiple, tile=tile, overlap=overlap, batch_size=batch_size, device=device)
        if y.ndim != 2:
            raise MedganError(f"the model gave {y.shape[0]} output channels for a grey image", hint="check the model's config.json")
    finally:
        G.train(was_training)
    model = (np.clip(y, -1.0, 1.0) + 1.0) * 0.5 * (imap.high - imap.low) + imap.low  # inverse, float64

    excess = image - clipped  # what the model never saw; 0 inside the range
    if scale > 1:
        excess = upsample_bicubic(excess, scale) if np.any(excess) else 0.0
    return (model + excess).astype(np.float32)


# --------------------------------------------------------------------------- volumes


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), disable=not enabled, transient=True,
    )
    with bar:
        yield bar


def _enhance_slices(G: nn.Module, info: dict[str, Any], volume: np.ndarray, bar: Any, **kw: Any) -> np.ndarray:
    task = bar.add_task("slices", total=volume.shape[0])
    try:
        out = []
        for sl in volume:
            out.append(enhance_image(G, info, sl, **kw))
            bar.advance(task)
        return np.stack(out)  # (D, H*s, W*s)
    finally:
        bar.remove_task(task)


def enhance_volume(G: nn.Module, info: dict[str, Any], volume: np.ndarray, progress: bool = True, **kw: Any) -> np.ndarray:
    """Enhance a ``(D, H, W)`` volume slice by slice (axis 0) -> ``(D, H*s, W*s)`` float32.

    Args:
        progress: show a rich progress bar over the slices.
        **kw: passed to :func:`enhance_image` (``tile``, ``overlap``, ``device``, ``batch_size``).
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise MedganError(f"expected a (D, H, W) volume, got shape {volume.shape}", hint="use enhance_image for 2D images")
    with _progress(progress) as bar:
        return _enhance_slices(G, info, volume, bar, **kw)


# --------------------------------------------------------------------------- files


def upsampled_affine(affine: np.ndarray, scale: int, axes: tuple[int, int]) -> np.ndarray:
    """The index-to-world affine of an image upsampled by ``scale`` along two array axes.

    The columns of ``axes`` are divided by ``scale`` and the origin (the first voxel's
    centre) moves half an old voxel minus half a new one towards the image, so the voxels
    cover the same field of view: ``origin' = origin + (-0.5 + 0.5/s) * (A[:, a0] + A[:, a1])``
    (new index ``i'`` sits at old index ``(i' + 0.5)/s - 0.5``).
    """
    out = np.array(affine, dtype=np.float64)
    if scale == 1:
        return out
    shift = (-0.5 + 0.5 / scale) * (out[:3, axes[0]] + out[:3, axes[1]])
    out[:3, 3] += shift
    for a in axes:
        out[:3, a] /= scale
    return out


def _check_units(info: dict[str, Any], meta: ImageMeta, path: Path) -> None:
    want = (info.get("intensity") or {}).get("units")
    if want and meta.units and str(want) != str(meta.units):
        raise MedganError(f"the model works in {want} but the image is in {meta.units}", path=path, hint="use a model trained on this kind of image")


def _grey_2d_or_volume(image: Image, path: Path) -> None:
    if image.is_colour:
        raise MedganError("colour image; enhancement models work on grey images", path=path, hint="convert it to grey first")


class _Job:
    """One enhance_path call: the model, options, progress bar and derived series UIDs."""

    def __init__(self, G, info, *, anonymize, overwrite, tile, device, bar):
        self.G, self.info, self.anonymize, self.overwrite, self.bar = G, info, anonymize, overwrite, bar
        self.kw = {"tile": tile, "device": device}
        self.scale = int(info.get("scale", 1))
        self.series: dict[str, str] = {}  # source SeriesInstanceUID -> derived one
        self.studies: dict[str, str] = {}  # derived SeriesInstanceUID -> its synthetic study (anonymised output)

    def enhance(self, array: np.ndarray) -> np.ndarray:
        if array.ndim == 3:
            return _enhance_slices(self.G, self.info, array, self.bar, **self.kw)
        return enhance_image(self.G, self.info, array, **self.kw)

    # One file in, one file out.
    def dicom(self, src: Path, dest: Path) -> None:
        import pydicom

        from medgan.io.derived import check_derivable, derived_series_uid, write_derived_dicom
        from medgan.io.dicom import read_dicom, write_dicom

        # Pixels in modality units from medgan's reader (decoders, MONOCHROME1, Modality
        # LUT); the header to derive from, or to take series and instance from, read again.
        image = read_dicom(src)
        _grey_2d_or_volume(image, src)
        _check_units(self.info, image.meta, src)
        ds = pydicom.dcmread(src, force=True, stop_before_pixels=True)
        uid = self.series.setdefault(str(ds.get("SeriesInstanceUID", "") or src.parent), derived_series_uid())
        if not self.anonymize:
            check_derivable(ds, src)  # a multi-frame source fails before any work
            number = int(ds.get("SeriesNumber", 0) or 0) + _SERIES_NUMBER_OFFSET
            write_derived_dicom(dest, self.enhance(image.array), ds, series_uid=uid, series_number=number,
                                description=_description(self.info), model_name=_model_label(self.info),
                                scale=self.scale, overwrite=self.overwrite)
            return
        meta = image.meta
        if self.scale > 1 and meta.spacing is not None:
            spacing = tuple(meta.spacing[:-2]) + tuple(s / self.scale for s in meta.spacing[-2:])
            meta = dataclasses.replace(meta, spacing=spacing)
        study = self.studies.setdefault(uid, derived_series_uid())  # a fresh study per synthetic series
        write_dicom(dest, self.enhance(image.array), source_meta=meta, description=_description(self.info)[:64],
                    derived_from_model=_model_label(self.info), series_uid=uid, study_uid=study,
                    instance_number=int(ds.get("InstanceNumber", 1) or 1), overwrite=self.overwrite)

    def nifti(self, src: Path, dest: Path) -> None:
        from medgan.io.nifti import read_nifti, write_nifti

        image = read_nifti(src)
        _check_units(self.info, image.meta, src)
        out = self.enhance(image.array)
        affine = image.meta.affine if image.meta.affine is not None else np.eye(4)
        axes = (1, 2) if image.array.ndim == 3 else (0, 1)  # (d, h, w) or (h, w)
        write_nifti(dest, out, affine=upsampled_affine(affine, self.scale, axes), overwrite=self.overwrite)

    def raster(self, src: Path, dest: Path) -> None:
        from PIL import Image as PILImage

        from medgan.io.output import atomic_path
        from medgan.io.raster import read_raster

        image = read_raster(src)
        _grey_2d_or_volume(image, src)
        bits = int(image.meta.extra.get("bit_depth", 8))
        if bits not in (8, 16):
            raise MedganError(f"{bits}-bit image; enhancement writes 8- or 16-bit images", path=src, hint="convert it to 8- or 16-bit grey")
        top = 2**bits - 1
        out = np.clip(np.rint(self.enhance(image.array)), 0, top).astype(np.uint8 if bits == 8 else np.uint16)
        fmt = "TIFF" if dest.suffix.lower() in (".tif", ".tiff") else "PNG"
        with atomic_path(dest, self.overwrite) as tmp:
            PILImage.fromarray(out).save(tmp, format=fmt)  # uint8 -> L, uint16 (H, W) -> I;16

    def run(self, src: Path, dest: Path, fmt: str) -> None:
        {"dicom": self.dicom, "nifti": self.nifti, "png": self.raster, "jpeg": self.raster, "tiff": self.raster}[fmt](src, dest)


def _format(path: Path) -> str:
    from medgan.io.formats import detect_format

    fmt = detect_format(path)
    if fmt not in ("dicom", "nifti", "png", "jpeg", "tiff"):
        what = f"a {fmt.upper()} array" if fmt else "not a recognised image"
        raise MedganError(f"{what}; enhance reads DICOM, NIfTI, PNG, JPEG and TIFF", path=path, hint="convert it, or move it out of the input folder")
    return fmt


def _dicom_has_image(path: Path) -> bool:
    import pydicom

    try:
        return "Rows" in pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:  # unreadable: let the reader report it
        return True


def _output_name(rel: Path, fmt: str) -> Path:
    return rel.with_suffix(".png") if fmt == "jpeg" else rel  # JPEG is written as PNG


def enhance_path(
    G: nn.Module,
    info: dict[str, Any],
    input_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    anonymize: bool = False,
    overwrite: bool = False,
    tile: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Path:
    """Enhance an image file or a folder of them, writing the same format with the same geometry.

    Inputs and outputs:

    - DICOM file -> DICOM file; a folder (a series, a study, any tree) -> a folder with the
      same relative paths and file names. Files are enhanced one by one (the model is 2D,
      and one output file per input file needs no slice sorting): each output derives from
      exactly one input, read with :func:`medgan.io.read_dicom` for the pixels in modality
      units and ``pydicom.dcmread`` for the header. By default each is written by
      :func:`medgan.io.derived.write_derived_dicom`: same patient and study, one new
      SeriesInstanceUID per input series, SeriesNumber = source's + 1000. With
      ``anonymize=True`` by :func:`medgan.io.write_dicom` instead: synthetic identity, no
      identifiers and no geometry beyond pixel spacing (file and folder NAMES are kept as
      given: choose them yourself). Non-image DICOM objects in a folder are skipped.
    - NIfTI (``.nii``/``.nii.gz``) -> float32 NIfTI, slice by slice along the stored third
      axis (medgan's axis 0), same affine; at ``scale > 1`` the in-plane columns are
      divided by the scale and the origin moved (:func:`upsampled_affine`).
    - PNG / TIFF -> the same format and bit depth (8 or 16), values rounded and clipped to
      the bit range (the reader's units are the stored values); JPEG -> 8-bit PNG (named
      ``.png`` in a folder), never a second lossy compression.

    Everything is atomic: a file input is written through a temporary file, a folder input
    into a temporary folder that replaces ``out_path`` only when every file succeeded.

    Args:
        G: the enhancement generator.
        info: its ``config.json``.
        input_path: a file or a folder (searched recursively; hidden files skipped).
        out_path: the output file (file input) or folder (folder input).
        anonymize: write DICOM outputs as synthetic, de-identified objects.
        overwrite: replace an existing output instead of refusing.
        tile: tile size for :func:`enhance_image`.
        device: where to run G.
        progress: show rich progress bars.

    Returns:
        ``out_path``.

    Raises:
        MedganError: missing input, unsupported formats, colour images, units that do not
            match the model, output equal to or inside the input, existing output, and
            everything the readers raise.
    """
    check_info(info)
    src, out = Path(input_path), Path(out_path)
    if not src.exists():
        raise MedganError("does not exist", path=src, hint="check the path")
    if out.resolve() == src.resolve() or (src.is_dir() and out.resolve().is_relative_to(src.resolve())):
        raise MedganError("output would overwrite or sit inside the input", path=out, hint="choose an output outside the input")

    with _progress(progress) as bar:
        job = _Job(G, info, anonymize=anonymize, overwrite=overwrite, tile=tile, device=device, bar=bar)
        if src.is_file():
            fmt = _format(src)
            if fmt in ("png", "jpeg", "tiff") and out.suffix.lower() not in ((".tif", ".tiff") if fmt == "tiff" else (".png",)):
                want = ".tif" if fmt == "tiff" else ".png"
                raise MedganError(f"a {fmt.upper()} input is written as {want}", path=out, hint=f"name the output *{want}")
            if fmt == "nifti" and not out.name.lower().endswith((".nii", ".nii.gz")):
                raise MedganError("a NIfTI input is written as NIfTI", path=out, hint="name the output *.nii.gz")
            check_output_file(out, overwrite)  # refuse before any work; the writer replaces atomically
            job.run(src, out, fmt)
            return out

        from medgan.io.formats import find_image_files

        files = [(f, _format(f)) for f in find_image_files(src)]
        files = [(f, fmt) for f, fmt in files if fmt != "dicom" or _dicom_has_image(f)]
        if not files:
            raise MedganError("folder holds no images", path=src, hint="give a folder of DICOM, NIfTI, PNG or TIFF files")
        names = [_output_name(f.relative_to(src), fmt) for f, fmt in files]
        if len(set(names)) != len(names):
            raise MedganError("two inputs would write the same output file (a .jpg and a .png of one name?)", path=src, hint="rename one of them")
        task = bar.add_task("files", total=len(files))
        with atomic_dir(out, overwrite) as tmp:
            for (f, fmt), name in zip(files, names):
                dest = tmp / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                job.run(f, dest, fmt)
                bar.advance(task)
    return out
