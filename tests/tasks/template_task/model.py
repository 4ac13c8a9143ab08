"""The template task's model apart from its training (what medgan/tasks/<name>/model.py holds):
its networks, how they are built from an export, and the typed record ``load_model`` returns.
The recipe, the evaluation and the command import this module; it imports none of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError


# ----------------------------------------------------------------------------- networks
# (in a real task these live in medgan/nets/, which holds networks only)


class Generator(nn.Module):
    """z (B, z_dim) -> image (B, 1, S, S) in [-1, 1]."""

    def __init__(self, z_dim: int, hidden: int, size: int):
        super().__init__()
        self.size = size
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, size * size), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, self.size, self.size)


class Critic(nn.Module):
    """image -> score (B,); ``features`` is the hidden layer (f-AnoGAN's feature residual)."""

    def __init__(self, hidden: int, size: int):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(size * size, hidden), nn.LeakyReLU(0.2))
        self.head = nn.Linear(hidden, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)


class Encoder(nn.Module):
    """image -> z (B, z_dim), bounded like the latents G saw."""

    def __init__(self, z_dim: int, hidden: int, size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(size * size, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, z_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _build(name: str, net: dict[str, int]) -> nn.Module:
    if name == "generator":
        return Generator(net["z_dim"], net["hidden"], net["image_size"])
    if name == "critic":
        return Critic(net["hidden"], net["image_size"])
    if name == "encoder":
        return Encoder(net["z_dim"], net["hidden"], net["image_size"])
    raise MedganError(f"the template task has no network named {name!r}")


# ----------------------------------------------------------------------------- the typed model


@dataclass
class TemplateModel:
    """What :func:`medgan.tasks.load_model` returns for a template run."""

    generator: nn.Module
    encoder: nn.Module
    critic: nn.Module
    intensity: IntensityMap
    kappa: float
    info: dict[str, Any]

    @torch.no_grad()
    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """``(N, S, S)`` images in data units -> their reconstructions G(E(x)), in data units."""
        x = torch.from_numpy(self.intensity.forward(np.asarray(images, np.float32))[:, None])
        return self.intensity.inverse(self.generator(self.encoder(x)).numpy())[:, 0]

    @torch.no_grad()
    def score(self, images: np.ndarray) -> np.ndarray:
        """Per-image residual score (pixel MSE + κ · critic-feature MSE), batch-independent."""
        x = torch.from_numpy(self.intensity.forward(np.asarray(images, np.float32))[:, None])
        rec = self.generator(self.encoder(x))
        pixel = ((rec - x) ** 2).flatten(1).mean(1)
        feature = ((self.critic.features(rec) - self.critic.features(x)) ** 2).mean(1)
        return (pixel + self.kappa * feature).numpy()


def from_exported(exported: dict[str, tuple[nn.Module, dict[str, Any]]]) -> TemplateModel:
    """The record of a run's loaded networks (``name -> (module, config.json)``)."""
    missing = {"generator", "critic", "encoder"} - set(exported)
    if missing:
        raise MedganError(f"the run exported no {', '.join(sorted(missing))}", hint="give the whole run folder")
    info = exported["generator"][1]
    return TemplateModel(exported["generator"][0], exported["encoder"][0], exported["critic"][0],
                         IntensityMap(**info["intensity"]), float(info["config"]["kappa"]), info)
