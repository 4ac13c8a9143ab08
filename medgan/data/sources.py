"""Resolve a data source into an :class:`ImageSet`.

A source is what a user types after ``--data`` or ``medgan data show``:

- an embedded set: ``brain-mri``, ``phantom``;
- a MedMNIST name: ``pneumoniamnist`` (``pneumoniamnist_64`` for the 64x64 release);
- a file: DICOM, NIfTI (volumes are cut into slices), PNG/JPEG/TIFF, ``.npy``, ``.npz``
  (MedMNIST layout or a single array);
- a folder: DICOM series (one volume per series), or image files, optionally in one
  subfolder per class (the subfolder names become labels);
- a list of files.

Every 2D image ends up in one ``ImageSet`` of one size; each volume (series, NIfTI file)
is one group, so splits keep a patient's slices together.

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
from medgan.data.geometry import display_spacing, fit_square, orient_for_display, resized_spacing, volume_to_slices
from medgan.data.imageset import ImageSet
from medgan.data.intensity import apply_window, normalize_percentile, parse_window, window_bounds
from medgan.errors import MedganError
from medgan.lazy import load
from medgan.data.source_options import SourceOptions


@dataclass
class _Item:
    """One 2D image on its way into the set."""

    image: np.ndarray
    source: str
    group: int
    label: str | None = None
    mask: np.ndarray | None = None
    units: str | None = None
    series: str | None = None  # the DICOM series it comes from, as listed in messages
    spacing: tuple[float, float] | None = None  # (rows, columns) mm of this 2D image


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
        items = _read_files([Path(p) for p in spec], opts, root=None)
        return _finish(items, opts, name=f"{len(spec)} files")
    text = str(spec)
    if text in EMBEDDED_SOURCES:
        return _finish_set(_load_embedded(text, opts), opts)
    path = Path(text).expanduser()
    medmnist = importlib.import_module(_MEDMNIST) if not path.exists() else None
    if medmnist is not None and medmnist.is_medmnist_name(text):
        name, _, size = text.partition("_")
        found = medmnist.load_medmnist(name, split=opts.split, size=int(size or 28), grey=opts.grey)
        return _finish_set(found, opts)
    if not path.exists():
        known = ", ".join(sorted(EMBEDDED_SOURCES))
        raise MedganError("does not exist", path=path, hint=f"give an existing file or folder, an embedded set ({known}) or a MedMNIST name such as pneumoniamnist")
    if path.is_file() and mio.detect_format(path) == "npz":
        return _finish_set(_load_npz(path, opts), opts)
    if path.is_dir():
        items = _read_folder(path, opts)
    else:
        items = _read_files([path], opts, root=None)
    return _finish(items, opts, name=path.name)


# ----------------------------------------------------------------------------- embedded


def _load_embedded(name: str, opts: SourceOptions) -> ImageSet:
    loader = embedded_loader(name)
    if name == "phantom":
        return loader(n=opts.n, size=opts.size or 64, seed=opts.seed, kind=opts.kind, lesion_fraction=opts.lesion_fraction)
    return loader()


def _load_npz(path: Path, opts: SourceOptions) -> ImageSet:
    with np.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        # what ImageSet.save_npz (and medgan generate) keep besides images and labels
        text = lambda key: archive[key] if key in keys and archive[key].dtype.kind == "U" else None  # noqa: E731
        names = None if text("class_names") is None else [str(x) for x in text("class_names")]
        units = None if text("units") is None else str(text("units"))
        stored_range = archive["value_range"] if "value_range" in keys and archive["value_range"].shape == (2,) else None
        stored_groups = archive["groups"] if "groups" in keys and archive["groups"].dtype.kind in "iu" else None
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
    image = mio.read_image(path)
    items = _image_to_items(image, opts, group=0, source=path.name)
    return _finish(items, opts, name=path.name, finish=False)


# ----------------------------------------------------------------------------- files


def _read_folder(folder: Path, opts: SourceOptions) -> list[_Item]:
    files = mio.find_image_files(folder, recursive=True)
    if not files:
        raise MedganError("no images found in the folder", path=folder, hint="point to a folder of DICOM, NIfTI, PNG/JPEG/TIFF or NPY files")
    return _read_files(files, opts, root=folder)


def _read_files(files: list[Path], opts: SourceOptions, root: Path | None) -> list[_Item]:
    labels = _read_labels_csv(Path(opts.labels_csv), files, root) if opts.labels_csv else None
    if labels is None and root is not None:
        labels = _labels_from_subfolders(files, root)
    dicom = [f for f in files if mio.detect_format(f) == "dicom"]
    others = [f for f in files if f not in set(dicom)]
    if any(mio.detect_format(f) is None for f in others):
        bad = next(f for f in others if mio.detect_format(f) is None)
        mio.read_image(bad)  # raises the reader's clear "not an image" error

    items: list[_Item] = []
    group = 0
    for volume_files, image, name, listing in _read_dicom_series(dicom, opts, root):
        label = labels.get(volume_files[0]) if labels else None
        mask = _find_mask(volume_files[0], opts, root)
        series_items = _image_to_items(image, opts, group, name, label, mask)
        for item in series_items:
            item.series = listing
        items += series_items
        group += 1
    for file in others:
        image = mio.read_image(file, volume=opts.volume, grey=opts.grey)
        label = labels.get(file) if labels else None
        items += _image_to_items(image, opts, group, _display(file, root), label, _find_mask(file, opts, root))
        group += 1
    return items


_SERIES_TAGS = ["SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Rows", "Columns"]


def _read_dicom_series(files: list[Path], opts: SourceOptions, root: Path | None):
    """Yield ``(files, Image, name, listing)`` per DICOM series (files grouped by folder and
    series UID), only the series ``opts.series`` names when given; ``name`` is how the
    series is shown in messages, ``listing`` its line in a list of series."""
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
    for (parent, uid), members in found:
        paths = [f for f, _ in members]
        folder = _display(parent, root)
        name = ("" if folder == "." else f"{folder}: ") + mio.series_name(members[0][1])
        listing = _series_listing(parent, members, root)
        if len(members) == 1:
            yield paths, mio.read_image(paths[0], grey=opts.grey), _display(paths[0], root), listing
        else:
            yield paths, mio.read_dicom_series(parent, series_uid=uid or None), name, listing


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
    """2D images stay whole; volumes become their non-empty slices along ``opts.axis``."""
    array, meta = image.array, image.meta
    mask = mio.read_image(mask_path, volume=opts.volume, grey=True).array if mask_path else None
    if mask is not None and mask.shape != array.shape[: mask.ndim]:
        raise MedganError(f"mask shape {mask.shape} differs from image shape {array.shape}", path=mask_path, hint="masks must match their images pixel for pixel")
    if mask is not None:
        mask = _label_map(mask, mask_path)
    spacing = tuple(float(v) for v in meta.spacing) if meta.spacing is not None and len(meta.spacing) >= 2 else None
    if image.is_colour:  # (H, W, 3) colour kept
        return [_Item(np.moveaxis(array, -1, 0), source, group, label, mask, meta.units, spacing=_in_plane(spacing, colour=True))]
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
        mask = None if mask is None else mask.reshape(array.shape)
        spacing = None if spacing is None else spacing[-2:]
    if array.ndim == 2:
        return [_Item(source_intensity(array, meta, opts), source, group, label, mask, meta.units, spacing=_in_plane(spacing))]
    volume = source_intensity(array, meta, opts)
    spacing = spacing if spacing is not None and len(spacing) == 3 else None
    axis = opts.axis
    if axis == "auto":  # axial when the orientation is known, else the first array axis
        axis = "axial" if meta.orientation else 0
    if isinstance(axis, str):  # a named plane: slices shown the radiological way
        volume = orient_for_display(volume, meta.orientation, axis)
        mask = None if mask is None else orient_for_display(mask, meta.orientation, axis)
        spacing = None if spacing is None else display_spacing(spacing, meta.orientation, axis)
        axis = 0
    else:  # a raw array axis: slices in storage order
        axis = int(axis)
    slices, kept = volume_to_slices(volume, axis=axis, min_foreground=opts.min_foreground)
    mask_slices = None if mask is None else np.moveaxis(mask, axis, 0)[kept]
    plane = None if spacing is None else tuple(v for a, v in enumerate(spacing) if a != axis)
    return [
        _Item(s, f"{source} slice {k}", group, label, None if mask_slices is None else mask_slices[i], meta.units, spacing=plane)
        for i, (s, k) in enumerate(zip(slices, kept))
    ]


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


def _finish(items: list[_Item], opts: SourceOptions, name: str, finish: bool = True) -> ImageSet:
    if not items:
        raise MedganError("no non-empty images or slices found", path=name, hint="check the files, or lower the foreground threshold")
    if opts.size is None:
        shapes = defaultdict(list)
        for item in items:
            shapes[item.image.shape].append(item.source)
        if len(shapes) > 1:
            (s1, f1), (s2, f2) = list(shapes.items())[:2]
            message = f"images of mixed sizes: {_fmt(s1)} ({f1[0]}) and {_fmt(s2)} ({f2[0]})"
            hint = "pass --size N to resize them all to N x N"
            series = list(dict.fromkeys(item.series for item in items if item.series))
            if len(series) > 1:  # a study export: several series of different sizes
                message += f"; the DICOM series found: {'; '.join(series)}"
                hint = "read one with --series NUMBER, DESCRIPTION or UID, or " + hint
            raise MedganError(message, path=name, hint=hint)
    images = [item.image for item in items]
    masks = [item.mask for item in items]
    annotated = None
    if opts.masks and opts.partial_masks:  # unlabelled images keep an all-zero mask, marked as not annotated
        annotated = np.array([m is not None and bool(m.any()) for m in masks])
        if not annotated.any():
            raise MedganError("no image has a non-empty mask", path=opts.masks, hint="label at least one slice")
        masks = [np.zeros(im.shape[-2:], np.uint8) if m is None else m for m, im in zip(masks, images)]
    if any(m is not None for m in masks) and any(m is None for m in masks):
        raise MedganError("some images have masks and others do not", path=name, hint="give a mask for every image")
    spacing = [item.spacing for item in items]
    if opts.size is not None:
        spacing = [None if sp is None else resized_spacing(sp, im.shape[-2:], opts.size, opts.resize_mode) for sp, im in zip(spacing, images)]
        images = [fit_square(im, opts.size, opts.resize_mode) for im in images]
        masks = [None if m is None else fit_square(m, opts.size, opts.resize_mode, labels=True) for m in masks]
    label_names = [item.label for item in items]
    labels = class_names = None
    if any(lbl is not None for lbl in label_names):
        class_names = sorted({str(lbl) for lbl in label_names})
        labels = np.array([class_names.index(str(lbl)) for lbl in label_names], dtype=np.int64)
    has_masks = masks[0] is not None
    result = ImageSet(
        images=np.stack(images).astype(np.float32),
        labels=labels,
        class_names=class_names,
        masks=np.stack(masks).astype(np.uint16 if max(int(m.max(initial=0)) for m in masks) > 255 else np.uint8) if has_masks else None,
        annotated=annotated,
        groups=np.array([item.group for item in items], dtype=np.int64),
        sources=[item.source for item in items],
        spacing=np.array(spacing, np.float64) if all(sp is not None for sp in spacing) else None,
        units=items[0].units if len({item.units for item in items}) == 1 else None,
        name=name,
    )
    return _finish_set(result, opts) if finish else result


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
    robust 0.5-99.5 percentile range of the whole set."""
    lo, hi = float(images.min()), float(images.max())
    if lo >= 0 and hi <= 1:
        return (0.0, 1.0)
    if lo >= 0 and hi <= 255 and np.all(np.mod(images[:64], 1) == 0):
        return (0.0, 255.0)
    p_lo, p_hi = np.percentile(images, [0.5, 99.5])
    return (float(p_lo), float(p_hi if p_hi > p_lo else p_lo + 1))
