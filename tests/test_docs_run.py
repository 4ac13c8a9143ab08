"""Every command the README and the docs pages show runs, in the order a reader meets it, on
tiny stand-ins for the folders it names.

A page's fenced commands run one after the other in one folder (the README first, then the
docs pages by name), each through ``medgan.cli.main`` as the shell would call it, with only
what makes it tiny added after it (``--size 32 --steps 2 ...``, ``--n 4``, two GAN steps
for ``augment-eval``). The folders a command names (``ct_folder/``, ``images/`` +
``masks/``, ``/path/to/series/``, ``scan.nii.gz``, ...) are made first as small real DICOM,
NIfTI and PNG files. A run folder a command names (``runs/00001-enhance-dncnn-ct_folder``)
must be one an earlier command made, up to its number: a page that names a run by a model
the command does not train fails here. Each command must exit 0 (``--help``: print and
leave). Flags are parsed in ``test_docs.py``; what every command writes is tested by its
task's own tests.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image as PILImage
from pydicom.uid import generate_uid

from medgan.cli import main
from test_docs import PAGES, shell_lines

#: What a command needs to be tiny, after its own flags (argparse keeps the last value).
TRAIN = ["--size", "32", "--steps", "2", "--batch-size", "4", "--log-every", "1", "--sample-every", "2",
         "--checkpoint-every", "2", "--n-samples", "4", "--seed", "0", "--no-progress"]
TINY = {
    # the main job on 40 small phantoms instead of the brain slices, as tests/test_cli.py runs
    # it: the Inception features of its real floor take seconds instead of minutes
    "demo": [*TRAIN, "--eval-n", "8", "--data", "phantom", "--n-images", "40", "--holdout", "0.25"],
    "generate": ["--n", "4"],
    "evaluate": ["--n", "8"],
    "audit": ["--n", "8"],
    "augment-eval": ["--size", "32", "--fractions", "0.5", "--seeds", "0", "--gan-steps", "2", "--classifier-steps", "2",
                     "--batch-size", "4", "--gan-width", "8", "--classifier-width", "8", "--no-progress", "--overwrite",
                     "--conditions", "classical,classical+synthetic"],
}

#: Commands shown but not run here, each with the test that covers what it does.
NOT_RUN = {
    "torchrun": "DDP on gloo runs in tests/train/test_ddp.py",
}

RUN_NAME = re.compile(r"^runs/\d{5}-(?P<rest>[^/]+?)/?$")
#: run names that the tiny flags change (the demo's data)
RENAMED = {"demo-dcgan-brain-mri": "demo-dcgan-phantom"}


# ---- the folders the docs name, as tiny real files ----

def _head(size: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A CT head slice in HU: skull, brain, and a little noise; ``k`` moves and resizes it."""
    y, x = np.mgrid[:size, :size] / size - 0.5
    r = np.hypot(y / (0.38 + 0.01 * (k % 4)), x / (0.32 + 0.01 * (k % 3)))
    hu = np.where(r < 1.0, 1000.0, -1000.0)
    hu[r < 0.9] = 35.0 + 5 * (k % 2)
    return hu + rng.normal(0, 5, hu.shape)


def _dicom_series(write_ct_slice, folder: Path, n: int, rng: np.random.Generator, volumes: int = 1) -> None:
    """``volumes`` CT series of ``n`` slices each (a hold-out split needs several)."""
    for v in range(volumes):
        uid, study, frame = generate_uid(), generate_uid(), generate_uid()
        for k in range(n):
            write_ct_slice(folder / f"IM{v}{k:03d}.dcm", _head(40, k + v, rng), z=2.0 * k, series_uid=uid, instance=k + 1,
                           study_uid=study, frame_of_reference=frame)


def _pngs(folder: Path, n: int, rng: np.random.Generator, level: float = 90.0) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        pixels = np.clip(_head(32, i, rng) / 1000.0 * 60 + level, 0, 255).astype(np.uint8)
        PILImage.fromarray(pixels).save(folder / f"img{i:02d}.png")


def make_world(root: Path, write_ct_slice) -> None:
    rng = np.random.default_rng(0)
    for name in ("path/to/dicom_folder", "path/to/folder", "ct_folder", "normals", "normal_scans", "noisy_scans",
                 "clean_scans", "site_b"):
        _dicom_series(write_ct_slice, root / name, 8, rng, volumes=3)
    for name in ("path/to/series", "path/to/new", "new_scans", "site_b_normals"):
        _dicom_series(write_ct_slice, root / name, 6, rng)
    # images/ + masks/: bright squares on noise, masks 0/255 of the same names
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i in range(16):
        side, y, x = rng.integers(6, 14), rng.integers(0, 16), rng.integers(0, 16)
        mask = np.zeros((32, 32), np.uint8)
        mask[y : y + side, x : x + side] = 255
        pixels = np.clip(rng.normal(60, 15, (32, 32)) + (mask > 0) * 120, 0, 255).astype(np.uint8)
        PILImage.fromarray(pixels).save(root / "images" / f"case{i:02d}.png")
        PILImage.fromarray(mask).save(root / "masks" / f"case{i:02d}.png")
    for name in ("more_scans", "real_folder", "synthetic_folder"):
        _pngs(root / name, 12, rng)
    for name in ("labelled_folder", "my_labelled_folder", "folder_with_one_subfolder_per_class"):
        for label, level in (("normal", 70.0), ("lesion", 150.0)):
            _pngs(root / name / label, 12, rng, level)
    # a NIfTI volume, and a scan folder whose label volume marks every third slice
    volume = np.stack([_head(32, k, rng) for k in range(12)], axis=-1).astype(np.float32)
    affine = np.diag([1.5, 1.5, 2.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), root / "scan.nii.gz")
    (root / "scan").mkdir()
    (root / "some_masks").mkdir()
    nib.save(nib.Nifti1Image(volume, affine), root / "scan" / "scan.nii.gz")
    labels = np.zeros(volume.shape, np.uint8)
    labels[8:24, 10:22, ::3] = 1
    nib.save(nib.Nifti1Image(labels, affine), root / "some_masks" / "scan.nii.gz")
    # MedMNIST: the npz layout of pneumoniamnist.npz, where medgan looks ($MEDGAN_DATA_DIR)
    medmnist = {f"{split}_images": rng.integers(0, 255, (8, 28, 28), dtype=np.uint8) for split in ("train", "val", "test")}
    medmnist.update({f"{split}_labels": rng.integers(0, 2, (8, 1), dtype=np.uint8) for split in ("train", "val", "test")})
    (root / "medmnist").mkdir()
    np.savez(root / "medmnist" / "pneumoniamnist.npz", **medmnist)
    # a config file for --config: the keys of config.json
    (root / "my.yaml").write_text("data:\n  source: phantom\nloop:\n  batch_size: 4\n")


# ---- running a page ----

class Shell:
    """Runs each page's commands in a folder of its own (a reader may start at any page) and
    remembers the run folders they made, so a page can name a run an earlier page made (the
    main job's)."""

    def __init__(self, base: Path, write_ct_slice):
        self.base = base
        self.write_ct_slice = write_ct_slice
        self.root = base
        self.made: list[Path] = []  # run folders in the order commands made them

    def page(self, name: str) -> Path:
        self.root = self.base / name
        self.root.mkdir()
        make_world(self.root, self.write_ct_slice)
        return self.root

    def resolve(self, word: str) -> str:
        """``runs/00001-enhance-dncnn-ct_folder`` -> the last run an earlier command made whose
        name after its number is the same (a bare ``/path/to/x`` is made relative to root)."""
        match = RUN_NAME.match(word)
        if match and not (self.root / word).exists():
            rest = RENAMED.get(match["rest"], match["rest"])
            same = [run for run in self.made if run.name.split("-", 1)[-1] == rest]
            if not same:
                made = ", ".join(run.name for run in self.made) or "none"
                raise AssertionError(f"{word}: no earlier command made a run of that name (made: {made})")
            return str(same[-1])
        return word[1:] if word.startswith("/path/to/") else word

    def run(self, line: str, capsys) -> None:
        words = shlex.split(line)
        start = words.index("medgan") + 1
        argv = [self.resolve(word) for word in words[start:]]
        argv = [re.sub(r"(\w):\d+", r"\1:2", a) if i and argv[i - 1] == "--labels" else a for i, a in enumerate(argv)]
        if "--help" in argv:
            with pytest.raises(SystemExit) as stop:
                main(argv)
            assert stop.value.code == 0, line
            return
        if argv[0] in ("train", "demo"):
            tiny = list(TINY.get(argv[0], TRAIN))
            if "--resume" in argv:  # the run it resumes did 2 steps; its data and size are its own
                tiny = ["--steps", "4", "--no-progress"]
            if "fastgan" in argv:  # its smallest size
                tiny += ["--size", "64"]
            if "phantom" in argv:  # 40 phantoms, not 256: the realism figures' Inception features take seconds
                tiny += ["--n-images", "40"]
            argv += tiny
        else:
            argv += TINY.get(argv[0], [])
        before = set((self.root / "runs").glob("*")) if (self.root / "runs").is_dir() else set()
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, f"{line}\n  ran as: medgan {shlex.join(argv)}\n{err[-2000:]}"
        after = set((self.root / "runs").glob("*")) if (self.root / "runs").is_dir() else set()
        self.made += sorted(after - before)


@pytest.fixture(scope="module")
def shell(tmp_path_factory, ct_slice_writer) -> Shell:
    return Shell(tmp_path_factory.mktemp("docs"), ct_slice_writer)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_command_of_the_page_runs(page, shell, capsys, monkeypatch):
    monkeypatch.chdir(shell.page(page.stem))
    monkeypatch.setenv("MEDGAN_DATA_DIR", str(shell.root / "medmnist"))
    lines = [part for line in shell_lines(page) for part in re.split(r"\s*&&\s*", line)]
    ran = 0
    for line in lines:
        words = shlex.split(line)
        if "medgan" not in words or (words[0] == "python" and words[1:3] != ["-m", "medgan"]) or words[0] == "pip":
            continue
        if words[0] in NOT_RUN:
            continue
        shell.run(line, capsys)
        ran += 1
    assert ran or page.name not in ("README.md",), "the README shows no command"
