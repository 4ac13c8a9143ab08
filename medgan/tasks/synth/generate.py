"""Sampling from a trained generator and writing the images in a medical format.

Images come out in the training data's own units (the run's :class:`IntensityMap`
inverts the [-1, 1] of tanh), e.g. Hounsfield units for CT, so a synthetic CT opens in a
viewer with the right window. DICOM and NIfTI outputs follow :mod:`medgan.io`'s rules:
new UIDs, no patient identifiers, marked as synthetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from medgan import __version__
from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.io import write_dicom, write_nifti, write_npz, write_png
from medgan.io.output import atomic_dir

FORMATS = ("png", "npz", "dcm", "nii")


@torch.no_grad()
def sample(run: str | Path, n: int, seed: int = 0, label: int | str | None = None, batch_size: int = 256,
           device: str = "cpu") -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Draw ``n`` images from a run's exported generator (its EMA weights when trained with EMA).

    Args:
        run: run folder (or its ``generator/`` folder).
        n: number of images.
        seed: the same seed gives the same images.
        label: class index or name for a class-conditional generator (default: cycle through classes).
        batch_size: images per forward pass.
        device: where to run G.

    Returns:
        ``(images, labels, info)``: ``(N, H, W)`` (or ``(N, C, H, W)``) float32 in the data's
        units, ``(N,)`` labels or ``None``, and the generator's ``config.json``.
    """
    if n < 1:
        raise MedganError(f"--n {n} must be at least 1")
    model = synthesis_model(run, device)
    classes = model.class_names
    labels = None
    if model.num_classes > 0:
        if label is None:
            labels = np.arange(n) % model.num_classes
        else:
            index = classes.index(label) if isinstance(label, str) and label in classes else int(label) if str(label).isdigit() else None
            if index is None or not 0 <= index < model.num_classes:
                raise MedganError(f"unknown class {label!r}", hint=f"use one of {', '.join(classes) or range(model.num_classes)}")
            labels = np.full(n, index)
    elif label is not None:
        raise MedganError("this generator is not class-conditional, so --label has no meaning", path=run)
    images = draw(model.generator, model.z_dim, n, seed, labels, batch_size, device)  # (N, C, H, W) in [-1, 1]
    images = model.intensity.inverse(images)
    return (images[:, 0] if images.shape[1] == 1 else images), labels, model.info


def synthesis_model(run: str | Path, device: str | torch.device = "cpu"):
    """The :class:`~medgan.tasks.synth.recipe.SynthesisModel` of a run (one clear error for
    a run of another task)."""
    from medgan.tasks import load_model
    from medgan.tasks.synth.recipe import SynthesisModel

    model = load_model(run, device)
    if not isinstance(model, SynthesisModel):
        raise MedganError(f"not a synthesis model (task {model.info.get('task')!r})", path=run,
                          hint="give a run folder made by medgan train synth")
    return model


@torch.no_grad()
def draw(G: torch.nn.Module, z_dim: int, n: int, seed: int = 0, labels: np.ndarray | None = None,
         batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
    """``n`` images of ``G`` in [-1, 1], ``(N, C, H, W)``, from latents seeded by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        z = torch.randn(m, z_dim, generator=gen).to(device)
        kwargs = {} if labels is None else {"labels": torch.from_numpy(np.asarray(labels[start : start + m])).to(device)}
        out.append(G(z, **kwargs).float().cpu().numpy())
    return np.concatenate(out)


def write_images(images: np.ndarray, out: str | Path, fmt: str, info: dict, labels: np.ndarray | None = None,
                 overwrite: bool = False) -> Path:
    """Write generated images to a new folder ``out`` (atomically: all or nothing).

    ``png``: one 8-bit file per image over the data's nominal range; ``npz``: one
    ``images.npz`` with ``images`` (data units) and ``labels``; ``dcm``: one synthetic
    Secondary Capture per image, all in one new series; ``nii``: one 2D NIfTI per image.
    """
    if fmt not in FORMATS:
        raise MedganError(f"unknown format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    intensity = IntensityMap(**info["intensity"])
    value_range = (intensity.low, intensity.high)
    width = max(5, len(str(len(images) - 1)))
    with atomic_dir(out, overwrite) as tmp:
        if fmt == "npz":
            arrays = {"images": images.astype(np.float32)}
            if labels is not None:
                arrays["labels"] = labels.astype(np.int64)
            write_npz(tmp / "images.npz", **arrays)
        elif fmt == "dcm":
            import pydicom.uid

            series, study = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
            modality = "CT" if intensity.units == "HU" else "OT"
            for i, image in enumerate(images):
                write_dicom(tmp / f"synthetic-{i:0{width}d}.dcm", image, series_uid=series, study_uid=study, instance_number=i + 1,
                            modality=modality, description=f"medgan synthetic ({info.get('source', '')})",
                            derived_from_model=f"medgan {__version__} {info.get('model', '')} generator", rescale_to=value_range)
        else:
            for i, image in enumerate(images):
                name = tmp / f"synthetic-{i:0{width}d}"
                if fmt == "png":
                    write_png(name.with_suffix(".png"), image if image.ndim == 2 else np.moveaxis(image, 0, -1), value_range=value_range)
                else:
                    write_nifti(name.with_suffix(".nii.gz"), image)
    return Path(out)
