"""medgan train enhance / evaluate / enhance end to end on tiny data: DICOM and NIfTI input."""

import json

import nibabel as nib
import numpy as np
import pydicom

from medgan.cli import main

from checks import dry_run_matches_the_saved_config

TINY = ["--size", "32", "--width", "8", "--batch-size", "4", "--steps", "2", "--log-every", "1",
        "--sample-every", "2", "--checkpoint-every", "2", "--n-samples", "6", "--no-progress"]


def test_ct_denoising_on_a_dicom_series(tmp_path, ct_folder, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "enhance", "--data", "phantom", "--n-images", "24", "--holdout", "0.25", "--mode", "denoise",
                 "--degradation", "lowdose-ct-image:dose=0.25", "--runs-dir", str(runs), *TINY]) == 0
    # The default is the measured winner, the DnCNN on L2 without an adversary, and says so.
    run = runs / "00000-enhance-dncnn-phantom"
    assert "method: a DnCNN on L2" in " ".join(capsys.readouterr().err.split())
    info = json.loads((run / "generator" / "config.json").read_text())
    assert info["task"] == "enhance" and info["intensity"]["units"] == "HU" and info["multiple"] == 1
    assert (info["model"], info["recon_loss"], info["adversarial"], info["net"]["layers"]) == ("dncnn", "l2", False, 10)
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert "loss_d" not in rows[-1] and "l2" in rows[-1]

    assert main(["evaluate", str(run), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"input_psnr", "model_psnr", "model_ssim", "model_hf_energy_ratio"} <= set(record["metrics"])
    assert record["settings"]["model"] == "dncnn, L2 alone"

    out = tmp_path / "enhanced"
    assert main(["enhance", str(run), str(ct_folder), "--out", str(out), "--no-progress"]) == 0
    written = sorted(out.rglob("*.dcm"))
    assert len(written) == 6
    ds = pydicom.dcmread(written[0])
    source = pydicom.dcmread(ct_folder / written[0].name)  # the output mirrors the input names
    assert ds.PatientID == source.PatientID and ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID and ds.ImageType[0] == "DERIVED"
    assert "medgan" in ds.DerivationDescription
    assert main(["enhance", str(run), str(ct_folder), "--out", str(out)]) == 2  # refuses to overwrite
    from PIL import Image as PILImage

    PILImage.new("L", (8, 8)).save(run / "comparison.png")  # what the benchmark draws
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "Side by side" in page and "model_psnr" in page  # the enhancement task's sections
    assert "Memorisation audit" not in page  # synthesis only


def test_super_resolution_on_a_nifti_volume(tmp_path, nifti_volume):
    runs = tmp_path / "runs"
    assert main(["train", "enhance", "--data", str(nifti_volume), "--holdout", "0", "--mode", "sr",
                 "--degradation", "sr:factor=2", "--l1-only", "--runs-dir", str(runs), *TINY]) == 0
    run = next(runs.iterdir())
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert "loss_d" not in rows[-1] and "l1" in rows[-1]  # no adversary in the baseline
    out = tmp_path / "sr.nii.gz"
    assert main(["enhance", str(run), str(nifti_volume), "--out", str(out), "--no-progress"]) == 0
    src, res = nib.load(nifti_volume), nib.load(out)
    assert res.shape[:2] == (src.shape[0] * 2, src.shape[1] * 2) and res.shape[2] == src.shape[2]
    np.testing.assert_allclose(res.header.get_zooms()[:2], np.array(src.header.get_zooms()[:2]) / 2)


def test_the_dry_run_prints_the_config_the_run_saves_and_evaluate_honours_metrics(tmp_path, capsys):
    """The defaults by data and mode (the degradation for data in HU, the noise draws, the
    generator's whole config) are resolved before --dry-run prints them; ``medgan evaluate
    --metrics`` computes the named fidelity metrics alone and refuses an unknown one."""
    run = tmp_path / "run"
    argv = ["train", "enhance", "--data", "phantom", "--n-images", "16", "--holdout", "0.25", *TINY]
    printed = dry_run_matches_the_saved_config(argv, run, capsys)
    assert (printed["enhance"]["degradation"], printed["enhance"]["realizations"]) == ("lowdose-ct:dose=0.25", 4)
    assert (printed["model"]["name"], printed["model"]["net"]["layers"], printed["model"]["net"]["in_channels"]) == ("dncnn", 10, 1)

    capsys.readouterr()
    assert main(["evaluate", str(run), "--metrics", "psnr_ssim", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"input_psnr", "model_psnr", "model_ssim"} <= set(record["metrics"])
    assert not {k for k in record["metrics"] if "hf_energy" in k or "spectrum" in k}  # the metrics not named are not computed
    assert main(["evaluate", str(run), "--metrics", "psnr_ssim,nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown fidelity metric 'nope'" in err and "hf_energy" in err


def test_undersampled_mri_trains_with_data_consistency_and_enhance_keeps_the_acquired_lines(tmp_path, capsys):
    """--mode artefact on the brain slices: undersample-mri by default for data not in HU, the
    U-Net on L1 with data consistency; ``medgan enhance`` on a float NIfTI of zero-filled
    slices returns images whose acquired k-space lines are the input's, and the derived
    output says what was removed."""
    from medgan.tasks.enhance.artefacts import cartesian_mask, undersample

    run = tmp_path / "run"
    assert main(["train", "enhance", "--data", "brain-mri", "--mode", "artefact", "--depth", "2", "--run-dir", str(run), *TINY]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "undoing undersample-mri:accel=4,center=0.08" in err and "data consistency" in err
    info = json.loads((run / "generator" / "config.json").read_text())
    assert (info["model"], info["adversarial"], info["data_consistency"], info["degradation"]["kind"]) == ("pix2pix", False, True, "undersample-mri")

    from medgan.datasets.brain_mri import load_brain_mri

    clean = load_brain_mri("axial", size=64).images[:3].astype(np.float64)
    masks = [cartesian_mask(64, 4, 0.08, "random", np.random.default_rng(i)) for i in range(3)]
    zero_filled = np.stack([undersample(img, m) for img, m in zip(clean, masks)], axis=-1)  # (64, 64, 3): i, j, k
    src = tmp_path / "zero-filled.nii.gz"
    nib.save(nib.Nifti1Image(zero_filled.astype(np.float32), np.eye(4)), src)
    out = tmp_path / "out.nii.gz"
    assert main(["enhance", str(run), str(src), "--out", str(out), "--no-progress"]) == 0
    result = np.asarray(nib.load(out).dataobj, dtype=np.float64)
    for k, m in enumerate(masks):
        given, made = np.fft.fft2(zero_filled[..., k]), np.fft.fft2(result[..., k])  # in the stored (i, j) layout: lines along j
        np.testing.assert_allclose(made[:, m], given[:, m], atol=1e-3 * np.abs(given).max())


def test_artefact_mode_and_data_consistency_refuse_what_does_not_fit(tmp_path, capsys):
    base = ["train", "enhance", "--data", "brain-mri", "--dry-run"]
    for flags, words in ((["--mode", "artefact", "--degradation", "rician:snr=10"], "--mode artefact goes with"),
                         (["--degradation", "motion-mri:lines=0.1,shift=2"], "--mode artefact goes with"),
                         (["--mode", "artefact", "--degradation", "motion-mri", "--data-consistency", "on"], "k-space lines"),
                         (["--mode", "artefact", "--supervision", "self"], "simulated pairs")):
        assert main([*base, *flags]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err


def test_sparse_view_ct_model_reduces_artefacts_on_a_dicom_series(tmp_path, ct_folder, capsys):
    """--mode artefact on CT phantoms defaults to sparse-view CT and the DnCNN on L2, which won
    its benchmark; ``medgan enhance`` on a DICOM
    series writes a derived series in HU that says which artefact the model was trained to
    undo, and stays in the input's geometry."""
    run = tmp_path / "run"
    assert main(["train", "enhance", "--data", "phantom", "--n-images", "16", "--holdout", "0.25", "--mode", "artefact",
                 "--run-dir", str(run), *TINY]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "undoing sparse-view-ct:angles=60; measured on CT phantoms" in err
    info = json.loads((run / "generator" / "config.json").read_text())
    assert (info["model"], info["recon_loss"], info["adversarial"]) == ("dncnn", "l2", False)  # the measured winner for streaks
    out = tmp_path / "reduced"
    assert main(["enhance", str(run), str(ct_folder), "--out", str(out), "--no-progress"]) == 0
    written = sorted(out.rglob("*.dcm"))
    assert len(written) == 6
    ds, source = pydicom.dcmread(written[0]), pydicom.dcmread(ct_folder / written[0].name)
    assert ds.DerivationDescription.startswith("Artefacts reduced (trained to undo sparse-view-ct:angles=60) by medgan")
    assert ds.ImageType[0] == "DERIVED" and ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert (ds.Rows, ds.Columns, ds.Modality) == (source.Rows, source.Columns, "CT")
    np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], [float(v) for v in source.PixelSpacing])
