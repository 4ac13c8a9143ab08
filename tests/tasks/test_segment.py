"""The segmentation task: metrics on hand-made cases, label values, pixel spacing from the
files, a segmentor that learns, the critic and semi-supervised runs end to end, and
``medgan segment`` on NIfTI, PNG and DICOM (SEG read back and checked against the label map)."""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage

from medgan.cli import main
from medgan.data.source_options import SourceOptions
from medgan.data.sources import load_source
from medgan.errors import MedganError
from medgan.metrics.segmentation import hausdorff95, slice_stack_metrics
import torch

from medgan.data.training import load_training_data
from medgan.tasks.segment.model import to_indices
from medgan.train import TrainConfig
from medgan.tasks.segment.recipe import critic_map, evenly_chosen, label_classes, parse_class_names

from checks import dry_run_matches_the_saved_config


def square(size, y0, x0, side, value=1):
    m = np.zeros((size, size), np.uint8)
    m[y0 : y0 + side, x0 : x0 + side] = value
    return m


def test_slice_stack_metrics_follow_their_written_rules():
    truth = np.stack([square(16, 4, 4, 6), square(16, 4, 4, 6), np.zeros((16, 16), np.uint8), np.zeros((16, 16), np.uint8)])
    pred = np.stack([square(16, 4, 4, 6), square(16, 4, 6, 6), square(16, 2, 2, 3), np.zeros((16, 16), np.uint8)])
    s = slice_stack_metrics(pred, truth, [1])[1]
    inter, total = 36 + 24, (36 + 36) + (36 + 36 + 9)  # truth + prediction pixels
    assert s["dice"] == pytest.approx(2 * inter / total)  # pooled over the stack, not a mean of slices
    assert s["iou"] == pytest.approx(inter / (total - inter))
    assert s["missed_slices"] == 0 and s["extra_slices"] == 1  # slice 2: prediction only, no distance
    # HD95 pools the surface distances of the slices holding both: slice 0 adds zeros, slice 1 a 2-px shift
    alone = hausdorff95(pred[1], truth[1])
    assert 0 < s["hd95"] <= alone
    doubled = slice_stack_metrics(pred, truth, [1], spacing=np.full((4, 2), 2.0))[1]
    assert doubled["hd95"] == pytest.approx(2 * s["hd95"]) and doubled["asd"] == pytest.approx(2 * s["asd"])
    # NSD: slice 0 all within tolerance, slice 1 shifted by 2 px (within 2, not within 1), slice 2's lone surface outside
    lone = 8  # the boundary of a 3x3 square
    assert s["nsd"] == pytest.approx((40 + 40) / (40 + 40 + lone))  # 6x6 squares: 20 surface pixels each, x2 per slice
    strict = slice_stack_metrics(pred, truth, [1], tolerance=1.0)[1]
    assert strict["nsd"] < s["nsd"]
    empty = slice_stack_metrics(np.zeros((2, 8, 8), np.uint8), np.zeros((2, 8, 8), np.uint8), [1])[1]
    assert np.isnan(empty["dice"]) and np.isnan(empty["hd95"])  # absent from both: not scored
    missed = slice_stack_metrics(np.zeros((1, 16, 16), np.uint8), square(16, 2, 2, 4)[None], [1])[1]
    assert missed["dice"] == 0.0 and np.isnan(missed["hd95"]) and missed["missed_slices"] == 1


def test_hard_critic_maps_are_one_hot_with_the_softmax_gradient():
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0), requires_grad=True)
    weights = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    hard = critic_map(logits, hard=True)
    one_hot = torch.nn.functional.one_hot(logits.detach().argmax(1), 3).permute(0, 3, 1, 2).float()
    assert torch.allclose(hard.detach(), one_hot, atol=1e-6)
    (grad_hard,) = torch.autograd.grad((hard * weights).sum(), logits)
    (grad_soft,) = torch.autograd.grad((critic_map(logits, hard=False) * weights).sum(), logits)
    assert grad_hard.abs().sum() > 0 and torch.allclose(grad_hard, grad_soft)  # straight-through
    assert torch.allclose(critic_map(logits, hard=False), torch.softmax(logits, 1))


def test_label_values_come_from_the_data_or_a_json_and_unknown_values_are_refused(tmp_path):
    masks = np.stack([square(8, 1, 1, 3, 255), np.zeros((8, 8), np.uint8)])
    values, names = label_classes(masks, None, None, "masks/")
    assert values == [0, 255] and names == ["background", "label255"]
    assert to_indices(masks, values, "m").max() == 1
    values, names = label_classes(np.array([[0, 1, 2]]), None, ["background", "grey", "white"], "brain")
    assert values == [0, 1, 2] and names == ["background", "grey", "white"]
    spec = tmp_path / "classes.json"
    spec.write_text(json.dumps({"0": "background", "255": "lesion"}))
    assert parse_class_names(str(spec)) == {0: "background", 255: "lesion"}
    with pytest.raises(MedganError, match="label value 7"):
        label_classes(np.array([[0, 7]]), {0: "background", 255: "lesion"}, None, "masks/")
    with pytest.raises(MedganError, match="not one of the run's labels"):
        to_indices(np.array([[0, 3]]), [0, 1], "held-out")
    spec.write_text(json.dumps({"1": "lesion"}))
    with pytest.raises(MedganError, match="label 0"):
        parse_class_names(str(spec))
    assert list(evenly_chosen(10, 3)) == [0, 4, 9] and len(evenly_chosen(10, 0)) == 10


def test_pixel_spacing_follows_slicing_and_resizing(nifti_volume, ct_folder):
    native = load_source(str(nifti_volume), SourceOptions(axis="axial"))
    assert native.spacing is not None and np.allclose(native.spacing, 1.5)
    resized = load_source(str(nifti_volume), SourceOptions(axis="axial", size=32))
    assert native.images.shape[1:] == (24, 20)  # axial: A-P rows, R-L columns
    assert np.allclose(resized.spacing, [1.5 * 24 / 32, 1.5 * 20 / 27])  # scaled 4/3, 20 columns -> 27 (then padded)
    ct = load_source(str(ct_folder), SourceOptions())
    assert np.allclose(ct.spacing, [0.8, 0.7])  # PixelSpacing: rows, columns
    path = nifti_volume.parent / "aniso.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 6, 8), np.float32), np.diag([1.0, 2.0, 3.0, 1.0])), path)
    sagittal = load_source(str(path), SourceOptions(axis="sagittal", min_foreground=0.0))
    assert np.allclose(sagittal.spacing, [3.0, 2.0])  # rows along S (3 mm), columns along A (2 mm)


def test_nifti_label_volumes_keep_atlas_values_and_fractional_masks_are_refused(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    volume = np.random.default_rng(0).normal(100, 10, (8, 8, 3)).astype(np.float32)
    labels = np.zeros((8, 8, 3), np.int16)
    labels[2:5, 2:5, :] = 300  # an atlas label number past 255
    labels[6, 6, 1] = 2
    nib.save(nib.Nifti1Image(volume, np.eye(4)), images / "head.nii.gz")
    nib.save(nib.Nifti1Image(labels, np.eye(4)), masks / "head.nii.gz")
    data = load_source(str(images), SourceOptions(masks=str(masks), axis="axial", min_foreground=0.0))
    assert data.masks.shape == (3, 8, 8) and set(np.unique(data.masks).tolist()) == {0, 2, 300}
    assert to_indices(data.masks, [0, 2, 300], "m").max() == 2
    nib.save(nib.Nifti1Image(labels * 0.3, np.eye(4)), masks / "head.nii.gz")  # a probability map, not labels
    with pytest.raises(MedganError, match="not an integer label") as err:
        load_source(str(images), SourceOptions(masks=str(masks), axis="axial", min_foreground=0.0))
    assert "head.nii.gz" in str(err.value)


def test_the_plain_unet_learns_and_segments_png_with_the_datas_label_values(squares, tmp_path, capsys):
    images, masks = squares
    run = tmp_path / "run"
    assert main(["train", "segment", "--data", str(images), "--masks", str(masks), "--size", "32", "--adversarial", "off",
                 "--steps", "80", "--batch-size", "8", "--width", "8", "--depth", "2", "--holdout", "0", "--run-dir", str(run),
                 "--no-progress"]) == 0
    info = json.loads((run / "segmentor" / "config.json").read_text())
    assert info["label_values"] == [0, 255] and info["adversarial"] is False
    assert not (run / "critic").exists()
    out = tmp_path / "seg"
    assert main(["segment", str(run), str(images), "--out", str(out), "--no-progress"]) == 0
    dice = []
    for i in range(16):
        pred = np.asarray(PILImage.open(out / f"case{i:02d}.png"))
        truth = np.asarray(PILImage.open(masks / f"case{i:02d}.png"))
        assert set(np.unique(pred)) <= {0, 255}
        dice.append(2 * ((pred > 0) & (truth > 0)).sum() / ((pred > 0).sum() + (truth > 0).sum()))
    assert np.mean(dice) > 0.8, dice  # bright squares are learnt in 80 steps
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == ["background", "label255"] and len(summary["inputs"]) == 16
    assert (out / "case00.overlay.png").is_file() and "label255" in (out / "volumes.csv").read_text()


def test_adversarial_semi_supervised_run_evaluates_reports_and_writes_dicom_seg(tmp_path, ct_folder, capsys, require):
    hd = require("highdicom")
    run = tmp_path / "run"
    argv = ["train", "segment", "--data", "phantom", "--n-images", "24", "--lesion-fraction", "1", "--size", "32",
            "--labelled", "6", "--steps", "12", "--batch-size", "4", "--width", "8", "--depth", "2", "--d-width", "8",
            "--semi-start", "0.5", "--holdout", "0.25", "--log-every", "1", "--run-dir", str(run), "--no-progress", "--adversarial", "on"]
    assert main(argv) == 0
    info = json.loads((run / "segmentor" / "config.json").read_text())
    assert info["adversarial"] is True and info["labelled"] == 6 and info["unlabelled"] == 18 - 6
    assert info["class_names"] == ["background", "lesion"]
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert any("semi_ce" in row for row in stats) and all("loss_d" in row for row in stats if "loss_s" in row)

    assert main(["evaluate", str(run)]) == 0
    record = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert record["task"] == "segment" and record["n_volumes"] == 6 and record["distance_units"] == "pixels"
    assert 0 <= record["metrics"]["dice_lesion"] <= 1 and (run / "segmentation-best-worst.png").is_file()
    assert main(["report", str(run)]) == 0
    assert "Segmentation per class" in (run / "report.html").read_text()

    out = tmp_path / "seg"
    assert main(["segment", str(run), str(ct_folder), "--out", str(out), "--no-progress"]) == 0
    import pydicom

    (seg_file,) = list(out.glob("*.seg.dcm"))
    seg = hd.seg.segread(seg_file)
    assert seg.Modality == "SEG" and seg.SeriesDescription.startswith("medgan segmentation")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["lesion"]
    z = {pydicom.dcmread(f).SOPInstanceUID: float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in ct_folder.iterdir()}
    labels = np.asarray(nib.load(next(out.glob("*.nii.gz"))).dataobj).T  # (D, H, W), slices by rising z
    frames = seg.pixel_array if seg.pixel_array.ndim == 3 else seg.pixel_array[None]
    assert len(frames) == len(z) == len(labels)
    for frame, pixels in zip(seg.PerFrameFunctionalGroupsSequence, frames):  # each frame names its source, and holds its mask
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        k = sorted(z.values()).index(z[uid])
        assert float(frame.PlanePositionSequence[0].ImagePositionPatient[2]) == z[uid]
        assert np.array_equal(pixels > 0, labels[k] > 0)
    assert "volume_ml" in (out / "volumes.csv").read_text().splitlines()[0]

    # A SEG of known masks (slice k: a square at row 2k) read back frame by frame.
    from medgan.tasks.segment.model import segmentation_model
    from medgan.tasks.segment.inference import write_dicom_seg

    ordered = sorted((pydicom.dcmread(f) for f in ct_folder.iterdir()), key=lambda ds: float(ds.ImagePositionPatient[2]))
    known = np.zeros((len(ordered), 32, 40), np.uint8)
    for k in range(len(ordered)):
        known[k, 2 * k : 2 * k + 5, 3 : 3 + k + 2] = 1
    write_dicom_seg(tmp_path / "known.seg.dcm", known, ordered, segmentation_model(run))
    back = hd.seg.segread(tmp_path / "known.seg.dcm")
    frames = back.pixel_array if back.pixel_array.ndim == 3 else back.pixel_array[None]
    by_uid = {ds.SOPInstanceUID: k for k, ds in enumerate(ordered)}
    for frame, pixels in zip(back.PerFrameFunctionalGroupsSequence, frames):
        k = by_uid[frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        assert np.array_equal(pixels > 0, known[k] > 0)
    assert back.PatientID == ordered[0].PatientID and back.ContentDescription.startswith("Automatic segmentation by medgan")
    algorithm = back.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName.startswith("medgan")


def test_a_partly_labelled_folder_trains_on_its_masks_and_learns_from_the_rest(squares, tmp_path, capsys):
    images, masks = squares
    for i in range(1, 16, 2):  # every other image unlabelled: no mask file
        (masks / f"case{i:02d}.png").unlink()
    common = ["train", "segment", "--data", str(images), "--masks", str(masks), "--size", "32", "--steps", "2", "--batch-size", "4",
              "--width", "8", "--depth", "2", "--holdout", "0", "--no-progress"]
    assert main([*common, "--run-dir", str(tmp_path / "strict")]) != 0
    err = capsys.readouterr().err
    assert "no mask for case01.png" in err and "--partial-masks" in err
    run = tmp_path / "partial"
    with pytest.warns(Warning, match="8 training images without masks are not used.*--adversarial on"):
        assert main([*common, "--partial-masks", "--run-dir", str(tmp_path / "plain")]) == 0  # the default: no critic
    assert main([*common, "--partial-masks", "--adversarial", "on", "--run-dir", str(run)]) == 0
    info = json.loads((run / "segmentor" / "config.json").read_text())
    assert info["labelled"] == 8 and info["unlabelled"] == 8 and info["label_values"] == [0, 255]
    data = load_source(str(images), SourceOptions(masks=str(masks), partial_masks=True))
    assert data.annotated.tolist() == [i % 2 == 0 for i in range(16)]
    assert data.subset(data.labelled_index()).masks.any(axis=(1, 2)).all()


def test_bad_segmentation_input_gets_one_line_errors(squares, tmp_path, capsys):
    images, masks = squares
    assert main(["train", "segment", "--data", str(images), "--size", "32", "--steps", "1", "--run-dir", str(tmp_path / "a")]) != 0
    assert "needs masks" in capsys.readouterr().err
    spec = tmp_path / "classes.json"
    spec.write_text(json.dumps({"0": "background", "1": "lesion"}))
    assert main(["train", "segment", "--data", str(images), "--masks", str(masks), "--class-names", str(spec), "--size", "32",
                 "--steps", "1", "--run-dir", str(tmp_path / "b")]) != 0
    err = capsys.readouterr().err
    assert "label value 255" in err and "Traceback" not in err
    PILImage.fromarray(np.zeros((20, 20), np.uint8)).save(masks / "case00.png")
    assert main(["train", "segment", "--data", str(images), "--masks", str(masks), "--steps", "1", "--run-dir", str(tmp_path / "c")]) != 0
    assert "mask shape" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b" / "segmentor").exists()


# --------------------------------------------------------------------------- outputs of `medgan segment`, exactly
#
# A hand-made segmentor that is a threshold (foreground where the image is above the middle of
# the model's range) makes every expected label exact, so a wrong output cannot pass as a
# poorly trained model.


class _Threshold(torch.nn.Module):
    def forward(self, x):  # (B, 1, H, W) in [-1, 1] -> logits (B, 2, H, W): foreground where x > 0
        return torch.cat([torch.zeros_like(x), 50 * x], 1)


def threshold_model(low=-1000.0, high=1000.0, units="HU", label=1, **info):
    """A :class:`SegmentationModel` labelling ``label`` where the image is above ``(low + high) / 2``."""
    from medgan.data.intensity import IntensityMap
    from medgan.tasks.segment.model import SegmentationModel

    return SegmentationModel(segmentor=_Threshold(), intensity=IntensityMap(low, high, units), class_names=["background", "lesion"],
                             label_values=[0, label], multiple=1, info={"step": 0, "model": "unet", "source": "test", **info})


def _single_slice(folder, case):
    """One 32x40 CT slice with a 10x12 block of 500 HU, missing what makes highdicom refuse a SEG."""
    import pydicom
    from pydicom.uid import generate_uid

    from tests.conftest import write_ct_slice

    hu = np.full((32, 40), -1000.0)
    hu[4:14, 20:32] = 500.0
    path = write_ct_slice(folder / "slice.dcm", hu, z=10.0, series_uid=generate_uid(), instance=1)  # no FrameOfReferenceUID
    if case == "no-patient-id-nor-position":  # an anonymised export: identifiers and geometry stripped
        ds = pydicom.dcmread(path)
        for keyword in ("PatientID", "ImagePositionPatient", "ImageOrientationPatient"):
            delattr(ds, keyword)
        ds.save_as(path)
    return path, hu > 0


@pytest.mark.parametrize("case", ["ct-without-frame-of-reference", "no-patient-id-nor-position"])
def test_a_dicom_seg_the_source_cannot_take_is_skipped_with_one_warning_and_the_rest_is_written(tmp_path, case):
    """highdicom refuses a SEG for a CT slice without FrameOfReferenceUID (required by the CT
    IOD) or without PatientID: the label map, overlay and table rows are written anyway, one
    warning names the file, and summary.json says what was skipped and why."""
    import csv
    import warnings

    from medgan.errors import MedganWarning
    from medgan.tasks.segment.inference import segment_path

    path, truth = _single_slice(tmp_path / "in", case)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        segment_path(threshold_model(), path, out, progress=False)
    ours = [w for w in caught if issubclass(w.category, MedganWarning)]
    assert len(ours) == 1, [str(w.message) for w in ours]
    message = str(ours[0].message)
    assert "\n" not in message and str(path) in message and "DICOM SEG" in message
    assert not list(out.rglob("*.seg.dcm"))
    summary = json.loads((out / "summary.json").read_text())
    (entry,) = summary["inputs"].values()
    (skipped,) = entry["skipped"]
    assert skipped["output"].endswith(".seg.dcm") and skipped["output"] not in entry["outputs"]
    assert ("Frame Of Reference" if case.startswith("ct") else "PatientID") in skipped["reason"]
    if case.startswith("ct"):  # position and orientation known: the label map as NIfTI
        (label_file,) = out.glob("*.nii.gz")
        labels = np.asarray(nib.load(label_file).dataobj).T  # (i, j) -> (H, W)
    else:  # a 2D image without geometry: the label map as PNG
        (label_file,) = [p for p in out.glob("*.png") if not p.name.endswith(".overlay.png")]
        labels = np.asarray(PILImage.open(label_file))
    assert label_file.name in entry["outputs"] and np.array_equal(labels, truth.astype(np.uint8))
    assert len(list(out.glob("*.overlay.png"))) == 1
    (row,) = list(csv.DictReader(open(out / "volumes.csv")))
    assert row["class"] == "lesion" and int(row["pixels"]) == truth.sum() == 120
    assert float(row["area_mm2"]) == pytest.approx(120 * 0.8 * 0.7)


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_escaped(tmp_path):
    """volumes.csv: an input named like a formula is written as text (a leading apostrophe,
    OWASP's advice); numbers stay numbers."""
    import csv

    from medgan.tasks.segment.inference import segment_path

    inputs = tmp_path / "in"
    inputs.mkdir()
    names = ["=HYPERLINK(evil).png", "+cmd.png", "-x.png", "@sum.png", "plain.png"]
    for name in names:
        PILImage.fromarray(square(24, 4, 4, 8, 200)).save(inputs / name)
    segment_path(threshold_model(0.0, 255.0, None), inputs, tmp_path / "out", progress=False)
    rows = list(csv.reader(open(tmp_path / "out" / "volumes.csv", newline="")))[1:]
    cells = {row[0]: row for row in rows}
    assert set(cells) == {"'=HYPERLINK(evil).png", "'+cmd.png", "'-x.png", "'@sum.png", "plain.png"}
    assert all(row[3] == "64" and row[1] == "lesion" for row in rows)  # numbers untouched
    # summary.json keeps the true names (JSON is not run by spreadsheets)
    assert set(json.loads((tmp_path / "out" / "summary.json").read_text())["inputs"]) == set(names)
    from medgan.io.output import csv_cell  # the shared rule, cell by cell

    assert [csv_cell(v) for v in ("=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "a=b", "", 3, -2.5, None, True)] == \
        ["'=1+1", "'+1", "'-2", "'@SUM(A1)", "'\tx", "'\rx", "a=b", "", 3, -2.5, None, True]


def test_a_dicom_seg_has_a_frame_per_slice_in_the_sources_frame_of_reference_and_volumes_match_the_label_map(tmp_path, ct_folder, require):
    """ct_folder: 6 slices, each with a 16x20 block of 0..50 HU in air. The threshold (HU > -500)
    finds the block in every slice, so the expected SEG is exact whatever highdicom does with
    empty frames: 6 frames, one per source slice, each the label map's slice at that position."""
    import csv

    import pydicom

    from medgan.tasks.segment.inference import segment_path

    hd = require("highdicom")
    out = tmp_path / "out"
    segment_path(threshold_model(-1500.0, 500.0), ct_folder, out, progress=False)
    sources = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(f) for f in ct_folder.iterdir())}
    ref = next(iter(sources.values()))
    (seg_file,) = out.glob("*.seg.dcm")
    seg = hd.seg.segread(seg_file)
    assert int(seg.NumberOfFrames) == len(sources) == 6
    assert seg.FrameOfReferenceUID == ref.FrameOfReferenceUID and seg.StudyInstanceUID == ref.StudyInstanceUID
    (series,) = seg.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == ref.SeriesInstanceUID
    assert {item.ReferencedSOPInstanceUID for item in series.ReferencedInstanceSequence} == set(sources)
    (label_file,) = out.glob("*.nii.gz")
    label_img = nib.load(label_file)
    labels = np.asarray(label_img.dataobj)  # (i, j, k): columns, rows, slices by rising z
    frames = seg.pixel_array if seg.pixel_array.ndim == 3 else seg.pixel_array[None]
    seen = set()
    for frame, pixels in zip(seg.PerFrameFunctionalGroupsSequence, frames):
        uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        source = sources[uid]
        assert [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] == [float(v) for v in source.ImagePositionPatient]
        # the label map's slice at the source's position: NIfTI voxel of the source's first pixel
        lps = np.array([float(v) for v in source.ImagePositionPatient])
        i, j, k = np.rint(np.linalg.inv(label_img.affine) @ np.r_[-lps[0], -lps[1], lps[2], 1.0])[:3].astype(int)
        assert (i, j) == (0, 0)
        assert np.array_equal(pixels > 0, labels[:, :, k].T > 0) and (pixels > 0).sum() == 16 * 20
        hu = source.pixel_array.astype(float) - 1024
        assert np.array_equal(pixels > 0, hu > -500)
        seen.add(uid)
    assert seen == set(sources)
    # volumes.csv: voxel count x voxel volume, from the written label map and its own spacing
    (row,) = list(csv.DictReader(open(out / "volumes.csv")))
    count = int((labels == 1).sum())
    voxel_mm3 = float(np.prod(label_img.header.get_zooms()[:3]))
    assert int(row["pixels"]) == count == 6 * 16 * 20
    assert voxel_mm3 == pytest.approx(0.7 * 0.8 * 2.0)
    assert float(row["volume_ml"]) == pytest.approx(count * voxel_mm3 / 1000, abs=1e-4)


def test_the_default_is_the_measured_winner_and_says_so(tmp_path, capsys):
    """The plain U-Net beat the critic per CPU-second (README, benchmarks/segment_vs_unet.py):
    it is the default, and the run's first lines say what it trains and why."""
    run = tmp_path / "run"
    assert main(["train", "segment", "--data", "phantom", "--n-images", "8", "--lesion-fraction", "1", "--size", "32", "--steps", "1",
                 "--batch-size", "4", "--width", "4", "--depth", "1", "--holdout", "0", "--run-dir", str(run), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert ("method: a U-Net on Dice + cross-entropy with classical augmentation, elastic deformation and a constant rate: "
            "the best per CPU-second in benchmarks/segment_vs_unet.py") in " ".join(err.split())
    assert json.loads((run / "segmentor" / "config.json").read_text())["adversarial"] is False
    assert not (run / "critic").exists()
    # unlabelled images need the critic: said in one line, never silently unused
    assert main(["train", "segment", "--data", "phantom", "--n-images", "8", "--lesion-fraction", "1", "--size", "32",
                 "--unlabelled", "phantom", "--steps", "1", "--run-dir", str(tmp_path / "u"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--unlabelled" in err and "--adversarial on" in err


def test_the_default_u_net_is_the_one_measured_best_per_cpu_second(capsys):
    """MONAI's tutorial widths 16..256, classical augmentation with elastic deformation, a constant
    rate: the winners of benchmarks/segment_vs_unet.py (--budget 600; --budget 90 at 8, 32 and
    all labels); --width still chooses."""
    assert main(["train", "segment", "--data", "brain-mri", "--dry-run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert (config["model"]["net"]["width"], config["optim"]["decay"], config["segment"]["augmentation"]) == (16, "none", "elastic")
    assert main(["train", "segment", "--data", "brain-mri", "--width", "32", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["net"]["width"] == 32
    assert main(["train", "synth", "--data", "brain-mri", "--dry-run"]) == 0  # other tasks keep theirs
    assert json.loads(capsys.readouterr().out)["model"]["net"]["width"] == 32


def test_the_dry_run_prints_the_saved_config_with_the_u_nets_classes(tmp_path, capsys):
    argv = ["train", "segment", "--data", "phantom", "--n-images", "8", "--lesion-fraction", "1", "--size", "32", "--steps", "2",
            "--batch-size", "4", "--width", "4", "--depth", "1", "--holdout", "0", "--no-progress"]
    saved = dry_run_matches_the_saved_config(argv, tmp_path / "run", capsys)
    assert saved["model"]["net"]["num_classes"] == 2 and saved["model"]["net"]["d_width"] == 64


def test_evaluate_honours_metrics_through_the_segmentation_family(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "segment", "--data", "phantom", "--n-images", "8", "--lesion-fraction", "1", "--size", "32", "--steps", "2",
                 "--batch-size", "4", "--width", "4", "--depth", "1", "--holdout", "0.25", "--run-dir", str(run), "--no-progress"]) == 0
    assert main(["evaluate", str(run), "--json"]) == 0
    full = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"dice", "iou", "hd95", "asd", "nsd"} <= set(full["metrics"]) and full["settings"]["metrics"] == ["overlap", "surface", "nsd"]
    assert main(["evaluate", str(run), "--metrics", "overlap", "--json"]) == 0
    overlap = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(overlap["metrics"]) == {k for k in full["metrics"] if k.startswith(("dice", "iou"))}
    assert all(overlap["metrics"][k] == full["metrics"][k] or (np.isnan(overlap["metrics"][k]) and np.isnan(full["metrics"][k]))
               for k in overlap["metrics"])
    assert "hd95_lesion" not in overlap["volumes"][0]
    assert main(["evaluate", str(run), "--metrics", "dice"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown segmentation metric 'dice'" in err and "overlap, surface, nsd" in err


# --------------------------------------------------------------------------- mean teacher, Dice terms


def _mean_teacher_argv(images, masks, run, steps, *extra):
    return ["train", "segment", "--data", str(images), "--masks", str(masks), "--size", "32", "--labelled", "4",
            "--mean-teacher", "0.1", "--steps", str(steps), "--batch-size", "8", "--width", "8", "--depth", "2",  # 4 labelled fill 8
            "--holdout", "0", "--run-dir", str(run), "--no-progress", "--checkpoint-every", "2", *extra]


def test_the_teacher_is_the_moving_average_of_the_segmentor():
    from medgan.train.task import Networks
    from medgan.tasks.segment.recipe import SegmentTask

    config = TrainConfig.from_dict({"task": "segment", "data": {"source": "phantom", "options": {"size": 32, "n": 12, "lesion_fraction": 1.0}},
                                    "model": {"net": {"width": 8, "depth": 2}}, "loop": {"steps": 100},
                                    "segment": {"labelled": 4, "mean_teacher": 0.1, "teacher_decay": 0.99}})
    dataset, _ = load_training_data(config.data)
    config.resolve(dataset)
    task = SegmentTask(config, dataset)
    nets = Networks(task.networks())
    assert set(nets) == {"segmentor", "teacher"} and task.exported == ("segmentor", "teacher")
    with torch.no_grad():
        for p in nets.segmentor.parameters():
            p.fill_(1.0)
        for p in nets.teacher.parameters():
            p.zero_()
    task.before_step(nets, 10_000)  # past the ramp-up of the decay: teacher <- 0.99 teacher + 0.01 segmentor
    for p in nets.teacher.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.01))
    # the consistency weight ramps up as exp(-5 (1 - t)^2) over 40% of the run, then holds
    assert task.consistency_weight(0) == pytest.approx(0.1 * np.exp(-5))
    assert task.consistency_weight(20) == pytest.approx(0.1 * np.exp(-5 * 0.25))
    assert task.consistency_weight(40) == task.consistency_weight(90) == pytest.approx(0.1)


def test_a_mean_teacher_run_trains_on_unlabelled_slices_resumes_exactly_and_exports_both(squares, tmp_path):
    from medgan.tasks import load_model
    from medgan.train.checkpoint import latest_checkpoint, load_checkpoint

    images, masks = squares
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(_mean_teacher_argv(images, masks, whole, 4)) == 0
    shutil.copytree(whole, part)  # the same run, stopped after its checkpoint at step 2
    (latest_checkpoint(part)).unlink()
    assert main(["train", "--resume", str(part), "--no-progress"]) == 0
    a, b = (load_checkpoint(latest_checkpoint(r)) for r in (whole, part))
    for net in ("segmentor", "teacher"):
        for k, v in a["networks"][net].items():
            assert torch.equal(v, b["networks"][net][k]), (net, k)
    stats = [json.loads(line) for line in (whole / "stats.jsonl").read_text().splitlines()]
    logged = [s for s in stats if "consistency" in s]
    assert logged and all(s["consistency"] >= 0 for s in logged)
    info = json.loads((whole / "segmentor" / "config.json").read_text())
    assert info["labelled"] == 4 and info["unlabelled"] == 12
    teacher = load_model(whole / "teacher")
    student = load_model(whole / "segmentor")
    x = torch.zeros(1, 1, 32, 32)
    assert teacher.class_names == student.class_names
    assert not torch.equal(teacher.segmentor(x), student.segmentor(x))  # two networks, both exported
    # the run's folder gives the teacher (measured better than its segmentor), as medgan segment uses it
    assert torch.equal(load_model(whole).segmentor(x), teacher.segmentor(x))


def test_mean_teacher_without_unlabelled_images_is_refused_in_one_line(squares, tmp_path, capsys):
    images, masks = squares
    argv = _mean_teacher_argv(images, masks, tmp_path / "r", 1)
    i = argv.index("--labelled")
    argv[i : i + 2] = []  # every image labelled
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and "unlabelled" in err[0] and "--labelled" in "".join(err) and "Traceback" not in "".join(err)
    assert main(["train", "segment", "--data", str(images), "--masks", str(masks), "--unlabelled", str(images), "--size", "32",
                 "--steps", "1", "--run-dir", str(tmp_path / "u")]) != 0
    assert "--mean-teacher" in capsys.readouterr().err


@pytest.mark.parametrize("dice", ["foreground", "batch"])
def test_the_dice_term_can_leave_the_background_out(dice):
    from monai.losses import DiceCELoss

    config = TrainConfig.from_dict({"task": "segment", "data": {"source": "phantom", "options": {"size": 32, "n": 8, "lesion_fraction": 1.0}},
                                    "model": {"net": {"width": 8, "depth": 2}}, "segment": {"dice": dice}})
    dataset, _ = load_training_data(config.data)
    config.resolve(dataset)
    from medgan.tasks.segment.recipe import SegmentTask

    loss = SegmentTask(config, dataset).dice_ce
    assert isinstance(loss, DiceCELoss) and loss.dice.include_background is False and loss.dice.batch is (dice == "batch")
    # a perfect background with a missed small structure: the foreground-only Dice sees the miss in full
    y = torch.zeros(2, 1, 16, 16, dtype=torch.long)
    y[:, :, 4:6, 4:6] = 1
    logits = torch.stack([torch.full((2, 16, 16), 10.0), torch.full((2, 16, 16), -10.0)], 1)
    all_terms = DiceCELoss(to_onehot_y=True, softmax=True)(logits, y)
    assert loss(logits, y) > all_terms + 0.3
