"""Conditional PatchGAN discriminator (Isola et al. 2017, the "70x70 PatchGAN").

    [condition, image] (B, C_cond + C_img, H, W)
        -> conv 4x4 s2, LeakyReLU                               (no norm on the input layer)
        -> [conv 4x4 s2, norm, LeakyReLU] * (n_layers - 1)
        -> conv 4x4 s1, norm, LeakyReLU -> conv 4x4 s1 -> logits (B, 1, h, w)

Each logit judges one patch (70x70 pixels for ``n_layers=3``, 34 for 2, 142 for 4): D
models high-frequency realism (texture, noise grain) and leaves low frequencies to the
generator's L1 term. Channels double per stride-2 layer, capped at ``8 * width``, as in
pix2pix's ``NLayerDiscriminator`` and MONAI's ``PatchDiscriminator``.

The discriminator is conditional: it sees the generator's input beside a real or
generated output. For super-resolution the condition is smaller than the image; D then
upsamples it itself (bicubic by default, ``align_corners=False``) to the image's size, so
callers pass the low-resolution input unchanged. Sizes must match exactly or differ by
``scale``; anything else is an error, never silently resized.

:class:`PatchGANDiscriminator` accepts its own :class:`PatchGANConfig` or the config of a
paired generator (``UNetConfig``, ``SRConfig``) through its ``patchgan_config()`` method,
so :func:`medgan.nets.build_pair` can build both networks from one config.

The normalisation and initialisation helpers :func:`norm_layer` and :func:`init_weights`
are shared with :mod:`medgan.nets.unet` and :mod:`medgan.nets.srresnet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medgan.nets.common import init_dcgan_weights, maybe_spectral_norm

NORMS = ("batch", "instance", "none")
COND_UPSAMPLE = ("bicubic", "bilinear")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """``"batch"`` -> BatchNorm2d, ``"instance"`` -> InstanceNorm2d (affine), ``"none"`` -> Identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation (:func:`init_dcgan_weights`: conv weights ~ N(0, 0.02), BN
    scales ~ N(1, 0.02)), extended to affine InstanceNorm scales ~ N(1, 0.02). PReLU
    slopes keep PyTorch's 0.25."""
    init_dcgan_weights(module)
    if isinstance(module, nn.InstanceNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


@dataclass
class PatchGANConfig:
    """Shape and options of a conditional PatchGAN.

    Attributes:
        cond_channels: channels of the condition (the generator's input).
        image_channels: channels of the judged image (the generator's output).
        width: channels of the first layer.
        n_layers: stride-2 layers (3: 70x70 patches).
        norm: ``"batch"``, ``"instance"`` or ``"none"`` (not on the input layer).
        spectral_norm: spectral normalisation on every convolution.
        leaky_slope: negative slope of the LeakyReLU.
        scale: image size / condition size (1: pix2pix; the SR factor for SRGAN).
        cond_upsample: ``"bicubic"`` or ``"bilinear"`` interpolation of a smaller condition.
    """

    cond_channels: int = 1
    image_channels: int = 1
    width: int = 64
    n_layers: int = 3
    norm: str = "batch"
    spectral_norm: bool = False
    leaky_slope: float = 0.2
    scale: int = 1
    cond_upsample: str = "bicubic"

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"PatchGAN norm must be one of {NORMS}, got {self.norm!r}")
        if self.n_layers < 1:
            raise ValueError(f"PatchGAN n_layers must be at least 1, got {self.n_layers}")
        if self.cond_upsample not in COND_UPSAMPLE:
            raise ValueError(f"PatchGAN cond_upsample must be one of {COND_UPSAMPLE}, got {self.cond_upsample!r}")
        if self.scale < 1:
            raise ValueError(f"PatchGAN scale must be at least 1, got {self.scale}")

    @property
    def in_channels(self) -> int:
        return self.cond_channels + self.image_channels

    @property
    def receptive_field(self) -> int:
        """Side in pixels of the patch one logit sees (70 for ``n_layers=3``)."""
        r = 1
        for stride in [1, 1] + [2] * self.n_layers:  # from the last layer back to the input
            r = (r - 1) * stride + 4
        return r

    def output_size(self, size: int) -> int:
        """Side of the logit map for an input side ``size`` (< 1: too small)."""
        for _ in range(self.n_layers):
            size //= 2  # 4x4, stride 2, padding 1
        return size - 2  # two 4x4 stride-1 layers, padding 1, each remove one pixel


@dataclass
class PairedGANConfig:
    """What a paired generator's config carries for its PatchGAN (pix2pix, SRGAN), so that
    one config builds both networks. Subclasses add the generator's own fields; ``scale``
    (super-resolution) is read when present.

    Attributes:
        in_channels / out_channels: channels of the generator's input and output.
        leaky_slope: negative slope of the LeakyReLUs.
        d_width: PatchGAN first-layer channels.
        d_layers: PatchGAN stride-2 layers (3: the 70x70 PatchGAN).
        d_norm: PatchGAN normalisation (``"batch"``, ``"instance"``, ``"none"``).
        spectral_norm: spectral normalisation on every PatchGAN convolution.
    """

    in_channels: int = 1
    out_channels: int = 1
    leaky_slope: float = 0.2
    d_width: int = 64
    d_layers: int = 3
    d_norm: str = "batch"
    spectral_norm: bool = False

    def patchgan_config(self) -> PatchGANConfig:
        """The discriminator's config: it sees the input (condition; upsampled by ``scale``
        for super-resolution) beside the output."""
        return PatchGANConfig(
            cond_channels=self.in_channels, image_channels=self.out_channels, width=self.d_width,
            n_layers=self.d_layers, norm=self.d_norm, spectral_norm=self.spectral_norm,
            leaky_slope=self.leaky_slope, scale=getattr(self, "scale", 1),
        )


class PatchGANDiscriminator(nn.Module):
    """``(condition (B, C_cond, h, w), image (B, C_img, H, W))`` -> logits ``(B, 1, H', W')``.

    Args:
        config: a :class:`PatchGANConfig`, or a generator config with a
            ``patchgan_config()`` method (``UNetConfig``, ``SRConfig``).
    """

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, PatchGANConfig):
            if not hasattr(config, "patchgan_config"):
                raise TypeError(f"PatchGANDiscriminator needs a PatchGANConfig or a config with patchgan_config(), got {type(config).__name__}")
            config = config.patchgan_config()
        self.config = c = config
        sn, bias = c.spectral_norm, c.norm == "none"

        def conv(cin: int, cout: int, stride: int, bias: bool) -> nn.Module:
            return maybe_spectral_norm(nn.Conv2d(cin, cout, 4, stride=stride, padding=1, bias=bias), sn)

        layers: list[nn.Module] = [conv(c.in_channels, c.width, 2, True), nn.LeakyReLU(c.leaky_slope)]
        cout = c.width
        for n in range(1, c.n_layers + 1):  # n_layers - 1 more stride-2 layers, then one stride-1
            cin, cout = cout, c.width * min(2**n, 8)
            layers += [conv(cin, cout, 2 if n < c.n_layers else 1, bias), norm_layer(c.norm, cout), nn.LeakyReLU(c.leaky_slope)]
        layers.append(conv(cout, 1, 1, True))
        self.layers = nn.Sequential(*layers)
        self.apply(init_weights)

    def _match_condition(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        c = self.config
        if condition.ndim != 4 or image.ndim != 4 or condition.shape[1] != c.cond_channels or image.shape[1] != c.image_channels:
            raise ValueError(
                f"PatchGANDiscriminator expects condition (B, {c.cond_channels}, h, w) and image (B, {c.image_channels}, H, W), "
                f"got {tuple(condition.shape)} and {tuple(image.shape)}"
            )
        if condition.shape[0] != image.shape[0]:
            raise ValueError(f"condition and image batch sizes differ: {condition.shape[0]} and {image.shape[0]}")
        (h, w), (H, W) = condition.shape[-2:], image.shape[-2:]
        if (h, w) == (H, W):
            return condition
        if (h * c.scale, w * c.scale) == (H, W):
            return F.interpolate(condition, size=(H, W), mode=c.cond_upsample, align_corners=False)  # (B, C_cond, H, W)
        raise ValueError(
            f"condition {h}x{w} does not match image {H}x{W}: sizes must be equal or differ by the scale {c.scale}"
        )

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        condition = self._match_condition(condition, image)
        H, W = image.shape[-2:]
        if min(self.config.output_size(H), self.config.output_size(W)) < 1:
            smallest = 2**self.config.n_layers * 3
            raise ValueError(
                f"PatchGAN(n_layers={self.config.n_layers}) needs images of at least {smallest}x{smallest}, got {H}x{W}; "
                "use larger crops or fewer d_layers"
            )
        x = torch.cat([condition, image], dim=1)  # (B, C_cond + C_img, H, W)
        return self.layers(x)  # (B, 1, H', W')

    def features(self, condition: torch.Tensor, image: torch.Tensor) -> list[torch.Tensor]:
        """The activations after each LeakyReLU, coarser and coarser (for feature matching,
        e.g. SegAN's multi-scale L1 loss)."""
        x = torch.cat([self._match_condition(condition, image), image], dim=1)
        out = []
        for layer in self.layers:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                out.append(x)
        return out
