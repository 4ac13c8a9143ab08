"""pix2pix U-Net generator (Isola et al. 2017), adapted for image-to-image enhancement.

    x (B, C_in, H, W) -> stem 3x3 -> [conv 4x4 s2, norm, LeakyReLU] * depth        (encoder)
                      -> [up x2, norm, ReLU, (dropout), concat skip] * depth      (decoder)
                      -> head 1x1 conv -> r;      y = clamp(x + r, -1, 1)        (residual)

Design choices:

* **Encoder**: pix2pix's single 4x4 stride-2 convolution per level (not the 3x3 double
  convolutions of Ronneberger's U-Net): half the layers for the same receptive field, and
  it is the architecture the pix2pix results were obtained with. A 3x3 stem at full
  resolution is added so the finest skip connection carries full-resolution *features*
  (pix2pix has no full-resolution skip; for denoising, fine detail matters most).
  As in pix2pix, the innermost down step has no normalisation: its map may be 1x1, where
  instance norm is zero and batch norm fails for batch size 1.
* **Residual output**: denoising is learned as the residual ``r = y - x`` (the negated
  noise): a small, zero-mean signal that a network fits faster, with better PSNR, than the
  whole image (DnCNN, Zhang et al. 2017; RED-CNN for low-dose CT). We use ``x + r`` then
  clamp to [-1, 1], not ``x + tanh(r)`` (the clamp would still be needed, and tanh only
  shrinks the gradient of large corrections such as streak artefacts) nor
  ``tanh(atanh(x) + r)`` (infinite at the +-1 background that fills medical images). The
  clamp is *straight-through* (:func:`straight_through_clamp`): a pixel whose prediction
  overshoots the range still receives the gradient that brings it back, instead of a
  hard clamp's zero gradient, which can leave it stuck out of range forever.
* **Initialisation**: DCGAN's N(0, 0.02) everywhere except the residual head, which
  starts at zero, so the generator starts as exactly the identity on [-1, 1] images
  (the "zero last layer of a residual branch" of Goyal et al. 2017): training starts
  from the noisy input, a strong baseline, instead of from input + random texture. The
  head's own gradient is non-zero from the first step; the rest follows from the second.
* ``residual=False`` gives pix2pix's plain ``tanh(head)`` output (needed when
  ``in_channels != out_channels``, e.g. MR -> CT translation).

:func:`straight_through_clamp` is shared with :mod:`medgan.nets.srresnet`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medgan.nets.patchgan import NORMS, PairedGANConfig, init_weights, norm_layer

UP_MODES = ("deconv", "resize")


# ---------------------------------------------------------------- output clamp

class _StraightThroughClamp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        # Gradient descent moves x by -grad: past hi only grad > 0 (down) passes, past lo only grad < 0 (up).
        outward = ((x > ctx.hi) & (grad < 0)) | ((x < ctx.lo) & (grad > 0))
        return grad.masked_fill(outward, 0.0), None, None


def straight_through_clamp(x: torch.Tensor, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    """``x.clamp(lo, hi)`` in the forward pass; in the backward pass the gradient inside the
    range, and outside it only the part that leads back into the range.

    A hard clamp has zero gradient outside ``[lo, hi]``: a residual network that once
    pushes a pixel past the range (target -0.9, prediction -1.5 -> -1) never learns to
    bring it back. A plain straight-through gradient fixes that but also passes gradients
    that push further out, which change nothing in the output and so meet no resistance:
    an adversary that finds real backgrounds at exactly -1 drove clamped pixels of the SR
    generator ever further below -1 until the shared weights broke (L1 0.02 -> 0.6). Only
    the inward part is passed. Without a gradient to shape (inference, an exported trace)
    it is the plain clamp, which TorchScript and ONNX can hold.
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return x.clamp(lo, hi)
    return _StraightThroughClamp.apply(x, lo, hi)


# ---------------------------------------------------------------- config

@dataclass
class UNetConfig(PairedGANConfig):
    """Shape and options of the pix2pix pair (U-Net G, PatchGAN D).

    Attributes:
        in_channels: channels of the input (degraded) image.
        out_channels: channels of the output image.
        width: feature channels at full resolution; doubled per level, capped at ``8 * width``.
        depth: number of stride-2 down steps; H and W must be multiples of ``2**depth``.
        norm: ``"batch"`` (pix2pix), ``"instance"`` or ``"none"``.
        dropout: dropout probability in the innermost ``max(1, depth // 2)`` decoder blocks
            (pix2pix's noise source uses 0.5; 0.0 keeps CT outputs deterministic).
        up: ``"deconv"`` (transposed conv 4x4 stride 2, pix2pix) or ``"resize"`` (nearest x2
            then 3x3 conv: no checkerboard artefacts).
        residual: ``y = clamp(x + head)`` (needs ``in_channels == out_channels``) instead of
            ``y = tanh(head)``.
        leaky_slope: negative slope of the encoder's and D's LeakyReLU.
        d_width: PatchGAN first-layer channels.
        d_layers: PatchGAN stride-2 layers (3: the 70x70 PatchGAN).
        d_norm: PatchGAN normalisation (``"batch"``, ``"instance"``, ``"none"``).
        spectral_norm: spectral normalisation on every PatchGAN convolution.
    """

    width: int = 32
    depth: int = 4
    norm: str = "batch"
    dropout: float = 0.0
    up: str = "deconv"
    residual: bool = True

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"UNet norm must be one of {NORMS}, got {self.norm!r}")
        if self.up not in UP_MODES:
            raise ValueError(f"UNet up must be one of {UP_MODES}, got {self.up!r}")
        if self.depth < 1:
            raise ValueError(f"UNet depth must be at least 1, got {self.depth}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"UNet dropout must be in [0, 1), got {self.dropout}")
        if self.residual and self.in_channels != self.out_channels:
            raise ValueError(
                f"a residual UNet needs in_channels == out_channels, got {self.in_channels} and "
                f"{self.out_channels}; set residual=False for a translation between channel counts"
            )

    @property
    def multiple(self) -> int:
        """Height and width must be multiples of this (``2**depth``)."""
        return 2**self.depth

    def channels_at(self, level: int) -> int:
        """Feature channels at resolution ``H / 2**level`` (0 = full resolution)."""
        return min(self.width * 2**level, self.width * 8)


# ---------------------------------------------------------------- network

def _up(cin: int, cout: int, mode: str, bias: bool) -> nn.Module:
    if mode == "deconv":
        return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=bias)
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1, bias=bias))


class UNetGenerator(nn.Module):
    """Degraded image ``x (B, C_in, H, W)`` in [-1, 1] -> enhanced ``y (B, C_out, H, W)`` in [-1, 1].

    Raises:
        ValueError: H or W is not a multiple of ``2**depth``, or the channels differ from
            ``in_channels`` (in :meth:`forward`).
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        bias = c.norm == "none"  # a norm layer's shift makes a conv bias redundant
        self.stem = nn.Sequential(nn.Conv2d(c.in_channels, c.width, 3, padding=1), nn.LeakyReLU(c.leaky_slope))
        self.down = nn.ModuleList()
        for level in range(1, c.depth + 1):
            innermost = level == c.depth
            self.down.append(nn.Sequential(
                nn.Conv2d(c.channels_at(level - 1), c.channels_at(level), 4, stride=2, padding=1, bias=bias or innermost),
                nn.Identity() if innermost else norm_layer(c.norm, c.channels_at(level)),
                nn.LeakyReLU(c.leaky_slope),
            ))
        n_dropout = max(1, c.depth // 2) if c.dropout > 0 else 0
        self.up = nn.ModuleList()  # self.up[i] maps level depth - i to level depth - i - 1
        for level in range(c.depth, 0, -1):
            cin = c.channels_at(level) * (1 if level == c.depth else 2)  # deeper blocks see a concatenation
            cout = c.channels_at(level - 1)
            block = [_up(cin, cout, c.up, bias), norm_layer(c.norm, cout), nn.ReLU()]
            if c.depth - level < n_dropout:
                block.append(nn.Dropout(c.dropout))
            self.up.append(nn.Sequential(*block))
        self.head = nn.Conv2d(2 * c.width, c.out_channels, 1)
        self.apply(init_weights)
        if c.residual:  # start as the identity: the residual head's first update already gets a gradient
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` naming the fix if ``x`` cannot go through the network."""
        c = self.config
        if x.ndim != 4 or x.shape[1] != c.in_channels:
            raise ValueError(f"UNetGenerator expects (B, {c.in_channels}, H, W) images, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = c.multiple
        if h % m or w % m:
            fit = f"{-(-h // m) * m}x{-(-w // m) * m}"
            raise ValueError(
                f"UNetGenerator(depth={c.depth}) needs height and width divisible by {m}, got {h}x{w}; "
                f"pad or crop to a multiple of {m} (e.g. pad to {fit}) or lower depth"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        skips = [self.stem(x)]  # (B, width, H, W)
        for block in self.down:
            skips.append(block(skips[-1]))  # (B, C_k, H / 2^k, W / 2^k)
        h = skips.pop()  # (B, C_depth, H / 2^depth, W / 2^depth): the bottleneck
        for block in self.up:
            h = torch.cat([block(h), skips.pop()], dim=1)  # (B, 2 C_k, H / 2^k, W / 2^k)
        r = self.head(h)  # (B, C_out, H, W)
        if self.config.residual:
            return straight_through_clamp(x + r)
        return torch.tanh(r)
