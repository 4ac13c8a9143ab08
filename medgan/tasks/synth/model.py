"""The synthesis model apart from its training: the typed record of an exported generator,
how it is loaded, and how images are drawn from it.

:mod:`.recipe` (training), :mod:`.evaluate`, :mod:`.audit`, :mod:`.generate` and
:mod:`.dataset` import this module; it imports none of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.data.intensity import IntensityMap
from medgan.data.labels import decode_label_channels
from medgan.errors import MedganError

__all__ = ["SynthesisModel", "class_names", "draw", "export_discriminator", "from_exported", "latents", "load_discriminator",
           "synthesis_model"]


@dataclass
class SynthesisModel:
    """A trained synthesis generator, ready to sample from (see :func:`medgan.tasks.load_model`).

    Attributes:
        generator: G in eval mode: ``G(z, labels=None) -> (B, C, H, W)`` in [-1, 1].
        z_dim: latent size.
        num_classes: classes of a conditional G (0: unconditional); ``class_names`` their names.
        intensity: maps [-1, 1] back to the training data's units.
        info: the export's ``config.json`` (model, net, step, source ...).
        label_values / label_names: a ``--pairs`` run's label-map classes (value and name of
            each, background first), whose foreground channels G draws after the image's
            ``image_channels``; empty for a generator of images alone.
    """

    generator: nn.Module
    z_dim: int
    num_classes: int
    class_names: list[str]
    intensity: IntensityMap
    info: dict[str, Any]
    label_values: list[int] = field(default_factory=list)
    label_names: list[str] = field(default_factory=list)

    @property
    def image_channels(self) -> int:
        return int(self.info.get("channels") or 1)

    @property
    def pairs(self) -> bool:
        """Whether G draws a label map beside each image."""
        return bool(self.label_values)

    def split(self, drawn: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """G's output ``(N, C [+ K - 1], H, W)`` -> ``(images (N, C, H, W), label maps
        (N, H, W) of label values or None)``."""
        if not self.pairs:
            return drawn, None
        c = self.image_channels
        index = decode_label_channels(torch.from_numpy(np.ascontiguousarray(drawn[:, c:]))).numpy()
        return drawn[:, :c], np.asarray(self.label_values, np.int64)[index]


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
    pairs = info.get("pairs") or {}
    return SynthesisModel(G, int(net["z_dim"]), classes, list(info.get("class_names") or [])[:classes] if classes else [],
                          IntensityMap(**info["intensity"]), info, [int(v) for v in pairs.get("label_values", [])],
                          list(pairs.get("class_names", [])))


def synthesis_model(run: str | Path, device: str | torch.device = "cpu") -> SynthesisModel:
    """The :class:`SynthesisModel` of a run (one clear error for a run of another task)."""
    from medgan.tasks import load_model_of

    return load_model_of(SynthesisModel, run, device, "medgan train synth")


def export_discriminator(run: str | Path) -> Path:
    """Write a synthesis run's discriminator beside its generator, as ``RUN/discriminator/``
    (config.json + model.safetensors), from the run's last training state.

    A synthesis run exports only G (what inference needs); D lives in the training states
    ``checkpoints/training-state-*.pt``, read here with ``weights_only=True`` (no pickle), so
    take D out before the states are deleted. D has no EMA copy: its weights are those of the
    last saved step (the exported G is the EMA copy when the run has one).

    Raises:
        MedganError: no exported generator, no training state, or a state without a discriminator.
    """
    from medgan.nets import build_network
    from medgan.train.checkpoint import export_network, latest_checkpoint, load_checkpoint, upgrade_state

    run = Path(run)
    generator = run / "generator" / "config.json"
    if not generator.is_file():
        raise MedganError("no exported generator here (generator/config.json)", path=run, hint="give a run folder made by medgan train synth")
    state_file = latest_checkpoint(run)
    if state_file is None:
        raise MedganError("no training state to take the discriminator from (checkpoints/training-state-*.pt)", path=run,
                          hint="train the run again and keep its checkpoints")
    state = upgrade_state(load_checkpoint(state_file))
    weights = state["networks"].get("discriminator")
    if weights is None:
        raise MedganError("the training state holds no discriminator", path=state_file, hint="the run was trained without an adversary")
    info = {k: v for k, v in json.loads(generator.read_text()).items() if k != "medgan_version"}
    D = build_network(info["model"], info["net"], "discriminator")
    D.load_state_dict(weights)
    return export_network(run / "discriminator", D, {**info, "network": "discriminator", "step": int(state["step"]), "ema": False})


def load_discriminator(run: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """``(D in eval mode, its config.json)`` of a run's ``discriminator/`` export (see
    :func:`export_discriminator`): ``D(x, labels=None) -> (B,)`` logits of images ``(B, C, H, W)``
    in [-1, 1]."""
    from medgan.nets import build_network
    from medgan.train.checkpoint import is_export, load_network

    folder = Path(run) / "discriminator"
    if not is_export(folder):
        raise MedganError("no exported discriminator here (discriminator/config.json + model.safetensors)", path=run,
                          hint="export it with medgan.tasks.synth.model.export_discriminator before the run's checkpoints are deleted")
    return load_network(folder, lambda info: build_network(info["model"], info["net"], "discriminator"), device)


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
