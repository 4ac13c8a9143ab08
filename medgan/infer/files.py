"""Shared inference over files: walk the inputs, mirror folders, write all-or-nothing, one
progress bar.

A task's inference (``medgan enhance`` now; ``medgan segment`` and ``medgan detect`` next)
is a :class:`FileJob`: what to do with one input file of a known format, written to one
output path. :func:`apply_to_files` does the rest the same way for every task:

- a file in, a file out (its name checked against what the job writes, before any work);
- a folder in (a series, a study, any tree; hidden files skipped, non-image DICOM objects
  such as SR or presentation states left out) -> a folder out with the same relative
  paths, written into a temporary folder that replaces the output only when every file
  succeeded;
- the output may not be, or sit inside, the input; an existing output is refused unless
  ``overwrite``;
- one rich progress bar over files, and :func:`per_slice` for the slices of a volume.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from medgan.errors import MedganError
from medgan.io.output import atomic_dir, check_output_file

__all__ = ["FileJob", "IMAGE_FORMATS", "apply_to_files", "check_units", "input_format", "input_units", "per_slice", "prepare_like_training", "progress_bar",
           "same_format_name"]

#: Formats of :func:`medgan.io.formats.detect_format` that inference reads.
IMAGE_FORMATS = ("dicom", "nifti", "png", "jpeg", "tiff")


class FileJob(Protocol):
    """One task's work on one file (see :func:`apply_to_files`)."""

    #: the command's verb for messages ("enhance", "segment" ...).
    verb: str

    def output_name(self, name: Path, fmt: str) -> Path:
        """The output path for an input path ``name`` of format ``fmt`` (relative in a folder)."""

    def run(self, src: Path, dest: Path, fmt: str, bar: Any) -> None:
        """Read ``src``, write ``dest`` (its parent exists); ``bar`` is the shared progress bar."""


def same_format_name(name: Path, fmt: str) -> Path:
    """The output name of a job that writes the input's format: the same, except that JPEG
    is written as PNG (never a second lossy compression)."""
    return name.with_suffix(".png") if fmt == "jpeg" else name


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A transient rich progress bar (a silent one when not ``enabled``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), disable=not enabled, transient=True,
    )
    with bar:
        yield bar


def per_slice(fn: Callable[[np.ndarray], np.ndarray], volume: np.ndarray, bar: Any, *, spread: bool = False,
              device: str | Any = "cpu") -> np.ndarray:
    """``fn`` applied to each ``(H, W)`` slice of a ``(D, H, W)`` volume, stacked, with a
    progress line of its own on ``bar``.

    ``spread``: on a multi-core CPU, the slices run side by side, one per core and
    single-threaded (:func:`medgan.cores.map_cores`; a whole slice per core keeps every core
    busy where a slice's own tiles would not divide evenly). ``fn`` must then be safe to call
    from several threads at once (a network already in eval mode, no shared state written).
    """
    task = bar.add_task("slices", total=volume.shape[0])

    def one(sl: np.ndarray) -> np.ndarray:
        result = fn(sl)
        bar.advance(task)  # rich's progress is thread-safe
        return result

    try:
        if spread:
            from medgan.cores import map_cores  # torch: imported when there is work for it

            out = map_cores(one, list(volume), device)
        else:
            out = [one(sl) for sl in volume]
        return np.stack(out)
    finally:
        bar.remove_task(task)


def check_units(model_units: str | None, meta: Any, path: Path) -> None:
    """One clear error when an image's units (``meta.units``, e.g. HU) are not the model's."""
    if model_units and meta.units and str(model_units) != str(meta.units):
        raise MedganError(f"the model works in {model_units} but the image is in {meta.units}", path=path,
                          hint="use a model trained on this kind of image")


def prepare_like_training(image: Any, info: dict, units: str | None, path: Path, verb: str) -> np.ndarray:
    """An image or volume as read -> the units a model was trained in: its training source's
    window or normalisation (``info["preprocess"]`` of the export), after checking the units.

    Raises:
        MedganError: a colour image, or units (HU ...) that are not the model's.
    """
    from medgan.data.source_options import SourceOptions
    from medgan.data.sources import source_intensity

    if image.is_colour:
        raise MedganError(f"colour image; the model {verb}s grey images", path=path, hint="convert it to grey first")
    check_units(units, image.meta, path)
    prep = info.get("preprocess") or {}
    return source_intensity(image.array, image.meta, SourceOptions(window=prep.get("window"), normalize=prep.get("normalize", "auto")))


def input_format(path: Path, verb: str, formats: tuple[str, ...] = IMAGE_FORMATS) -> str:
    """The format of an input file, or one clear error naming what ``verb`` reads."""
    from medgan.io.formats import detect_format

    fmt = detect_format(path)
    if fmt not in formats:
        what = f"a {fmt.upper()} array" if fmt else "not a recognised image"
        names = ", ".join(f.upper() if f != "nifti" else "NIfTI" for f in formats)
        raise MedganError(f"{what}; {verb} reads {names}", path=path, hint="convert it, or move it out of the input folder")
    return fmt


def _dicom_has_image(path: Path) -> bool:
    import pydicom

    try:
        return "Rows" in pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:  # unreadable: let the reader report it
        return True


def apply_to_files(job: FileJob, input_path: str | os.PathLike, out_path: str | os.PathLike, *,
                   formats: tuple[str, ...] = IMAGE_FORMATS, overwrite: bool = False, progress: bool = True) -> Path:
    """Run ``job`` on a file or on every image file of a folder tree (see the module docstring).

    Returns:
        ``out_path``.

    Raises:
        MedganError: missing input, a file the job cannot read, an output name that does not
            fit the input, the output equal to or inside the input, an existing output, two
            inputs writing one output, and everything the job raises (the output folder is
            then left as it was).
    """
    src, out = Path(input_path), Path(out_path)
    if not src.exists():
        raise MedganError("does not exist", path=src, hint="check the path")
    if out.resolve() == src.resolve() or (src.is_dir() and out.resolve().is_relative_to(src.resolve())):
        raise MedganError("output would overwrite or sit inside the input", path=out, hint="choose an output outside the input")

    with progress_bar(progress) as bar:
        if src.is_file():
            fmt = input_format(src, job.verb, formats)
            want = job.output_name(src, fmt)
            if not (fmt == "dicom" and want == src) and _kind(want) != _kind(out):  # DICOM files may have any name
                raise MedganError(f"a {fmt.upper() if fmt != 'nifti' else 'NIfTI'} input is written as {_kind(want)}", path=out,
                                  hint=f"name the output *{_kind(want)}")
            check_output_file(out, overwrite)  # refuse before any work; the writers replace atomically
            job.run(src, out, fmt, bar)
            return out

        from medgan.io.formats import find_image_files

        files = [(f, input_format(f, job.verb, formats)) for f in find_image_files(src)]
        files = [(f, fmt) for f, fmt in files if fmt != "dicom" or _dicom_has_image(f)]
        if not files:
            raise MedganError("folder holds no images", path=src, hint=f"give a folder of {', '.join(formats)} files")
        names = [job.output_name(f.relative_to(src), fmt) for f, fmt in files]
        if len(set(names)) != len(names):
            raise MedganError("two inputs would write the same output file (a .jpg and a .png of one name?)", path=src, hint="rename one of them")
        task = bar.add_task("files", total=len(files))
        with atomic_dir(out, overwrite) as tmp:
            for (f, fmt), name in zip(files, names):
                dest = tmp / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                job.run(f, dest, fmt, bar)
                bar.advance(task)
    return out


def input_units(input_path: str | os.PathLike, out_path: str | os.PathLike, verb: str) -> tuple[Path, list[tuple[str, Any]]]:
    """What a command that writes one output folder per input tree works on (``medgan
    segment``, ``medgan detect``): ``(root, units)``, each unit ``("dicom", files of one
    series, sorted)`` or ``(format, file)``; DICOM objects without pixels (reports, states)
    and segmentations (SEG, RTSTRUCT) are left out. ``root`` is what output paths are
    relative to.

    Raises:
        MedganError: a missing input, an output equal to or inside the input, a folder with
            no images, or a file of a format ``verb`` does not read.
    """
    from collections import defaultdict

    import pydicom

    from medgan.io.formats import find_image_files

    src, out = Path(input_path), Path(out_path)
    if not src.exists():
        raise MedganError("does not exist", path=src, hint="check the path")
    if out.resolve() == src.resolve() or out.resolve().is_relative_to(src.resolve()):
        raise MedganError("output would overwrite or sit inside the input", path=out, hint="choose an output folder outside the input")
    root = src.parent if src.is_file() else src
    files = [src] if src.is_file() else find_image_files(src)
    if not files:
        raise MedganError("folder holds no images", path=src, hint="give DICOM, NIfTI, PNG or TIFF files")
    units: list[tuple[str, Any]] = []
    series: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for f in files:
        fmt = input_format(f, verb)
        if fmt != "dicom":
            units.append((fmt, f))
            continue
        ds = pydicom.dcmread(f, stop_before_pixels=True, force=True)
        if "Rows" not in ds or str(ds.get("Modality", "")).upper() in ("SEG", "RTSTRUCT"):
            continue
        key = (f.parent, str(ds.get("SeriesInstanceUID", "") or f.name))
        if key not in series:
            units.append(("dicom", key))
        series[key].append(f)
    return root, [(fmt, sorted(series[what]) if fmt == "dicom" else what) for fmt, what in units]


def _kind(path: Path) -> str:
    """The suffix that says a file's format (``.nii.gz`` counts as one)."""
    name = path.name.lower()
    if name.endswith((".nii.gz", ".nii")):
        return ".nii.gz"
    suffix = path.suffix.lower()
    return {".tiff": ".tif", ".jpeg": ".jpg"}.get(suffix, suffix)
