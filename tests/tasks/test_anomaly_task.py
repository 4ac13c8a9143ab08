"""The anomaly task: f-AnoGAN's two phases, GANomaly and the autoencoder train end to end on
tiny phantoms, score each image alone (batch-independent, eval mode), and calibrate on the
held-out normal volumes."""

import json

import numpy as np
import pytest
from medgan.cli import main
from medgan.tasks import load_model  # the one loader: an anomaly model comes with its calibration
from medgan.tasks.anomaly.model import score_set

from checks import dry_run_matches_the_saved_config, hits_at_peak


def _train(tmp_path, method, *extra):
    run = tmp_path / method
    argv = ["train", "anomaly", "--method", method, "--data", "phantom", "--n-images", "48", "--size", "32", "--width", "8",
            "--steps", "3", "--batch-size", "8", "--holdout", "0.5", "--log-every", "1", "--run-dir", str(run), "--no-progress", *extra]
    assert main(argv) == 0
    return run


@pytest.mark.parametrize("method", ["fanogan", "ganomaly", "ae"])
def test_each_method_trains_scores_each_image_alone_and_calibrates(tmp_path, method):
    run = _train(tmp_path, method, "--alpha", "0.1")  # 12 calibration phantoms: enough for 10% (9 needed)
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    if method == "fanogan":  # the WGAN-GP, then the encoder with G and the critic frozen
        assert {r["phase"] for r in stats} == {"gan", "encoder"} and stats[-1]["step"] == 6
        assert any("gp" in r for r in stats) and any("pixel_mse" in r for r in stats)
        config = json.loads((run / "config.json").read_text())
        assert config["optim"]["n_critic"] == 5 and config["loss"]["name"] == "wgan-gp" and config["optim"]["beta1"] == 0.0
    model = load_model(run)
    from medgan.datasets.phantom import phantom_set

    images = phantom_set(n=6, size=32, seed=9).images
    scores, maps = score_set(model, images)
    alone = np.array([score_set(model, images[i : i + 1])[0][0] for i in range(len(images))])
    assert np.allclose(scores, alone, rtol=1e-5, atol=1e-7)  # one image's score never depends on its batch
    assert maps.shape == (6, 32, 32) and (maps >= 0).all() and np.isfinite(scores).all()
    assert all(not net.training for net in model.nets.values())
    record = json.loads((run / "calibration.json").read_text())
    assert record["n_calibration_volumes"] + record["n_check_volumes"] == 24  # phantoms are their own volumes
    image = record["levels"]["image"]
    assert image["n"] == record["n_calibration_images"] == 12 and image["threshold"] == sorted(image["scores"])[-1]
    assert "check" in image and image["check"]["n"] == 12
    assert model.calibration["image"].threshold == image["threshold"]
    pixel = record["levels"]["pixel"]  # over the calibration normals' body pixels, checked on the others
    assert model.pixel_threshold == pixel["threshold"] > 0 and 0 <= pixel["check"]["rate"] <= 1
    assert main(["evaluate", str(run)]) == 0
    evaluated = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    # lesions simulated into those 12 normals (an image whose missing structure removed nothing is left out)
    assert evaluated["n_normal"] == 12 and 9 <= evaluated["n_anomalous"] <= 12
    assert 0 <= evaluated["metrics"]["auroc"] <= 1 and 0 <= evaluated["metrics"]["pixel_auroc"] <= 1
    assert {"fpr_at_alpha", "best_dice", "dice_at_threshold", "pixel_fpr_at_alpha"} <= set(evaluated["metrics"])
    if method == "ae":  # the report shows the calibration, whether its rate held, the detection figures and the heat maps
        assert main(["report", str(run)]) == 0
        page = (run / "report.html").read_text()
        assert "<h2>Calibration</h2>" in page and "holds" in page and "image AUROC" in page and "anomaly heat maps" in page
        assert (run / "anomaly-heatmaps.png").is_file()


def test_too_few_calibration_normals_are_named_not_thresholded(tmp_path):
    from medgan.errors import MedganWarning

    with pytest.warns(MedganWarning, match="99 are needed"):
        run = _train(tmp_path, "ae", "--alpha", "0.01")  # 12 calibration phantoms; 99 are needed at 1%
    record = json.loads((run / "calibration.json").read_text())
    assert "99 are needed" in record["levels"]["image"]["error"] and "scores" not in record["levels"]["image"]
    assert load_model(run).calibration == {}


def test_calibrate_recalibrates_on_a_new_sites_normals_and_keeps_the_old_calibration(tmp_path, capsys):
    run = _train(tmp_path, "ae", "--alpha", "0.1")
    first = json.loads((run / "calibration.json").read_text())
    # the normals of a "new site" (here the phantom source again, read with the run's options)
    assert main(["calibrate", str(run), "phantom", "--alpha", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "image level: threshold" in out and "at alpha 0.2" in out and "other normals" in out
    second = json.loads((run / "calibration.json").read_text())
    assert second["alpha"] == 0.2 and second["normals"] == "phantom" and second["time"] >= first["time"]
    assert len(list(run.glob("calibration-*.json"))) == 1  # the previous one kept
    assert load_model(run).calibration["image"].alpha == 0.2
    assert main(["calibrate", str(run), "phantom", "--alpha", "2"]) != 0
    assert "--alpha 2" in capsys.readouterr().err


def test_detect_screens_dicom_nifti_and_png_with_calibrated_p_values_and_maps(tmp_path, ct_folder, capsys):
    import shutil

    import nibabel as nib
    from PIL import Image as PILImage

    from medgan.datasets.phantom import phantom_set

    run = _train(tmp_path, "ae", "--alpha", "0.1")
    inputs = tmp_path / "inputs"
    shutil.copytree(ct_folder, inputs / "ct")
    volume = phantom_set(n=4, size=32, seed=5, lesion_fraction=1.0).images  # (4, 32, 32) HU
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume.transpose(1, 2, 0)), np.diag([0.8, 0.8, 2.0, 1.0])), inputs / "ph.nii.gz")
    PILImage.fromarray(np.clip(volume[0] + 100, 0, 255).astype(np.uint8)).save(inputs / "one.png")
    out = tmp_path / "screened"
    assert main(["detect", str(run), str(inputs), "--out", str(out), "--no-progress"]) == 0
    rows = list(__import__("csv").DictReader(open(out / "scores.csv")))
    levels = {(r["input"].split("/")[0], r["level"]) for r in rows}
    assert ("one.png", "image") in levels and ("ph.nii.gz", "slice") in levels and ("ph.nii.gz", "volume") in levels
    assert ("ct", "slice") in levels
    # image / slice rows against the image-level calibration, volume rows (the slices' maximum) against the
    # volume-level one (each calibration phantom is a volume of its own: 12 >= the 9 needed at 10%)
    assert all(0 < float(r["p_value"]) <= 1 and r["flagged"] in ("True", "False") and int(r["flagged_pixels"]) >= 0 for r in rows)
    ph = [r for r in rows if r["input"] == "ph.nii.gz"]
    top = max(float(r["score"]) for r in ph if r["level"] == "slice")
    assert [float(r["score"]) for r in ph if r["level"] == "volume"] == [pytest.approx(top)]
    maps = nib.load(out / "ph.map.nii.gz")
    assert maps.shape == (32, 32, 4) and np.allclose(maps.affine, np.diag([0.8, 0.8, 2.0, 1.0]))
    assert (out / "one.map.tif").is_file() and (out / "one.heat.png").is_file() and (out / "ph.heat.png").is_file()
    assert any(p.name.endswith(".map.nii.gz") for p in (out / "ct").iterdir())
    # DICOM in: the maps also as a derived DICOM series of the same patient, slice by slice
    import pydicom

    from medgan.tasks.anomaly.detect import map_units

    (nifti_map,) = (out / "ct").glob("*.map.nii.gz")
    (dicom_maps,) = [p for p in (out / "ct").iterdir() if p.is_dir() and p.name.endswith(".map")]
    files = sorted(dicom_maps.iterdir())
    assert len(files) == 6
    sources = {str(pydicom.dcmread(f).SOPInstanceUID): pydicom.dcmread(f) for f in sorted(ct_folder.iterdir())}
    volume = nib.load(nifti_map)
    volume_map = np.asarray(volume.dataobj)  # (i, j, k) voxels placed by its RAS+ affine
    to_voxel = np.linalg.inv(volume.affine)
    seen = set()
    for f in files:
        ds = pydicom.dcmread(f)
        source = sources[str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)]
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"] and ds.RescaleType == "US"
        assert ds.PatientID == source.PatientID and ds.StudyInstanceUID == source.StudyInstanceUID
        assert ds.SeriesInstanceUID != source.SeriesInstanceUID and "Anomaly map" in ds.DerivationDescription
        assert ds.ImagePositionPatient == source.ImagePositionPatient
        dicom_map = ds.pixel_array * float(ds.RescaleSlope)  # (rows, columns)
        # Position by position: each DICOM pixel's centre (LPS, from IPP / IOP / PixelSpacing) is
        # a NIfTI voxel centre (RAS), whose value must be the same (a transposed or flipped map fails).
        ipp, iop = np.array(ds.ImagePositionPatient, float), np.array(ds.ImageOrientationPatient, float)
        dr, dc = (float(v) for v in ds.PixelSpacing)
        r, c = np.mgrid[: ds.Rows, : ds.Columns]
        lps = ipp[:, None, None] + iop[:3, None, None] * dc * c + iop[3:, None, None] * dr * r  # (3, rows, columns)
        ras = np.stack([-lps[0], -lps[1], lps[2], np.ones_like(lps[0])]).reshape(4, -1)
        ijk = to_voxel @ ras
        index = np.rint(ijk[:3]).astype(int)
        assert np.allclose(ijk[:3], index, atol=1e-3) and len(set(index[2])) == 1  # on the grid, one NIfTI slice
        seen.add(int(index[2][0]))
        slope = float(ds.RescaleSlope)  # the model's map units (z-scores of the residual by default: map_units)
        assert slope == map_units(load_model(run))[1]
        np.testing.assert_allclose(dicom_map.ravel(), volume_map[index[0], index[1], index[2]], atol=slope / 2 + 1e-6)
    assert seen == set(range(volume_map.shape[2]))
    assert volume_map.std() > 10 * slope  # a map that varies: a transposition would show
    # one file alone gets the score it got among the others
    alone = tmp_path / "alone"
    assert main(["detect", str(run), str(inputs / "one.png"), "--out", str(alone), "--no-progress"]) == 0
    first = [r for r in rows if r["input"] == "one.png"][0]
    again = list(__import__("csv").DictReader(open(alone / "scores.csv")))[0]
    assert float(again["score"]) == pytest.approx(float(first["score"]), rel=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calibration"]["image"]["alpha"] == 0.1


def test_presumed_normals_from_another_scanner_are_named_a_domain_shift(tmp_path):
    import nibabel as nib

    from medgan.datasets.phantom import phantom_set
    from medgan.errors import MedganWarning

    run = _train(tmp_path, "ae", "--alpha", "0.1")
    site = tmp_path / "site_b"
    site.mkdir()
    other = phantom_set(n=30, size=32, seed=77).images * 0.6 + 60  # another scanner's contrast and offset
    nib.save(nib.Nifti1Image(np.ascontiguousarray(other.transpose(1, 2, 0)), np.eye(4)), site / "normals.nii.gz")
    with pytest.warns(MedganWarning, match="recalibrate on this site|medgan calibrate"):
        assert main(["detect", str(run), str(site), "--out", str(tmp_path / "b"), "--presumed-normal", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["presumed_normal"] and "medgan calibrate" in summary["domain_shift"]


def test_the_heat_map_peaks_on_a_planted_lesion(tmp_path):
    """An autoencoder of normal head phantoms cannot redraw a bright blob it never saw: the
    map's peak (and the image score, with --image-score map-max) falls on the planted lesion."""
    run = tmp_path / "ae"
    argv = ["train", "anomaly", "--method", "ae", "--data", "phantom", "--n-images", "96", "--size", "32", "--width", "16",
            "--window", "40,160", "--steps", "300", "--batch-size", "16", "--holdout", "0", "--log-every", "50",
            "--image-score", "map-max", "--run-dir", str(run), "--no-progress"]
    with pytest.warns(Warning, match="not calibrated"):
        assert main(argv) == 0

    model = load_model(run)
    assert hits_at_peak(model) >= 7  # the peak on (or touching) the lesion, and the planted copy scored above the clean one


def test_map_max_is_the_peak_of_the_map_inside_the_body():
    import torch

    from medgan.tasks.anomaly.model import body, map_peak

    x = torch.full((2, 1, 4, 4), -1.0)
    x[:, :, 1:3, 1:3] = 0.2  # a 2x2 body in air
    maps = torch.zeros(2, 4, 4)
    maps[0, 0, 0] = 9.0  # in the air: not counted
    maps[0, 1, 2] = 0.5
    maps[1, 2, 1] = 0.25
    assert body(x)[0].sum() == 4
    assert map_peak(maps, body(x)).tolist() == [0.5, 0.25]
    assert map_peak(maps, torch.zeros(2, 4, 4, dtype=torch.bool)).tolist() == [9.0, 0.25]  # no body: the whole map


# --------------------------------------------------------------------------- outputs of `medgan detect`, exactly


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    """One tiny autoencoder run (3 steps) shared by the output tests below: what they check is
    how detect writes and decides, which does not need a good model."""
    return _train(tmp_path_factory.mktemp("detect"), "ae", "--alpha", "0.1")


def _volume(path, images):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ascontiguousarray(np.asarray(images, np.float32).transpose(2, 1, 0)), np.diag([0.8, 0.8, 2.0, 1.0])), path)


def test_detect_flags_every_row_by_the_conformal_rule_of_its_own_levels_calibration(tmp_path, ae_run):
    """Image and slice rows are decided by the image-level calibration, volume rows (the
    slices' maximum) by the volume-level one: for each row, p = (1 + #{calibration >= s}) /
    (n + 1) of that level, flagged == (s > threshold) == (p <= alpha). The two calibrations
    are set apart here so that taking the wrong one changes some row's decision."""
    import csv
    import shutil

    from PIL import Image as PILImage

    from medgan.datasets.phantom import phantom_set
    from medgan.tasks.anomaly.calibration import calibrate
    from medgan.tasks.anomaly.detect import detect_path

    run = tmp_path / "run"
    shutil.copytree(ae_run, run)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    normal = phantom_set(n=4, size=32, seed=5).images
    _volume(inputs / "normal.nii.gz", normal)
    _volume(inputs / "lesions.nii.gz", phantom_set(n=4, size=32, seed=6, lesion_fraction=1.0).images)
    _volume(inputs / "shifted.nii.gz", normal * 0.6 + 60)
    PILImage.fromarray(np.clip(normal[0] + 100, 0, 255).astype(np.uint8)).save(inputs / "one.png")
    first = list(csv.DictReader(open(detect_path(load_model(run), inputs, tmp_path / "first", progress=False) / "scores.csv")))
    slice_scores = np.array([float(r["score"]) for r in first if r["level"] != "volume"])
    volume_scores = np.sort([float(r["score"]) for r in first if r["level"] == "volume"])
    assert len(slice_scores) == 13 and len(volume_scores) == 3
    # image level: 19 scores spread over the slices' (threshold near their 90th percentile);
    # volume level: threshold between the two lowest volume maxima (rank 18 of 19 at alpha 0.1)
    levels = {"image": calibrate(np.quantile(slice_scores, np.linspace(0.05, 0.95, 19)), 0.1, "image"),
              "volume": calibrate(np.r_[np.linspace(0.5, 1.0, 18) * volume_scores[:2].mean(), 10 * volume_scores[-1]], 0.1, "volume")}
    record = json.loads((run / "calibration.json").read_text())  # its residual normalisation stays as it was
    record.update(alpha=0.1, levels={k: c.to_dict() for k, c in levels.items()})
    (run / "calibration.json").write_text(json.dumps(record))
    out = tmp_path / "out"
    assert main(["detect", str(run), str(inputs), "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert len(rows) == 16
    summary = json.loads((out / "summary.json").read_text())
    decided = {"image": [], "volume": []}
    for row in rows:
        level = "volume" if row["level"] == "volume" else "image"
        cal = levels[level]
        assert summary["calibration"][level]["threshold"] == cal.threshold
        s, p, flagged = float(row["score"]), float(row["p_value"]), row["flagged"] == "True"
        assert row["flagged"] in ("True", "False")
        assert p == pytest.approx((1 + np.sum(cal.scores >= s)) / (cal.n + 1), abs=1e-12)
        assert flagged == (s > cal.threshold) == (p <= cal.alpha), row
        other = levels["image" if level == "volume" else "volume"]
        decided[level].append((flagged, s > other.threshold))
    for level, pairs in decided.items():  # some rows flagged, some not, at each level
        assert {f for f, _ in pairs} == {True, False}, level
    assert any(f != f_other for pairs in decided.values() for f, f_other in pairs)  # the level matters


def test_detect_csv_cells_a_spreadsheet_would_run_as_formulas_are_escaped(tmp_path, ae_run):
    import csv

    from PIL import Image as PILImage

    from medgan.datasets.phantom import phantom_set

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    image = np.clip(phantom_set(n=1, size=32, seed=5).images[0] + 100, 0, 255).astype(np.uint8)
    names = ["=HYPERLINK(evil).png", "+cmd.png", "-x.png", "@sum.png", "plain.png"]
    for name in names:
        PILImage.fromarray(image).save(inputs / name)
    out = tmp_path / "out"
    assert main(["detect", str(ae_run), str(inputs), "--out", str(out), "--no-progress"]) == 0
    rows = list(csv.reader(open(out / "scores.csv", newline="")))[1:]
    assert {row[0] for row in rows} == {"'=HYPERLINK(evil).png", "'+cmd.png", "'-x.png", "'@sum.png", "plain.png"}
    assert all(float(row[3]) > 0 and 0 < float(row[4]) <= 1 for row in rows)  # numbers untouched
    assert {r["input"] for r in json.loads((out / "summary.json").read_text())["rows"]} == set(names)


def test_detect_writes_the_other_outputs_when_a_dicom_map_series_cannot_be_written(tmp_path, ae_run):
    """A multi-frame CT gets no derived DICOM map series (one file per slice is what the
    writer makes): one warning naming the file, the NIfTI map, overlay and rows are written,
    and summary.json lists the skipped series and why. A single slice without
    FrameOfReferenceUID or PatientID (what makes a DICOM SEG fail) still gets its DICOM map."""
    import csv
    import warnings

    import pydicom
    from pydicom.uid import generate_uid

    from medgan.errors import MedganWarning
    from tests.conftest import PATIENT, make_dicom, write_ct_slice

    inputs = tmp_path / "inputs"
    (inputs / "mf").mkdir(parents=True)
    pixels = np.full((3, 32, 32), 24, np.int16)
    pixels[:, 8:20, 8:20] = 1064
    make_dicom(inputs / "mf" / "mf.dcm", pixels, RescaleSlope=1, RescaleIntercept=-1024, PixelSpacing=[0.8, 0.8], SeriesNumber=7, **PATIENT)
    hu = np.full((32, 32), -1000.0)
    hu[8:20, 8:20] = 40.0
    bare = write_ct_slice(inputs / "bare" / "slice.dcm", hu, z=4.0, series_uid=generate_uid(), instance=1)
    ds = pydicom.dcmread(bare)
    del ds.PatientID
    ds.SeriesNumber = 8
    ds.save_as(bare)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["detect", str(ae_run), str(inputs), "--out", str(out), "--no-progress"]) == 0
    ours = [str(w.message) for w in caught if issubclass(w.category, MedganWarning)]
    assert len(ours) == 1 and "mf.dcm" in ours[0] and "multi-frame" in ours[0] and "\n" not in ours[0], ours
    assert (out / "mf" / "series-7.map.nii.gz").is_file() and (out / "mf" / "series-7.heat.png").is_file()
    assert not (out / "mf" / "series-7.map").exists()
    (skipped,) = json.loads((out / "summary.json").read_text())["skipped"]
    assert skipped["output"] == "mf/series-7.map/" and "multi-frame" in skipped["reason"]
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert sum(r["input"] == "mf/series-7" for r in rows) == 3 + 1  # slices and the volume row
    (bare_map,) = (out / "bare" / "series-8.map").iterdir()
    assert pydicom.dcmread(bare_map).SourceImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID


def test_the_default_is_the_measured_best_detector_and_says_so(tmp_path, capsys):
    """The restorer with z-scored residuals and the map's peak as the image score, at the
    600 steps it was measured at; its first lines say how it compared with the rule."""
    run = tmp_path / "run"
    argv = ["train", "anomaly", "--data", "phantom", "--n-images", "16", "--size", "32", "--width", "4", "--batch-size", "4",
            "--holdout", "0", "--run-dir", str(run), "--no-progress"]
    assert main([*argv, "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["loop"]["steps"] == 600
    assert main([*argv, "--steps", "2"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "method: restore: a U-Net trained to remove coarse noise" in err and "intensity rule" in err
    a = json.loads((run / "config.json").read_text())["anomaly"]
    assert (a["method"], a["normalise_residual"], a["image_score"]) == ("restore", "on", "map-max")
    assert sorted(p.name for p in run.iterdir() if (p / "model.safetensors").is_file()) == ["restorer"]


def test_the_dry_run_prints_the_config_the_run_saves_and_evaluate_refuses_metrics(tmp_path, capsys):
    """Every default (the method's learning rates and loss, the networks' whole config) is
    resolved before --dry-run prints; ``medgan evaluate --metrics`` is refused in one line:
    an anomaly run's figures come together."""
    run = tmp_path / "run"
    argv = ["train", "anomaly", "--method", "fanogan", "--data", "phantom", "--n-images", "16", "--size", "32", "--width", "4",
            "--steps", "1", "--batch-size", "4", "--holdout", "0", "--no-progress"]
    saved = dry_run_matches_the_saved_config(argv, run, capsys)
    assert saved["model"]["net"] == {"width": 4, "z_dim": 128, "image_size": 32, "channels": 1, "upsample": "deconv"}
    assert (saved["loss"]["name"], saved["optim"]["n_critic"], saved["optim"]["lr_g"]) == ("wgan-gp", 5, 1e-4)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--metrics", "auroc"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--metrics auroc" in err and "leave --metrics out" in err
    # the networks are the method's own: --model is no flag of the task, and a config file's model is refused, not replaced
    with pytest.raises(SystemExit) as exit:
        main([*argv[:-3], "--model", "pix2pix", "--dry-run"])
    assert exit.value.code == 2 and "for medgan train anomaly: --model" in capsys.readouterr().err
    (tmp_path / "c.yaml").write_text("model:\n  name: pix2pix\n")
    assert main([*argv[:-3], "--config", str(tmp_path / "c.yaml"), "--dry-run"]) == 2
    assert "trains its own dcgan networks, not --model pix2pix" in capsys.readouterr().err


def test_scoring_left_on_auto_takes_the_methods_measured_defaults_and_a_flag_given_is_kept(capsys):
    """``--normalise-residual`` and ``--image-score`` default to the method's own (its class's
    ``defaults``): residual z-scores for the learned methods, not for the rules, whose maps are
    already on a normal scale; the map's peak as the image score for all. A flag given wins."""
    from medgan.tasks.anomaly.methods import method_class

    base = ["train", "anomaly", "--data", "phantom", "--n-images", "16", "--size", "32", "--holdout", "0.5", "--dry-run"]

    def resolved(*extra):
        assert main([*base, *extra]) == 0
        a = json.loads(capsys.readouterr().out)["anomaly"]
        return a["method"], a["normalise_residual"], a["image_score"]

    assert resolved() == ("restore", "on", "map-max")
    for method in ("restore", "fanogan", "ganomaly", "zscore", "knn"):
        d = method_class(method).defaults
        assert resolved("--method", method) == (method, d.normalise_residual, d.image_score)
    assert method_class("zscore").defaults.normalise_residual == method_class("knn").defaults.normalise_residual == "off"
    assert resolved("--normalise-residual", "off", "--image-score", "method") == ("restore", "off", "method")
    assert resolved("--method", "zscore", "--normalise-residual", "on") == ("zscore", "on", "map-max")
