#!/usr/bin/env python
"""Build ``medgan/datasets/data/brain_mri_<size>.npz``, the embedded ``brain-mri`` slices.

Two freely redistributable T1-weighted brain templates are sliced into 64x64 (``--size
64``, the default) or 128x128 (``--size 128``) images in the three radiological
orientations, with grey/white-matter label maps:

- subject 0, **MNI ICBM152 2009c nonlinear symmetric** (1 mm, brain-extracted), shipped in
  the nilearn wheel (``nilearn/datasets/data/mni_icbm152_{t1,gm,wm}_tal_nlin_sym_09a_converted.nii.gz``).
  Masks: argmax of (background = 1 - gm - wm, gm, wm) tissue probabilities, i.e. a tissue
  wins where it is the most likely class (which implies p > 1/3; CSF counts as background).
- subject 1, **Colin27** (Holmes et al. 1998, the ``ch2`` T1 in MRIcron's templates), shipped
  in Debian's ``mricron-data`` package. The image is ``ch2.nii.gz`` inside a brain mask made
  from ``ch2bet.nii.gz`` (closed and hole-filled, because ch2bet's mask has gaps along the
  midline). Masks: a 3-class Otsu split of brain intensities gives CSF | grey | white
  thresholds ``t1 < t2``; white = brain, ``I > t2`` and outside the AAL deep grey nuclei
  (hippocampus, amygdala, caudate, putamen, pallidum, thalamus); grey = the rest of the
  brain with ``I > t1``; CSF-dark voxels stay background. The AAL atlas (Tzourio-Mazoyer
  et al. 2002) was drawn on this very brain; its cortical labels are generous (they reach
  well into white matter), so only its deep nuclei are used, where T1 intensity alone
  confuses grey with white matter.

Display convention (radiological): axial and coronal slices have anterior / superior up
and the patient's right on the image left; sagittal slices have superior up and anterior
on the left. Each volume is cropped to its brain bounding box per orientation (one box for
all slices, so sizes stay anatomical), padded to a square and resized with antialiasing.
Slices whose brain covers < 5 % of the square *at 64x64* are skipped: the rule is always
evaluated at 64, so every size holds the same slices in the same order (slice ``i`` of
the 128 set is slice ``i`` of the 64 set, resampled from the same crop box, only
sharper). Label maps are made at the output size the same way at every size. Intensities
are scaled per volume so that the 99.5th percentile of brain voxels is 255.

Usage (on a fresh machine it fetches its inputs with pip and apt)::

    python scripts/build_brain_mri.py                # brain_mri_64.npz
    python scripts/build_brain_mri.py --size 128     # brain_mri_128.npz
    python scripts/build_brain_mri.py --nilearn-wheel nilearn-0.14.1-py3-none-any.whl \
        --mricron-deb mricron-data_1.2.20211006+dfsg-4_all.deb
    python scripts/build_brain_mri.py --mni-dir .../nilearn/datasets/data --colin-dir .../mricron/templates
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_multiotsu
from skimage.transform import resize

NILEARN_VERSION = "0.14.1"
MNI_FILES = {k: f"mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")}
COLIN_FILES = ("ch2.nii.gz", "ch2bet.nii.gz", "aal.nii.gz")
# AAL labels of the deep grey nuclei: hippocampus, amygdala, caudate, putamen, pallidum, thalamus (L/R).
AAL_DEEP_GREY = (37, 38, 41, 42, 71, 72, 73, 74, 75, 76, 77, 78)
ORIENTATIONS = ("axial", "coronal", "sagittal")
SIZES = (64, 128)  # the sizes built (and embedded: medgan.datasets.brain_mri.EMBEDDED_SIZES)
SELECT_SIZE = 64  # the size at which slices are selected, whatever the output size
MIN_FOREGROUND = 0.05  # fraction of the SELECT_SIZE square the brain must cover
PERCENTILE = 99.5
MARGIN = 2  # voxels of background kept around the brain's bounding box
DATA_DIR = Path(__file__).resolve().parents[1] / "medgan" / "datasets" / "data"


def out_path(size: int) -> Path:
    """Where the set of one size is written by default."""
    return DATA_DIR / f"brain_mri_{size}.npz"


# --------------------------------------------------------------------------- fetching
def fetch_mni(wheel: Path | None, work: Path) -> Path:
    """Unzip the three MNI files from the nilearn wheel (downloaded if not given)."""
    if wheel is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                        f"nilearn=={NILEARN_VERSION}", "-d", str(work)], check=True)
        wheel = next(work.glob(f"nilearn-{NILEARN_VERSION}-*.whl"))
    out = work / "mni"
    out.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in MNI_FILES.values():
            (out / name).write_bytes(zf.read(f"nilearn/datasets/data/{name}"))
    return out


def fetch_colin(deb: Path | None, work: Path) -> Path:
    """Extract MRIcron's templates from the mricron-data .deb (downloaded if not given)."""
    if deb is None:
        subprocess.run(["apt-get", "download", "mricron-data"], cwd=work, check=True)
        deb = next(work.glob("mricron-data_*.deb"))
    out = work / "deb"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(out)], check=True)
    return out / "usr" / "share" / "mricron" / "templates"


# --------------------------------------------------------------------------- volumes
def load_ras(path: Path) -> np.ndarray:
    """Load a NIfTI volume as float32 reoriented to RAS+ voxel axes."""
    img = nib.as_closest_canonical(nib.load(str(path)))
    zooms = img.header.get_zooms()[:3]
    if not np.allclose(zooms, 1.0):
        raise SystemExit(f"{path}: expected 1 mm voxels, got {zooms}")
    return np.asarray(img.dataobj, dtype=np.float32)


def mni_volume(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """T1 and (0 bg, 1 gm, 2 wm) labels of the MNI152 2009c template."""
    t1, gm, wm = (load_ras(folder / MNI_FILES[k]) for k in ("t1", "gm", "wm"))
    gm, wm = gm / 255.0, wm / 255.0
    bg = np.clip(1.0 - gm - wm, 0.0, 1.0)
    labels = np.argmax(np.stack([bg, gm, wm]), axis=0).astype(np.uint8)
    return t1, labels


def colin_volume(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Brain-extracted T1 and (0 bg/CSF, 1 gm, 2 wm) labels of Colin27 (see module doc)."""
    t1, bet, aal = (load_ras(folder / name) for name in COLIN_FILES)
    # ch2bet is ch2 times a brain mask whose midline has streaky gaps: close and fill it.
    brain = ndimage.binary_closing(bet > 0, structure=ndimage.generate_binary_structure(3, 1), iterations=3)
    brain = ndimage.binary_fill_holes(brain)
    brain &= ndimage.binary_dilation(bet > 0, iterations=4)  # closing must not grow outward
    image = np.where(brain, t1, 0.0).astype(np.float32)
    t_csf, t_wm = threshold_multiotsu(t1[brain], classes=3)
    deep_grey = np.isin(aal, AAL_DEEP_GREY)
    white = brain & (t1 > t_wm) & ~deep_grey
    grey = brain & (t1 > t_csf) & ~white
    labels = np.zeros(t1.shape, np.uint8)
    labels[grey] = 1
    labels[white] = 2
    return image, labels


# --------------------------------------------------------------------------- slicing
def radiological(vol: np.ndarray, orientation: str, index: int) -> np.ndarray:
    """One slice of a RAS+ volume as displayed radiologically, rows top to bottom."""
    if orientation == "axial":  # rows: anterior -> posterior, cols: patient right -> left
        return vol[::-1, ::-1, index].T
    if orientation == "coronal":  # rows: superior -> inferior, cols: right -> left
        return vol[::-1, index, ::-1].T
    return vol[index, ::-1, ::-1].T  # sagittal rows: superior -> inferior, cols: anterior -> posterior


AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def fit_square(img: np.ndarray, box: tuple[slice, slice], order: int, size: int) -> np.ndarray:
    """Crop to ``box``, pad to a centred square and resize to ``size`` with antialiasing."""
    crop = img[box]
    h, w = crop.shape
    side = max(h, w) + 2 * MARGIN
    top, left = (side - h) // 2, (side - w) // 2
    square = np.zeros((side, side), np.float32)
    square[top:top + h, left:left + w] = crop
    return resize(square, (size, size), order=order, anti_aliasing=order > 0,
                  preserve_range=True, mode="constant").astype(np.float32)


def slices(image: np.ndarray, labels: np.ndarray, subject: int, name: str, size: int) -> dict[str, list]:
    """All kept ``size`` x ``size`` slices of one volume, in the three orientations (kept:
    by the SELECT_SIZE rule, so that every size keeps the same slices)."""
    brain = image > 0
    scale = 255.0 / np.percentile(image[brain], PERCENTILE)
    out: dict[str, list] = {k: [] for k in ("images", "masks", "orientation", "slice_index", "sources")}
    for o, orientation in enumerate(ORIENTATIONS):
        axis = AXIS[orientation]
        # One bounding box per orientation: the brain's projection along the slice axis.
        proj = radiological(brain.any(axis=axis, keepdims=True), orientation, 0)
        rows, cols = np.nonzero(proj)
        box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
        for index in range(image.shape[axis]):
            fg = fit_square(radiological(brain, orientation, index).astype(np.float32), box, 1, SELECT_SIZE)
            if (fg > 0.5).mean() < MIN_FOREGROUND:
                continue
            img = fit_square(radiological(image, orientation, index) * scale, box, 1, size)
            # Labels: resize one-hot channels smoothly and take the argmax, so boundaries
            # are as smooth as the image's instead of nearest-neighbour staircases.
            lab = radiological(labels, orientation, index)
            onehot = np.stack([fit_square((lab == k).astype(np.float32), box, 1, size) for k in range(3)])
            onehot[0] += 1e-3  # ties (empty padding) go to background
            out["images"].append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
            out["masks"].append(np.argmax(onehot, axis=0).astype(np.uint8))
            out["orientation"].append(o)
            out["slice_index"].append(index)
            out["sources"].append(f"{name} {orientation} {'xyz'[axis]}={index}")
    out["subject"] = [subject] * len(out["images"])
    return out


def meta(size: int) -> dict:
    """The set's description, stored as ``meta_json`` (the 64 set's text is unchanged)."""
    return {
        "name": "brain-mri",
        "description": f"{size}x{size} T1-weighted brain MRI slices (axial, coronal, sagittal) of two "
                       "brain-extracted templates, radiological display, with grey/white-matter masks.",
        "subjects": [
            {"id": 0, "name": "MNI152-2009c",
             "source": "MNI ICBM152 2009c nonlinear symmetric T1 + GM/WM probability maps, via nilearn "
                       f"{NILEARN_VERSION} (nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz)",
             "attribution": "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal "
                            "Neurological Institute, McGill University. Fonov et al., NeuroImage 47 S102 (2009); "
                            "Fonov et al., NeuroImage 54(1) 313-327 (2011).",
             "masks": "argmax(1 - gm - wm, gm, wm) of the tissue probability maps"},
            {"id": 1, "name": "Colin27",
             "source": "ch2.nii.gz, ch2bet.nii.gz, aal.nii.gz from Debian mricron-data (MRIcron templates, "
                       "Chris Rorden, BSD-3-clause)",
             "attribution": "Holmes et al., J Comput Assist Tomogr 22(2) 324-333 (1998); AAL atlas: "
                            "Tzourio-Mazoyer et al., NeuroImage 15(1) 273-289 (2002).",
             "masks": "3-class Otsu on brain intensities; white = above the white threshold outside the AAL "
                      "deep grey nuclei; grey = other brain voxels above the CSF threshold"},
        ],
        "display": "radiological: axial/coronal anterior/superior up, patient right on image left; "
                   "sagittal superior up, anterior left",
        "intensity": f"uint8, per volume {PERCENTILE}th percentile of brain voxels = 255",
        "licence": "see medgan/datasets/data/NOTICE",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nilearn-wheel", type=Path, help=f"local nilearn-{NILEARN_VERSION} wheel")
    parser.add_argument("--mricron-deb", type=Path, help="local mricron-data .deb")
    parser.add_argument("--mni-dir", type=Path, help="folder holding the three MNI .nii.gz files")
    parser.add_argument("--colin-dir", type=Path, help="folder holding ch2, ch2bet and aal .nii.gz")
    parser.add_argument("--size", type=int, default=64, choices=SIZES, help="image side in pixels (default 64)")
    parser.add_argument("--out", type=Path, help="output file (default medgan/datasets/data/brain_mri_<size>.npz)")
    args = parser.parse_args(argv)
    out = args.out or out_path(args.size)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mni_dir = args.mni_dir or fetch_mni(args.nilearn_wheel, work)
        colin_dir = args.colin_dir or fetch_colin(args.mricron_deb, work)
        parts = [slices(*mni_volume(mni_dir), 0, "MNI152-2009c", args.size),
                 slices(*colin_volume(colin_dir), 1, "Colin27", args.size)]

    data = {k: sum((p[k] for p in parts), []) for k in parts[0]}
    arrays = {
        "images": np.stack(data["images"]),
        "masks": np.stack(data["masks"]),
        "orientation": np.asarray(data["orientation"], np.int64),
        "class_names": np.asarray(ORIENTATIONS),
        "mask_names": np.asarray(["background", "grey matter", "white matter"]),
        "mask_valid": np.ones(len(data["images"]), bool),
        "subject": np.asarray(data["subject"], np.int64),
        "slice_index": np.asarray(data["slice_index"], np.int64),
        "sources": np.asarray(data["sources"]),
        "meta_json": np.asarray([json.dumps(meta(args.size))]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    counts = {f"{s}/{o}": int(((arrays["subject"] == i) & (arrays["orientation"] == j)).sum())
              for i, s in enumerate(("MNI", "Colin")) for j, o in enumerate(ORIENTATIONS)}
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), {len(arrays['images'])} slices: {counts}")


if __name__ == "__main__":
    main()
