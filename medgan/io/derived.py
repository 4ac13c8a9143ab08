"""Derived DICOM: an enhanced image as a new series of the SAME patient and study.

:func:`medgan.io.write_dicom` builds synthetic, de-identified objects from scratch. An
enhanced (denoised, super-resolved ...) copy of a real scan is different: it belongs next
to its source in the PACS, so :func:`write_derived_dicom` copies the source dataset and
changes only what the derivation changes:

- identity: patient, study, frame of reference and equipment attributes are kept; a new
  SOPInstanceUID and the given SeriesInstanceUID / SeriesNumber make it a new series;
  ``SourceImageSequence`` points at the source instance; Content and Instance Creation
  Date/Time are the time of writing.
- marking: ``ImageType = DERIVED\\SECONDARY\\<source values 3..>`` (the source's first two
  values, e.g. ``ORIGINAL\\PRIMARY``, are replaced; the rest, e.g. ``AXIAL``, kept);
  ``DerivationDescription = "<description> by medgan <version> model <model>"``;
  ``SeriesDescription = "<source's> [medgan]"``. ``BurnedInAnnotation`` and
  ``RecognizableVisualFeatures`` are the source's, as they are (absent stays absent): the
  derivation keeps whatever text or face the source's pixels show.
- removed: pixel data, private tags, overlays (60xx) and curves (50xx), the icon image,
  VOI LUT and Modality LUT sequences (their tables index the source's stored values),
  padding values and smallest/largest pixel values (stored-value attributes whose VR
  depends on the old pixel representation).
- pixels: always 16 bits allocated and stored, MONOCHROME2 (a MONOCHROME1 source was
  inverted by the reader, so its window centres are mirrored the same way), uncompressed
  Explicit VR Little Endian. The source's RescaleSlope / RescaleIntercept and
  PixelRepresentation are KEPT, so CT stays in HU with the source's quantisation (slope 1:
  whole HU) and an identity enhancement reproduces the source's stored values exactly:
  ``stored = rint((value - intercept) / slope)``, clipped to the int16 (signed source) or
  uint16 range. A source with a Modality LUT Sequence is written with slope 1, intercept 0,
  signed when any value is negative. WindowCenter/Width are in modality units and stay valid.
- super-resolution (``scale > 1``): Rows/Columns multiplied by ``scale``, PixelSpacing
  (and ImagerPixelSpacing) divided by it, and ImagePositionPatient moved so that the new
  pixels tile the same field of view::

      IPP' = IPP + (-0.5 + 0.5 / scale) * (PixelSpacing[1] * IOP[:3] + PixelSpacing[0] * IOP[3:])

  The old first pixel covers half an old spacing either side of its centre; the new first
  pixel centre sits half a NEW spacing inside that same edge (the convention of
  ``torch.nn.functional.interpolate(..., align_corners=False)``).

Only single-frame sources are supported (series are usually one file per slice); an
enhanced multi-frame object is refused with a remedy.
"""

from __future__ import annotations

import copy
import datetime
import os
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import format_number_as_ds

from medgan import __version__
from medgan.errors import MedganError
from medgan.io.arrays import check_finite
from medgan.io.dicom import _UID_PATTERN, file_meta
from medgan.io.output import atomic_path

__all__ = ["DERIVED_SUFFIX", "check_derivable", "derived_series_uid", "write_derived_dicom"]

DERIVED_SUFFIX = " [medgan]"

# Attributes whose values are tied to the source's stored pixels or representation.
_STALE_KEYWORDS = (
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
    "IconImageSequence", "VOILUTSequence", "ModalityLUTSequence", "PixelPaddingValue", "PixelPaddingRangeLimit",
    "SmallestImagePixelValue", "LargestImagePixelValue", "SmallestPixelValueInSeries", "LargestPixelValueInSeries",
    "PlanarConfiguration", "PixelDataProviderURL", "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor", "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData", "PaletteColorLookupTableUID",
)


def derived_series_uid() -> str:
    """A fresh SeriesInstanceUID for a derived series (one per source series)."""
    return str(generate_uid())


def _floats(value, n: int) -> np.ndarray | None:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n and np.all(np.isfinite(arr)) else None


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def check_derivable(source: Dataset, path: str | os.PathLike | None = None) -> None:
    """Raise MedganError unless ``source`` is a single-frame grey image a derived file can follow."""
    frames = int(source.get("NumberOfFrames", 1) or 1)
    if frames > 1 or "PerFrameFunctionalGroupsSequence" in source or "SharedFunctionalGroupsSequence" in source:
        raise MedganError(
            f"source is a multi-frame DICOM object ({frames} frames); derived series are written one file per slice",
            path=path,
            hint="convert it to single-frame files first (e.g. dcmtk's 'dcmmfrm' or emf2sf), or pass --anonymize",
        )
    if int(source.get("SamplesPerPixel", 1) or 1) != 1:
        raise MedganError("source is a colour DICOM image", path=path, hint="enhancement works on grey images only")
    for keyword in ("Rows", "Columns"):
        if keyword not in source:
            raise MedganError(f"source dataset has no {keyword}", path=path, hint="give the dataset of a DICOM image")


def _image_type(source: Dataset) -> list[str]:
    value = source.get("ImageType", None)
    values = [] if value is None else ([str(value)] if isinstance(value, str) else [str(v) for v in value])
    return ["DERIVED", "SECONDARY", *values[2:]]


def _series_description(source: Dataset) -> str:
    text = str(source.get("SeriesDescription", "") or "").strip()
    text = text[: 64 - len(DERIVED_SUFFIX)]  # LO: at most 64 characters
    return f"{text}{DERIVED_SUFFIX}".strip()


def _set_grey16(ds: Dataset, stored: np.ndarray, signed: bool) -> None:
    """The image pixel module of 16-bit MONOCHROME2 ``stored`` values (``(Rows, Columns)``)."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.add_new(0x7FE00010, "OW", stored.tobytes())


def _encode_map(ds: Dataset, array: np.ndarray, rescale: tuple[float, float], window: tuple[float, float] | None) -> None:
    """Set the pixel module of ``ds`` for values in units of their own (a parametric map):
    unsigned 16-bit MONOCHROME2 with the given slope and intercept, RescaleType ``US``, and
    the source's windows (which are in the source's units) replaced by ``window``."""
    slope, intercept = map(float, rescale)
    if slope <= 0:
        raise MedganError(f"rescale slope {slope} must be positive")
    stored = np.clip(np.rint((array.astype(np.float64) - intercept) / slope), 0, 65535).astype("<u2")
    for keyword in ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation", "VOILUTFunction", "PresentationLUTShape"):
        if keyword in ds:
            delattr(ds, keyword)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = _ds(window[0]), _ds(window[1])
    _set_grey16(ds, stored, signed=False)
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = _ds(slope), _ds(intercept), "US"


def _encode_pixels(ds: Dataset, source: Dataset, array: np.ndarray) -> None:
    """Set the pixel module of ``ds``: 16-bit MONOCHROME2 with the source's rescale."""
    photometric = str(source.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    has_lut = "ModalityLUTSequence" in source
    slope = 1.0 if has_lut else float(source.get("RescaleSlope", 1) or 1)
    intercept = 0.0 if has_lut else float(source.get("RescaleIntercept", 0) or 0)
    if has_lut:
        signed = bool(np.min(array) < 0)
    else:
        signed = int(source.get("PixelRepresentation", 0) or 0) == 1
    lo, hi = (-32768, 32767) if signed else (0, 65535)
    stored = np.clip(np.rint((array.astype(np.float64) - intercept) / slope), lo, hi).astype("<i2" if signed else "<u2")

    if photometric == "MONOCHROME1" and "WindowCenter" in source:
        # The reader mapped raw r to (olo + ohi - r); in modality units m -> (olo + ohi) * slope + 2 * intercept - m.
        bits = int(source.get("BitsStored", 16) or 16)
        src_signed = int(source.get("PixelRepresentation", 0) or 0) == 1
        olo, ohi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if src_signed else (0, 2**bits - 1)
        centres = source.WindowCenter
        centres = [centres] if not isinstance(centres, (list, pydicom.multival.MultiValue)) else list(centres)
        mirrored = [_ds((olo + ohi) * slope + 2 * intercept - float(c)) for c in centres]
        ds.WindowCenter = mirrored if len(mirrored) > 1 else mirrored[0]
    if "PresentationLUTShape" in ds:
        ds.PresentationLUTShape = "IDENTITY"

    _set_grey16(ds, stored, signed)
    if has_lut or "RescaleSlope" in source or "RescaleIntercept" in source:
        ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
        if has_lut and "RescaleType" not in ds:
            ds.RescaleType = "US"


def _rescale_geometry(ds: Dataset, scale: int) -> None:
    """Divide the pixel spacings by ``scale`` and move IPP to keep the field of view."""
    spacing = _floats(ds.get("PixelSpacing") or [], 2)
    if spacing is not None:
        ds.PixelSpacing = [_ds(s / scale) for s in spacing]
    imager = _floats(ds.get("ImagerPixelSpacing") or [], 2)
    if imager is not None:
        ds.ImagerPixelSpacing = [_ds(s / scale) for s in imager]
    elif "ImagerPixelSpacing" in ds:
        del ds.ImagerPixelSpacing
    iop = _floats(ds.get("ImageOrientationPatient") or [], 6)
    ipp = _floats(ds.get("ImagePositionPatient") or [], 3)
    if spacing is not None and iop is not None and ipp is not None:
        # IOP[:3] runs along a row (column index, spacing[1]); IOP[3:] down a column (row index, spacing[0]).
        shift = (-0.5 + 0.5 / scale) * (spacing[1] * iop[:3] + spacing[0] * iop[3:])
        ds.ImagePositionPatient = [_ds(v) for v in ipp + shift]


def write_derived_dicom(
    path: str | os.PathLike,
    array: np.ndarray,
    source: Dataset,
    *,
    series_uid: str,
    series_number: int,
    description: str,
    model_name: str,
    scale: int = 1,
    instance_number: int | None = None,
    overwrite: bool = False,
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
) -> Path:
    """Write ``array`` as a derived image of ``source``: new series, same patient and study.

    See the module docstring for what is kept, changed and removed.

    Args:
        path: output file.
        array: ``(Rows * scale, Columns * scale)`` values in the source's modality units
            (HU for CT), as returned by :func:`medgan.io.read_dicom` (MONOCHROME1 inverted).
        source: the source image's dataset (``pydicom.dcmread``; pixel data not needed);
            it is not modified.
        series_uid: SeriesInstanceUID of the derived series (:func:`derived_series_uid`),
            the same for every slice of one source series.
        series_number: SeriesNumber of the derived series.
        description: what was done, e.g. ``"Denoised"``; starts DerivationDescription.
        model_name: the model (name, training step), named in DerivationDescription.
        scale: super-resolution factor (1 for same-size enhancement).
        instance_number: InstanceNumber (default: the source's).
        overwrite: replace an existing file instead of refusing.
        rescale: ``(slope, intercept)`` for values that are NOT in the source's units (an
            anomaly map): stored unsigned with this rescale and RescaleType ``US``, the
            source's windows dropped. ``None``: the source's units and rescale (the default).
        window: ``(centre, width)`` to display such values with.

    Returns:
        The path written.

    Raises:
        MedganError: multi-frame or colour source, an array whose shape is not the source's
            times ``scale``, non-finite values, invalid ``series_uid``, existing output.
    """
    path = Path(path)
    check_derivable(source, path)
    array = np.asarray(array)
    scale = int(scale)
    if scale < 1:
        raise MedganError(f"scale {scale} must be a positive integer", path=path)
    expected = (int(source.Rows) * scale, int(source.Columns) * scale)
    if array.shape != expected:
        raise MedganError(
            f"array of shape {array.shape} does not match the source ({source.Rows} x {source.Columns}) times scale {scale}",
            path=path,
            hint=f"expected {expected}",
        )
    check_finite(array.astype(np.float32), path)
    if not (_UID_PATTERN.fullmatch(str(series_uid)) and len(str(series_uid)) <= 64):
        raise MedganError(f"series_uid {series_uid!r} is not a valid DICOM UID", path=path, hint="use derived_series_uid()")

    ds = copy.deepcopy(source)
    for keyword in _STALE_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    ds.remove_private_tags()  # recursive: vendor data may describe the source's pixels
    for elem in [e for e in ds if e.tag.group & 0xFF00 in (0x6000, 0x5000)]:  # overlays, curves
        del ds[elem.tag]

    # Identity: new instance in a new series of the same study.
    sop_uid = generate_uid()
    source_sop_class = source.get("SOPClassUID", None) or getattr(getattr(source, "file_meta", None), "MediaStorageSOPClassUID", None)
    if source_sop_class is None:
        raise MedganError("source dataset has no SOPClassUID", path=path, hint="give the dataset of a DICOM image file")
    ds.SOPClassUID = source_sop_class
    ds.SOPInstanceUID = sop_uid
    ds.SeriesInstanceUID = str(series_uid)
    ds.SeriesNumber = int(series_number)
    ds.InstanceNumber = int(instance_number if instance_number is not None else (source.get("InstanceNumber", 1) or 1))
    now = datetime.datetime.now()
    ds.InstanceCreationDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = ds.ContentTime = now.strftime("%H%M%S")
    if "SOPInstanceUID" in source:
        ref = Dataset()
        ref.ReferencedSOPClassUID = source_sop_class
        ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
        ds.SourceImageSequence = [ref]

    # Marking.
    statement = f"{description} by medgan {__version__} model {model_name}"
    ds.ImageType = _image_type(source)
    ds.DerivationDescription = statement[:1024]  # ST
    ds.SeriesDescription = _series_description(source)
    if "SpecificCharacterSet" not in ds and not (statement + ds.SeriesDescription).isascii():
        ds.SpecificCharacterSet = "ISO_IR 192"  # the default repertoire is ASCII, a subset of UTF-8

    if rescale is None:
        _encode_pixels(ds, source, array)
    else:
        _encode_map(ds, array, rescale, window)
    if scale > 1:
        _rescale_geometry(ds, scale)

    ds.file_meta = file_meta(source_sop_class, sop_uid)
    ds.preamble = b"\x00" * 128

    with atomic_path(path, overwrite) as tmp:
        pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
    return path
