"""DiffAugment (Zhao et al. 2020): differentiable augmentation of real *and* fake images.

With a few hundred training images D memorises them and its gradients stop helping G.
Augmenting both what D sees from the data and from G, with operations G's gradient can
pass through, keeps D from overfitting without teaching G to produce augmented images.
Policies for grey medical images: ``color`` (brightness and contrast; saturation has no
meaning for grey), ``translation`` (shift by up to 1/8 of the side, zero padding) and
``cutout`` (one square of half the side set to 0, i.e. mid-grey in [-1, 1]).

All randomness comes from ``torch``'s generator on the images' device, so it is seeded by
the run's seed and restored exactly on resume.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        from medgan.errors import MedganError

        raise MedganError(f"unknown augmentation {', '.join(unknown)}", hint=f"use a comma-separated list of {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the policy to a batch ``(B, C, H, W)`` in [-1, 1]; differentiable in ``x``."""
    for name in policy:
        x = _OPS[name](x)
    return x


def _color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    brightness = (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)  # ±0.5 of the [-1, 1] range
    x = x + brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5  # x0.5 .. x1.5
    return (x - mean) * contrast + mean


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    yy, xx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    # Index into a zero-padded copy: source pixel (y - dy, x - dx), +1 for the pad.
    src_y = (yy[None] - dy + 1).clamp(0, h + 1)
    src_x = (xx[None] - dx + 1).clamp(0, w + 1)
    padded = F.pad(x, (1, 1, 1, 1))  # (B, C, H+2, W+2), border = 0
    flat = padded.flatten(2)  # (B, C, (H+2)(W+2))
    index = (src_y * (w + 2) + src_x).flatten(1)[:, None].expand(-1, x.shape[1], -1)
    return flat.gather(2, index).view_as(x)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    yy, xx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    inside = ((yy[None] - cy).abs() < ch // 2 + ch % 2) & ((xx[None] - cx).abs() < cw // 2 + cw % 2)  # (B, H, W)
    return x * (~inside)[:, None].to(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


# ----------------------------------------------------------------------------- classical


def classical_augment(x: torch.Tensor, flip: bool = True, degrees: float = 10.0, scale: float = 0.1,
                      shift: float = 0.05, intensity: float = 0.1, masks: torch.Tensor | None = None,
                      generator: torch.Generator | None = None,
                      elastic: float = 0.0) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The usual training augmentation of a classifier or a segmentor, on a whole batch at once.

    Per image: a left-right flip with probability 1/2, a random affine (rotation up to
    ``degrees``, zoom by up to ``scale``, shift by up to ``shift`` of the side; bilinear,
    the border filled with the image's minimum, i.e. background), optionally an elastic
    deformation (``elastic``: a smooth random displacement of up to that share of the side,
    cubic between a 5x5 grid of control points, as nnU-Net's and MONAI's ``Rand2DElastic``),
    then brightness and contrast changes of up to ``intensity`` (of the [-1, 1] range and
    relative). Label maps given as ``masks`` follow the same flip, affine and deformation
    (nearest neighbour, class 0 outside). Batched on the images' device (MONAI's
    ``RandAffine`` and ``Rand2DElastic`` work image by image in Python).

    Args:
        x: ``(B, C, H, W)`` in [-1, 1].
        masks: ``(B, H, W)`` class indices of the images, or ``None``.
        generator: a CPU generator to draw from (a segmentation batch draws from its batch
            number, so a resumed run sees the same); ``None``: torch's on the images' device.

    Returns:
        The augmented batch, same shape, clamped to [-1, 1]; with ``masks``, also the
        augmented masks.
    """
    b = x.shape[0]

    def uniform(*shape: int) -> torch.Tensor:  # U(-1, 1)
        device = x.device if generator is None else "cpu"
        return (torch.rand(*shape, device=device, dtype=x.dtype, generator=generator) * 2 - 1).to(x.device)

    if flip:
        flipped = uniform(b) < 0
        x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
        if masks is not None:
            masks = torch.where(flipped[:, None, None], masks.flip(-1), masks)
    angle = uniform(b) * degrees * torch.pi / 180
    zoom = 1 + uniform(b) * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, uniform(b) * 2 * shift], 1), torch.stack([sin, cos, uniform(b) * 2 * shift], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2) in [-1, 1]
    if elastic > 0:
        grid = grid + elastic_field(uniform(b, 2, 5, 5) * 2 * elastic, x.shape[-2:])
    floor = x.amin(dim=(1, 2, 3), keepdim=True)
    x = F.grid_sample(x - floor, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + floor
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * (1 + uniform(b, 1, 1, 1) * intensity) + mean + uniform(b, 1, 1, 1) * intensity).clamp(-1, 1)
    if masks is None:
        return x
    moved = F.grid_sample(masks[:, None].to(grid.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return x, moved[:, 0].round().to(masks.dtype)  # (B, H, W)


def elastic_field(control: torch.Tensor, size) -> torch.Tensor:
    """A smooth displacement field ``(B, H, W, 2)`` (in ``grid_sample``'s [-1, 1] units) from
    displacements ``(B, 2, h, w)`` at a coarse grid of control points, cubic in between."""
    return F.interpolate(control, size=tuple(size), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
