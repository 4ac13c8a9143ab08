"""FastGAN (Liu et al., ICLR 2021, "Towards Faster and Stabilized GAN Training for
High-fidelity Few-shot Image Synthesis"): a generator/discriminator pair for small data
that scales from 64 to 256 px.

Generator: z -> 4x4 (transposed conv, BN, GLU) -> [nearest x2, 3x3 conv, BN, GLU (a second
conv at 8, 32 and 128 px)]* -> 3x3 conv -> tanh. Skip-layer excitation (SLE) lets a coarse
map gate the channels of a map 8x finer: 8 -> 64, 16 -> 128, 32 -> 256 px, as many links
as the image size allows.

Discriminator: image -> 3x3 conv -> down blocks (a 4x4 stride-2 conv path averaged with an
average-pool path) to 8x8, with SLE from each map onto the one 8x coarser (64 -> 8,
128 -> 16, 256 -> 32) -> a 4x4 conv to 5x5 patch logits, averaged to one logit per image.
D is also trained as an auto-encoder of the real images (the paper's self-supervision):
one decoder rebuilds the whole image from D's 8x8 features, another a random quadrant from
the matching quarter of its 16x16 features. The paper scores the rebuilt images with LPIPS,
which needs downloaded weights; here the reconstruction loss is L1.

Left out of the paper's design: the noise injection of G (images would no longer be a
function of z alone, and ``medgan generate --seed`` must repeat itself) and D's second,
low-resolution branch.

Channels depend on the feature map's resolution, not on the output size: ``width`` at
32x32, twice as many per halving up to ``8 * width``, half as many per doubling down to 8,
so each level costs about the same and a 128 or 256 px model adds only thin layers at the
fine levels. At width 32 and 128 px, G has 3.2M weights (two thirds in its first layer)
and D 0.78M; G needs about twice the multiply-adds per image of medgan's DCGAN at width 32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from medgan.nets.common import init_dcgan_weights, maybe_spectral_norm

SIZES = (64, 128, 256)
#: SLE links of G, fine resolution -> the coarse one that gates it (D's run the other way).
G_LINKS = {64: 8, 128: 16, 256: 32}


@dataclass
class FastGANConfig:
    """Shape and options of a FastGAN pair.

    Attributes:
        z_dim: latent size.
        image_size: one of 64, 128, 256.
        channels: image channels.
        width: feature channels at 32x32 (see :meth:`channels_at`).
        spectral_norm: spectral normalisation on every convolution of G and D (as the paper).
        num_classes: must be 0: the pair is unconditional (the field exists because the
            synthesis task passes ``--conditional`` through it).
    """

    z_dim: int = 256
    image_size: int = 64
    channels: int = 1
    width: int = 32
    spectral_norm: bool = True
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.image_size not in SIZES:
            raise ValueError(f"FastGAN image_size must be one of {SIZES}, got {self.image_size}")
        if self.num_classes:
            raise ValueError("fastgan is unconditional; use --model dcgan for --conditional")
        if self.width < 1 or self.z_dim < 1 or self.channels < 1:
            raise ValueError(f"width, z_dim and channels must be positive, got {self.width}, {self.z_dim}, {self.channels}")

    def channels_at(self, resolution: int) -> int:
        """Feature channels of a ``resolution`` x ``resolution`` map: ``width * 32 / resolution``,
        capped at ``8 * width`` and at least ``min(8, width)`` (width 32: 256 at 4 px, 128 at
        8, 64 at 16, 32 at 32, 16 at 64, 8 at 128 and 256)."""
        return max(min(self.width * 32 // resolution, 8 * self.width), min(8, self.width))


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0, *, sn: bool, bias: bool = False) -> nn.Module:
    return maybe_spectral_norm(nn.Conv2d(cin, cout, kernel, stride, padding, bias=bias), sn)


def _up_glu(cin: int, cout: int, sn: bool, second_conv: bool = False) -> nn.Sequential:
    """``(B, cin, H, W) -> (B, cout, 2H, 2W)``: nearest x2, then (3x3 conv to ``2 * cout``, BN,
    GLU) once or twice. GLU halves the channels: one half gates the other."""
    layers = [nn.Upsample(scale_factor=2, mode="nearest"), _conv(cin, 2 * cout, 3, padding=1, sn=sn),
              nn.BatchNorm2d(2 * cout), nn.GLU(dim=1)]
    if second_conv:
        layers += [_conv(cout, 2 * cout, 3, padding=1, sn=sn), nn.BatchNorm2d(2 * cout), nn.GLU(dim=1)]
    return nn.Sequential(*layers)


class SkipLayerExcitation(nn.Module):
    """Skip-layer excitation: a coarse map gates the channels of a fine one.

    ``gate = sigmoid(conv1x1(SiLU(conv4x4(avgpool_4x4(coarse)))))`` has one value in (0, 1)
    per sample and fine channel; the output is ``fine * gate``. The coarse map only needs
    to be at least 4x4; its size and the fine one's are independent.

    Args:
        coarse_channels: channels of the gating map.
        fine_channels: channels of the gated map.
        spectral_norm: spectral normalisation on the two convolutions.
    """

    def __init__(self, coarse_channels: int, fine_channels: int, spectral_norm: bool = True):
        super().__init__()
        self.excite = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),  # (B, C_coarse, 4, 4)
            _conv(coarse_channels, fine_channels, 4, sn=spectral_norm, bias=True),  # (B, C_fine, 1, 1)
            nn.SiLU(),
            _conv(fine_channels, fine_channels, 1, sn=spectral_norm, bias=True),
            nn.Sigmoid(),
        )

    def gate(self, coarse: torch.Tensor) -> torch.Tensor:
        """``(B, C_fine, 1, 1)`` channel gates in (0, 1) from ``coarse`` ``(B, C_coarse, h, w)``."""
        return self.excite(coarse)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return fine * self.gate(coarse)  # (B, C_fine, H, W)


class FastGANGenerator(nn.Module):
    """``z (B, z_dim)`` -> images ``(B, C, S, S)`` in [-1, 1]."""

    def __init__(self, config: FastGANConfig):
        super().__init__()
        self.config = c = config
        sn, ch = c.spectral_norm, c.channels_at
        self.initial = nn.Sequential(  # (B, z_dim, 1, 1) -> (B, C_4, 4, 4)
            maybe_spectral_norm(nn.ConvTranspose2d(c.z_dim, 2 * ch(4), 4, bias=False), sn), nn.BatchNorm2d(2 * ch(4)), nn.GLU(dim=1))
        self.resolutions = [8 * 2**i for i in range(int(math.log2(c.image_size // 8)) + 1)]  # 8, 16, ..., S
        # A second convolution every other level (8, 32, 128 px), as the paper's "UpBlockComp".
        self.blocks = nn.ModuleList(_up_glu(ch(r // 2), ch(r), sn, second_conv=int(math.log2(r)) % 2 == 1) for r in self.resolutions)
        self.sle = nn.ModuleDict({str(fine): SkipLayerExcitation(ch(coarse), ch(fine), sn)
                                  for fine, coarse in G_LINKS.items() if fine <= c.image_size})
        self.to_image = _conv(ch(c.image_size), c.channels, 3, padding=1, sn=sn, bias=True)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if labels is not None:
            raise ValueError("fastgan is unconditional; use --model dcgan for --conditional")
        x = self.initial(z.view(z.shape[0], -1, 1, 1))  # (B, C_4, 4, 4)
        features = {4: x}
        for resolution, block in zip(self.resolutions, self.blocks):
            x = block(x)  # (B, C_r, r, r)
            if str(resolution) in self.sle:
                x = self.sle[str(resolution)](x, features[G_LINKS[resolution]])
            features[resolution] = x
        return torch.tanh(self.to_image(x))  # (B, C, S, S)


class DownBlock(nn.Module):
    """``(B, cin, H, W) -> (B, cout, H/2, W/2)``: the mean of a convolution path (4x4 stride 2,
    BN, LeakyReLU, 3x3, BN, LeakyReLU) and a residual path (2x2 average pool, 1x1 conv, BN,
    LeakyReLU)."""

    def __init__(self, cin: int, cout: int, spectral_norm: bool = True):
        super().__init__()
        sn = spectral_norm
        self.main = nn.Sequential(
            _conv(cin, cout, 4, 2, 1, sn=sn), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2),
            _conv(cout, cout, 3, 1, 1, sn=sn), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))
        self.skip = nn.Sequential(nn.AvgPool2d(2), _conv(cin, cout, 1, sn=sn), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.skip(x)) / 2


def decoder(cin: int, config: FastGANConfig, size: int) -> nn.Sequential:
    """D's small decoder: ``(B, cin, 8, 8)`` features -> ``(B, C, size, size)`` in [-1, 1]."""
    sn, layers, c, resolution = config.spectral_norm, [], cin, 8
    while resolution < size:
        resolution *= 2
        layers.append(_up_glu(c, config.channels_at(resolution), sn))
        c = config.channels_at(resolution)
    return nn.Sequential(*layers, _conv(c, config.channels, 3, padding=1, sn=sn, bias=True), nn.Tanh())


class FastGANDiscriminator(nn.Module):
    """Images ``(B, C, S, S)`` -> logits ``(B,)``, and with ``reconstruct=True`` also the
    L1 loss of its two decoders on those images (its self-supervised objective)."""

    #: the synthesis task adds :meth:`forward`'s reconstruction loss to D's loss on real images
    self_supervised: ClassVar[bool] = True

    def __init__(self, config: FastGANConfig):
        super().__init__()
        self.config = c = config
        sn, ch, size = c.spectral_norm, c.channels_at, c.image_size
        self.stem = nn.Sequential(_conv(c.channels, ch(size), 3, padding=1, sn=sn, bias=True), nn.LeakyReLU(0.2))
        self.resolutions = [size // 2**i for i in range(1, int(math.log2(size // 8)) + 1)]  # S/2, ..., 8
        self.blocks = nn.ModuleList(DownBlock(ch(2 * r), ch(r), sn) for r in self.resolutions)
        # SLE from each map onto the one 8x coarser: 64 -> 8, 128 -> 16, 256 -> 32.
        self.sle = nn.ModuleDict({str(r): SkipLayerExcitation(ch(8 * r), ch(r), sn) for r in (8, 16, 32) if 8 * r <= size})
        self.head = nn.Sequential(  # (B, C_8, 8, 8) -> (B, 1, 5, 5) patch logits
            _conv(ch(8), ch(8), 1, sn=sn), nn.BatchNorm2d(ch(8)), nn.LeakyReLU(0.2), _conv(ch(8), 1, 4, sn=sn, bias=True))
        #: side of the rebuilt images: half the input, at most 128 (the paper's)
        self.recon_size = min(size // 2, 128)
        self.decode_whole = decoder(ch(8), c, self.recon_size)
        self.decode_part = decoder(ch(16), c, self.recon_size)
        self.apply(init_dcgan_weights)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                reconstruct: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Args:
            x: images ``(B, C, S, S)`` in [-1, 1].
            labels: refused (the pair is unconditional); the argument exists for the
                synthesis task's ``D(x, **cond)``.
            reconstruct: also return the reconstruction loss (call it on real images only).

        Returns:
            logits ``(B,)`` (the mean of 5x5 patch logits); with ``reconstruct``,
            ``(logits, recon_loss)``: the sum of the two decoders' mean absolute errors, the
            whole image against ``x`` resized to :attr:`recon_size`, and a random quadrant
            (drawn from torch's global RNG, so a resumed run repeats it) against the same
            quadrant of ``x`` resized likewise.
        """
        if labels is not None:
            raise ValueError("fastgan is unconditional; use --model dcgan for --conditional")
        h = self.stem(x)  # (B, C_S, S, S)
        features = {self.config.image_size: h}
        for resolution, block in zip(self.resolutions, self.blocks):
            h = block(h)  # (B, C_r, r, r)
            if str(resolution) in self.sle:
                h = self.sle[str(resolution)](h, features[8 * resolution])
            features[resolution] = h
        logits = self.head(h).mean(dim=(1, 2, 3))  # (B,)
        if not reconstruct:
            return logits

        size = self.recon_size
        whole = self.decode_whole(features[8])  # (B, C, size, size)
        row, col = divmod(int(torch.randint(4, ())), 2)  # the quadrant
        part = self.decode_part(features[16][:, :, 8 * row : 8 * row + 8, 8 * col : 8 * col + 8])  # (B, C, size, size)
        half = x.shape[-1] // 2
        quadrant = x[:, :, half * row : half * (row + 1), half * col : half * (col + 1)]  # (B, C, S/2, S/2)
        loss = F.l1_loss(whole, F.interpolate(x, size=size, mode="area")) + F.l1_loss(part, F.interpolate(quadrant, size=size, mode="area"))
        return logits, loss
