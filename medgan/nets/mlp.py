"""The two-layer MLP GAN of ``docs/design.md`` §5.

    G(z) = tanh(W2 · ReLU(W1 · z + b1) + b2),       z ∈ R^100 -> 28x28 grey
    D(x) = σ(W4 · LeakyReLU(W3 · x + b3) + b4)

``D.forward`` returns the logit ``W4 · LeakyReLU(W3 · x + b3) + b4``; σ is applied inside
the losses (``F.logsigmoid``), which is the same function computed without overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medgan.nets.common import maybe_spectral_norm


@dataclass
class MLPConfig:
    """Sizes of the MLP GAN.

    Attributes:
        z_dim: latent size (100 in docs/design.md).
        image_size: side of the square image (28 in docs/design.md).
        channels: image channels (1: grey).
        hidden: width of the one hidden layer of G and of D.
        leaky_slope: negative slope of D's LeakyReLU.
        spectral_norm: spectral normalisation on D's weights.
        num_classes: > 0 makes G and D class-conditional (label embedding concatenated).
    """

    z_dim: int = 100
    image_size: int = 28
    channels: int = 1
    hidden: int = 256
    leaky_slope: float = 0.2
    spectral_norm: bool = False
    num_classes: int = 0


class MLPGenerator(nn.Module):
    """G(z) = tanh(W2 · ReLU(W1 · z + b1) + b2), reshaped to ``(B, C, S, S)``."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.num_classes, c.z_dim) if c.num_classes else None
        self.fc1 = nn.Linear(c.z_dim * (2 if c.num_classes else 1), c.hidden)  # W1, b1
        self.fc2 = nn.Linear(c.hidden, c.channels * c.image_size**2)  # W2, b2

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = torch.tanh(self.fc2(torch.relu(self.fc1(z))))  # (B, C*S*S)
        c = self.config
        return x.view(-1, c.channels, c.image_size, c.image_size)


class MLPDiscriminator(nn.Module):
    """Logit of D(x) = σ(W4 · LeakyReLU(W3 · x + b3) + b4); returns ``(B,)``."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        self.config = config
        c = config
        inputs = c.channels * c.image_size**2
        self.embed = nn.Embedding(c.num_classes, inputs) if c.num_classes else None
        self.fc3 = maybe_spectral_norm(nn.Linear(inputs * (2 if c.num_classes else 1), c.hidden), c.spectral_norm)  # W3, b3
        self.fc4 = maybe_spectral_norm(nn.Linear(c.hidden, 1), c.spectral_norm)  # W4, b4

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = x.flatten(1)  # (B, C*S*S)
        if self.embed is not None:
            x = torch.cat([x, self.embed(labels)], dim=1)
        h = nn.functional.leaky_relu(self.fc3(x), self.config.leaky_slope)
        return self.fc4(h).squeeze(1)  # (B,) logits
