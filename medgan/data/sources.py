"""Resolve a data source into an :class:`ImageSet`.

A source is what a user types after ``--data`` or ``medgan data show``:

- an embedded set: ``brain-mri`` (stored at 64 and 128 px: ``size`` reads one natively or
  resizes from the nearest larger), ``phantom`` (drawn at ``size``);
- a MedMNIST name: ``pneumoniamnist`` (``pneumoniamnist_64`` for the 64x64 release);
- a file: DICOM, NIfTI (volumes are cut into slices), PNG/JPEG/TIFF, ``.npy``, ``.npz``
  (MedMNIST layout or a single array);
- a folder: DICOM series (one volume per series), or image files, optionally in one
  subfolder per class (the subfolder names become labels);
- a list of files.

Every 2D image ends up in one ``ImageSet`` of one size; each volume (series, NIfTI file)
is one group, so splits keep a patient's slices together.

Memory is bounded by what is kept, not by the source's native size. Files and folders are
read in two passes: the headers first (no pixels), which give the number of slices and
their size, so a set larger than the memory available is refused before anything is read
(:func:`check_memory`); then the pixels, one volume (series, NIfTI file, image) at a time.
Each volume is windowed or normalised, cut into slices and every slice fitted to ``size``
as the volume is read, and the native array is dropped before the next volume is read, so
the peak is the kept set plus one native volume and its working copies (the DICOM series
reader decodes only the series' own files, into the float32 volume, one slice at a
time), however many volumes the source holds. Nothing needs every native value at once:
the per-volume statistics (MRI percentile normalisation, the foreground threshold of
:func:`~medgan.data.geometry.foreground_slices`) are taken on the volume while it is in
memory, and the set's nominal range (:func:`_nominal_range`) on the kept, resized images,
without a sorted copy of them (:func:`~medgan.data.intensity.percentiles`).

:class:`SourceOptions` lives in :mod:`medgan.data.source_options` (no pydicom, nibabel or
torch), so the command line builds its flags without importing readers.
"""

from __future__ import annotations

import csv
import importlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medgan import io as mio
from medgan.data.geometry import (
    display_spacing, fit_square, foreground_slices, orient_for_display, plane_axis, resized_spacing, slicing_axis,
)
from medgan.data.imageset import ImageSet
from medgan.data.intensity import apply_window, normalize_percentile, parse_window, percentiles, window_bounds
from medgan.errors import MedganError
from medgan.io.arrays import npz_array
from medgan.io.limits import available_memory
from medgan.lazy import load
from medgan.data.source_options import SourceOptions


@dataclass
class _Item:
    """One 2D image on its way into the set, already fitted to ``size`` (owning its memory:
    it never keeps the native volume it was cut from alive)."""

    image: np.ndarray
    source: str
    group: int
    label: str | None = None
    mask: np.ndarray | None = None
    units: str | None = None
    series: str | None = None  # the DICOM series it comes from, as listed in messages
    spacing: tuple[float, float] | None = None  # (rows, columns) mm of this 2D image
    annotated: bool = False  # its mask, as read (before any resize), labels something


#: Sources named without a path: name -> ``"module:loader"`` of :mod:`medgan.datasets`
#: (imported on first use: the datasets build on this package, which never imports them
#: at import time, so the two have no import cycle). Adding one is a module there plus a
#: line here.
EMBEDDED_SOURCES = {
    "brain-mri": "medgan.datasets.brain_mri:load_brain_mri",
    "phantom": "medgan.datasets.phantom:phantom_set",
}
_MEDMNIST = "medgan.datasets.medmnist"


def embedded_loader(name: str):
    """The loader function of an embedded source."""
    return load(EMBEDDED_SOURCES[name])


def load_source(spec: str | Path | list, options: SourceOptions | None = None) -> ImageSet:
    """Read any supported source into an ``ImageSet`` (see the module docstring).

    Raises:
        MedganError: a path that does not exist, a folder without images, unreadable or
            corrupt files, images of mixed sizes without ``size``, bad labels or masks.
    """
    opts = options or SourceOptions()
    if isinstance(spec, (list, tuple)):
        return _finish_set(_read_files([Path(p) for p in spec], opts, root=None, name=f"{len(spec)} files"), opts)
    text = str(spec)
    if text in EMBEDDED_SOURCES:
        _refuse_file_options(text, opts)
        return _finish_set(_load_embedded(text, opts), opts)
    path = Path(text).expanduser()
    medmnist = importlib.import_module(_MEDMNIST) if not path.exists() else None
    if medmnist is not None and medmnist.is_medmnist_name(text):
        _refuse_file_options(text, opts)
        name, _, size = text.partition("_")
        found = medmnist.load_medmnist(name, split=opts.split, size=int(size or 28), grey=opts.grey)
        return _finish_set(found, opts)
    if not path.exists():
        known = ", ".join(sorted(EMBEDDED_SOURCES))
        raise MedganError("does not exist", path=path, hint=f"give an existing file or folder, an embedded set ({known}) or a MedMNIST name such as pneumoniamnist")
    if path.is_file() and mio.detect_format(path) == "npz":
        return _finish_set(_load_npz(path, opts), opts)
    if path.is_dir():
        data = _read_folder(path, opts)
    else:
        data = _read_files([path], opts, root=None, name=path.name)
    return _finish_set(data, opts)


# ----------------------------------------------------------------------------- embedded


def _refuse_file_options(source: str, opts: SourceOptions) -> None:
    """Masks and label files pair with files the user gives; a built-in set brings its own
    (silently ignoring them would train on labels the user did not mean)."""
    for flag, value in (("--masks", opts.masks), ("--labels-csv", opts.labels_csv)):
        if value:
            raise MedganError(f"{flag} pairs with a folder or files of images, but {source!r} is a built-in set with its own labels",
                              path=value, hint=f"leave out {flag}, or give your images with --data FOLDER")


def _load_embedded(name: str, opts: SourceOptions) -> ImageSet:
    loader = embedded_loader(name)
    if name == "phantom":
        return loader(n=opts.n, size=opts.size or 64, seed=opts.seed, kind=opts.kind, lesion_fraction=opts.lesion_fraction)
    if name == "brain-mri":
        # an embedded size is read natively; any other is resized by _finish_set from the
        # nearest larger embedded size (or the largest), never from a smaller one
        return loader(size=load("medgan.datasets.brain_mri:stored_size")(opts.size))
    return loader()


def _load_npz(path: Path, opts: SourceOptions) -> ImageSet:
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        # what ImageSet.save_npz (and medgan generate) keep besides images and labels, each
        # member's header checked before it is loaded (a hostile one declares any size)
        side = {key: npz_array(archive, key, path) for key in ("class_names", "units", "value_range", "groups") if key in keys}
    text = lambda key: side[key] if key in side and side[key].dtype.kind == "U" else None  # noqa: E731
    names = None if text("class_names") is None else [str(x) for x in text("class_names")]
    units = None if text("units") is None else str(text("units"))
    stored_range = side["value_range"] if "value_range" in side and side["value_range"].shape == (2,) else None
    stored_groups = side["groups"] if "groups" in side and side["groups"].dtype.kind in "iu" else None
    if f"{opts.split}_images" in keys or "images" in keys:
        images, labels = mio.read_npz_collection(path, split=opts.split)
        # 8-bit pixels (the MedMNIST layout) are 0..255; any other dtype's range comes from
        # the values, as for every other source (float images in [0, 1] stay 0..1).
        value_range = (0.0, 255.0) if images.dtype == np.uint8 else None
        if stored_range is not None and np.all(np.isfinite(stored_range)) and stored_range[1] > stored_range[0]:
            value_range = (float(stored_range[0]), float(stored_range[1]))
        images = images.astype(np.float32)
        if images.ndim == 4:  # (N, H, W, 3) colour
            images = mio.rgb_to_grey(images) if opts.grey else np.moveaxis(images, -1, 1)
        if labels is not None and labels.ndim > 1:  # multi-label sets: keep the first label
            labels = labels[:, 0]
        classes = None if labels is None else [f"class {i}" for i in range(int(labels.max()) + 1)]
        if classes is not None and names is not None and len(names) >= len(classes):  # e.g. medgan generate's npz
            classes = names
        groups = stored_groups.astype(np.int64) if stored_groups is not None and len(stored_groups) == len(images) else None
        return ImageSet(images=images, labels=labels, class_names=classes, name=path.name, value_range=value_range, units=units,
                        groups=groups, sources=[f"{path.name}:{opts.split}[{i}]" for i in range(len(images))])
    collect = _Collector(opts, path.name)
    collect.add(_image_to_items(mio.read_image(path), opts, group=0, source=path.name))
    return collect.finish()


# ----------------------------------------------------------------------------- files


def _read_folder(folder: Path, opts: SourceOptions) -> ImageSet:
    files = mio.find_image_files(folder, recursive=True)
    if not files:
        raise MedganError("no images found in the folder", path=folder, hint="point to a folder of DICOM, NIfTI, PNG/JPEG/TIFF or NPY files")
    return _read_files(files, opts, root=folder, name=folder.name)


def _read_files(files: list[Path], opts: SourceOptions, root: Path | None, name: str) -> ImageSet:
    labels = _read_labels_csv(Path(opts.labels_csv), files, root) if opts.labels_csv else None
    if labels is None and root is not None:
        labels = _labels_from_subfolders(files, root)
    dicom = [f for f in files if mio.detect_format(f) == "dicom"]
    others = [f for f in files if f not in set(dicom)]
    if any(mio.detect_format(f) is None for f in others):
        bad = next(f for f in others if mio.detect_format(f) is None)
        mio.read_image(bad)  # raises the reader's clear "not an image" error

    # Headers first: how many slices of what size, before a single pixel is read.
    volumes = _dicom_volumes(dicom, opts, root) + [_file_volume(f, opts, root) for f in others]
    check_memory(volumes, opts, root or files[0])

    # Then the pixels, one volume at a time: _volume_items returns the volume's slices fitted
    # to size, and its native array is gone before the next one is read.
    collect = _Collector(opts, name, series=[v.listing for v in volumes if v.listing])
    for group, volume in enumerate(volumes):
        label = labels.get(volume.files[0]) if labels else None
        collect.add(_volume_items(volume, opts, group, label, _find_mask(volume.files[0], opts, root)))
    return collect.finish()


@dataclass
class _Volume:
    """What the headers say about one volume (a DICOM series, a file) before its pixels are read.

    Attributes:
        files: its files (a series' in listing order; one for anything else).
        name: how it is named in the set's ``sources`` and in messages.
        shape: ``(D, H, W)`` of a volume, ``(H, W)`` of a 2D image, as the reader returns it;
            ``None`` when the header does not say (the memory check then leaves it out).
        orientation: the volume's axis codes, when the header gives them.
        channels: 3 for a colour image kept in colour, else 1.
        listing: a DICOM series' line in a list of series (``None`` for other files).
        uid: a DICOM series' SeriesInstanceUID (``None`` for other files).
    """

    files: list[Path]
    name: str
    shape: tuple[int, ...] | None = None
    orientation: tuple[str, ...] | None = None
    channels: int = 1
    listing: str | None = None
    uid: str | None = None


def _volume_items(volume: _Volume, opts: SourceOptions, group: int, label: str | None, mask: Path | None) -> list[_Item]:
    """Read one volume and return its slices, fitted to ``size``. The native array is local
    to this call, so it is freed when the call returns, before the next volume is read."""
    if volume.uid is None or len(volume.files) == 1:
        image = mio.read_image(volume.files[0], volume=None if volume.uid is not None else opts.volume, grey=opts.grey)
    else:
        image = mio.read_dicom_series(volume.files[0].parent, series_uid=volume.uid or None, files=volume.files)
    items = _image_to_items(image, opts, group, volume.name, label, mask)
    for item in items:
        item.series = volume.listing
    return items


_SERIES_TAGS = ["SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Rows", "Columns", "NumberOfFrames",
                "SamplesPerPixel", "PhotometricInterpretation", "ImageOrientationPatient"]


def _dicom_volumes(files: list[Path], opts: SourceOptions, root: Path | None) -> list[_Volume]:
    """One :class:`_Volume` per DICOM series (files grouped by folder and series UID), only
    the series ``opts.series`` names when given, from the headers alone; ``name`` is how
    the series is shown in messages, ``listing`` its line in a list of series."""
    import pydicom

    by_series: dict[tuple[Path, str], list[tuple[Path, pydicom.Dataset]]] = defaultdict(list)
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True, specific_tags=_SERIES_TAGS)
        except Exception:  # unreadable header: let the reader give its clear error
            mio.read_image(f)
            raise
        by_series[(f.parent, str(ds.get("SeriesInstanceUID", "")))].append((f, ds))

    def order(kv):  # by folder, then series number as the PACS lists them, then UID
        number = str(kv[1][0][1].get("SeriesNumber", "") or "").strip()
        return str(kv[0][0]), int(number) if number.lstrip("-").isdigit() else 1 << 31, kv[0][1]

    found = sorted(by_series.items(), key=order)
    if opts.series is not None and found:
        chosen = [(key, members) for key, members in found if mio.series_matches(members[0][1], opts.series)]
        if not chosen:
            listing = "; ".join(_series_listing(parent, members, root) for (parent, _), members in found)
            raise MedganError(f"no DICOM series matches --series {opts.series!r}; found: {listing}",
                              path=root or files[0], hint="give a series number, description or UID from the list")
        found = chosen
    volumes = []
    for (parent, uid), members in found:
        paths = [f for f, _ in members]
        folder = _display(parent, root)
        name = ("" if folder == "." else f"{folder}: ") + mio.series_name(members[0][1])
        ds = members[0][1]
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        shape = None
        if "Rows" in ds and "Columns" in ds:
            depth = len(members) if len(members) > 1 else frames
            shape = (depth, int(ds.Rows), int(ds.Columns)) if depth > 1 else (int(ds.Rows), int(ds.Columns))
        colour = int(ds.get("SamplesPerPixel", 1) or 1) > 1 or str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR"
        volumes.append(_Volume(paths, _display(paths[0], root) if len(members) == 1 else name, shape, _dicom_orientation(ds),
                               3 if colour and not opts.grey and len(members) == 1 and frames == 1 else 1,
                               _series_listing(parent, members, root), uid))
    return volumes


def _dicom_orientation(ds) -> tuple[str, ...] | None:
    """Axis codes of the ``(D, H, W)`` volume a series is read as, from one header's
    ImageOrientationPatient (slices stacked along the normal, as the reader stacks them)."""
    try:
        iop = np.array([float(v) for v in ds.get("ImageOrientationPatient") or []], np.float64)
        if iop.shape != (6,) or not np.all(np.isfinite(iop)):
            return None
        from nibabel.orientations import aff2axcodes

        affine = np.eye(4)
        affine[:3, 0], affine[:3, 1], affine[:3, 2] = np.cross(iop[:3], iop[3:]), iop[3:], iop[:3]  # d, h, w in LPS
        return tuple(str(c) for c in aff2axcodes(np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine))
    except Exception:  # a degenerate orientation: the estimate slices along axis 0
        return None


def _file_volume(file: Path, opts: SourceOptions, root: Path | None) -> _Volume:
    """A NIfTI, raster or NumPy file as a :class:`_Volume`, its shape read from the header
    only (``None`` when that fails: the reader gives the error when the pixels are read)."""
    volume = _Volume([file], _display(file, root))
    try:
        fmt = mio.detect_format(file)
        if fmt == "nifti":
            import nibabel as nib

            header = nib.load(file)  # a proxy: no voxel is read
            shape = tuple(int(s) for s in header.shape)[:3]
            shape = shape[:2] if len(shape) == 3 and shape[2] == 1 else shape
            volume.shape = shape[::-1]  # (i, j, k) -> (D, H, W) = (k, j, i), as read_nifti returns it
            if len(shape) == 3:
                from nibabel.orientations import aff2axcodes

                volume.orientation = tuple(str(c) for c in aff2axcodes(np.asarray(header.affine)[:, [2, 1, 0, 3]]))
        elif fmt in mio.RASTER_FORMATS:
            from PIL import Image as PILImage

            with PILImage.open(file) as img:  # the header only
                volume.shape = (img.height, img.width)
                volume.channels = 3 if img.mode not in ("1", "L", "LA", "I", "F") and not img.mode.startswith("I;16") and not opts.grey else 1
        elif fmt == "npy":
            shape = tuple(np.load(file, mmap_mode="r", allow_pickle=False).shape)
            shape = shape[:1] + shape[2:] if len(shape) == 4 and shape[1] == 1 else shape
            if len(shape) == 3 and shape[-1] in (3, 4) and shape[0] > shape[-1]:  # (H, W, 3) colour
                shape, volume.channels = shape[:2], 1 if opts.grey else 3
            volume.shape = shape if len(shape) in (2, 3) else None
    except Exception:  # the reader raises the clear error when the pixels are read
        volume.shape = None
    return volume


# ----------------------------------------------------------------------------- memory


def check_memory(volumes: list[_Volume], opts: SourceOptions, where: str | Path) -> int:
    """Refuse, before any pixel is read, a set that cannot fit in the memory available.

    The estimate comes from the headers: every slice along the slicing axis (empty ones
    are only dropped once read, so it is an upper bound) at ``size`` x ``size`` (the native
    size without ``size``) in float32, plus the largest native volume in float32 (the one
    being read when the set is nearly complete).

    Returns:
        the estimated bytes of the kept set.

    Raises:
        MedganError: the estimate exceeds :func:`available_memory`, naming the folder, the
            size and the remedies.
    """
    kept = native = slices = 0
    for volume in volumes:
        if volume.shape is None:
            continue
        n, plane = _slices_of(volume, opts)
        slices += n
        kept += n * volume.channels * 4 * (opts.size**2 if opts.size is not None else plane)
        native = max(native, int(np.prod(volume.shape)) * volume.channels * 4)
    available = available_memory()
    if available is not None and kept + native > available:
        at = f"at --size {opts.size}" if opts.size is not None else "at their native size"
        raise MedganError(
            f"reading this set needs about {_bytes(kept)} ({slices} slices {at}) plus {_bytes(native)} for the "
            f"largest volume while it is read, but only {_bytes(available)} of memory is available",
            path=where, hint="pass a smaller --size, read a subset (--series, or fewer files or patients), or use a machine with more memory",
        )
    return kept


def _slices_of(volume: _Volume, opts: SourceOptions) -> tuple[int, int]:
    """``(number of slices, pixels per native slice)`` of a volume cut along ``opts.axis``,
    from its header's shape (axis 0 when its orientation is not known)."""
    shape = volume.shape
    if len(shape) == 2 or shape[0] == 1:
        return 1, shape[-2] * shape[-1]
    axis = slicing_axis(volume.orientation, opts.axis)
    try:
        axis = plane_axis(volume.orientation, axis) if isinstance(axis, str) else axis
    except MedganError:  # the reader's turn to say so, when the pixels are read
        axis = 0
    axis = axis if axis in (0, 1, 2) else 0
    return shape[axis], int(np.prod(shape)) // shape[axis]


def _bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _series_listing(parent: Path, members: list, root: Path | None) -> str:
    folder = _display(parent, root)
    return ("" if folder == "." else f"{folder}: ") + mio.describe_series(members[0][1], len(members))


def _display(path: Path, root: Path | None) -> str:
    return str(path.relative_to(root)) if root is not None and path.is_relative_to(root) else str(path)


def _labels_from_subfolders(files: list[Path], root: Path) -> dict[Path, str] | None:
    """Class = first subfolder under ``root``; only when every file lies in a subfolder."""
    parts = [f.relative_to(root).parts for f in files]
    if any(len(p) < 2 for p in parts):
        return None
    names = {p[0] for p in parts}
    if len(names) < 2:
        return None
    return {f: p[0] for f, p in zip(files, parts)}


def _read_labels_csv(csv_path: Path, files: list[Path], root: Path | None) -> dict[Path, str]:
    if not csv_path.is_file():
        raise MedganError("labels CSV does not exist", path=csv_path, hint="give a CSV with columns file,label")
    with open(csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise MedganError("labels CSV needs the columns 'file' and 'label'", path=csv_path, hint="add a header line: file,label")
    table = {row["file"].strip(): row["label"].strip() for row in rows}
    labels = {}
    for f in files:
        keys = [str(f), f.name] + ([str(f.relative_to(root))] if root is not None and f.is_relative_to(root) else [])
        found = next((table[k] for k in keys if k in table), None)
        if found is None:
            raise MedganError(f"no label for {f.name}", path=csv_path, hint="add a row for every image (file,label)")
        labels[f] = found
    return labels


def _find_mask(file: Path, opts: SourceOptions, root: Path | None) -> Path | None:
    """The mask file paired with ``file``: same relative path and stem, any image format."""
    if not opts.masks:
        return None
    mask_root = Path(opts.masks)
    if not mask_root.is_dir():
        raise MedganError("masks folder does not exist", path=mask_root, hint="give the folder holding one mask per image, named like the image")
    rel = file.relative_to(root) if root is not None and file.is_relative_to(root) else Path(file.name)
    stem = rel.name.split(".")[0]
    for candidate in sorted((mask_root / rel.parent).glob(f"{stem}.*")) + sorted(mask_root.glob(f"{stem}.*")):
        if mio.detect_format(candidate):
            return candidate
    if opts.partial_masks:
        return None  # an unlabelled image
    raise MedganError(f"no mask for {rel}", path=mask_root,
                      hint=f"add a mask named {stem}.png (or .nii.gz, .dcm) for every image, or pass --partial-masks")


def _label_map(mask: np.ndarray, path: Path) -> np.ndarray:
    """A mask as integer label values (``uint8``, or ``uint16`` past 255); fractional,
    negative or too large values are an error rather than a silent cast."""
    bad = ~np.isfinite(mask) | (mask != np.round(mask)) | (mask < 0) | (mask > 65535)
    if bad.any():
        raise MedganError(f"the mask holds the value {mask[bad].flat[0]}, not an integer label in 0..65535", path=path,
                          hint="give label maps of whole numbers (0 = background), not probabilities or an image")
    return mask.astype(np.uint16 if mask.size and mask.max() > 255 else np.uint8)


def _image_to_items(
    image: mio.Image, opts: SourceOptions, group: int, source: str, label: str | None = None, mask_path: Path | None = None
) -> list[_Item]:
    """2D images stay whole; volumes become their non-empty slices along ``opts.axis``; every
    image is fitted to ``opts.size`` here, one slice at a time, so that nothing returned
    keeps the native array alive. Consumes ``image.array`` (set to ``None``): this call holds
    the last reference, so a volume's native array goes as soon as it has been windowed."""
    array, meta, colour = image.array, image.meta, image.is_colour
    image.array = None
    mask = mio.read_image(mask_path, volume=opts.volume, grey=True).array if mask_path else None
    if mask is not None and mask.shape != array.shape[: mask.ndim]:
        raise MedganError(f"mask shape {mask.shape} differs from image shape {array.shape}", path=mask_path, hint="masks must match their images pixel for pixel")
    if mask is not None:
        mask = _label_map(mask, mask_path)
    spacing = tuple(float(v) for v in meta.spacing) if meta.spacing is not None and len(meta.spacing) >= 2 else None
    if colour:  # (H, W, 3) colour kept
        return [_fitted(np.moveaxis(array, -1, 0), mask, _in_plane(spacing, colour=True), opts, source, group, label, meta.units)]
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
        mask = None if mask is None else mask.reshape(array.shape)
        spacing = None if spacing is None else spacing[-2:]
    if array.ndim == 2:
        return [_fitted(source_intensity(array, meta, opts), mask, _in_plane(spacing), opts, source, group, label, meta.units)]
    volume = source_intensity(array, meta, opts)
    del array  # the native array, unless windowing kept it as it was
    spacing = spacing if spacing is not None and len(spacing) == 3 else None
    axis = slicing_axis(meta.orientation, opts.axis)
    if isinstance(axis, str):  # a named plane: slices shown the radiological way
        volume = orient_for_display(volume, meta.orientation, axis)
        mask = None if mask is None else orient_for_display(mask, meta.orientation, axis)
        spacing = None if spacing is None else display_spacing(spacing, meta.orientation, axis)
        axis = 0
    kept = foreground_slices(volume, axis=axis, min_foreground=opts.min_foreground)
    stack = np.moveaxis(volume, axis, 0)  # (N, h, w) views, one slice taken at a time
    masks = None if mask is None else np.moveaxis(mask, axis, 0)
    plane = None if spacing is None else tuple(v for a, v in enumerate(spacing) if a != axis)
    return [
        _fitted(stack[k], None if masks is None else masks[k], plane, opts, f"{source} slice {k}", group, label, meta.units)
        for k in kept
    ]


def _fitted(image: np.ndarray, mask: np.ndarray | None, spacing: tuple[float, float] | None, opts: SourceOptions,
            source: str, group: int, label: str | None, units: str | None) -> _Item:
    """One 2D ``(H, W)`` or ``(C, H, W)`` image (a slice, maybe a view of its volume) as an
    item fitted to ``opts.size``, in memory of its own."""
    if opts.size is None:
        fitted, fitted_mask = np.array(image, np.float32), None if mask is None else np.array(mask)
    else:
        spacing = None if spacing is None else resized_spacing(spacing, image.shape[-2:], opts.size, opts.resize_mode)
        fitted = fit_square(image.astype(np.float32, copy=False), opts.size, opts.resize_mode)
        fitted_mask = None if mask is None else fit_square(mask, opts.size, opts.resize_mode, labels=True)
        # a crop that needs no resize is a view of its volume: copy it, or the volume stays
        fitted = fitted.copy() if np.may_share_memory(fitted, image) else fitted
        fitted_mask = fitted_mask.copy() if fitted_mask is not None and np.may_share_memory(fitted_mask, mask) else fitted_mask
    return _Item(fitted, source, group, label, fitted_mask, units, spacing=spacing, annotated=mask is not None and bool(mask.any()))


def _in_plane(spacing: tuple[float, ...] | None, colour: bool = False) -> tuple[float, float] | None:
    """(rows, columns) mm of a 2D image: the last two of a grey image's spacing (a DICOM
    slice may carry its thickness first), the first two of an ``(H, W, 3)`` colour image's."""
    if spacing is None:
        return None
    return tuple(spacing[:2]) if colour else tuple(spacing[-2:])


def source_intensity(array: np.ndarray, meta: mio.ImageMeta, opts: SourceOptions) -> np.ndarray:
    """An image or volume in the units training data is read in: windowed (``--window``),
    percentile-normalised (MR volumes, or ``--normalize percentile``) or as stored."""
    if opts.window:
        return apply_window(array, *parse_window(opts.window))
    mr = (meta.modality or "").upper() == "MR"
    if opts.normalize == "percentile" or (opts.normalize == "auto" and mr and array.ndim == 3):
        return normalize_percentile(array)
    if opts.normalize not in ("auto", "none", "percentile"):
        raise MedganError(f"unknown normalisation {opts.normalize!r}", hint="use auto, percentile or none")
    return array.astype(np.float32, copy=False)


# ----------------------------------------------------------------------------- assemble


class _Rows:
    """An ``(N, *shape)`` array filled one row at a time. Rows go into chunks of at most
    ``CHUNK_BYTES`` (each its own allocation, handed back to the system when freed) rather
    than into a list of small arrays: assembling the final array then needs one chunk more
    than the rows themselves, not a second copy of the whole set, and no heap of small
    arrays is left fragmented."""

    CHUNK_BYTES = 32 << 20

    def __init__(self, dtype: np.dtype):
        self.dtype, self.chunks, self.n, self.used, self.shape = np.dtype(dtype), [], 0, 0, None

    def append(self, row: np.ndarray) -> None:
        if self.shape is None:
            self.shape = row.shape
        if not self.chunks or self.used == len(self.chunks[-1]):  # a new chunk: doubling, up to CHUNK_BYTES
            cap = max(1, self.CHUNK_BYTES // max(1, int(np.prod(self.shape)) * self.dtype.itemsize))
            self.chunks.append(np.empty((min(cap, max(16, self.n)), *self.shape), self.dtype))
            self.used = 0
        self.chunks[-1][self.used] = row
        self.used += 1
        self.n += 1

    def filled(self):
        """The rows written so far, chunk by chunk (views)."""
        at = 0
        for chunk in self.chunks:
            yield chunk[: self.n - at]
            at += len(chunk)

    def finish(self, dtype: np.dtype | None = None) -> np.ndarray:
        """The ``(N, *shape)`` array (in ``dtype``, default the rows' own); the chunks are
        copied in and freed one by one."""
        dtype = np.dtype(dtype or self.dtype)
        if len(self.chunks) == 1 and dtype == self.dtype:
            return self.chunks.pop()[: self.n]  # the unused tail was never written: no memory
        out, at = np.empty((self.n, *self.shape), dtype), 0
        while self.chunks:  # oldest first: each chunk is freed once copied
            rows = self.chunks.pop(0)[: self.n - at]
            out[at : at + len(rows)] = rows
            at += len(rows)
            del rows
        return out


class _Collector:
    """Assembles fitted items, volume by volume, into one :class:`ImageSet`: their pixels go
    into :class:`_Rows`, the rest into lists; one size for all (checked as they arrive) and
    masks for all or none (checked at the end).

    Args:
        opts: the reading options.
        name: the set's name, named in messages.
        series: the DICOM series read, listed when their sizes differ.
    """

    def __init__(self, opts: SourceOptions, name: str, series: list[str] | None = None):
        self.opts, self.name, self.series = opts, name, series or []
        self.images, self.masks = _Rows(np.float32), _Rows(np.uint16)
        self.has_mask: list[bool] = []
        self.annotated: list[bool] = []
        self.first: tuple[tuple, str] | None = None  # the first image's shape and source
        self.sources, self.groups, self.labels, self.spacing, self.units = [], [], [], [], []

    def add(self, items: list[_Item]) -> None:
        for item in items:
            if self.first is None:
                self.first = (item.image.shape, item.source)
            elif item.image.shape != self.first[0]:  # only without size: fitted items share one
                (s1, f1), (s2, f2) = self.first, (item.image.shape, item.source)
                message = f"images of mixed sizes: {_fmt(s1)} ({f1}) and {_fmt(s2)} ({f2})"
                hint = "pass --size N to resize them all to N x N"
                if len(self.series) > 1:  # a study export: several series of different sizes
                    message += f"; the DICOM series found: {'; '.join(self.series)}"
                    hint = "read one with --series NUMBER, DESCRIPTION or UID, or " + hint
                raise MedganError(message, path=self.name, hint=hint)
            self.images.append(item.image)
            self.has_mask.append(item.mask is not None)
            self.annotated.append(item.annotated)
            if item.mask is not None or (self.opts.masks and self.opts.partial_masks):
                self.masks.append(np.zeros(item.image.shape[-2:], np.uint16) if item.mask is None else item.mask)
            self.sources.append(item.source)
            self.groups.append(item.group)
            self.labels.append(item.label)
            self.spacing.append(item.spacing)
            self.units.append(item.units)
            item.image = item.mask = None  # the rows hold the pixels now

    def finish(self) -> ImageSet:
        """The set (``images`` float32, ``masks`` uint8, or uint16 past 255)."""
        opts, name = self.opts, self.name
        if self.first is None:
            raise MedganError("no non-empty images or slices found", path=name, hint="check the files, or lower the foreground threshold")
        annotated = None
        if opts.masks and opts.partial_masks:  # unlabelled images keep an all-zero mask, marked as not annotated
            annotated = np.array(self.annotated)
            if not annotated.any():
                raise MedganError("no image has a non-empty mask", path=opts.masks, hint="label at least one slice")
        elif any(self.has_mask) and not all(self.has_mask):
            raise MedganError("some images have masks and others do not", path=name, hint="give a mask for every image")
        masks = None
        if self.masks.n:
            wide = any(int(rows.max(initial=0)) > 255 for rows in self.masks.filled())
            masks = self.masks.finish(np.uint16 if wide else np.uint8)
        labels = class_names = None
        if any(lbl is not None for lbl in self.labels):
            class_names = sorted({str(lbl) for lbl in self.labels})
            labels = np.array([class_names.index(str(lbl)) for lbl in self.labels], dtype=np.int64)
        return ImageSet(
            images=self.images.finish(),
            labels=labels,
            class_names=class_names,
            masks=masks,
            annotated=annotated,
            groups=np.array(self.groups, dtype=np.int64),
            sources=self.sources,
            spacing=np.array(self.spacing, np.float64) if all(sp is not None for sp in self.spacing) else None,
            units=self.units[0] if len(set(self.units)) == 1 else None,
            name=name,
        )


def _fmt(shape: tuple) -> str:
    return "x".join(str(s) for s in shape[-2:])


def _finish_set(data: ImageSet, opts: SourceOptions) -> ImageSet:
    """Resize an already assembled set if asked, and settle its nominal value range."""
    if opts.size is not None and data.images.shape[-1] != opts.size or opts.size is not None and data.images.shape[-2] != opts.size:
        if data.spacing is not None:
            data.spacing = np.array([resized_spacing(sp, data.images.shape[-2:], opts.size, opts.resize_mode) for sp in data.spacing])
        data.images = np.stack([fit_square(im, opts.size, opts.resize_mode) for im in data.images])
        if data.masks is not None:
            data.masks = np.stack([fit_square(m, opts.size, opts.resize_mode, labels=True) for m in data.masks])
    if opts.window:
        data.value_range, data.units = window_bounds(*parse_window(opts.window)), "HU"
    elif data.value_range is None:
        data.value_range = _nominal_range(data.images)
    return data


def _nominal_range(images: np.ndarray) -> tuple[float, float]:
    """0..255 or 0..1 when the data sit there (8-bit files, normalised MRI); else the
    robust 0.5-99.5 percentile range of the whole set (the kept, resized images; found
    without copying them, see :func:`~medgan.data.intensity.percentiles`)."""
    lo, hi = float(images.min()), float(images.max())
    if lo >= 0 and hi <= 1:
        return (0.0, 1.0)
    if lo >= 0 and hi <= 255 and np.all(np.mod(images[:64], 1) == 0):
        return (0.0, 255.0)
    p_lo, p_hi = percentiles(images, [0.5, 99.5])
    return (float(p_lo), float(p_hi if p_hi > p_lo else p_lo + 1))
