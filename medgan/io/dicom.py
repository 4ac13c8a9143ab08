"""DICOM through pydicom: single files, multi-frame files, series folders, and a safe writer.

Reading returns values in the modality's units: the Modality LUT (RescaleSlope /
RescaleIntercept, or a Modality LUT Sequence) is applied, so CT comes back in HU.
MONOCHROME1 images (where low values display white) are inverted so that bright always
means high: each stored value ``v`` becomes ``lo + hi - v`` where ``lo..hi`` is the range
the stored bits can hold (``0..2**BitsStored - 1`` unsigned, ``-2**(BitsStored-1) ..
2**(BitsStored-1) - 1`` signed); the inversion happens before the rescale, so it does not
depend on the image content and every slice of a series is inverted alike.

Geometry: ``ImageOrientationPatient`` (IOP) gives two unit vectors in LPS: the first is
the direction of increasing column index (our ``w``), the second of increasing row index
(``h``). ``PixelSpacing`` is ``[row spacing, column spacing]``. Slices are sorted by the
projection of ``ImagePositionPatient`` (IPP) on the slice normal ``IOP[:3] x IOP[3:]``, so
``d`` increases along the normal. The affine maps ``(d, h, w, 1)`` (or ``(h, w, 0, 1)``
for 2D) to RAS+ mm: LPS x and y are negated.

Writing (:func:`write_dicom`) builds a Secondary Capture object from scratch: fresh UIDs,
synthetic patient identity, nothing copied from any source except geometry; see its
docstring and :data:`ANONYMIZED_KEYWORDS`.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from medgan import __version__
from medgan.errors import MedganError, warn
from medgan.io import limits
from medgan.io.arrays import CORRUPT_HINT, check_finite, rgb_to_grey
from medgan.io.base import Image, ImageMeta
from medgan.io.formats import detect_format
from medgan.io.output import atomic_path

__all__ = ["read_dicom", "read_dicom_series", "write_dicom", "describe_series", "series_matches", "series_name", "ANONYMIZED_KEYWORDS", "CODECS_HINT"]

CODECS_HINT = "install the decoders: pip install 'medgan[codecs]' (pylibjpeg, pylibjpeg-libjpeg, pylibjpeg-openjpeg)"

SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
MULTIFRAME_GREY_WORD_SC = UID("1.2.840.10008.5.1.4.1.1.7.3")

_UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")  # a DICOM UID, checked for <= 64 chars below

SYNTHETIC_PATIENT_NAME = "SYNTHETIC^MEDGAN"
SYNTHETIC_PATIENT_ID = "MEDGAN-SYNTH"
DEIDENTIFIED_PATIENT_NAME = "DEIDENTIFIED^MEDGAN"  # a patient's image, processed and de-identified
DEIDENTIFIED_PATIENT_ID = "MEDGAN-DEID"

# Attributes that identify a patient, a visit, a place or a person. write_dicom never
# copies anything from a source, so none carries a value in its output; the type 2 ones
# the Secondary Capture IOD requires are present but empty. Checked before every write.
ANONYMIZED_KEYWORDS: tuple[str, ...] = (
    "PatientBirthDate", "PatientBirthTime", "PatientSex", "PatientAge", "PatientSize", "PatientWeight",
    "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName", "OtherPatientIDs",
    "OtherPatientIDsSequence", "OtherPatientNames", "PatientComments", "EthnicGroup", "MilitaryRank",
    "IssuerOfPatientID", "MedicalRecordLocator", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber", "ReferringPhysicianName",
    "ReferringPhysicianAddress", "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy", "RequestingPhysician", "AccessionNumber", "StudyID", "StudyDate",
    "StudyTime", "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime",
    "ContentDate", "ContentTime", "InstanceCreationDate", "InstanceCreationTime", "StudyDescription",
    "RequestAttributesSequence", "ReferencedStudySequence", "ReferencedPatientSequence",
    "SourceImageSequence", "FrameOfReferenceUID", "ProtocolName", "AdmittingDiagnosesDescription",
)
_TYPE2_EMPTY = ("PatientBirthDate", "PatientSex", "ReferringPhysicianName", "AccessionNumber", "StudyID", "StudyDate", "StudyTime")


# --------------------------------------------------------------------------- reading


def _dcmread(path: Path, stop_before_pixels: bool = False) -> Dataset:
    """Parse a file; library errors become MedganError. No preamble -> parse with force."""
    with open(path, "rb") as f:
        has_preamble = f.read(132)[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(path, force=not has_preamble, stop_before_pixels=stop_before_pixels)
    except Exception as err:  # pydicom raises many types (EOFError, InvalidDicomError, ValueError, struct.error ...)
        raise MedganError(f"cannot parse the DICOM file ({type(err).__name__})", path=path, hint=CORRUPT_HINT) from err
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        # Preamble-less files often lack file meta; pydicom needs a syntax to decode pixels.
        ds.file_meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if ds.is_implicit_VR else ExplicitVRLittleEndian
    return ds


def _fg_value(ds: Dataset, sequence: str, keyword: str, frame: int | None = None) -> Any:
    """``keyword`` from the per-frame or shared functional groups, else the top level."""
    if frame is not None and "PerFrameFunctionalGroupsSequence" in ds:
        groups = ds.PerFrameFunctionalGroupsSequence
        if frame < len(groups) and sequence in groups[frame] and keyword in groups[frame][sequence][0]:
            return groups[frame][sequence][0][keyword].value
    if "SharedFunctionalGroupsSequence" in ds:
        shared = ds.SharedFunctionalGroupsSequence[0]
        if sequence in shared and keyword in shared[sequence][0]:
            return shared[sequence][0][keyword].value
    return ds.get(keyword, None)


def _check_pixel_size(ds: Dataset, path: Path, keyword: str, compressed: bool) -> None:
    """Refuse Rows x Columns x NumberOfFrames x SamplesPerPixel x BitsAllocated before pixel
    decoding when the pixel data cannot hold it (native data) or it exceeds the limit of
    :mod:`medgan.io.limits` (any data), so that no array is allocated for it."""
    try:
        frames, samples = int(ds.get("NumberOfFrames", 1) or 1), int(ds.get("SamplesPerPixel", 1) or 1)
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        bits = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}.get(keyword) or int(ds.get("BitsAllocated", 0) or 0)
    except (TypeError, ValueError) as err:  # a multi-valued or garbled size attribute
        raise MedganError(f"unreadable image size attributes ({err})", path=path, hint=CORRUPT_HINT) from err
    shape = ([frames] if frames > 1 else []) + [rows, cols] + ([samples] if samples > 1 else [])
    itemsize = bits / 8
    if str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        itemsize *= 2 / 3  # chroma stored for every other pixel
    value = ds[keyword].value
    stored = len(value) if not compressed and isinstance(value, (bytes, bytearray)) else None
    limits.check_declared(path, shape, itemsize=itemsize, stored_bytes=stored)


def _decode(ds: Dataset, path: Path) -> np.ndarray:
    """The stored pixel values (``(H, W)``, ``(F, H, W)``, or with a colour axis last)."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        if "Rows" in ds:  # an image header without its pixels: the file was cut short
            raise MedganError("DICOM image without pixel data", path=path, hint=CORRUPT_HINT)
        sop = ds.get("SOPClassUID", "unknown SOP class")
        name = getattr(sop, "name", sop)
        raise MedganError(f"DICOM file holds no image ({name})", path=path, hint="give a DICOM image file")
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax.is_compressed:
        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise MedganError(f"no installed decoder for the transfer syntax {syntax.name} ({syntax})", path=path, hint=CODECS_HINT)
    keyword = next(k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds)
    _check_pixel_size(ds, path, keyword, syntax.is_compressed)
    try:
        return ds.pixel_array
    except (RuntimeError, NotImplementedError) as err:
        if "missing dependencies" in str(err) or "not supported" in str(err):
            raise MedganError(f"no installed decoder for the transfer syntax {syntax.name} ({syntax})", path=path, hint=CODECS_HINT) from err
        raise MedganError(f"cannot decode the pixel data ({err})", path=path, hint=CORRUPT_HINT) from err
    except Exception as err:  # short/garbled pixel data surfaces as ValueError, EOFError, ...
        raise MedganError(f"cannot decode the pixel data ({type(err).__name__})", path=path, hint=CORRUPT_HINT) from err


def _to_values(ds: Dataset, raw: np.ndarray, path: Path, grey: bool) -> np.ndarray:
    """Stored values -> float32 in modality units, MONOCHROME1 inverted, colour handled."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric == "PALETTE COLOR":
        raw = apply_color_lut(raw, ds)
    if int(ds.get("SamplesPerPixel", 1)) > 1 or photometric == "PALETTE COLOR":
        values = raw.astype(np.float32)  # colour: pydicom already converted YBR to RGB
        return rgb_to_grey(values) if grey else values

    if photometric == "MONOCHROME1" and raw.dtype.kind in "iu":
        bits = int(ds.get("BitsStored", raw.dtype.itemsize * 8))
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if raw.dtype.kind == "i" else (0, 2**bits - 1)
        raw = (lo + hi) - raw.astype(np.int64)  # same range, reversed

    if "ModalityLUTSequence" in ds:
        return np.asarray(apply_modality_lut(raw, ds), dtype=np.float32)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames > 1 and "PerFrameFunctionalGroupsSequence" in ds:
        # Enhanced multi-frame objects may rescale each frame differently.
        out = np.empty(raw.shape, dtype=np.float32)
        for i in range(n_frames):
            slope = float(_fg_value(ds, "PixelValueTransformationSequence", "RescaleSlope", i) or 1.0)
            intercept = float(_fg_value(ds, "PixelValueTransformationSequence", "RescaleIntercept", i) or 0.0)
            out[i] = raw[i] * np.float64(slope) + np.float64(intercept)
        return out
    slope = float(_fg_value(ds, "PixelValueTransformationSequence", "RescaleSlope") or 1.0)
    intercept = float(_fg_value(ds, "PixelValueTransformationSequence", "RescaleIntercept") or 0.0)
    if slope == 1.0 and intercept == 0.0:
        return raw.astype(np.float32)
    values = raw * np.float64(slope)  # float64, rounded to float32 once, as the sum is
    values += np.float64(intercept)  # in place: one float64 copy of the image, not two
    return values.astype(np.float32)


def _floats(value: Any, n: int) -> np.ndarray | None:
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr if arr.size == n and np.all(np.isfinite(arr)) else None


def _first_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value[0] if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else value)
    except (TypeError, ValueError, IndexError):
        return None


def _lps_to_ras(affine: np.ndarray) -> np.ndarray:
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def _orientation(affine: np.ndarray | None) -> tuple[str, ...] | None:
    if affine is None:
        return None
    from nibabel.orientations import aff2axcodes

    try:
        return tuple(str(c) for c in aff2axcodes(affine))
    except Exception:  # degenerate affine
        return None


def _stack_geometry(
    positions: list[np.ndarray | None], iop: np.ndarray | None, pixel_spacing: np.ndarray | None, path: Path
) -> tuple[np.ndarray | None, float | None, np.ndarray | None, bool, list[float] | None]:
    """Slice order, slice spacing and (d, h, w) affine from per-slice IPPs.

    Returns:
        ``(order, slice_spacing, affine, irregular, positions_mm)``; ``order`` is None when
        positions are unknown (the caller falls back to InstanceNumber), ``affine`` None
        when geometry is incomplete; ``positions_mm`` the sorted slice positions along the
        normal (mm, LPS), the truth when ``irregular`` (a missing slice, warned about): the
        affine's slice step is then only their average.
    """
    if iop is None or any(p is None for p in positions):
        return None, None, None, False, None
    normal = np.cross(iop[:3], iop[3:])
    proj = np.array([float(p @ normal) for p in positions])
    order = np.argsort(proj, kind="stable")
    steps = np.diff(proj[order])
    if len(steps) and np.min(steps) < 1e-4:
        raise MedganError(
            "several images share one slice position (several echoes, time points or stacks in one series?)",
            path=path,
            hint="split the files into one folder per echo or time point, or pass series_uid",
        )
    spacing = float(np.median(steps)) if len(steps) else None
    irregular = bool(len(steps) and (np.max(steps) - np.min(steps)) > 0.01 * spacing + 1e-3)
    if irregular:
        _warn_uneven(proj[order], steps, spacing, path)
    sorted_mm = [round(float(v), 4) for v in proj[order]]
    if pixel_spacing is None:
        return order, spacing, None, irregular, sorted_mm
    first, last = positions[order[0]], positions[order[-1]]
    step = (last - first) / (len(order) - 1) if len(order) > 1 else normal
    affine = np.eye(4)
    affine[:3, 0] = step  # d: along the normal, slice to slice
    affine[:3, 1] = iop[3:] * pixel_spacing[0]  # h: down a column, one row spacing per row
    affine[:3, 2] = iop[:3] * pixel_spacing[1]  # w: along a row, one column spacing per column
    affine[:3, 3] = first
    return order, spacing, _lps_to_ras(affine), irregular, sorted_mm


def _warn_uneven(positions: np.ndarray, steps: np.ndarray, spacing: float, path: Path) -> None:
    """Name the widest jump between neighbouring slices of an unevenly spaced stack."""
    i = int(np.argmax(np.abs(steps - spacing)))
    missing = steps[i] / spacing - 1
    guess = f"{missing:.0f} missing slice{'s' if round(missing) > 1 else ''}?" if missing >= 0.5 else "uneven slice spacing"
    warn(
        f"slices are not evenly spaced: {steps[i]:.2f} mm between slice {i} (at {positions[i]:.2f} mm) and slice {i + 1} "
        f"(at {positions[i + 1]:.2f} mm) against {spacing:.2f} mm elsewhere ({guess}); the real positions are kept in "
        "meta.extra['slice_positions'] and volume outputs (NIfTI) are refused",
        path=path, hint="add the missing files, or use the slices as 2D images", stacklevel=4,
    )


def _plane_affine_2d(ds: Dataset, pixel_spacing: np.ndarray | None) -> np.ndarray | None:
    iop = _floats(_fg_value(ds, "PlaneOrientationSequence", "ImageOrientationPatient", 0) or [], 6)
    ipp = _floats(_fg_value(ds, "PlanePositionSequence", "ImagePositionPatient", 0) or [], 3)
    if iop is None or ipp is None or pixel_spacing is None:
        return None
    thickness = _first_float(ds.get("SliceThickness")) or 1.0
    affine = np.eye(4)
    affine[:3, 0] = iop[3:] * pixel_spacing[0]  # h
    affine[:3, 1] = iop[:3] * pixel_spacing[1]  # w
    affine[:3, 2] = np.cross(iop[:3], iop[3:]) * thickness
    affine[:3, 3] = ipp
    return _lps_to_ras(affine)


def _pixel_spacing(ds: Dataset) -> np.ndarray | None:
    value = _fg_value(ds, "PixelMeasuresSequence", "PixelSpacing") or ds.get("ImagerPixelSpacing")
    return None if value is None else _floats(value, 2)


def _units(ds: Dataset) -> str | None:
    rescale_type = str(ds.get("RescaleType", "") or "").strip()
    if rescale_type and rescale_type != "US":  # "US" = unspecified
        return rescale_type
    return "HU" if str(ds.get("Modality", "")).upper() == "CT" else None


def _value_range(array: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of values already checked finite: what :func:`finite_range` gives,
    without its boolean mask and copy of the array."""
    return (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)


def _meta(ds: Dataset, source: Path, value_range: tuple[float, float], raw_dtype: np.dtype, **kwargs: Any) -> ImageMeta:
    extra: dict[str, Any] = {
        "window_center": _first_float(ds.get("WindowCenter")),
        "window_width": _first_float(ds.get("WindowWidth")),
        "series_description": str(ds.get("SeriesDescription", "") or ""),
        "series_uid": str(ds.get("SeriesInstanceUID", "") or ""),
        "photometric": str(ds.get("PhotometricInterpretation", "") or ""),
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "slice_thickness": _first_float(ds.get("SliceThickness")),
    }
    extra.update(kwargs.pop("extra", {}))
    return ImageMeta(
        source=str(source),
        format="dicom",
        modality=str(ds.get("Modality", "") or "") or None,
        dtype=str(raw_dtype),
        value_range=value_range,
        units=_units(ds),
        extra=extra,
        **kwargs,
    )


def read_dicom(path: str | os.PathLike, *, grey: bool = False) -> Image:
    """Read one DICOM file: a 2D image as ``(H, W)``, a multi-frame file as ``(D, H, W)``.

    Args:
        path: the file (with or without the 128-byte preamble).
        grey: convert colour images to grey (ITU-R 601-2 luminance).

    Returns:
        float32 values in modality units (``meta.units == "HU"`` for CT); frames of an
        enhanced multi-frame file are sorted by position when positions are given.

    Raises:
        MedganError: unparseable/truncated file, no pixel data, a compressed transfer
            syntax no installed plugin decodes, colour multi-frame without ``grey``,
            non-finite values.
    """
    path = Path(path)
    ds = _dcmread(path)
    raw = _decode(ds, path)
    array = _to_values(ds, raw, path, grey)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    check_finite(array, path)
    pixel_spacing = _pixel_spacing(ds)
    extra: dict[str, Any] = {"n_files": 1, "colour": array.ndim == 3 and n_frames == 1}

    if n_frames > 1:
        if array.ndim == 4:
            raise MedganError("colour multi-frame DICOM cannot be read as a volume", path=path, hint="read it with grey=True (--grey)")
        iop = _floats(_fg_value(ds, "PlaneOrientationSequence", "ImageOrientationPatient", 0) or [], 6)
        positions = [_floats(_fg_value(ds, "PlanePositionSequence", "ImagePositionPatient", i) or [], 3) for i in range(n_frames)]
        order, dz, affine, irregular, positions_mm = _stack_geometry(positions, iop, pixel_spacing, path)
        if order is not None:
            array = array[order]
        dz = dz or _first_float(ds.get("SpacingBetweenSlices")) or _first_float(ds.get("SliceThickness"))
        spacing = None if pixel_spacing is None else (float(dz or 1.0), *map(float, pixel_spacing))
        extra.update(n_frames=n_frames, irregular_spacing=irregular, slice_positions=positions_mm)
    else:
        affine = _plane_affine_2d(ds, pixel_spacing)
        spacing = None if pixel_spacing is None else tuple(map(float, pixel_spacing))

    meta = _meta(ds, path, _value_range(array), raw.dtype, spacing=spacing, affine=affine, orientation=_orientation(affine), extra=extra)
    return Image(np.ascontiguousarray(array, dtype=np.float32), meta)


def _series_fields(ds: Dataset) -> tuple[str, str, str]:
    """``(SeriesNumber, SeriesDescription, SeriesInstanceUID)`` as stripped text ("" when absent)."""
    return tuple(str(ds.get(k, "") or "").strip() for k in ("SeriesNumber", "SeriesDescription", "SeriesInstanceUID"))


def series_name(ds: Dataset) -> str:
    """``"series 3 'AX T1 POST'"``: number and description as the PACS shows them."""
    number, description, _ = _series_fields(ds)
    return "series" + (f" {number}" if number else "") + (f" '{description}'" if description else "")


def describe_series(ds: Dataset, n_files: int) -> str:
    """``"series 3 'AX T1 POST' 512x512, 24 files (UID 1.2.840...)"``: how a user recognises
    a series in a listing (name, size, count)."""
    size = f"{int(ds.Rows)}x{int(ds.Columns)}" if "Rows" in ds and "Columns" in ds else "no image"
    uid = _series_fields(ds)[2]
    return f"{series_name(ds)} {size}, {n_files} file{'s' if n_files != 1 else ''} (UID {uid or 'none'})"


def series_matches(ds: Dataset, choice: str) -> bool:
    """True when ``choice`` is the series' number, its description (any case) or its UID."""
    choice = choice.strip()
    number, description, uid = _series_fields(ds)
    return bool(choice) and (choice == uid or choice.casefold() == description.casefold()
                             or (number != "" and choice.lstrip("0") == number.lstrip("0")))


def _series_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name.upper() != "DICOMDIR" and detect_format(p) == "dicom"
    )


def series_order(members: list[tuple[Path, Dataset]], folder: Path) -> tuple[np.ndarray, float | None, np.ndarray | None, bool, list[float] | None]:
    """How :func:`read_dicom_series` stacks the single-frame files of one series.

    Args:
        members: ``(file, dataset)`` of each file (headers suffice).
        folder: named in messages.

    Returns:
        ``(order, slice_spacing, affine, irregular, positions_mm)``: the files' indices from
        the first slice to the last (by position along the slice normal; InstanceNumber,
        then file name, without geometry), the slice spacing in mm (or ``None``), the
        ``(d, h, w)`` -> RAS+ affine (``None`` without complete geometry), whether the
        spacing is uneven, and the sorted positions.

    Raises:
        MedganError: mixed slice orientations, or several images at one position.
    """
    ref = members[0][1]
    iops = [_floats(ds.get("ImageOrientationPatient") or [], 6) for _, ds in members]
    iop = iops[0]
    if iop is not None and any(o is None or not np.allclose(o, iop, atol=1e-3) for o in iops):
        raise MedganError("series mixes slice orientations (a localizer among the slices?)", path=folder, hint="move the odd files out of the folder")
    positions = [_floats(ds.get("ImagePositionPatient") or [], 3) for _, ds in members]
    order, dz, affine, irregular, positions_mm = _stack_geometry(positions, iop, _pixel_spacing(ref), folder)
    if order is None:  # no geometry: trust InstanceNumber, then the file name
        order = np.array(sorted(range(len(members)), key=lambda i: (int(members[i][1].get("InstanceNumber", 0) or 0), members[i][0].name)))
        dz = _first_float(ref.get("SpacingBetweenSlices")) or _first_float(ref.get("SliceThickness"))
    return order, dz, affine, irregular, positions_mm


def read_dicom_series(
    folder: str | os.PathLike, series_uid: str | None = None, *, grey: bool = False, files: Sequence[str | os.PathLike] | None = None
) -> Image:
    """Read the DICOM files of one folder as a ``(D, H, W)`` volume.

    Files are grouped by SeriesInstanceUID and sorted by position along the slice normal
    (InstanceNumber when positions are missing), whatever their names. Grouping, sorting
    and every check read the headers only; then the chosen series' files are decoded one
    at a time into one preallocated float32 volume, each file's dataset dropped once its
    slice is in, so the peak is the volume plus one slice's working copies (other series
    in the folder are never decoded).

    Args:
        folder: folder holding the files (not searched recursively); named in messages.
        series_uid: which series to read when the folder (or ``files``) holds several.
        grey: convert colour images to grey (needed for colour series).
        files: the files to read instead of the folder's listing, e.g. the files of one
            series a caller has already grouped (a PACS export with every series side by
            side in one folder then costs one series' headers, not the folder's).

    Returns:
        The volume with ``meta.affine`` mapping ``(d, h, w)`` to RAS+ mm and
        ``meta.spacing == (slice spacing, row spacing, column spacing)``.

    Raises:
        MedganError: no DICOM image files, several series and none chosen (listing them),
            unknown ``series_uid``, mixed image sizes or orientations, duplicate slice
            positions, and everything :func:`read_dicom` raises.
    """
    folder = Path(folder)
    if files is None and not folder.is_dir():
        raise MedganError("does not exist" if not folder.exists() else "is not a folder", path=folder, hint="give a folder of DICOM files")
    groups: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    for file in _series_files(folder) if files is None else [Path(f) for f in files]:
        ds = _dcmread(file, stop_before_pixels=True)  # headers only: pixels are read for the chosen series
        if "Rows" in ds:  # skip reports, presentation states and other non-images
            groups[str(ds.get("SeriesInstanceUID", "") or "")].append((file, ds))
    if not groups:
        raise MedganError("folder holds no DICOM images", path=folder, hint="give a folder of DICOM image files")

    if series_uid is None and len(groups) > 1:
        listing = "; ".join(describe_series(members[0][1], len(members)) for _, members in sorted(groups.items()))
        raise MedganError(f"folder holds {len(groups)} series: {listing}", path=folder, hint="choose one by passing its series UID")
    if series_uid is not None and series_uid not in groups:
        raise MedganError(f"no series {series_uid} in the folder (found: {', '.join(sorted(groups))})", path=folder, hint="pass one of the UIDs found")
    members = groups[series_uid if series_uid is not None else next(iter(groups))]
    del groups  # the other series' headers

    if len(members) == 1:  # one (possibly multi-frame) file is a series of its own
        image = read_dicom(members[0][0], grey=grey)
        image.meta.source = str(folder)
        return image
    if any(int(ds.get("NumberOfFrames", 1) or 1) > 1 for _, ds in members):
        raise MedganError("series mixes several multi-frame files", path=folder, hint="read the multi-frame files one by one")
    sizes = {(int(ds.Rows), int(ds.Columns)) for _, ds in members}
    if len(sizes) > 1:
        raise MedganError(f"series mixes image sizes {sorted(sizes)} (rows, columns)", path=folder, hint="move the odd files out or pass another series_uid")
    rows, cols = next(iter(sizes))
    limits.check_declared(folder, (len(members), rows, cols), what="a volume of")  # before any slice is decoded

    ref = members[0][1]
    pixel_spacing = _pixel_spacing(ref)
    order, dz, affine, irregular, positions_mm = series_order(members, folder)

    array = np.empty((len(members), rows, cols), np.float32)  # (D, H, W), filled slice by slice
    raw_dtype, low, high = None, np.inf, -np.inf
    for k, i in enumerate(order):
        file = members[i][0]
        ds = _dcmread(file)  # this file's pixels, parsed now and dropped with ds below
        raw = _decode(ds, file)
        raw_dtype = raw.dtype if raw_dtype is None else raw_dtype  # the first slice's, as listed in meta
        values = _to_values(ds, raw, file, grey)
        del ds, raw
        if values.ndim != 2:
            raise MedganError("colour DICOM series cannot be read as a volume", path=folder, hint="read it with grey=True (--grey)")
        if values.shape != (rows, cols):  # the header said otherwise when the series was grouped
            raise MedganError(f"decodes to {values.shape[0]}x{values.shape[1]}, its header says {rows}x{cols}", path=file, hint=CORRUPT_HINT)
        check_finite(values, file)
        array[k] = values
        if values.size:  # finite, so min/max are the range finite_range would give, without copying the volume
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    value_range = (low, high) if array.size else (0.0, 0.0)
    spacing = None if pixel_spacing is None else (float(dz or 1.0), *map(float, pixel_spacing))
    extra = {"n_files": len(members), "irregular_spacing": irregular, "slice_positions": positions_mm}
    meta = _meta(ref, folder, value_range, raw_dtype, spacing=spacing, affine=affine, orientation=_orientation(affine), extra=extra)
    return Image(array, meta)


# --------------------------------------------------------------------------- writing


def _quantise(array: np.ndarray, value_range: tuple[float, float] | None) -> tuple[np.ndarray, str, str]:
    """float -> uint16 stored values plus RescaleSlope/Intercept strings (DS, <= 16 chars).

    Integer-valued data spanning at most 65536 values (CT in HU, 8/12/16-bit images) are
    stored exactly with slope 1; anything else is spread over 0..65535, so the round-trip
    error is at most half a step, ``(high - low) / 65535 / 2``.
    """
    low, high = value_range if value_range is not None else (float(array.min()), float(array.max()))
    data = np.clip(array.astype(np.float64), low, high)
    integral = np.all(data == np.round(data)) and float(low) == round(low)
    if integral and high - low <= 65535:
        slope, intercept = "1", str(int(low))
    else:
        slope = format_number_as_ds(max((high - low) / 65535.0, 1e-12))
        intercept = format_number_as_ds(float(low))
    # Quantise with the values as written (DS strings round), so reading back agrees.
    stored = np.rint((data - float(intercept)) / float(slope))
    return np.clip(stored, 0, 65535).astype("<u2"), slope, intercept


def _check_anonymous(ds: Dataset) -> None:
    for keyword in ANONYMIZED_KEYWORDS:
        if keyword in ds and str(ds[keyword].value or "").strip():
            raise AssertionError(f"write_dicom would write identifying attribute {keyword}")  # a medgan bug


def file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    """File meta information of a file medgan writes: explicit VR little endian, medgan named
    as the implementation (shared by the synthetic and the derived-series writers)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"MEDGAN_{__version__}"[:16]
    return meta


def write_dicom(
    path: str | os.PathLike,
    array: np.ndarray,
    *,
    source_meta: ImageMeta | None = None,
    description: str = "",
    derived_from_model: str | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    instance_number: int = 1,
    modality: str | None = None,
    rescale_to: tuple[float, float] | None = None,
    processed: str | None = None,
    burned_in: tuple[str | None, str | None] = ("NO", "NO"),
    overwrite: bool = False,
) -> Path:
    """Write a synthetic or derived image as a DICOM Secondary Capture, with no patient data.

    ``(H, W)`` -> Secondary Capture (1.2.840.10008.5.1.4.1.1.7), uint16 + Rescale;
    ``(D, H, W)`` -> one Multi-frame Grayscale Word SC file (1.2.840.10008.5.1.4.1.1.7.3);
    ``(H, W, 3)`` -> RGB 8-bit Secondary Capture. Explicit VR Little Endian.

    The dataset is built from scratch: fresh Study/Series/SOP Instance UIDs, patient name
    ``SYNTHETIC^MEDGAN`` and ID ``MEDGAN-SYNTH``, no dates, no institution, no people;
    ``ImageType = DERIVED\\SECONDARY``, ``ConversionType = SYN``, ``PatientIdentityRemoved
    = YES`` and ImageComments / DerivationDescription saying it is a synthetic image made by
    medgan; ``BurnedInAnnotation`` / ``RecognizableVisualFeatures`` as ``burned_in`` says. From ``source_meta`` only geometry (pixel
    spacing, slice thickness), modality and display window are used.

    An image made FROM a patient's image (denoised, super-resolved ...) is not synthetic:
    with ``processed`` given, the same de-identified object says what was done to a patient
    image instead (patient ``DEIDENTIFIED^MEDGAN`` / ``MEDGAN-DEID``, ``ConversionType = WSD``,
    DerivationDescription ``"<processed> from a patient image; de-identified by medgan ..."``).

    Args:
        path: output file (``.dcm`` by convention).
        array: ``(H, W)``, ``(D, H, W)`` or ``(H, W, 3)`` values in the source's units (HU...).
        source_meta: metadata of the image this one derives from.
        description: SeriesDescription.
        derived_from_model: name/version of the model, added to the derivation statement.
        series_uid: put several files in one series (default: a fresh series).
        study_uid: the (synthetic) study the series belongs to; give the same UID to every
            file of a series (default: a fresh study).
        instance_number: InstanceNumber of this file within the series.
        modality: Modality (default: ``source_meta.modality``, else ``"OT"``).
        rescale_to: value range stored (values outside are clipped); default the array's
            min..max. Integer data in a range of <= 65536 values are stored exactly.
        processed: what was done to a patient's image to make this one, e.g. ``"Denoised by
            medgan model pix2pix step 600"``; ``None``: the image was drawn from a generator.
        burned_in: ``(BurnedInAnnotation, RecognizableVisualFeatures)``: ``"YES"`` / ``"NO"``,
            or ``None`` to leave the attribute out (unknown). An image made from a patient's
            image passes the source's values: header de-identification removes no text or
            face from the pixels, so a source's YES must stay YES.
        overwrite: replace an existing file instead of refusing.

    Returns:
        The path written.

    Raises:
        MedganError: bad shape, non-finite values, invalid ``series_uid``, existing output.
    """
    array = np.asarray(array)
    colour = array.ndim == 3 and array.shape[-1] == 3 and array.shape[0] > 3
    if array.ndim not in (2, 3):
        raise MedganError(f"array of shape {array.shape} cannot be written as DICOM", path=path, hint="expected (H, W), (D, H, W) or (H, W, 3)")
    check_finite(array.astype(np.float32), path)
    if series_uid is not None and not (_UID_PATTERN.fullmatch(series_uid) and len(series_uid) <= 64):
        raise MedganError(f"series_uid {series_uid!r} is not a valid DICOM UID", path=path, hint="use pydicom.uid.generate_uid()")
    volume = array.ndim == 3 and not colour
    sop_class = MULTIFRAME_GREY_WORD_SC if volume else SECONDARY_CAPTURE
    sop_uid = generate_uid()
    modality = modality or (source_meta.modality if source_meta is not None else None) or "OT"
    if processed:
        statement = (f"{processed} from a patient image; de-identified by medgan {__version__} "
                     "(patient, study, equipment and date attributes replaced or removed)")
    else:
        statement = f"Synthetic image generated by medgan {__version__}"
        if derived_from_model:
            statement += f" (model: {derived_from_model})"
        statement += "; not a patient image"

    meta = file_meta(sop_class, sop_uid)

    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, so any description can be stored
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid or generate_uid()  # files of one series must share one study
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.ImageType = ["DERIVED", "SECONDARY"]
    # Patient / study: synthetic identity; type 2 attributes present and empty.
    ds.PatientName = DEIDENTIFIED_PATIENT_NAME if processed else SYNTHETIC_PATIENT_NAME
    ds.PatientID = DEIDENTIFIED_PATIENT_ID if processed else SYNTHETIC_PATIENT_ID
    for keyword in _TYPE2_EMPTY:
        setattr(ds, keyword, "")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "medgan de-identified derived image" if processed else "medgan synthetic"
    # Series / equipment / image.
    ds.Modality = modality
    ds.SeriesNumber = 1
    ds.SeriesDescription = description
    ds.InstanceNumber = int(instance_number)
    ds.PatientOrientation = ""
    ds.ConversionType = "WSD" if processed else "SYN"  # workstation output of a patient image / synthetic
    ds.SecondaryCaptureDeviceManufacturer = "medgan"
    ds.SecondaryCaptureDeviceSoftwareVersions = __version__
    for keyword, value in zip(("BurnedInAnnotation", "RecognizableVisualFeatures"), burned_in):
        if value is not None:
            if str(value).upper() not in ("YES", "NO"):
                raise MedganError(f"{keyword} {value!r} must be YES or NO", path=path)
            setattr(ds, keyword, str(value).upper())
    ds.ImageComments = statement
    ds.DerivationDescription = statement

    if source_meta is not None and source_meta.spacing is not None and len(source_meta.spacing) >= 2:
        ds.PixelSpacing = [format_number_as_ds(float(s)) for s in source_meta.spacing[-2:]]
        thickness = (source_meta.extra or {}).get("slice_thickness")
        if thickness is None and len(source_meta.spacing) == 3:
            thickness = source_meta.spacing[0]
        if thickness:
            ds.SliceThickness = format_number_as_ds(float(thickness))

    if colour:
        low, high = rescale_to if rescale_to is not None else (float(array.min()), float(array.max()))
        scaled = np.clip((array.astype(np.float64) - low) / (high - low), 0, 1) if high > low else np.zeros(array.shape)
        pixels = np.rint(scaled * 255).astype(np.uint8)
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.Rows, ds.Columns = array.shape[:2]
        ds.add_new(0x7FE00010, "OB", pixels.tobytes())
    else:
        stored, slope, intercept = _quantise(array, rescale_to)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.Rows, ds.Columns = array.shape[-2:]
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.RescaleType = "HU" if modality == "CT" else "US"
        extra = source_meta.extra if source_meta is not None else {}
        center, width = extra.get("window_center"), extra.get("window_width")
        if center is None or not width:
            low, high = float(array.min()), float(array.max())
            center, width = (low + high) / 2, max(high - low, 1.0)
        ds.WindowCenter, ds.WindowWidth = format_number_as_ds(float(center)), format_number_as_ds(float(width))
        if volume:
            ds.NumberOfFrames = array.shape[0]
            ds.FrameIncrementPointer = 0x00182005  # Slice Location Vector
            step = float(source_meta.spacing[0]) if source_meta is not None and source_meta.spacing and len(source_meta.spacing) == 3 else 1.0
            ds.SliceLocationVector = [format_number_as_ds(i * step) for i in range(array.shape[0])]
        ds.add_new(0x7FE00010, "OW", stored.tobytes())  # (D, H, W) frames in order

    _check_anonymous(ds)
    with atomic_path(path, overwrite) as tmp:
        pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
    return Path(path)
