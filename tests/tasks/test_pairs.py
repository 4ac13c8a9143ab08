"""Image-label pairs: a synthesis run that draws the label map beside the image (``--pairs``),
what ``medgan generate`` writes of them (PNG / NPZ / NIfTI label maps, a DICOM SEG read back
with highdicom), ``SyntheticDataset`` items with masks, and segmentation trained on them
(``medgan train segment --synthetic RUN``)."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from medgan.cli import main
from medgan.data.labels import decode_label_channels, label_channels
from medgan.train.augment import diff_augment


def test_label_channels_round_trip_and_zero_padding_reads_as_background():
    labels = torch.tensor([[[0, 1, 2], [2, 0, 1]]])  # (1, 2, 3), three classes
    channels = label_channels(labels, 3)
    assert channels.shape == (1, 2, 2, 3) and set(channels.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(decode_label_channels(channels), labels)
    assert torch.equal(decode_label_channels(torch.zeros(1, 2, 2, 3)), torch.zeros(1, 2, 3, dtype=torch.long))
    # the highest foreground channel wins where both are above 0
    assert decode_label_channels(torch.tensor([[[[0.3]], [[0.8]]]])).item() == 2


def test_a_pair_shifted_by_diffaugment_keeps_its_label_map_on_its_image():
    masks = torch.zeros(8, 32, 32, dtype=torch.long)
    masks[:, 8:20, 10:24] = 1
    image = masks[:, None].float() * 2 - 1  # the image is its own label map
    torch.manual_seed(0)
    moved = diff_augment(torch.cat([image, label_channels(masks, 2)], 1), ("translation",))
    assert not torch.equal(moved[:, :1], image)
    assert torch.equal((moved[:, 0] > 0).long(), decode_label_channels(moved[:, 1:]))


def _train_pairs(images, masks, run, *extra):
    return main(["train", "synth", "--data", str(images), "--masks", str(masks), "--pairs", "--size", "32", "--steps", "3",
                 "--batch-size", "4", "--width", "8", "--run-dir", str(run), "--no-progress", *extra])


def test_a_pairs_run_generates_aligned_label_maps_in_every_format(squares, tmp_path, require):
    hd = require("highdicom")
    images, masks = squares
    run = tmp_path / "pairs"
    assert _train_pairs(images, masks, run, "--labelled", "3") == 0  # three labelled images repeated to fill a batch of 4
    info = json.loads((run / "generator" / "config.json").read_text())
    assert info["pairs"] == {"label_values": [0, 255], "class_names": ["background", "label255"]}
    assert info["net"]["channels"] == 2 and info["channels"] == 1
    grid = np.asarray(PILImage.open(sorted((run / "samples").glob("*.png"))[-1]))
    assert grid.ndim == 3 and grid.shape[-1] == 3  # the label maps tinted over the images

    png = tmp_path / "png"
    assert main(["generate", str(run), "--n", "4", "--out", str(png)]) == 0
    names = sorted(p.name for p in (png / "images").iterdir())
    assert names == sorted(p.name for p in (png / "masks").iterdir()) and len(names) == 4
    for name in names:
        assert set(np.unique(np.asarray(PILImage.open(png / "masks" / name))).tolist()) <= {0, 255}
    assert json.loads((png / "manifest.json").read_text())["label_maps"]["label_values"] == [0, 255]
    # what segmentation reads back: the pairs folder as a labelled training set
    seg = tmp_path / "seg-on-generated"
    assert main(["train", "segment", "--data", str(png / "images"), "--masks", str(png / "masks"), "--size", "32", "--steps", "1",
                 "--batch-size", "2", "--width", "8", "--depth", "2", "--holdout", "0", "--run-dir", str(seg), "--no-progress"]) == 0

    npz = tmp_path / "npz"
    assert main(["generate", str(run), "--n", "4", "--out", str(npz), "--format", "npz"]) == 0
    with np.load(npz / "images.npz", allow_pickle=False) as f:
        assert f["train_images"].shape == (4, 32, 32) and f["train_masks"].shape == (4, 32, 32)
        assert set(np.unique(f["train_masks"]).tolist()) <= {0, 255} and list(f["mask_names"]) == ["background", "label255"]

    nii = tmp_path / "nii"
    assert main(["generate", str(run), "--n", "2", "--out", str(nii), "--format", "nii"]) == 0
    label = nib.load(sorted((nii / "masks").iterdir())[0])
    assert np.issubdtype(label.get_data_dtype(), np.integer) and set(np.unique(np.asarray(label.dataobj)).tolist()) <= {0, 255}

    dcm = tmp_path / "dcm"
    assert main(["generate", str(run), "--n", "2", "--out", str(dcm), "--format", "dcm"]) == 0
    import pydicom

    for path in sorted((dcm / "masks").iterdir()):
        seg = hd.seg.segread(path)
        image = pydicom.dcmread(dcm / "images" / path.name)
        assert seg.PatientID == image.PatientID == "MEDGAN-SYNTH"  # the synthetic image's, no one's
        assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
        assert [s.SegmentLabel for s in seg.SegmentSequence] == ["label255"]
        assert seg.pixel_array.shape[-2:] == (32, 32)


def test_synthetic_pairs_come_as_dataset_items_and_join_segmentation_batches(squares, tmp_path):
    from medgan.tasks.synth.dataset import SyntheticDataset

    images, masks = squares
    run = tmp_path / "pairs"
    assert _train_pairs(images, masks, run) == 0
    data = SyntheticDataset(run, n=6, chunk=4)
    item = data[5]
    assert item["image"].shape == (1, 32, 32) and item["mask"].shape == (32, 32) and item["mask"].dtype == torch.int64
    assert set(item["mask"].unique().tolist()) <= {0, 255} and data.label_values == [0, 255]
    assert torch.equal(SyntheticDataset(run, n=6, chunk=2)[5]["mask"], item["mask"])  # the same pair whatever the chunk
    image, mask = SyntheticDataset(run, n=2, output="tuple")[1]
    assert image.shape == (1, 32, 32) and mask.shape == (32, 32)

    seg = tmp_path / "seg"
    assert main(["train", "segment", "--data", str(images), "--masks", str(masks), "--size", "32", "--steps", "2", "--batch-size", "4",
                 "--width", "8", "--depth", "2", "--holdout", "0", "--synthetic", str(run), "--synthetic-n", "12",
                 "--run-dir", str(seg), "--no-progress"]) == 0
    assert json.loads((seg / "segmentor" / "config.json").read_text())["synthetic_pairs"] == 12


def test_pairs_need_masks_a_shift_only_augmentation_and_a_pairs_run_in_one_line(squares, tmp_path, capsys):
    images, masks = squares

    def one_line_error(argv, *words):
        assert main(argv) != 0
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and all(w in err for w in words), err

    common = ["--size", "32", "--steps", "1", "--width", "8", "--batch-size", "4", "--no-progress"]
    one_line_error(["train", "synth", "--data", str(images), "--pairs", *common, "--run-dir", str(tmp_path / "a")], "needs masks", "--masks")
    one_line_error(["train", "synth", "--data", str(images), "--masks", str(masks), "--pairs", "--augment", "translation,color", *common,
                    "--run-dir", str(tmp_path / "b")], "only translation")
    plain = tmp_path / "plain"
    assert main(["train", "synth", "--data", str(images), *common, "--run-dir", str(plain)]) == 0
    capsys.readouterr()
    one_line_error(["train", "segment", "--data", str(images), "--masks", str(masks), "--synthetic", str(plain), *common,
                    "--depth", "2", "--run-dir", str(tmp_path / "c")], "image-label pairs", "--pairs")
    assert not (tmp_path / "c" / "segmentor").exists()


@pytest.mark.parametrize("flag", ["--conditional", "--model mlp"])
def test_pairs_are_refused_for_conditional_and_mlp_runs(squares, tmp_path, capsys, flag):
    images, masks = squares
    assert _train_pairs(images, masks, tmp_path / "r", *flag.split()) != 0
    assert "--pairs trains an unconditional dcgan or fastgan" in capsys.readouterr().err
