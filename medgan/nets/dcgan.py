"""DCGAN (Radford et al. 2016) as ``docs/design.md`` describes it (§3.1, §3.2).

Generator:  z ~ N(0, I) -> fully connected -> (C0, s0, s0) -> [up x2, BN, ReLU]* -> tanh.
Discriminator: image -> [conv stride 2, BN, LeakyReLU]* -> fully connected -> logit.

``s0`` is 4 for sizes 32..256 and 7 for 28 (MNIST/MedMNIST), so every size in
:data:`SIZES` is ``s0 * 2^k``. Channels halve at each upsampling step of G (double at each
downsampling step of D), capped at ``8 * width``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from medgan.nets.common import init_dcgan_weights, maybe_spectral_norm

SIZES = (28, 32, 64, 128, 256)


@dataclass
class DCGANConfig:
    """Shape and options of a DCGAN pair.

    Attributes:
        z_dim: latent size.
        image_size: one of 28, 32, 64, 128, 256.
        channels: image channels.
        width: channels of the widest-resolution layer (G's last hidden, D's first).
        upsample: ``"deconv"`` (transposed convolution 4x4 stride 2) or ``"resize"``
            (nearest x2 then 3x3 convolution, which avoids checkerboard artefacts).
        d_norm: ``"batch"`` (the design's D), ``"layer"`` (layer norm over each sample's (C, H, W):
            a WGAN-GP critic, whose penalty is per sample, must not mix samples) or ``"none"``
            (usual with spectral norm).
        spectral_norm: spectral normalisation on every layer of D.
        leaky_slope: negative slope of D's LeakyReLU.
        num_classes: > 0 makes the pair class-conditional: G with conditional batch norm
            (a per-class gain and bias on every normalisation layer, starting at zero, so a
            new conditional G is the unconditional one), D a projection discriminator
            (Miyato & Koyama 2018). Both scale their class terms by a ``strength`` buffer in
            [0, 1] that the training task can fade in (transitional conditioning).
        mbstd: > 0 gives D a minibatch standard-deviation feature (Karras et al. 2018): the
            spread of its last features over groups of this many images, one extra channel
            before the fully connected layer, so D can tell a batch of look-alikes from a
            real batch (0: off, the design's D).
    """

    z_dim: int = 100
    image_size: int = 64
    channels: int = 1
    width: int = 64
    upsample: str = "deconv"
    d_norm: str = "batch"
    spectral_norm: bool = False
    leaky_slope: float = 0.2
    num_classes: int = 0
    mbstd: int = 0

    def __post_init__(self) -> None:
        if self.mbstd < 0:
            raise ValueError(f"mbstd must be >= 0 (0: off), got {self.mbstd}")
        if self.image_size not in SIZES:
            raise ValueError(f"DCGAN image_size must be one of {SIZES}, got {self.image_size}")
        if self.upsample not in ("deconv", "resize"):
            raise ValueError(f"upsample must be 'deconv' or 'resize', got {self.upsample!r}")
        if self.d_norm not in ("batch", "layer", "none"):
            raise ValueError(f"d_norm must be 'batch', 'layer' or 'none', got {self.d_norm!r}")

    @property
    def base(self) -> int:
        """Side of the first feature map (4, or 7 for 28x28)."""
        return 7 if self.image_size == 28 else 4

    @property
    def steps(self) -> int:
        """Number of x2 resolution steps between ``base`` and ``image_size``."""
        return int(math.log2(self.image_size // self.base))

    def channels_at(self, level: int) -> int:
        """Feature channels at resolution ``base * 2^level`` (0 = coarsest)."""
        return min(self.width * 2 ** (self.steps - 1 - level), self.width * 8)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose affine part depends on the class: ``BN(x) * (1 + s·γ_y) + s·β_y``.

    ``BN`` keeps its own class-independent affine parameters; ``γ_y`` and ``β_y`` start at
    zero, and ``s`` is the ``strength`` buffer (1: fully conditional, 0: unconditional).
    """

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)
        nn.init.zeros_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)
        self.register_buffer("strength", torch.ones(()))

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gain = 1.0 + self.strength * self.gain(labels)[:, :, None, None]  # (B, C, 1, 1)
        return self.bn(x) * gain + self.strength * self.bias(labels)[:, :, None, None]


def _norm(channels: int, num_classes: int) -> nn.Module:
    return ConditionalBatchNorm2d(channels, num_classes) if num_classes else nn.BatchNorm2d(channels)


def set_condition_strength(net: nn.Module, strength: float) -> None:
    """Set the ``strength`` of every class term of ``net`` (0: unconditional .. 1: conditional)."""
    for module in net.modules():
        if isinstance(module, (ConditionalBatchNorm2d, DCGANDiscriminator)):
            module.strength.fill_(strength)


def _up(cin: int, cout: int, mode: str) -> nn.Module:
    if mode == "deconv":
        return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1, bias=False))


class DCGANGenerator(nn.Module):
    """``z (B, z_dim)`` [+ labels] -> images ``(B, C, S, S)`` in [-1, 1]."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = c = config
        c0 = c.channels_at(0)
        self.fc = nn.Linear(c.z_dim, c0 * c.base * c.base, bias=False)
        self.fc_norm = _norm(c0, c.num_classes)
        blocks = []
        for level in range(c.steps - 1):
            cin, cout = c.channels_at(level), c.channels_at(level + 1)
            blocks += [_up(cin, cout, c.upsample), _norm(cout, c.num_classes), nn.ReLU(inplace=True)]
        self.blocks = nn.Sequential(*blocks)  # (up, norm, ReLU) per level
        self.to_image = _up(c.channels_at(c.steps - 1), c.channels, c.upsample)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if c.num_classes and labels is None:
            raise ValueError("a class-conditional generator needs labels")
        norm = (lambda layer, x: layer(x, labels)) if c.num_classes else (lambda layer, x: layer(x))
        x = self.fc(z).view(-1, c.channels_at(0), c.base, c.base)  # (B, C0, s0, s0)
        x = torch.relu(norm(self.fc_norm, x))
        for i in range(0, len(self.blocks), 3):
            up, layer, act = self.blocks[i : i + 3]
            x = act(norm(layer, up(x)))  # (B, C_l, s0·2^l, s0·2^l)
        return torch.tanh(self.to_image(x))  # (B, C, S, S)


def minibatch_std(h: torch.Tensor, group: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, 1, H, W)``: each image's group (``gcd(B, group)`` images in
    a row of the batch) gets the mean over ``(C, H, W)`` of the features' standard deviation
    across the group (ProGAN's minibatch standard deviation)."""
    b, _, height, width = h.shape
    g = math.gcd(b, group)
    grouped = h.float().reshape(g, b // g, *h.shape[1:])  # (G, B/G, C, H, W): image i is in group i mod B/G
    spread = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/G,)
    return spread.to(h.dtype).repeat(g)[:, None, None, None].expand(b, 1, height, width)


def down_layers(c: DCGANConfig) -> list[nn.Module]:
    """D's convolutions: ``(B, C, S, S)`` -> ``(B, channels_at(0), base, base)``, 4x4 stride 2,
    then ``d_norm`` (none on the input layer, as DCGAN) and LeakyReLU at each level."""
    layers: list[nn.Module] = []
    cin = c.channels
    for level in reversed(range(c.steps)):  # finest resolution first
        cout = c.channels_at(level)
        layers.append(maybe_spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=c.d_norm != "batch"), c.spectral_norm))
        if c.d_norm != "none" and level != c.steps - 1:
            layers.append(nn.BatchNorm2d(cout) if c.d_norm == "batch" else nn.GroupNorm(1, cout))  # layer norm over (C, H, W)
        layers.append(nn.LeakyReLU(c.leaky_slope, inplace=True))
        cin = cout
    return layers


class DCGANDiscriminator(nn.Module):
    """Images ``(B, C, S, S)`` [+ labels] -> logits ``(B,)``."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = c = config
        sn = c.spectral_norm
        self.features = nn.Sequential(*down_layers(c))
        features = (c.channels_at(0) + (c.mbstd > 0)) * c.base * c.base
        self.fc = maybe_spectral_norm(nn.Linear(features, 1), sn)
        self.embed = maybe_spectral_norm(nn.Embedding(c.num_classes, features), sn) if c.num_classes else None
        if c.num_classes:
            self.register_buffer("strength", torch.ones(()))  # of the projection term (see set_condition_strength)
        self.apply(init_dcgan_weights)
        if self.embed is not None:  # small, like every other D weight: the projection starts near 0
            weight = self.embed.parametrizations.weight.original if sn else self.embed.weight
            nn.init.normal_(weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)  # (B, C0, s0, s0)
        if self.config.mbstd:
            h = torch.cat([h, minibatch_std(h, self.config.mbstd)], dim=1)  # (B, C0 + 1, s0, s0)
        h = h.flatten(1)  # (B, (C0 [+ 1]) * s0 * s0)
        logit = self.fc(h).squeeze(1)  # (B,)
        if self.embed is not None:  # projection: + s·<embed(y), h>
            logit = logit + self.strength * (self.embed(labels) * h).sum(dim=1)
        return logit
