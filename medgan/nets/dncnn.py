"""DnCNN (Zhang et al. 2017): a plain residual denoising CNN, the learned baseline beside the
U-Net.

    x (B, C, H, W) -> conv 3x3, ReLU -> [conv 3x3, norm, ReLU] * (layers - 2) -> conv 3x3 -> r
    y = clamp(x + r, -1, 1)

No down-sampling: the receptive field is ``2 * layers + 1`` pixels (35 for the paper's 17
layers), every layer works at full resolution, and any image size goes through (``multiple``
is 1). Trained with L2 on the residual it is the standard "plain learned denoiser" of the
literature. The residual head starts at zero (the network starts as the identity), like the
U-Net's (:mod:`medgan.nets.unet`), and the output clamp is the same straight-through one.
The config carries the PatchGAN fields so the same network can also be trained with an
adversary (``build_pair``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medgan.nets.patchgan import NORMS, PairedGANConfig, norm_layer
from medgan.nets.unet import straight_through_clamp


@dataclass
class DnCNNConfig(PairedGANConfig):
    """Shape of the DnCNN denoiser.

    Attributes:
        layers: convolutions in all (17 in the paper for Gaussian denoising at a known level).
        width: feature channels of the hidden layers (64 in the paper).
        norm: normalisation of the middle layers (``"batch"`` in the paper, ``"instance"``, ``"none"``).
    """

    layers: int = 17
    width: int = 64
    norm: str = "batch"

    def __post_init__(self) -> None:
        if self.layers < 2:
            raise ValueError(f"DnCNN needs at least 2 layers, got {self.layers}")
        if self.norm not in NORMS:
            raise ValueError(f"DnCNN norm must be one of {NORMS}, got {self.norm!r}")
        if self.in_channels != self.out_channels:
            raise ValueError(f"DnCNN predicts a residual: in_channels ({self.in_channels}) must equal out_channels ({self.out_channels})")

    @property
    def multiple(self) -> int:
        return 1


class DnCNNGenerator(nn.Module):
    """Noisy ``(B, C, H, W)`` in [-1, 1] -> denoised ``(B, C, H, W)`` in [-1, 1]."""

    def __init__(self, config: DnCNNConfig):
        super().__init__()
        self.config = c = config
        bias = c.norm == "none"
        body: list[nn.Module] = [nn.Conv2d(c.in_channels, c.width, 3, padding=1), nn.ReLU()]
        for _ in range(c.layers - 2):
            body += [nn.Conv2d(c.width, c.width, 3, padding=1, bias=bias), norm_layer(c.norm, c.width), nn.ReLU()]
        self.body = nn.Sequential(*body)
        self.head = nn.Conv2d(c.width, c.out_channels, 3, padding=1)
        for m in self.modules():  # He init for the ReLU layers, as in the paper
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.zeros_(self.head.weight)  # start as the identity
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"DnCNNGenerator expects (B, {self.config.in_channels}, H, W) images, got shape {tuple(x.shape)}")
        return straight_through_clamp(x + self.head(self.body(x)))  # (B, C, H, W)
