"""The command line: the happy paths, and one clear line for every user mistake."""

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from medgan.cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("source", ["ct_folder", "nifti_volume", "png_folder", "medmnist_npz"])
def test_data_show_on_user_files(source, request, tmp_path, capsys):
    path = request.getfixturevalue(source)
    grid = tmp_path / "grid.png"
    code, out, err = run(capsys, "data", "show", path, "--out", grid, "--size", 32)
    assert code == 0, err
    assert grid.is_file() and PILImage.open(grid).size[0] > 32
    assert "count" in out


@pytest.mark.parametrize("source", ["brain-mri", "phantom"])
def test_data_show_on_embedded_sets(source, tmp_path, capsys):
    grid = tmp_path / "grid.png"
    code, out, err = run(capsys, "data", "show", source, "--out", grid, "--json")
    assert code == 0, err
    summary = __import__("json").loads(out.strip().splitlines()[-1])
    assert summary["count"] > 0 and summary["grid"] == str(grid)


def _bad_inputs(tmp_path, ct_folder):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    fake = tmp_path / "scan.dcm"
    fake.write_text("hello")
    truncated = tmp_path / "cut.dcm"
    whole = next(ct_folder.iterdir()).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    empty = tmp_path / "empty"
    empty.mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    PILImage.fromarray(np.zeros((20, 20), np.uint8)).save(mixed / "a.png")
    PILImage.fromarray(np.zeros((30, 20), np.uint8)).save(mixed / "b.png")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[1.0, np.nan], [np.inf, 0.0]], np.float32))
    four_d = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((6, 6, 4, 3), np.float32), np.eye(4)), four_d)
    npz = tmp_path / "weights.npz"
    np.savez(npz, something=np.zeros(3))
    return {
        "non-image file": (text, "not a medical image"),
        "fake dicom": (fake, "scan.dcm"),
        "truncated dicom": (truncated, "truncated or corrupt"),
        "empty folder": (empty, "no images found"),
        "mixed sizes": (mixed, "--size"),
        "nan pixels": (nan, "nan.npy"),
        "4d nifti": (four_d, "--volume"),
        "npz keys": (npz, "weights.npz"),
        "missing path": (tmp_path / "nowhere", "does not exist"),
    }


def test_every_bad_input_gets_one_clear_line(tmp_path, ct_folder, capsys):
    for what, (path, expected) in _bad_inputs(tmp_path, ct_folder).items():
        out_png = tmp_path / f"out-{path.name}.png"
        code, out, err = run(capsys, "data", "show", path, "--out", out_png)
        assert code == 2, what
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("medgan: error:"), (what, err)
        assert expected in lines[0], (what, lines[0])
        assert "Traceback" not in err
        assert not out_png.exists(), what  # no half-written output
        assert not list(tmp_path.glob(".*partial*")), what


def test_existing_output_is_refused_unless_overwrite(tmp_path, capsys):
    grid = tmp_path / "grid.png"
    grid.write_bytes(b"precious")
    code, _, err = run(capsys, "data", "show", "phantom", "--n-images", 4, "--out", grid)
    assert code == 2 and "--overwrite" in err and grid.read_bytes() == b"precious"
    code, _, err = run(capsys, "data", "show", "phantom", "--n-images", 4, "--out", grid, "--overwrite")
    assert code == 0 and grid.read_bytes()[:4] == b"\x89PNG"


def test_demo_and_module_entry_point_end_to_end(tmp_path):
    """The README's main job, run as a user runs it (a real subprocess), shortened."""
    # Shortened: tiny phantoms instead of brain-mri, so that the Inception features of the
    # evaluation and audit take seconds; every stage of the main job still runs.
    argv = [sys.executable, "-m", "medgan", "demo", "--runs-dir", str(tmp_path / "runs"), "--steps", "4",
            "--data", "phantom", "--n-images", "40", "--size", "32", "--holdout", "0.25",
            "--width", "8", "--batch-size", "8", "--eval-n", "16", "--no-progress"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "00000-demo-dcgan-phantom"
    for name in ("data-samples.png", "data-summary.json", "config.json", "stats.jsonl", "curves.png",
                 "samples/step-0000004.png", "generator/model.safetensors", "metrics.jsonl",
                 "audit/summary.json", "report.html"):
        assert (run_dir / name).is_file(), name
    assert "run folder" in result.stderr and "training a DCGAN for 4 steps" in " ".join(result.stderr.split())
    assert result.stdout.strip().splitlines()[-1] == f"report: {run_dir / 'report.html'}"  # the last line printed
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and (tmp_path / "runs" / "00001-demo-dcgan-phantom").is_dir()
