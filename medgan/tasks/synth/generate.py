"""Sampling from a trained generator and writing the images in a medical format.

Images come out in the training data's own units (the run's :class:`IntensityMap`
inverts the [-1, 1] of tanh), e.g. Hounsfield units for CT, so a synthetic CT opens in a
viewer with the right window. DICOM and NIfTI outputs follow :mod:`medgan.io`'s rules:
new UIDs, no patient identifiers, marked as synthetic.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from PIL import Image as PILImage

from medgan import __version__
from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.io import write_dicom, write_nifti, write_npz, write_png
from medgan.io.output import atomic_dir
from medgan.io.records import read_jsonl, utc_now
from medgan.tasks.synth.model import class_names, draw, synthesis_model

FORMATS = ("png", "npz", "dcm", "nii")


def plan_labels(spec: str | Mapping[str | int, int] | None, n: int | None, class_names: list[str],
                run: str | Path | None = None) -> tuple[int, np.ndarray | None]:
    """How many images of which class ``--labels`` (or its Python form) asks for.

    Args:
        spec: ``None`` (a conditional run: all classes in turn), one class (``lesion`` or
            ``1``: all images of it), classes with counts (``0:2500,1:2500``,
            ``normal:100,lesion:300``, or the mapping ``{"normal": 100, "lesion": 300}``
            whose keys are names or indices) or classes without counts (split evenly).
        n: the number of images asked for (``None``: the counts' sum, else 64).
        class_names: the run's classes, in index order (empty: unconditional).
        run: named in errors.

    Returns:
        ``(n, labels)``: labels ``(n,)`` int64 grouped by class in the order given, or
        ``None`` for an unconditional run.

    Raises:
        MedganError: labels for an unconditional run, an unknown class, a class named
            twice, counts that do not add up to ``n``, a spec of another type.
    """
    known = ", ".join(f"{i} {name}" for i, name in enumerate(class_names))
    if spec is not None and not isinstance(spec, (str, Mapping)):
        raise MedganError(f"labels of type {type(spec).__name__} ({spec!r})",
                          hint='give "normal:8,tumour:8", a mapping such as {"normal": 8, "tumour": 8}, or an array of class indices')
    if not class_names:
        if spec:
            raise MedganError("this generator is not class-conditional, so --labels has no meaning", path=run,
                              hint="train with --conditional on labelled data to generate chosen classes")
        return (64 if n is None else n), None
    if not spec:
        n = 64 if n is None else n
        return n, np.arange(n, dtype=np.int64) % len(class_names)
    if isinstance(spec, Mapping):  # the Python form of "name:count,...": the same checks below
        parts = [f"{name}:{count}" for name, count in spec.items()]
        spec = ",".join(parts)
    else:
        parts = [part.strip() for part in spec.split(",") if part.strip()]
    counted = [":" in part for part in parts]
    if any(counted) and not all(counted):
        raise MedganError(f"--labels {spec!r} gives counts for some classes only", hint="write CLASS:COUNT for every class, or no counts")
    indices, counts = [], []
    for part in parts:
        name, _, count = part.rpartition(":") if ":" in part else (part, "", "")
        index = class_names.index(name) if name in class_names else int(name) if name.isdigit() and int(name) < len(class_names) else None
        if index is None:
            raise MedganError(f"--labels names class {name!r}, which this run does not have", path=run, hint=f"its classes: {known}")
        if index in indices:
            raise MedganError(f"--labels names class {class_names[index]!r} twice", hint=f"give each class once; its classes: {known}")
        if count and not (count.isdigit() and int(count) > 0):
            raise MedganError(f"--labels count {count!r} for class {name!r} is not a positive whole number")
        indices.append(index)
        counts.append(int(count) if count else None)
    if counts[0] is None:  # no counts: split n evenly, the first classes taking the remainder
        n = 64 if n is None else n
        counts = [n // len(indices) + (i < n % len(indices)) for i in range(len(indices))]
    total = sum(counts)
    if n is not None and total != n:
        raise MedganError(f"--labels counts add up to {total}, not --n {n}", hint="make them add up, or leave out --n")
    return total, np.repeat(np.asarray(indices, np.int64), counts)


@torch.no_grad()
def sample(run: str | Path, n: int | None = None, seed: int = 0, labels: str | Mapping[str | int, int] | np.ndarray | None = None,
           batch_size: int = 256, device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, dict]:
    """Draw images from a run's exported generator (its EMA weights when trained with EMA).

    Args:
        run: run folder (or its ``generator/`` folder).
        n: number of images (``None``: the sum of the counts in ``labels``, else 64).
        seed: the same seed gives the same images.
        labels: for a class-conditional generator, a ``--labels`` spec or a mapping of
            classes to counts (see :func:`plan_labels`), or an array of class indices;
            default all classes in turn.
        batch_size: images per forward pass.
        device: where to run G.

    Returns:
        ``(images, labels, masks, info)``: ``(N, H, W)`` (or ``(N, C, H, W)``) float32 in the
        data's units, ``(N,)`` labels or ``None``, the label maps ``(N, H, W)`` of a ``--pairs``
        run (in its label values) or ``None``, and the generator's ``config.json``.
    """
    if n is not None and n < 1:
        raise MedganError(f"--n {n} must be at least 1")
    model = synthesis_model(run, device)
    if isinstance(labels, np.ndarray):
        if model.num_classes == 0 or labels.min(initial=0) < 0 or labels.max(initial=0) >= model.num_classes:
            raise MedganError(f"labels must index the run's {model.num_classes} classes", path=run)
        n = len(labels)
    else:
        n, labels = plan_labels(labels, n, model.class_names or [str(k) for k in range(model.num_classes)], run)
    drawn = draw(model.generator, model.z_dim, n, seed, labels, batch_size, device)  # (N, C [+ K - 1], H, W) in [-1, 1]
    images, masks = model.split(drawn)
    images = model.intensity.inverse(images)
    return (images[:, 0] if images.shape[1] == 1 else images), labels, masks, model.info


def class_folder(name: str) -> str:
    """A class name as a folder name (path separators and odd characters become ``_``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "_", name).strip(" .")
    return cleaned or "class"


def write_images(images: np.ndarray, out: str | Path, fmt: str, info: dict, labels: np.ndarray | None = None,
                 overwrite: bool = False, manifest: dict | None = None, masks: np.ndarray | None = None) -> Path:
    """Write generated images to a new folder ``out`` (atomically: all or nothing).

    ``png``: one 8-bit file per image over the data's nominal range; ``npz``: one
    ``images.npz`` in the MedMNIST layout (``train_images`` in the data's units,
    ``train_labels`` ``(N, 1)``, ``class_names``); ``dcm``: one synthetic Secondary
    Capture per image, one new series per class; ``nii``: one 2D NIfTI per image. With
    labels, the png/dcm/nii files go to one subfolder per class (named after it), which
    medgan and torchvision's ``ImageFolder`` read back as labels. ``manifest`` is written
    beside them as ``manifest.json``.

    With ``masks`` (the label maps of a ``--pairs`` run, ``(N, H, W)`` in its label values),
    the png/dcm/nii images go to ``images/`` and their label maps, of the same names, to
    ``masks/`` (PNG label maps, a DICOM SEG per synthetic image, NIfTI label maps), which
    ``medgan train segment --data out/images --masks out/masks`` reads back; npz adds
    ``train_masks``.
    """
    if fmt not in FORMATS:
        raise MedganError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    intensity = IntensityMap(**info["intensity"])
    value_range = (intensity.low, intensity.high)
    width = max(5, len(str(len(images) - 1)))
    names = class_names(info)
    pairs = info.get("pairs") or {}
    if masks is not None and labels is not None:
        raise MedganError("image-label pairs come from unconditional runs: no class labels with masks")
    with atomic_dir(out, overwrite) as tmp:
        if manifest is not None:
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        root = tmp if masks is None or fmt == "npz" else tmp / "images"
        folder = (lambda i: root) if labels is None else (lambda i: root / class_folder(names[labels[i]]))
        if root != tmp:
            root.mkdir()
            (tmp / "masks").mkdir()
        if labels is not None:
            for k in np.unique(labels):
                (tmp / class_folder(names[k])).mkdir()
        if fmt == "npz":
            arrays = {"train_images": images.astype(np.float32), "value_range": np.asarray(value_range, np.float64)}
            if intensity.units is not None:
                arrays["units"] = np.asarray(intensity.units, dtype=str)
            if labels is not None:
                arrays.update(train_labels=labels.astype(np.int64)[:, None], class_names=np.asarray(names, dtype=str))
            if masks is not None:
                arrays.update(train_masks=masks.astype(np.int64), mask_names=np.asarray(pairs["class_names"], dtype=str))
            write_npz(tmp / "images.npz", **arrays)
        elif fmt == "dcm":
            import pydicom.uid

            study = pydicom.uid.generate_uid()
            series = {k: pydicom.uid.generate_uid() for k in ([None] if labels is None else np.unique(labels))}
            modality = "CT" if intensity.units == "HU" else "OT"
            model = f"{info.get('model', '')} generator, step {info.get('step')}"  # never the training data's path
            for i, image in enumerate(images):
                k = None if labels is None else labels[i]
                what = "medgan synthetic" if k is None else f"medgan synthetic, class {names[k]}"
                path = write_dicom(folder(i) / f"synthetic-{i:0{width}d}.dcm", image, series_uid=series[k], study_uid=study,
                                   instance_number=i + 1, modality=modality, description=what[:64],
                                   derived_from_model=model, rescale_to=value_range)
                if masks is not None:
                    _write_pair_seg(tmp / "masks" / path.name, masks[i], path, pairs, model)
        else:
            for i, image in enumerate(images):
                name = folder(i) / f"synthetic-{i:0{width}d}"
                if fmt == "png":
                    write_png(name.with_suffix(".png"), image if image.ndim == 2 else np.moveaxis(image, 0, -1), value_range=value_range)
                else:
                    write_nifti(name.with_suffix(".nii.gz"), image)
                if masks is not None:  # the label map, in the run's label values, under the image's name
                    label_map = masks[i].astype(np.uint8 if max(pairs["label_values"]) < 256 else np.uint16)
                    mask = tmp / "masks" / name.name
                    if fmt == "png":
                        PILImage.fromarray(label_map).save(mask.with_suffix(".png"))
                    else:
                        write_nifti(mask.with_suffix(".nii.gz"), label_map, dtype=label_map.dtype)
    return Path(out)


def _write_pair_seg(path: Path, labels: np.ndarray, image: Path, pairs: dict, model: str) -> None:
    """The DICOM SEG of one generated label map, referencing its synthetic image (no patient)."""
    import pydicom

    from medgan.data.labels import to_indices
    from medgan.io.seg import write_seg

    names = pairs["class_names"]
    write_seg(path, to_indices(labels[None], pairs["label_values"], str(path)), [pydicom.dcmread(image)], names,
              algorithm="medgan generator", parameters={"generator": model[:64]}, model_name=model,
              content_description="Synthetic label map by medgan", series_description=f"medgan synthetic label map ({', '.join(names[1:])})")


def manifest(run: str | Path, info: dict, *, seed: int, fmt: str, labels: np.ndarray | None) -> dict:
    """What a folder of generated images came from: its generator (step and weight hash), the
    run's config hash, the seed, per-class counts, and the run's latest realism figures and
    memorisation-audit verdict (``None`` where not evaluated / audited yet).

    The run is named by those hashes, never by its path: a run folder is named after the
    training data's folder, which may name the patient (:mod:`medgan.privacy`)."""
    run = Path(run)
    run = run.parent if run.name == "generator" else run
    names = class_names(info)
    digest = lambda path: hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None  # noqa: E731
    records = read_jsonl(run / "metrics.jsonl")
    latest = {kind: next((r for r in reversed(records) if r.get("kind") == kind and r.get("task", "synth") == "synth"), None)
              for kind in ("evaluate", "audit")}
    evaluation = latest["evaluate"]
    audit = latest["audit"]
    return {
        "medgan_version": __version__,
        "created": utc_now(),
        "synthetic": True,
        "generator": {"step": info.get("step"), "weights": "EMA" if info.get("ema") else "raw",
                      "sha256": digest(run / "generator" / "model.safetensors")},
        "config_sha256": digest(run / "config.json"),
        "seed": seed,
        "format": fmt,
        "classes": None if labels is None else {names[k]: int((labels == k).sum()) for k in range(len(names)) if (labels == k).any()},
        "class_index": {name: k for k, name in enumerate(names)} or None,
        "label_maps": info.get("pairs"),  # a --pairs run: the label values and class names of masks/
        "metrics": None if evaluation is None else {"step": evaluation.get("step"), "time": evaluation.get("time"),
                                                    "figures": evaluation.get("metrics"), "real_floor": evaluation.get("floor")},
        "audit": None if audit is None else {"time": audit.get("time"), "fraction_flagged": audit.get("fraction_flagged"),
                                             "quantile": audit.get("quantile"),
                                             "verdict": "near-copies above the held-out rate" if audit["fraction_flagged"] > audit["quantile"]
                                             else "no more near-copies than real images of other patients"},
    }
