"""Nothing of a patient's identity reaches what medgan writes to be shared, through the CLI:
synthetic images of a model trained on identifiable DICOM, and de-identified enhancements."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from medgan.cli import main
from tests.conftest import PATIENT, write_ct_slice

# What a PACS export's folder names and headers hold, and where it must never appear again.
FOLDER = Path("Doe_John_MRN4471123") / "CT_HEAD_2026-01-02"
PRIVATE = "Doe John MRN4471123 vendor note"
NESTED = "ALT-MRN-88231"
SECRETS = sorted({"Doe_John", "MRN4471123", "CT_HEAD", "2026-01-02", "20260102", PRIVATE, NESTED}
                 | {str(v) for v in PATIENT.values() if len(str(v)) >= 5})


def _identifiable_series(folder: Path, n: int = 8, size: tuple[int, int] = (32, 32), **extra) -> Path:
    """``n`` CT slices whose headers carry a patient, an institution, dates, a private tag and
    an identifier inside a nested sequence."""
    uid, study = generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    for k in range(n):
        hu = np.full(size, -1000.0)
        hu[6:-6, 6:-6] = 40.0 + rng.normal(0, 20, (size[0] - 12, size[1] - 12))
        path = write_ct_slice(folder / f"IM{k:04d}.dcm", hu, z=2.0 * k, series_uid=uid, instance=k + 1, study_uid=study)
        ds = pydicom.dcmread(path)
        ds.StudyDate = ds.SeriesDate = "20260102"
        ds.private_block(0x0029, "ACME 1.0", create=True).add_new(0x01, "LO", PRIVATE)
        other = Dataset()
        other.PatientID, other.IssuerOfPatientID = NESTED, "St Elsewhere General Hospital"
        request = Dataset()
        request.RequestedProcedureID, request.RequestedProcedureDescription = "MRN4471123", "CT_HEAD_2026-01-02"
        ds.OtherPatientIDsSequence, ds.RequestAttributesSequence = [other], [request]
        for keyword, value in extra.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
    return folder


def _leaks(folder: Path) -> list[str]:
    """Every secret found in the raw bytes of any file under ``folder``, and in any DICOM
    element's value, nested sequences and private tags included."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        found += [f"{path.name}: {s!r} in its bytes" for s in SECRETS if s.encode() in raw]
        found += [f"{path}: {s!r} in its name" for s in SECRETS if s in str(path.relative_to(folder))]
        if path.suffix == ".dcm":
            ds = pydicom.dcmread(path)
            found += [f"{path.name}: private tag {elem.tag}" for elem in ds.iterall() if elem.tag.is_private]
            for elem in ds.iterall():
                if elem.VR != "SQ" and elem.tag != 0x7FE00010:
                    found += [f"{path.name}: {s!r} in {elem.keyword or elem.tag}" for s in SECRETS if s in str(elem.value)]
    return found


def test_synthetic_files_carry_nothing_of_the_training_folder_or_its_headers(tmp_path):
    data = _identifiable_series(tmp_path / FOLDER)
    assert _leaks(data.parent.parent)  # the check finds them where they are
    runs = tmp_path / "runs"
    assert main(["train", "--data", str(data), "--size", "32", "--width", "8", "--holdout", "0", "--batch-size", "4",
                 "--steps", "1", "--sample-every", "100", "--checkpoint-every", "100", "--n-samples", "4", "--no-progress",
                 "--runs-dir", str(runs)]) == 0
    run = next(runs.iterdir())
    assert json.loads((run / "config.json").read_text())["data"]["source"] == str(data)  # the user's own record keeps it
    assert json.loads((run / "generator" / "config.json").read_text())["source"] == "user data"  # the export does not
    assert not _leaks(run / "generator")

    for fmt in ("dcm", "png", "nii", "npz"):
        out = tmp_path / f"synthetic-{fmt}"
        assert main(["generate", str(run), "--n", "3", "--out", str(out), "--format", fmt]) == 0
        assert not _leaks(out), fmt
    ds = pydicom.dcmread(next((tmp_path / "synthetic-dcm").glob("*.dcm")))
    assert str(ds.PatientName) == "SYNTHETIC^MEDGAN" and ds.ConversionType == "SYN"
    assert ds.SeriesDescription == "medgan synthetic" and "dcgan generator, step 1" in ds.DerivationDescription
    assert "not a patient image" in ds.ImageComments


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    assert main(["train", "enhance", "--data", "phantom", "--n-images", "16", "--holdout", "0.25", "--mode", "denoise",
                 "--degradation", "lowdose-ct-image:dose=0.25", "--size", "32", "--width", "8", "--batch-size", "4",
                 "--steps", "1", "--sample-every", "100", "--checkpoint-every", "100", "--n-samples", "4", "--no-progress",
                 "--runs-dir", str(runs)]) == 0
    return next(runs.iterdir())


def test_enhance_anonymize_removes_private_tags_nested_identifiers_and_dates(tmp_path, denoiser):
    data = _identifiable_series(tmp_path / FOLDER, n=3, size=(32, 40))
    out = tmp_path / "deid"
    assert main(["enhance", str(denoiser), str(data), "--out", str(out), "--anonymize", "--no-progress"]) == 0
    assert len(list(out.glob("*.dcm"))) == 3 and not _leaks(out)
    ds = pydicom.dcmread(next(out.glob("*.dcm")))
    assert ds.PatientIdentityRemoved == "YES" and ds.ConversionType == "WSD"
    assert "BurnedInAnnotation" not in ds  # the source did not say: neither does the copy


def test_burned_in_text_is_never_declared_absent(tmp_path, denoiser, capsys):
    data = _identifiable_series(tmp_path / "burned", n=2, size=(32, 40), BurnedInAnnotation="YES", RecognizableVisualFeatures="YES")

    # A new series of the same patient keeps the source's declaration.
    assert main(["enhance", str(denoiser), str(data), "--out", str(tmp_path / "derived"), "--no-progress"]) == 0
    ds = pydicom.dcmread(next((tmp_path / "derived").glob("*.dcm")))
    assert (ds.BurnedInAnnotation, ds.RecognizableVisualFeatures) == ("YES", "YES")

    # De-identification cannot remove text from pixels: refused in one line, nothing written.
    capsys.readouterr()
    assert main(["enhance", str(denoiser), str(data), "--out", str(tmp_path / "deid"), "--anonymize", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "BurnedInAnnotation=YES" in err and "--pixels-clean" in err and "IM000" in err
    assert not (tmp_path / "deid").exists()

    # The user vouches for the pixels: NO is theirs; a recognisable face stays declared.
    assert main(["enhance", str(denoiser), str(data), "--out", str(tmp_path / "deid"), "--anonymize", "--pixels-clean",
                 "--no-progress"]) == 0
    ds = pydicom.dcmread(next((tmp_path / "deid").glob("*.dcm")))
    assert (ds.BurnedInAnnotation, ds.RecognizableVisualFeatures) == ("NO", "YES")
