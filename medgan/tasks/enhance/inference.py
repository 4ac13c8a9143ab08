"""Applying a trained enhancement generator (denoising, artefact removal, super-resolution).

An enhancement model (:class:`~medgan.tasks.enhance.recipe.EnhancementModel`, from
:func:`medgan.tasks.load_model`) holds a generator ``G`` mapping ``(B, 1, h, w)`` in [-1, 1]
to ``(B, 1, h*s, w*s)`` in [-1, 1], the intensity range it was trained on (an
:class:`IntensityMap`), the scale ``s`` and the size multiple its input needs (e.g. 16 for
a U-Net of depth 4). The functions here turn that into images in the data's own units:

- :func:`enhance_image`: one ``(H, W)`` image, tiled and blended when large.
- :func:`enhance_volume`: a ``(D, H, W)`` volume, slice by slice.
- :func:`enhance_path`: files and folders (DICOM, NIfTI, PNG/TIFF) in, the same format out,
  geometry and units kept, atomically.

**Residual preservation.** The model only ever saw values inside its training range
``[low, high]`` (e.g. a CT window): ``IntensityMap.forward`` clips, and the tanh output
cannot leave it either. What the clip removed is added back to the model's output::

    out = inverse(G(forward(x))) + up(x - clip(x, low, high))
        = base + (inverse(G(forward(x))) - base_seen)

where ``up`` is bicubic upsampling at scale > 1 (linear, so ``up(x - clip(x)) = base -
base_seen`` with ``base = up(x)``, ``base_seen = up(clip(x))``). Where the input lies inside
the range the result is exactly the model's output; a pixel outside it (bone above a
soft-tissue window, air or padding below it) keeps its own excess over the window's edge
plus whatever the model made of the edge value, instead of being flattened to the window.
A nearest-neighbour x2 model returns ``nearest(clip(x)) + bicubic(excess)``.

A denoiser (scale 1) tells structure beyond the range from noise that crossed its edge.
With ``sigma`` the input's noise level (the wavelet estimate of
:func:`skimage.restoration.estimate_sigma`) and ``s`` the input smoothed by a Gaussian of 2
pixels (whose noise is ``sigma / (4 sqrt(pi))``), a pixel is **kept as it is** where

    |x - clip(x)| > 4 sigma   or   |s - clip(s)| > 4 sigma / (4 sqrt(pi))

(a value that noise around the range's edge reaches with a chance of 3e-5), together with
the pixels beyond the edge by more than ``sigma`` that touch those (hysteresis, so the rim of
a thin bone goes with it): bone above a soft-tissue window, air or padding below it. The model never saw those values, so it cannot
have denoised them; the input's own values are the honest output, with their noise and all
their detail. Everywhere else the model's output gets the excess of the *smoothed* input
added back, which is zero inside the range and small at its edge, so that noise which
crossed the edge is not put back: on MRI whose clean background sits at the range's lower
end, the raw excess put half the background noise back (brain slices with Gaussian noise of
sigma 40 on 0..255: the DnCNN lost 5.9 dB, 19.8 instead of 25.7). An earlier rule added the
smoothed excess everywhere, which blurred bone above a CT model's range by 2 pixels (a real
head CT through a phantom-trained denoiser: bone RMSE 40 -> 188 HU, 4 dB below the noisy
input). An identity model returns the input unchanged wherever the smoothed input lies
inside the range or the pixel is kept.

A model that removes artefacts from CT first raises the input to air (:data:`AIR_HU`,
-1000 HU): sparse-view streaks reach hundreds of HU below air, where no tissue lies, and the
rule above kept them as structure (sparse-view CT phantoms at 15 angles, the DnCNN trained on
-1000..1000 HU: 25.3 dB over the whole image with the streaks kept in the air, 36.4 without,
3 seeds). Air, fat
or padding below a narrower window are still passed through, at -1000 HU at most.

Kept pixels are counted (:class:`RangeReport`): a command warns once, in one line, with the
share of body pixels (those above the range's lower edge, holes filled) that lay outside
the range and were passed through.

**Tiling** (large images in overlapping, seamlessly blended tiles, padded to the model's
size multiple) is the shared :func:`medgan.infer.tiled_apply`, and walking files and
folders, atomic output and progress the shared :func:`medgan.infer.apply_to_files`; this
module adds what is enhancement's own: the residual, the units check, and how each format
is written (a derived DICOM series, NIfTI with the affine rescaled, PNG/TIFF bit depths).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from medgan.errors import MedganError
from medgan.infer import apply_to_files, check_units, per_slice, progress_bar, same_format_name, tiled_apply
from medgan.io.base import Image
from medgan.tasks.enhance.degrade import upsample_bicubic
from medgan.tasks.enhance.model import EnhancementModel

__all__ = ["RangeReport", "enhance_image", "enhance_path", "enhance_volume", "outside_range", "upsampled_affine"]

_SERIES_NUMBER_OFFSET = 1000
DENOISE_EXCESS_SIGMA = 2.0  # pixels: the blur that tells structure beyond the range from noise (module docstring)
KEEP_SIGMAS = 4.0  # how far beyond the range's edge, in noise standard deviations, a value is structure
AIR_HU = -1000.0  # the least attenuating matter: a CT value below it is noise or artefact, never tissue
WARN_SHARE = 1e-3  # body pixels outside the range above which a command warns


# --------------------------------------------------------------------------- out of range


def outside_range(image: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which pixels of an ``(H, W)`` image lie outside a model's range ``[low, high]`` beyond
    what noise explains (the module docstring's rule).

    Returns:
        ``(keep, excess, body)``: ``keep`` the pixels to pass through as they are,
        ``excess`` the smoothed input's excess over the range (``s - clip(s)``, float64),
        ``body`` the pixels above the range's lower edge, holes filled (what a warning counts).
    """
    from skimage.restoration import estimate_sigma

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a noise-free image: no detail coefficient, nan
        sigma = float(estimate_sigma(image)) if min(image.shape) >= 4 else 0.0
    sigma = sigma if np.isfinite(sigma) else 0.0
    smooth = ndimage.gaussian_filter(image, DENOISE_EXCESS_SIGMA, mode="reflect")
    excess = smooth - np.clip(smooth, low, high)
    margin = KEEP_SIGMAS * sigma / (2 * np.sqrt(np.pi) * DENOISE_EXCESS_SIGMA)  # noise of the smoothed input x 4
    beyond = np.abs(image - np.clip(image, low, high))
    seeds = (beyond > KEEP_SIGMAS * sigma) | (np.abs(excess) > margin)
    # Grown into what lies beyond by more than the noise and touches a seed (hysteresis): the
    # rim of a thin bone, whose smoothed value falls back inside the range, belongs to it.
    keep = ndimage.binary_propagation(seeds, mask=seeds | (beyond > sigma))
    body = ndimage.binary_fill_holes(smooth > low + margin)
    return keep, excess, body


@dataclasses.dataclass
class RangeReport:
    """Pixels a command passed through because they lay outside the model's range, counted
    over its images (thread-safe: slices of a volume are enhanced side by side)."""

    body: int = 0
    above: int = 0
    below: int = 0
    images: int = 0
    affected: int = 0
    _lock: Any = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, image: np.ndarray, keep: np.ndarray, body: np.ndarray, low: float, high: float) -> None:
        above = int((keep & body & (image > low + (high - low) / 2)).sum())
        below = int((keep & body).sum()) - above
        with self._lock:
            self.body += int(body.sum())
            self.above, self.below = self.above + above, self.below + below
            self.images += 1
            self.affected += int(above + below > 0)

    def warn(self, model: EnhancementModel, path: str | os.PathLike | None = None) -> None:
        """One warning line when more than :data:`WARN_SHARE` of the body pixels were kept."""
        from medgan.errors import warn

        share = (self.above + self.below) / max(self.body, 1)
        if share <= WARN_SHARE:
            return
        imap, units = model.intensity, f" {model.intensity.units}" if model.intensity.units else ""
        how = "upsampled bicubically" if model.scale > 1 else "as they are"
        warn(f"{share:.1%} of body pixels ({(self.above) / max(self.body, 1):.1%} above, {self.below / max(self.body, 1):.1%} below; "
             f"in {self.affected} of {self.images} images) lie outside the model's range {imap.low:g}..{imap.high:g}{units}: "
             f"they were kept {how}, not enhanced", path=path, hint="train on data that covers this range (e.g. a wider --window) to enhance them")


# --------------------------------------------------------------------------- one image


def _consistent(model: EnhancementModel, image: np.ndarray, tile: int, overlap: int, device, batch_size: int) -> np.ndarray:
    """A model with data consistency on a zero-filled image: mapped to [-1, 1] without
    clipping (clipping would fill the empty k-space lines the step reads), and its output
    mapped back without clipping either: the acquired lines are the input's own. An image
    larger than one tile, or padded to the model's multiple, has no empty lines left, and the
    network's output is then returned as it is."""
    G, imap = model.generator, model.intensity
    x = 2.0 * (image - imap.low) / (imap.high - imap.low) - 1.0
    was_training = G.training
    G.to(device).eval()
    try:
        y = tiled_apply(G, x, scale=1, multiple=model.multiple, tile=tile, overlap=overlap, batch_size=batch_size, device=device)
    finally:
        G.train(was_training)
    return ((y + 1.0) * 0.5 * (imap.high - imap.low) + imap.low).astype(np.float32)


def enhance_image(
    model: EnhancementModel,
    image: np.ndarray,
    *,
    tile: int = 256,
    overlap: int = 32,
    device: str | torch.device = "cpu",
    batch_size: int = 4,
    report: RangeReport | None = None,
) -> np.ndarray:
    """Enhance one ``(H, W)`` image given in data units (HU, stored PNG values ...).

    Residual preservation, padding and tiling are described in the module docstring.

    Args:
        model: the enhancement model (its generator is put in eval mode for the call, then restored).
        image: ``(H, W)`` values in the units of ``model.intensity``.
        tile: largest tile side fed to G (rounded down to a multiple of ``model.multiple``).
        overlap: pixels shared by neighbouring tiles (``0 <= overlap < tile``).
        device: where to run G.
        batch_size: tiles per forward pass.
        report: counts the pixels kept because they lie outside the model's range (the
            caller warns once with :meth:`RangeReport.warn`).

    Returns:
        ``(H*s, W*s)`` float32 in data units.

    Raises:
        MedganError: image not 2D or not finite, bad tile/overlap, a model whose output shape
            does not match its declared scale.
    """
    G, imap, scale = model.generator, model.intensity, model.scale
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.size == 0:
        raise MedganError(f"expected a 2D (H, W) image, got shape {image.shape}", hint="enhance volumes slice by slice with enhance_volume")
    if not np.all(np.isfinite(image)):
        raise MedganError("image holds NaN or infinite values", hint="fix or mask the input first")

    if model.info.get("data_consistency"):
        return _consistent(model, image, tile, overlap, device, batch_size)
    if model.removes_artefacts and imap.units == "HU":
        image = np.maximum(image, AIR_HU)  # streaks below air are the artefact itself: never passed through
    # Normalise exactly as IntensityMap.forward, kept in float64 until the network.
    clipped = np.clip(image, imap.low, imap.high)
    x = 2.0 * (clipped - imap.low) / (imap.high - imap.low) - 1.0
    was_training = G.training
    G.to(device).eval()
    try:
        y = tiled_apply(G, x, scale=scale, multiple=model.multiple, tile=tile, overlap=overlap, batch_size=batch_size, device=device)
        if y.ndim != 2:
            raise MedganError(f"the model gave {y.shape[0]} output channels for a grey image", hint="check the model's config.json")
    finally:
        G.train(was_training)
    out = (np.clip(y, -1.0, 1.0) + 1.0) * 0.5 * (imap.high - imap.low) + imap.low  # inverse, float64

    excess = image - clipped  # what the model never saw; 0 inside the range
    if scale > 1:
        if report is not None:
            keep, _, body = outside_range(image, imap.low, imap.high)
            report.add(image, keep, body, imap.low, imap.high)
        excess = upsample_bicubic(excess, scale) if np.any(excess) else 0.0
        return (out + excess).astype(np.float32)
    if not np.any(excess) and report is None:
        return out.astype(np.float32)
    keep, smooth_excess, body = outside_range(image, imap.low, imap.high)
    if report is not None:
        report.add(image, keep, body, imap.low, imap.high)
    return np.where(keep, image, out + smooth_excess).astype(np.float32)


def enhance_volume(model: EnhancementModel, volume: np.ndarray, progress: bool = True, **kw: Any) -> np.ndarray:
    """Enhance a ``(D, H, W)`` volume slice by slice (axis 0) -> ``(D, H*s, W*s)`` float32.

    Args:
        progress: show a rich progress bar over the slices.
        **kw: passed to :func:`enhance_image` (``tile``, ``overlap``, ``device``, ``batch_size``,
            ``report``). Without a ``report``, one warning line if pixels outside the model's
            range were kept (:class:`RangeReport`).
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise MedganError(f"expected a (D, H, W) volume, got shape {volume.shape}", hint="use enhance_image for 2D images")
    own = "report" not in kw
    if own:
        kw["report"] = RangeReport()
    with progress_bar(progress) as bar:
        out = _slices(model, volume, bar, kw)
    if own:
        kw["report"].warn(model)
    return out


def _slices(model: EnhancementModel, volume: np.ndarray, bar: Any, kw: dict[str, Any]) -> np.ndarray:
    """The slices of a volume through :func:`enhance_image`, side by side on a CPU's cores.

    The generator is put in eval mode and channels-last once, before the slices start, so the
    calls running at the same time find nothing to change (``enhance_image``'s own switch
    to eval mode and back is then a no-op); its mode is restored at the end.
    """
    G, device = model.generator, kw.get("device", "cpu")
    was_training = G.training
    G.to(device).eval().to(memory_format=torch.channels_last)
    try:
        return per_slice(lambda sl: enhance_image(model, sl, **kw), volume, bar, spread=True, device=device)
    finally:
        G.train(was_training)


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


def _grey_2d_or_volume(image: Image, path: Path) -> None:
    if image.is_colour:
        raise MedganError("colour image; enhancement models work on grey images", path=path, hint="convert it to grey first")


def _burned_in(ds: Any, path: Path, pixels_clean: bool) -> tuple[str | None, str | None]:
    """The source's ``(BurnedInAnnotation, RecognizableVisualFeatures)`` for a de-identified
    copy (``None``: not stated). A source that declares text in its pixels is refused: header
    de-identification cannot remove a name or date written into the image, unless the user
    has checked the pixels (``pixels_clean``), who then vouches for ``NO``."""
    def value(keyword: str) -> str | None:
        text = str(ds.get(keyword, "") or "").strip().upper()
        return text if text in ("YES", "NO") else None

    burned, faces = value("BurnedInAnnotation"), value("RecognizableVisualFeatures")
    if burned == "YES":
        if not pixels_clean:
            raise MedganError("source is marked BurnedInAnnotation=YES: text in its pixels (names, dates) survives header "
                              "de-identification", path=path,
                              hint="mask or crop the text first; or, once you have checked that these pixels hold no identifying text, pass --pixels-clean")
        burned = "NO"
    return burned, faces


class _EnhanceJob:
    """One enhance_path call (a :class:`medgan.infer.FileJob`): the model, options and the
    derived series UIDs shared by the files of one input series."""

    verb = "enhance"

    def __init__(self, model: EnhancementModel, *, anonymize: bool, overwrite: bool, tile: int, device: str | torch.device,
                 pixels_clean: bool = False):
        self.model, self.anonymize, self.overwrite, self.pixels_clean = model, anonymize, overwrite, pixels_clean
        self.report = RangeReport()
        self.kw = {"tile": tile, "device": device, "report": self.report}
        self.scale = model.scale
        self.series: dict[str, str] = {}  # source SeriesInstanceUID -> derived one
        self.studies: dict[str, str] = {}  # derived SeriesInstanceUID -> its synthetic study (anonymised output)

    def output_name(self, name: Path, fmt: str) -> Path:
        return same_format_name(name, fmt)

    def enhance(self, array: np.ndarray, bar: Any) -> np.ndarray:
        if array.ndim == 3:
            return _slices(self.model, array, bar, self.kw)
        return enhance_image(self.model, array, **self.kw)

    # One file in, one file out.
    def dicom(self, src: Path, dest: Path, bar: Any) -> None:
        import pydicom

        from medgan.io.derived import check_derivable, derived_series_uid, write_derived_dicom
        from medgan.io.dicom import read_dicom, write_dicom

        # Pixels in modality units from medgan's reader (decoders, MONOCHROME1, Modality
        # LUT); the header to derive from, or to take series and instance from, read again.
        image = read_dicom(src)
        _grey_2d_or_volume(image, src)
        check_units(self.model.intensity.units, image.meta, src)
        ds = pydicom.dcmread(src, force=True, stop_before_pixels=True)
        uid = self.series.setdefault(str(ds.get("SeriesInstanceUID", "") or src.parent), derived_series_uid())
        if not self.anonymize:
            check_derivable(ds, src)  # a multi-frame source fails before any work
            number = int(ds.get("SeriesNumber", 0) or 0) + _SERIES_NUMBER_OFFSET
            write_derived_dicom(dest, self.enhance(image.array, bar), ds, series_uid=uid, series_number=number,
                                description=self.model.description, model_name=self.model.label,
                                scale=self.scale, overwrite=self.overwrite)
            return
        meta = image.meta
        if self.scale > 1 and meta.spacing is not None:
            spacing = tuple(meta.spacing[:-2]) + tuple(s / self.scale for s in meta.spacing[-2:])
            meta = dataclasses.replace(meta, spacing=spacing)
        burned_in = _burned_in(ds, src, self.pixels_clean)
        study = self.studies.setdefault(uid, derived_series_uid())  # a fresh study per synthetic series
        write_dicom(dest, self.enhance(image.array, bar), source_meta=meta, description=self.model.description[:64],
                    processed=f"{self.model.description} by medgan model {self.model.label}", series_uid=uid, study_uid=study,
                    instance_number=int(ds.get("InstanceNumber", 1) or 1), burned_in=burned_in, overwrite=self.overwrite)

    def nifti(self, src: Path, dest: Path, bar: Any) -> None:
        from medgan.io.nifti import read_nifti, write_nifti

        image = read_nifti(src)
        check_units(self.model.intensity.units, image.meta, src)
        out = self.enhance(image.array, bar)
        affine = image.meta.affine if image.meta.affine is not None else np.eye(4)
        axes = (1, 2) if image.array.ndim == 3 else (0, 1)  # (d, h, w) or (h, w)
        write_nifti(dest, out, affine=upsampled_affine(affine, self.scale, axes), overwrite=self.overwrite)

    def raster(self, src: Path, dest: Path, bar: Any) -> None:
        from PIL import Image as PILImage

        from medgan.io.output import atomic_path
        from medgan.io.raster import read_raster

        image = read_raster(src)
        _grey_2d_or_volume(image, src)
        bits = int(image.meta.extra.get("bit_depth", 8))
        if bits not in (8, 16):
            raise MedganError(f"{bits}-bit image; enhancement writes 8- or 16-bit images", path=src, hint="convert it to 8- or 16-bit grey")
        top = 2**bits - 1
        out = np.clip(np.rint(self.enhance(image.array, bar)), 0, top).astype(np.uint8 if bits == 8 else np.uint16)
        fmt = "TIFF" if dest.suffix.lower() in (".tif", ".tiff") else "PNG"
        with atomic_path(dest, self.overwrite) as tmp:
            PILImage.fromarray(out).save(tmp, format=fmt)  # uint8 -> L, uint16 (H, W) -> I;16

    def run(self, src: Path, dest: Path, fmt: str, bar: Any) -> None:
        {"dicom": self.dicom, "nifti": self.nifti, "png": self.raster, "jpeg": self.raster, "tiff": self.raster}[fmt](src, dest, bar)


def enhance_path(
    model: EnhancementModel,
    input_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    anonymize: bool = False,
    pixels_clean: bool = False,
    overwrite: bool = False,
    tile: int = 256,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Path:
    """Enhance an image file or a folder of them, writing the same format with the same geometry.

    Inputs and outputs (walking, naming and atomicity are :func:`medgan.infer.apply_to_files`'s):

    - DICOM file -> DICOM file; a folder (a series, a study, any tree) -> a folder with the
      same relative paths and file names. Files are enhanced one by one (the model is 2D,
      and one output file per input file needs no slice sorting): each output derives from
      exactly one input, read with :func:`medgan.io.read_dicom` for the pixels in modality
      units and ``pydicom.dcmread`` for the header. By default each is written by
      :func:`medgan.io.derived.write_derived_dicom`: same patient and study, one new
      SeriesInstanceUID per input series, SeriesNumber = source's + 1000. With
      ``anonymize=True`` by :func:`medgan.io.write_dicom` instead: synthetic identity, no
      identifiers and no geometry beyond pixel spacing (file and folder NAMES are kept as
      given: choose them yourself); a source marked ``BurnedInAnnotation = YES`` is refused
      unless ``pixels_clean``. Both keep the source's BurnedInAnnotation and
      RecognizableVisualFeatures. Non-image DICOM objects (reports, SEG, RTSTRUCT) in a folder are skipped.
    - NIfTI (``.nii``/``.nii.gz``) -> float32 NIfTI, slice by slice along the stored third
      axis (medgan's axis 0), same affine; at ``scale > 1`` the in-plane columns are
      divided by the scale and the origin moved (:func:`upsampled_affine`).
    - PNG / TIFF -> the same format and bit depth (8 or 16), values rounded and clipped to
      the bit range (the reader's units are the stored values); JPEG -> 8-bit PNG (named
      ``.png`` in a folder), never a second lossy compression.

    Args:
        model: the enhancement model.
        input_path: a file or a folder (searched recursively; hidden files skipped).
        out_path: the output file (file input) or folder (folder input).
        anonymize: write DICOM outputs as synthetic, de-identified objects.
        pixels_clean: the user has checked that sources marked ``BurnedInAnnotation = YES``
            hold no identifying text in their pixels (their de-identified copies then say NO).
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
    job = _EnhanceJob(model, anonymize=anonymize, overwrite=overwrite, tile=tile, device=device, pixels_clean=pixels_clean)
    out = apply_to_files(job, input_path, out_path, overwrite=overwrite, progress=progress)
    job.report.warn(model, input_path)
    return out
