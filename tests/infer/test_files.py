"""The shared file walker with a per-input job (what ``medgan segment`` and ``medgan detect``
run on): each DICOM series once, in slice order, with its geometry; all or nothing."""

from __future__ import annotations

import shutil
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.uid import generate_uid

from medgan.errors import MedganError, MedganWarning
from medgan.infer import Input, InputJob, apply_to_files, optional_output
from medgan.io import read_dicom_series, read_nifti
from tests.conftest import make_dicom


class Recorder:
    """An :class:`InputJob` that keeps what it was given and writes each input's pixels."""

    verb = "record"

    def __init__(self, fail_at: int | None = None):
        self.fail_at, self.seen, self.finished = fail_at, [], None

    def run(self, item: Input, out, bar) -> None:
        if len(self.seen) == self.fail_at:
            raise MedganError("cannot record this one", path=item.files[0], hint="fix it")
        self.seen.append(item)
        np.save(item.output(out, ".npy"), item.image.array)

    def finish(self, out) -> None:
        self.finished = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        (out / "summary.txt").write_text("\n".join(item.name for item in self.seen))


@pytest.fixture
def tree(tmp_path, study_folder, ct_folder, nifti_volume):
    """Two series side by side in study/, six shuffled slices in ct/ (no SeriesNumber), a
    NIfTI volume, a PNG, and two DICOM objects that are not images to work on: a report
    without pixels and a segmentation."""
    root = tmp_path / "tree"
    shutil.copytree(study_folder, root / "study")
    shutil.copytree(ct_folder, root / "ct")
    shutil.copy(nifti_volume, root / "vol.nii.gz")
    (root / "sub").mkdir()
    PILImage.fromarray(np.full((12, 10), 7, np.uint8)).save(root / "sub" / "a.png")
    report = pydicom.dcmread(make_dicom(root / "study" / "report.dcm", np.zeros((4, 4), np.uint8), modality="SR"))
    for keyword in ("Rows", "Columns", "PixelData"):
        delattr(report, keyword)
    report.save_as(root / "study" / "report.dcm")
    make_dicom(root / "ct" / "seg.dcm", np.zeros((32, 40), np.uint8), modality="SEG", SeriesNumber=9)
    return root


def test_a_job_sees_each_series_once_in_slice_order_with_its_geometry(tree, tmp_path):
    job = Recorder()
    assert isinstance(job, InputJob)
    out = apply_to_files(job, tree, tmp_path / "out", progress=False)
    uid = str(pydicom.dcmread(tree / "ct" / "img00.dcm").SeriesInstanceUID)
    by_name = {item.name: item for item in job.seen}
    assert len(by_name) == len(job.seen) == 5  # each input once; the report and the SEG never
    assert set(by_name) == {"study/series-2", "study/series-3", f"ct/series-{uid[-8:]}", "vol.nii.gz", "sub/a.png"}

    ct = by_name[f"ct/series-{uid[-8:]}"]
    assert ct.fmt == "dicom" and ct.image.array.shape == (6, 32, 40) and len(ct.files) == len(ct.headers) == 6
    for k, (f, ds) in enumerate(zip(ct.files, ct.headers)):  # files named in shuffled order, handed over by position
        assert float(ds.ImagePositionPatient[2]) == 2.0 * k and pydicom.dcmread(f).SOPInstanceUID == ds.SOPInstanceUID
        assert ct.image.array[k, 16, 20] == pytest.approx(10.0 * k)  # slice k of the pixels is file k
    np.testing.assert_allclose(ct.image.meta.affine, read_dicom_series(tree / "ct", uid).meta.affine)
    assert ct.image.meta.spacing == pytest.approx((2.0, 0.8, 0.7))

    for number, shape in ((2, (3, 32, 32)), (3, (4, 48, 48))):  # two series in one folder, apart
        series = by_name[f"study/series-{number}"]
        assert series.image.array.shape == shape and {int(ds.SeriesNumber) for ds in series.headers} == {number}
        assert series.image.meta.affine is not None
    volume = by_name["vol.nii.gz"]
    np.testing.assert_allclose(volume.image.meta.affine, read_nifti(tree / "vol.nii.gz").meta.affine)
    assert by_name["sub/a.png"].image.array.shape == (12, 10)

    # Outputs are named after the inputs, and finish() comes once, after all of them.
    written = ["ct/series-" + uid[-8:] + ".npy", "study/series-2.npy", "study/series-3.npy", "sub/a.npy", "vol.npy"]
    assert job.finished == sorted(written)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(written + ["summary.txt"])
    np.testing.assert_array_equal(np.load(out / "study" / "series-2.npy"), by_name["study/series-2"].image.array)


def test_a_file_is_written_into_a_folder_named_after_it(tree, tmp_path):
    job = Recorder()
    apply_to_files(job, tree / "ct" / "img00.dcm", tmp_path / "one", progress=False)
    (item,) = job.seen
    assert item.files == [tree / "ct" / "img00.dcm"] and item.image.array.shape == (32, 40)  # that file, not its series
    assert [p.name for p in (tmp_path / "one").iterdir() if p.suffix == ".npy"] == [f"{item.stem.name}.npy"]
    with pytest.raises(MedganError, match="without an image.*give an image file"):
        apply_to_files(Recorder(), tree / "ct" / "seg.dcm", tmp_path / "seg", progress=False)


@pytest.mark.parametrize("existing", [False, True])
def test_a_failure_leaves_no_partial_output(tree, tmp_path, existing):
    out = tmp_path / "outputs" / "out"
    if existing:
        out.mkdir(parents=True)
        (out / "keep.txt").write_text("old")
    job = Recorder(fail_at=2)
    with pytest.raises(MedganError, match="cannot record this one"):
        apply_to_files(job, tree, out, overwrite=True, progress=False)
    assert len(job.seen) == 2 and job.finished is None
    assert [p.name for p in out.parent.iterdir()] == (["out"] if existing else [])  # no temporary folder
    if existing:
        assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "old"


def test_two_inputs_of_one_output_name_are_refused_before_any_work(tmp_path):
    (tmp_path / "in").mkdir()
    PILImage.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "in" / "a.png")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.float32), np.eye(4)), tmp_path / "in" / "a.nii.gz")
    job = Recorder()
    with pytest.raises(MedganError, match="two inputs would write the same output a"):
        apply_to_files(job, tmp_path / "in", tmp_path / "out", progress=False)
    assert job.seen == [] and not (tmp_path / "out").exists()
    # two series of one SeriesNumber side by side: both would be series-4
    (tmp_path / "in" / "a.png").unlink()
    for _ in range(2):
        make_dicom(tmp_path / "in" / f"{generate_uid()}.dcm", np.zeros((8, 8), np.uint16), SeriesNumber=4)
    with pytest.raises(MedganError, match="same output series-4"):
        apply_to_files(job, tmp_path / "in", tmp_path / "out", progress=False)


class WithOptional(Recorder):
    """Writes a main output, then a folder of extras that fails half-way (as a derived
    DICOM series whose source the writer refuses)."""

    def __init__(self, error: Exception):
        super().__init__()
        self.error, self.skipped = error, []

    def run(self, item: Input, out, bar) -> None:
        super().run(item, out, bar)
        extras = item.output(out, ".extras")
        with optional_output(extras, out, self.skipped, source=item.files[0], folder=True, consequence="the rest is written without it"):
            extras.mkdir()
            (extras / "0000.dcm").write_text("half")
            raise self.error


def test_an_optional_output_that_fails_is_removed_warned_once_and_listed(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    PILImage.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "in" / "sub" / "b.png")
    job = WithOptional(MedganError("source is multi-frame", path=tmp_path / "in" / "sub" / "b.png", hint="give single frames"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = apply_to_files(job, tmp_path / "in", tmp_path / "out", progress=False)
    (message,) = [str(w.message) for w in caught if issubclass(w.category, MedganWarning)]
    assert "\n" not in message and "b.png" in message and "multi-frame; the rest is written without it" in message
    assert job.skipped == [{"output": "sub/b.extras/", "reason": "source is multi-frame"}]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["sub", "sub/b.npy", "summary.txt"]
    # Anything but a MedganError is a bug, not a refused header: it stops the run, nothing is written.
    with pytest.raises(RuntimeError, match="bug"):
        apply_to_files(WithOptional(RuntimeError("bug")), tmp_path / "in", tmp_path / "out2", progress=False)
    assert not (tmp_path / "out2").exists()


class Copier:
    """A :class:`medgan.infer.FileJob` (one file in, one file out, as ``medgan enhance``)."""

    verb = "copy"

    def __init__(self):
        self.seen = []

    def output_name(self, name, fmt):
        return name

    def run(self, src, dest, fmt, bar) -> None:
        self.seen.append(src)
        shutil.copy(src, dest)


def test_a_file_job_works_file_by_file_and_leaves_out_the_same_objects(tree, tmp_path):
    job = Copier()
    assert not isinstance(job, InputJob)
    out = apply_to_files(job, tree, tmp_path / "out", progress=False)
    expected = sorted(str(p.relative_to(tree)) for p in tree.rglob("*") if p.is_file() and p.name not in ("report.dcm", "seg.dcm"))
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == expected
    assert len(job.seen) == len(expected) == 3 + 4 + 6 + 2
