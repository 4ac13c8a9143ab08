"""Image encoders: images -> latent codes, the inverse direction of a DCGAN generator.

f-AnoGAN (Schlegl et al. 2019) trains one to map an image to the ``z`` a frozen generator
needs to redraw it; GANomaly (Akcay et al. 2018) uses two, before and after its decoder.
Both are the DCGAN discriminator's convolutions (:func:`medgan.nets.dcgan.down_layers`,
same widths and normalisation options) with a linear head of ``z_dim`` outputs instead of
one logit, so that an encoder and the generator it inverts share one :class:`DCGANConfig`.
"""

from __future__ import annotations

import torch
from torch import nn

from medgan.nets.common import init_dcgan_weights
from medgan.nets.dcgan import DCGANConfig, down_layers

__all__ = ["ImageEncoder"]


class ImageEncoder(nn.Module):
    """Images ``(B, C, S, S)`` -> codes ``(B, z_dim)``.

    Args:
        config: the pair's shape; ``d_norm`` and ``spectral_norm`` apply as in the discriminator.
        bounded: squash codes with tanh (a latent prior on [-1, 1], f-AnoGAN's choice);
            ``False`` leaves them linear, for a Gaussian prior.
    """

    def __init__(self, config: DCGANConfig, bounded: bool = False):
        super().__init__()
        self.config = config
        self.bounded = bounded
        self.features = nn.Sequential(*down_layers(config))
        self.fc = nn.Linear(config.channels_at(0) * config.base * config.base, config.z_dim)
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.fc(self.features(x).flatten(1))  # (B, z_dim)
        return torch.tanh(z) if self.bounded else z
