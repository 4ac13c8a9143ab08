"""MedMNIST v2 / MedMNIST+ 2D sets, read straight from their ``.npz`` files.

The files are the ones the ``medmnist`` package downloads (``{name}.npz`` for 28x28,
``{name}_{size}.npz`` for the 64/128/224 MedMNIST+ versions), looked up in ``root``, or
in ``$MEDGAN_DATA_DIR`` and then ``~/.medmnist`` (the package's default folder), so an
existing download is reused. Missing files are fetched from the official Zenodo record.
The ``medmnist`` package itself is not needed. Licences are per set (CC BY 4.0 for most,
CC BY-NC 4.0 for DermaMNIST); cite Yang et al., Scientific Data 10, 41 (2023).
"""

from __future__ import annotations

import os
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from medgan.data.imageset import ImageSet
from medgan.errors import MedganError
from medgan.io.arrays import npz_array
from medgan.io.output import publish_mode

ZENODO_URL = "https://zenodo.org/records/10519652/files/{file}?download=1"
SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")
DOWNLOAD_TIMEOUT = 20.0  # seconds without data before giving up (offline machines)

_ORGANS = ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
           "liver", "lung-left", "lung-right", "pancreas", "spleen"]
# Class names of the 2D sets (from the MedMNIST v2 paper / the medmnist package's INFO).
CLASS_NAMES: dict[str, list[str]] = {
    "pathmnist": ["adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
                  "normal colon mucosa", "cancer-associated stroma",
                  "colorectal adenocarcinoma epithelium"],
    "chestmnist": ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule",
                   "pneumonia", "pneumothorax", "consolidation", "edema", "emphysema",
                   "fibrosis", "pleural", "hernia"],
    "dermamnist": ["actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
                   "benign keratosis-like lesions", "dermatofibroma", "melanoma",
                   "melanocytic nevi", "vascular lesions"],
    "octmnist": ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "retinamnist": ["grade 0", "grade 1", "grade 2", "grade 3", "grade 4"],
    "breastmnist": ["malignant", "normal, benign"],
    "bloodmnist": ["basophil", "eosinophil", "erythroblast", "immature granulocytes",
                   "lymphocyte", "monocyte", "neutrophil", "platelet"],
    "tissuemnist": ["collecting duct, connecting tubule", "distal convoluted tubule",
                    "glomerular endothelial cells", "interstitial endothelial cells",
                    "leukocytes", "podocytes", "proximal tubule segments",
                    "thick ascending limb"],
    "organamnist": _ORGANS,
    "organcmnist": _ORGANS,
    "organsmnist": _ORGANS,
}
MEDMNIST_2D: tuple[str, ...] = tuple(CLASS_NAMES)


def parse_medmnist_name(spec: str) -> tuple[str, int]:
    """Split ``"pneumoniamnist"`` / ``"pneumoniamnist_64"`` into ``(name, size)``.

    Raises:
        MedganError: not a 2D MedMNIST name or size.
    """
    name, _, suffix = spec.strip().lower().partition("_")
    if name not in MEDMNIST_2D:
        raise MedganError(f"unknown MedMNIST set {spec!r}", hint=f"use one of {', '.join(MEDMNIST_2D)}")
    if not suffix:
        return name, 28
    if not suffix.isdigit() or int(suffix) not in SIZES:
        raise MedganError(f"unknown MedMNIST size in {spec!r}",
                          hint=f"use {name} (28x28) or {name}_64, {name}_128, {name}_224")
    return name, int(suffix)


def is_medmnist_name(spec: str) -> bool:
    """Whether ``spec`` names a 2D MedMNIST set, e.g. ``"pneumoniamnist"`` or ``"pneumoniamnist_64"``."""
    try:
        parse_medmnist_name(spec)
    except (MedganError, AttributeError):
        return False
    return True


def _file_name(name: str, size: int) -> str:
    return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


def _folders(root: str | os.PathLike | None) -> list[Path]:
    """Where to look, in order; the first is where a download goes."""
    if root is not None:
        return [Path(root).expanduser()]
    folders = []
    if os.environ.get("MEDGAN_DATA_DIR"):
        folders.append(Path(os.environ["MEDGAN_DATA_DIR"]).expanduser())
    folders.append(Path.home() / ".medmnist")
    return folders


def medmnist_file(name: str, size: int = 28, root: str | os.PathLike | None = None,
                  download: bool = True) -> Path:
    """Path of a MedMNIST ``.npz``, downloading it from Zenodo if it is not there yet.

    Args:
        name: a 2D set name (see :data:`MEDMNIST_2D`).
        size: 28, 64, 128 or 224.
        root: folder to use; default ``$MEDGAN_DATA_DIR`` then ``~/.medmnist``.
        download: fetch the file when missing.

    Raises:
        MedganError: unknown set or size, or the file is missing and could not be fetched
            (the message names the file, the folder to put it in and the URL).
    """
    name, _ = parse_medmnist_name(name)
    if size not in SIZES:
        raise MedganError(f"unknown MedMNIST size {size}", hint=f"use one of {', '.join(map(str, SIZES))}")
    file = _file_name(name, size)
    folders = _folders(root)
    for folder in folders:
        if (folder / file).is_file():
            return folder / file

    target = folders[0] / file
    url = ZENODO_URL.format(file=file)
    remedy = f"download {url} and save it as {target}"
    if not download:
        raise MedganError(f"MedMNIST file {file} not found", path=target, hint=f"{remedy} (or allow downloading)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _download(url, target)
    except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
        raise MedganError(f"MedMNIST file {file} not found and downloading it failed ({exc})",
                          path=target, hint=remedy) from None
    return target


def _download(url: str, target: Path) -> None:
    """Fetch ``url`` to a temporary file beside ``target``, then rename (no half files)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        if not zipfile.is_zipfile(tmp):
            raise ValueError("the download is not an npz archive")
        publish_mode(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_medmnist(name: str, split: str = "train", size: int = 28, root: str | os.PathLike | None = None,
                  download: bool = True, grey: bool = False) -> ImageSet:
    """Load one split of a 2D MedMNIST set.

    Args:
        name: set name, e.g. ``"pneumoniamnist"``; ``"pneumoniamnist_64"`` also selects the size.
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: 28, 64, 128 or 224 (ignored when ``name`` carries a size).
        root, download: see :func:`medmnist_file`.
        grey: convert RGB sets to one grey channel (ITU-R BT.601 luma).

    Returns:
        An :class:`ImageSet` of float32 images in 0..255: ``(N, H, W)`` for grey sets,
        ``(N, 3, H, W)`` for RGB ones unless ``grey``; labels ``(N,)`` int64 (``None``
        for the multi-label ChestMNIST); no groups (MedMNIST has no patient ids).

    Raises:
        MedganError: unknown set/split, missing file, unreadable file or missing keys.
    """
    base, named_size = parse_medmnist_name(name)
    if "_" in name:
        size = named_size
    if split not in SPLITS:
        raise MedganError(f"unknown MedMNIST split {split!r}", hint=f"use one of {', '.join(SPLITS)}")
    path = medmnist_file(base, size=size, root=root, download=download)
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            if f"{split}_images" not in keys or f"{split}_labels" not in keys:
                raise MedganError(
                    f"no {split}_images/{split}_labels arrays (found: {', '.join(keys) or 'none'})",
                    path=path, hint="this is not a MedMNIST npz; delete it to download it again",
                )
            # a downloaded archive: each member's header checked before it is loaded
            images = npz_array(npz, f"{split}_images", path, stack=True)
            labels = npz_array(npz, f"{split}_labels", path)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise MedganError(f"cannot read the MedMNIST file ({exc})", path=path,
                          hint="delete it to download it again") from None

    if images.ndim == 4 and images.shape[-1] == 3:  # (N, H, W, 3) RGB
        if grey:
            images = images.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32)
        else:
            images = np.moveaxis(images, -1, 1)  # (N, 3, H, W)
    elif images.ndim != 3:
        raise MedganError(f"unexpected {split}_images shape {images.shape}", path=path,
                          hint="expected (N, H, W) or (N, H, W, 3); delete the file to download it again")
    images = np.ascontiguousarray(images, dtype=np.float32)

    class_names = CLASS_NAMES[base]
    extra = {"split": split, "size": size, "file": str(path),
             "citation": "Yang et al., MedMNIST v2, Scientific Data 10, 41 (2023)"}
    if labels.ndim == 2 and labels.shape[1] > 1:  # ChestMNIST: (N, 14) multi-hot
        extra["multi_label"] = f"{labels.shape[1]} binary labels not loaded: {', '.join(class_names)}"
        out_labels, out_names = None, None
    else:
        out_labels = labels.reshape(len(labels)).astype(np.int64)
        n_classes = max(len(class_names), int(out_labels.max(initial=-1)) + 1)
        out_names = class_names + [f"class {i}" for i in range(len(class_names), n_classes)]
    return ImageSet(
        images=images,
        labels=out_labels,
        class_names=out_names,
        groups=None,
        sources=[f"{path.name} {split}[{i}]" for i in range(len(images))],
        value_range=(0.0, 255.0),
        units=None,
        name=base if size == 28 else f"{base}_{size}",
        extra=extra,
    )
