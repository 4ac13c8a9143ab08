"""The synthesis model apart from its training: the typed record of an exported generator,
how it is loaded, and how images are drawn from it.

:mod:`.recipe` (training), :mod:`.evaluate`, :mod:`.audit`, :mod:`.generate` and
:mod:`.dataset` import this module; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError

__all__ = ["SynthesisModel", "class_names", "draw", "from_exported", "latents", "synthesis_model"]


@dataclass
class SynthesisModel:
    """A trained synthesis generator, ready to sample from (see :func:`medgan.tasks.load_model`).

    Attributes:
        generator: G in eval mode: ``G(z, labels=None) -> (B, C, H, W)`` in [-1, 1].
        z_dim: latent size.
        num_classes: classes of a conditional G (0: unconditional); ``class_names`` their names.
        intensity: maps [-1, 1] back to the training data's units.
        info: the export's ``config.json`` (model, net, step, source ...).
    """

    generator: nn.Module
    z_dim: int
    num_classes: int
    class_names: list[str]
    intensity: IntensityMap
    info: dict[str, Any]


def from_exported(exported: dict[str, tuple[nn.Module, dict[str, Any]]]) -> SynthesisModel:
    """The record of a run's loaded networks (``name -> (module, config.json)``); the
    generator is rebuilt from the model registry (:meth:`medgan.train.task.GANTask.build_network`)."""
    if "generator" not in exported:
        raise MedganError("the run exported no generator", hint="give the run folder of medgan train synth")
    G, info = exported["generator"]
    net = info.get("net") or {}
    if "z_dim" not in net or not isinstance(info.get("intensity"), dict):
        raise MedganError("the generator's config.json lacks 'net.z_dim' or 'intensity'", hint="export the run again with this medgan")
    classes = int(net.get("num_classes", 0) or 0)
    return SynthesisModel(G, int(net["z_dim"]), classes, list(info.get("class_names") or [])[:classes] if classes else [],
                          IntensityMap(**info["intensity"]), info)


def synthesis_model(run: str | Path, device: str | torch.device = "cpu") -> SynthesisModel:
    """The :class:`SynthesisModel` of a run (one clear error for a run of another task)."""
    from medgan.tasks import load_model_of

    return load_model_of(SynthesisModel, run, device, "medgan train synth")


def class_names(info: dict) -> list[str]:
    """The class names of an exported generator's ``config.json`` (``[]``: unconditional)."""
    k = int((info.get("net") or {}).get("num_classes", 0) or 0)
    return (list(info.get("class_names") or []) + [str(i) for i in range(k)])[:k] if k else []


def latents(seed: int, indices, z_dim: int) -> torch.Tensor:
    """``(len(indices), z_dim)`` latents; row ``i`` is a function of ``(seed, i)`` only, so an
    image does not depend on the batch or the process it is drawn in."""
    return torch.stack([torch.randn(z_dim, generator=torch.Generator().manual_seed(seed * 1_000_003 + int(i))) for i in indices])


@torch.no_grad()
def draw(G: torch.nn.Module, z_dim: int, n: int, seed: int = 0, labels: np.ndarray | None = None,
         batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
    """``n`` images of ``G`` in [-1, 1], ``(N, C, H, W)``, from the latents :func:`latents`
    gives ``seed`` (image ``i`` is :class:`~medgan.tasks.synth.dataset.SyntheticDataset`'s item ``i``)."""
    out = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        z = latents(seed, range(start, start + m), z_dim).to(device)
        kwargs = {} if labels is None else {"labels": torch.from_numpy(np.asarray(labels[start : start + m])).to(device)}
        out.append(G(z, **kwargs).float().cpu().numpy())
    return np.concatenate(out)
