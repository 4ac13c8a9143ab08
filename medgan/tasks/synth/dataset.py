"""Synthetic images as a PyTorch ``Dataset``, and a mix of real and synthetic images.

``SyntheticDataset(run, n=5000, labels="0:2500,1:2500")`` draws its images from a trained
synthesis run on the fly: item ``i`` is the same image in every process and every epoch
(its latent is seeded by ``(seed, i)``, as in ``medgan generate``, and the generator runs in eval mode, so the batch
it is drawn in does not matter), so a ``DataLoader`` with workers, shuffling or DDP
sampling sees a fixed dataset without writing files. Each process loads the generator on
first use (workers do not inherit it through pickling), and draws ``chunk`` images at a
time, keeping the last chunk.

Items have the layout of :class:`medgan.data.MedicalImageDataset`: ``{"image": (C, H, W)
float32 in [-1, 1], "label": int64, "index": int}`` (``units="data"``: the training data's
own units, e.g. HU), or ``(image, label)`` tuples with ``output="tuple"``, the layout of
torchvision-style datasets. A run trained with ``--pairs`` adds its label map: ``"mask"``
``(H, W)`` int64 in the run's label values (``label_values``, background first), or
``(image, mask)`` tuples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from medgan.errors import MedganError
from medgan.tasks.synth.generate import plan_labels
from medgan.tasks.synth.model import class_names, latents, synthesis_model

__all__ = ["MixedDataset", "SyntheticDataset", "mix_synthetic"]


class SyntheticDataset(Dataset):
    """``n`` images generated from a synthesis run, reproducibly, on demand.

    Args:
        run: run folder made by ``medgan train synth`` (or its ``generator/`` folder).
        n: number of images (``None``: the sum of the counts in ``labels``, else 64).
        labels: which classes for a class-conditional run: a mapping of class names (or
            indices) to counts (``{"normal": 2500, "lesion": 2500}``), a ``medgan generate
            --labels`` spec (``"0:2500,1:2500"``, ``"lesion"``), an array or list of class
            indices (one per item), or ``None`` (all classes in turn). Must be ``None`` for an
            unconditional run.
        seed: item ``i`` of a given seed is always the same image.
        units: ``"model"`` ([-1, 1], as medgan's datasets) or ``"data"`` (the training
            data's units).
        output: ``"dict"`` (medgan's item layout) or ``"tuple"`` (``(image, label)``; label
            ``-1`` for an unconditional run).
        chunk: images drawn per generator pass.
        device: where the generator runs.

    Raises:
        MedganError: not a synthesis run, labels for an unconditional run, an unknown class,
            counts that do not add up to ``n``.
    """

    def __init__(self, run: str | Path, n: int | None = None, labels: str | Mapping[str | int, int] | np.ndarray | None = None, seed: int = 0,
                 units: str = "model", output: str = "dict", chunk: int = 64, device: str = "cpu"):
        if units not in ("model", "data") or output not in ("dict", "tuple"):
            raise MedganError(f"units={units!r}, output={output!r}", hint="units: 'model' or 'data'; output: 'dict' or 'tuple'")
        run = Path(run)
        config = (run if run.name == "generator" else run / "generator") / "config.json"
        if not config.is_file():
            raise MedganError("no exported generator here (generator/config.json)", path=run, hint="give a run folder made by medgan train synth")
        self.info = json.loads(config.read_text())
        self.class_names = class_names(self.info)
        pairs = self.info.get("pairs") or {}
        #: a --pairs run's label values and class names (empty: images alone)
        self.label_values: list[int] = [int(v) for v in pairs.get("label_values", [])]
        self.mask_names: list[str] = list(pairs.get("class_names", []))
        if isinstance(labels, np.ndarray) or isinstance(labels, list):
            labels = np.asarray(labels, dtype=np.int64)
            if not self.class_names or labels.min(initial=0) < 0 or labels.max(initial=0) >= len(self.class_names):
                raise MedganError(f"labels must index the run's {len(self.class_names)} classes", path=run)
            n = len(labels)
        else:
            n, labels = plan_labels(labels, n, self.class_names, run)
        if n < 1:
            raise MedganError(f"n={n} must be at least 1")
        self.run, self.n, self.labels, self.seed = run, n, labels, seed
        self.units, self.output, self.chunk, self.device = units, output, max(1, chunk), device
        self._model = None
        self._cached: tuple[int, torch.Tensor, torch.Tensor | None] | None = None

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict[str, Any]:  # workers load their own generator
        return {**self.__dict__, "_model": None, "_cached": None}

    @torch.no_grad()
    def _draw(self, start: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self._model is None:
            self._model = synthesis_model(self.run, self.device)
        model = self._model
        stop = min(start + self.chunk, self.n)
        z = latents(self.seed, range(start, stop), model.z_dim).to(self.device)
        kwargs = {} if self.labels is None else {"labels": torch.from_numpy(self.labels[start:stop]).to(self.device)}
        drawn = model.generator(z, **kwargs).float().cpu().numpy()  # (B, C [+ K - 1], H, W) in [-1, 1]
        images, masks = model.split(drawn)
        if self.units == "data":
            images = model.intensity.inverse(images)
        return torch.from_numpy(np.ascontiguousarray(images)), None if masks is None else torch.from_numpy(masks)

    def __getitem__(self, index: int):
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} synthetic images")
        index %= self.n
        start = index - index % self.chunk
        if self._cached is None or self._cached[0] != start:
            self._cached = (start, *self._draw(start))
        image, masks = self._cached[1][index - start], self._cached[2]
        mask = None if masks is None else masks[index - start]
        label = -1 if self.labels is None else int(self.labels[index])
        if self.output == "tuple":
            return (image, label) if mask is None else (image, mask)
        item: dict[str, Any] = {"image": image, "index": index}
        if self.labels is not None:
            item["label"] = torch.tensor(label, dtype=torch.int64)
        if mask is not None:
            item["mask"] = mask
        return item


class MixedDataset(Dataset):
    """Real items first, then synthetic ones, each flagged (see :func:`mix_synthetic`)."""

    def __init__(self, real: Dataset, synthetic: Dataset, n_synthetic: int, seed: int = 0):
        if n_synthetic > len(synthetic):
            raise MedganError(f"the mix needs {n_synthetic} synthetic images but the synthetic dataset has {len(synthetic)}",
                              hint="make the SyntheticDataset larger or the synthetic fraction smaller")
        self.real, self.synthetic = real, synthetic
        # a seeded choice of synthetic items (about the synthetic set's class proportions)
        self.picked = np.sort(np.random.default_rng(seed).choice(len(synthetic), n_synthetic, replace=False))

    def __len__(self) -> int:
        return len(self.real) + len(self.picked)

    def __getitem__(self, index: int):
        n_real = len(self.real)
        item = self.real[index] if index < n_real else self.synthetic[int(self.picked[index - n_real])]
        if isinstance(item, dict):
            return {**item, "synthetic": torch.tensor(index >= n_real)}
        return item


def mix_synthetic(real: Dataset, synthetic: Dataset, fraction: float, seed: int = 0) -> MixedDataset:
    """Real and synthetic images in one dataset, ``fraction`` of it synthetic.

    All real items are kept; ``round(len(real) * fraction / (1 - fraction))`` synthetic items
    are added (a seeded choice). Dict items gain ``"synthetic"`` (a bool tensor), so a
    training loop can weight or count them; tuple items are passed through.

    Example:
        >>> train = mix_synthetic(MedicalImageDataset.from_source("my-scans/"), SyntheticDataset("runs/00003-synth", n=2000), 0.5)
    """
    if not 0 <= fraction < 1:
        raise MedganError(f"synthetic fraction {fraction} must be in [0, 1)", hint="e.g. 0.5 for as many synthetic as real images")
    return MixedDataset(real, synthetic, int(round(len(real) * fraction / (1 - fraction))), seed)
