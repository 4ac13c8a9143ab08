"""Shared inference over files: walk the inputs, read them with their geometry, mirror
folders, write all-or-nothing, one progress bar.

Every inference command is a job on :func:`apply_to_files`, of one of two kinds:

- a :class:`FileJob` writes one output file per input file, in the input's format
  (``medgan enhance``): a file in, a file out (its name checked against what the job
  writes, before any work); a folder in, a folder out with the same relative paths;
- an :class:`InputJob` writes several outputs per input and tables over all of them into an
  output folder (``medgan segment``, ``medgan detect``). Its unit is an :class:`Input`: an
  image file, a volume file or **one DICOM series** (the files of one SeriesInstanceUID in
  one folder, sorted along the slice normal), read by the walker with its geometry and
  handed to :meth:`InputJob.run` once; :meth:`InputJob.finish` writes the tables at the end.
  Outputs are named after the input (``sub/a.png`` -> ``sub/a.<suffix>``; a DICOM series ->
  ``<its folder>/series-<SeriesNumber>.<suffix>``). An output an input can do without (a
  DICOM SEG or derived series whose source the writer refuses) is written inside
  :func:`optional_output`: one warning, no partial output, the rest written.

For both kinds:

- a folder is walked recursively (hidden files skipped; DICOM objects without pixels, such
  as SR or presentation states, and segmentations, SEG and RTSTRUCT, left out), and the
  output folder is written into a temporary folder that replaces it only when every input
  succeeded; two inputs that would write one output are refused before any work;
- the output may not be, or sit inside, the input; an existing output is refused unless
  ``overwrite``;
- one rich progress bar over the inputs, and :func:`per_slice` for the slices of a volume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from medgan.errors import MedganError, warn
from medgan.io.output import atomic_dir, check_output_file

__all__ = ["FileJob", "IMAGE_FORMATS", "Input", "InputJob", "apply_to_files", "check_units", "input_format", "optional_output",
           "per_slice", "prepare_like_training", "progress_bar", "same_format_name"]

#: Formats of :func:`medgan.io.formats.detect_format` that inference reads.
IMAGE_FORMATS = ("dicom", "nifti", "png", "jpeg", "tiff")


class FileJob(Protocol):
    """One task's work on one file, written to one file (see :func:`apply_to_files`)."""

    #: the command's verb for messages ("enhance" ...).
    verb: str

    def output_name(self, name: Path, fmt: str) -> Path:
        """The output path for an input path ``name`` of format ``fmt`` (relative in a folder)."""

    def run(self, src: Path, dest: Path, fmt: str, bar: Any) -> None:
        """Read ``src``, write ``dest`` (its parent exists); ``bar`` is the shared progress bar."""


@dataclasses.dataclass
class Input:
    """One unit of an :class:`InputJob`: an image file, a volume file or one DICOM series.

    Attributes:
        fmt: ``"dicom"``, ``"nifti"``, ``"png"``, ``"jpeg"`` or ``"tiff"``.
        name: how tables name it: the file's path relative to the input root
            (``"sub/a.nii.gz"``); for a DICOM series its folder and stem (``"ct/series-3"``).
        stem: what its outputs are named after, relative to the output folder (``sub/a``,
            ``ct/series-3``); see :meth:`output`.
        files: the file; the files of a DICOM series, from the first slice to the last.
        headers: DICOM: each file's header (no pixels), in the order of ``files``; else empty.
        image: the pixels and geometry (``meta.affine``, ``meta.spacing``, units) as read:
            ``(D, H, W)`` for a volume or a series of several files, ``(H, W)`` for an image.
    """

    fmt: str
    name: str
    stem: Path
    files: list[Path]
    headers: list[Any] = dataclasses.field(default_factory=list)
    image: Any = None

    def output(self, folder: Path, suffix: str) -> Path:
        """The output of this input with ``suffix`` (``".nii.gz"``, ``".overlay.png"`` ...) in ``folder``."""
        return folder / f"{self.stem}{suffix}"


@runtime_checkable
class InputJob(Protocol):
    """One task's work on one :class:`Input`, written as several outputs into one folder,
    with tables over every input (see :func:`apply_to_files`)."""

    #: the command's verb for messages ("segment", "detect" ...).
    verb: str

    def run(self, item: Input, out: Path, bar: Any) -> None:
        """Write ``item``'s outputs into the folder ``out`` as ``item.output(out, suffix)``
        (their parent exists); ``bar`` is the shared progress bar."""

    def finish(self, out: Path) -> None:
        """Write what covers every input (tables, a summary) into ``out``, after the last
        input and before the folder replaces the output."""


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


@contextlib.contextmanager
def optional_output(path: Path, out: Path, skipped: list[dict[str, str]], *, source: Path, consequence: str,
                    folder: bool = False) -> Iterator[None]:
    """Write an output that an input can do without (a DICOM SEG or a derived DICOM series
    whose source headers the writer refuses) inside this block.

    A :class:`MedganError` in the block is not raised: what was written of ``path`` (a file,
    or a ``folder``) is removed, one warning line names the file (the error's, else
    ``source``) and says ``consequence``, and ``{"output": path relative to out, "reason"}``
    is appended to ``skipped``; the input's other outputs are then written as usual.
    """
    try:
        yield
    except MedganError as exc:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        warn(f"{exc.message.rstrip('.')}; {consequence}", path=exc.path or source, hint=exc.hint)
        skipped.append({"output": f"{path.relative_to(out)}{'/' if folder else ''}", "reason": exc.message})


def _dicom_header(path: Path) -> Any:
    """A DICOM file's header without pixels (``None`` when it does not parse: the reader then says why)."""
    import pydicom

    try:
        return pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception:  # unreadable: let the reader report it
        return None


def _is_image(ds: Any) -> bool:
    """An image to work on: pixels, and not a segmentation of other images."""
    return ds is None or ("Rows" in ds and str(ds.get("Modality", "")).upper() not in ("SEG", "RTSTRUCT"))


def _series_stem(ds: Any) -> str:
    """``series-<SeriesNumber>`` (the end of the SeriesInstanceUID without a number)."""
    number = ds.get("SeriesNumber")
    return f"series-{int(number)}" if number not in (None, "") else f"series-{str(ds.get('SeriesInstanceUID', 'x'))[-8:]}"


def _file_stem(rel: Path) -> Path:
    """``sub/a.nii.gz`` -> ``sub/a``, ``sub/a.png`` -> ``sub/a``."""
    return rel.parent / (rel.name[: -len(".nii.gz")] if rel.name.lower().endswith(".nii.gz") else rel.stem)


def _inputs(src: Path, verb: str, formats: tuple[str, ...]) -> list[Input]:
    """The :class:`Input` units of a file or folder tree (not read yet): each non-DICOM file
    on its own, DICOM files grouped by folder and SeriesInstanceUID."""
    from medgan.io.formats import find_image_files

    root = src.parent if src.is_file() else src
    files = [src] if src.is_file() else find_image_files(src)
    units: dict[Any, Input] = {}
    for f in files:
        fmt = input_format(f, verb, formats)
        rel = f.relative_to(root)
        if fmt != "dicom":
            units[f] = Input(fmt, str(rel), _file_stem(rel), [f])
            continue
        ds = _dicom_header(f)
        if ds is None:  # a unit of its own, whose reader says what is wrong
            units[f] = Input(fmt, str(rel), _file_stem(rel), [f], [ds])
            continue
        if not _is_image(ds):
            continue
        key = (f.parent, str(ds.get("SeriesInstanceUID", "") or f.name))
        if key not in units:
            stem = rel.parent / _series_stem(ds)
            units[key] = Input("dicom", str(stem), stem, [])
        units[key].files.append(f)
        units[key].headers.append(ds)
    return list(units.values())


def _read(item: Input) -> Input:
    """``item`` read with its geometry; a DICOM series' files and headers put in slice order."""
    if item.fmt == "nifti":
        from medgan.io.nifti import read_nifti

        return dataclasses.replace(item, image=read_nifti(item.files[0]))
    if item.fmt != "dicom":
        from medgan.io.raster import read_raster

        return dataclasses.replace(item, image=read_raster(item.files[0]))
    from medgan.io.dicom import read_dicom_series, series_order

    pairs = sorted(zip(item.files, item.headers), key=lambda pair: pair[0])
    folder = pairs[0][0].parent
    image = read_dicom_series(folder, files=[f for f, _ in pairs])  # its errors name the series' folder
    if len(pairs) > 1:
        pairs = [pairs[i] for i in series_order(pairs, folder)[0]]  # the order read_dicom_series stacked them in
    return dataclasses.replace(item, image=image, files=[f for f, _ in pairs], headers=[ds for _, ds in pairs])


def apply_to_files(job: FileJob | InputJob, input_path: str | os.PathLike, out_path: str | os.PathLike, *,
                   formats: tuple[str, ...] = IMAGE_FORMATS, overwrite: bool = False, progress: bool = True) -> Path:
    """Run ``job`` on a file or on every image file of a folder tree (see the module docstring).

    A :class:`FileJob` turns a file into the file ``out_path`` and a folder into the folder
    ``out_path``; an :class:`InputJob` writes into the folder ``out_path`` in both cases:
    ``job.run(item, folder, bar)`` once per :class:`Input` (read here, with its geometry),
    then ``job.finish(folder)``.

    Returns:
        ``out_path``.

    Raises:
        MedganError: missing input, a file the job cannot read, an output name that does not
            fit the input, the output equal to or inside the input, an existing output, two
            inputs writing one output, and everything the readers and the job raise (the
            output is then left as it was).
    """
    src, out = Path(input_path), Path(out_path)
    if not src.exists():
        raise MedganError("does not exist", path=src, hint="check the path")
    if out.resolve() == src.resolve() or (src.is_dir() and out.resolve().is_relative_to(src.resolve())):
        raise MedganError("output would overwrite or sit inside the input", path=out, hint="choose an output outside the input")
    per_input = isinstance(job, InputJob)

    with progress_bar(progress) as bar:
        if src.is_file() and not per_input:
            fmt = input_format(src, job.verb, formats)
            want = job.output_name(src, fmt)
            if not (fmt == "dicom" and want == src) and _kind(want) != _kind(out):  # DICOM files may have any name
                raise MedganError(f"a {fmt.upper() if fmt != 'nifti' else 'NIfTI'} input is written as {_kind(want)}", path=out,
                                  hint=f"name the output *{_kind(want)}")
            check_output_file(out, overwrite)  # refuse before any work; the writers replace atomically
            job.run(src, out, fmt, bar)
            return out

        from medgan.io.formats import find_image_files

        if per_input:
            units = _inputs(src, job.verb, formats)
            names = [u.stem for u in units]
        else:
            units = [(f, input_format(f, job.verb, formats)) for f in find_image_files(src)]
            units = [(f, fmt) for f, fmt in units if fmt != "dicom" or _is_image(_dicom_header(f))]
            names = [job.output_name(f.relative_to(src), fmt) for f, fmt in units]
        if not units:
            if src.is_file():
                raise MedganError("is a DICOM object without an image (a report, a segmentation)", path=src, hint="give an image file")
            raise MedganError("folder holds no images", path=src, hint=f"give a folder of {', '.join(formats)} files")
        twice = sorted(str(name) for name, n in Counter(names).items() if n > 1)
        if twice:
            raise MedganError(f"two inputs would write the same output {twice[0]} (a .jpg and a .png of one name, two series of "
                              "one SeriesNumber in one folder?)", path=src, hint="rename one of them or move it to a folder of its own")
        task = bar.add_task("inputs" if per_input else "files", total=len(units))
        with atomic_dir(out, overwrite) as tmp:
            for unit, name in zip(units, names):
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                if per_input:
                    job.run(_read(unit), tmp, bar)
                else:
                    job.run(unit[0], tmp / name, unit[1], bar)
                bar.advance(task)
            if per_input:
                job.finish(tmp)
    return out


def _kind(path: Path) -> str:
    """The suffix that says a file's format (``.nii.gz`` counts as one)."""
    name = path.name.lower()
    if name.endswith((".nii.gz", ".nii")):
        return ".nii.gz"
    suffix = path.suffix.lower()
    return {".tiff": ".tif", ".jpeg": ".jpg"}.get(suffix, suffix)
