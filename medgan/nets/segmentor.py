"""The segmentation network: MONAI's 2D/3D residual U-Net.

MONAI's ``UNet`` (Kerfoot et al. 2018: residual units, strided convolutions down,
transposed convolutions up, batch norm), as its spleen and BraTS tutorials configure it:
channels ``width * 2**i`` over ``depth + 1`` levels, two residual units per level. It maps
an image to one logit per class and pixel; the softmax over classes is the prediction.
``spatial_dims`` is an argument (2 for slices, 3 for volumes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SegmentorConfig", "UNetSegmentor"]


@dataclass
class SegmentorConfig:
    """Attributes:
        channels: input channels (1 for grey images).
        num_classes: output channels, background included.
        width: channels of the first level (each level doubles it; 16 is MONAI's tutorials'
            and the segment task's default, the measured best per CPU-second).
        depth: stride-2 levels (4: inputs must be multiples of 16).
        res_units: residual units per level.
        dropout: dropout probability inside the units.
        spatial_dims: 2 for slices, 3 for volumes.
    """

    channels: int = 1
    num_classes: int = 2
    width: int = 16
    depth: int = 4
    res_units: int = 2
    dropout: float = 0.0
    spatial_dims: int = 2

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this."""
        return 2**self.depth


class UNetSegmentor(nn.Module):
    """``(B, C, H, W)`` in [-1, 1] -> logits ``(B, num_classes, H, W)``."""

    def __init__(self, config: SegmentorConfig):
        super().__init__()
        from monai.networks.layers import Norm
        from monai.networks.nets import UNet

        self.config = config
        self.net = UNet(spatial_dims=config.spatial_dims, in_channels=config.channels, out_channels=config.num_classes,
                        channels=tuple(config.width * 2**i for i in range(config.depth + 1)), strides=(2,) * config.depth,
                        num_res_units=config.res_units, norm=Norm.BATCH, dropout=config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
