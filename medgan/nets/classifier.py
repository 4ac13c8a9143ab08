"""An image classifier for the downstream tests of synthetic data: a ResNet-18.

The network is MONAI's ``ResNet`` (basic blocks, layers 2-2-2-2; He et al. 2016) with
``spatial_dims`` as an argument and the channel widths as a parameter: a 1-channel CT or MRI
slice goes in, one logit per class comes out. The stem is ImageNet's (7x7 stride-2
convolution, then max pooling) for inputs of 64 pixels and more, and a 3x3 stride-1
convolution without pooling for smaller ones (MedMNIST's 28x28), so the last stage still
sees a few pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["ClassifierConfig", "ResNetClassifier"]


@dataclass
class ClassifierConfig:
    """Attributes:
        channels: input channels (1 for grey images).
        num_classes: output logits.
        image_size: input side (picks the stem).
        width: channels of the first stage (64 in the ResNet paper; stages double it).
        spatial_dims: 2 for slices, 3 for volumes.
    """

    channels: int = 1
    num_classes: int = 2
    image_size: int = 64
    width: int = 32
    spatial_dims: int = 2


class ResNetClassifier(nn.Module):
    """``(B, C, H, W)`` in [-1, 1] -> logits ``(B, num_classes)``."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        from monai.networks.nets import ResNet

        small = config.image_size < 64
        self.config = config
        self.net = ResNet("basic", [2, 2, 2, 2], [config.width * 2**i for i in range(4)], spatial_dims=config.spatial_dims,
                          n_input_channels=config.channels, conv1_t_size=3 if small else 7, conv1_t_stride=1 if small else 2,
                          no_max_pool=small, num_classes=config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
