"""Sample grids: many small images (and their masks) tiled into one PNG.

Drawn with Pillow alone so a grid needs no display and no plotting backend.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from medgan.io.output import atomic_path

if TYPE_CHECKING:
    import torch

# Distinct colours for mask labels 1, 2, ... (label 0 is background, left untinted).
MASK_COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]],
    dtype=np.float32,
)


def _to_uint8(images: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    low, high = value_range if value_range is not None else (float(np.nanmin(images)), float(np.nanmax(images)))
    scaled = (images.astype(np.float32) - low) / max(high - low, 1e-12)
    return (np.clip(scaled, 0, 1) * 255 + 0.5).astype(np.uint8)


def image_grid(
    images: np.ndarray,
    value_range: tuple[float, float] | None = None,
    ncol: int | None = None,
    masks: np.ndarray | None = None,
    captions: list[str] | None = None,
    scale: int | None = None,
    pad: int = 2,
) -> PILImage.Image:
    """Tile images into one RGB picture.

    Args:
        images: ``(N, H, W)`` grey or ``(N, 3, H, W)`` colour, in data units.
        value_range: data values shown as black and white (default: the images' min/max).
        ncol: tiles per row (default: about square).
        masks: optional ``(N, H, W)`` integer label maps drawn as a translucent overlay.
        captions: optional text drawn at the top-left of each tile.
        scale: integer upscaling of each tile (default: enough to make tiles >= 64 px).
        pad: pixels between tiles.
    """
    n = len(images)
    if n == 0:
        raise ValueError("no images to draw")
    tiles = _to_uint8(images, value_range)
    tiles = np.repeat(tiles[:, None], 3, axis=1) if tiles.ndim == 3 else tiles[:, :3]  # (N, 3, H, W)
    tiles = np.moveaxis(tiles, 1, -1).astype(np.float32)  # (N, H, W, 3)
    if masks is not None:
        labels = masks.astype(np.int64)
        colour = MASK_COLOURS[(labels - 1) % len(MASK_COLOURS)]
        alpha = (labels > 0)[..., None] * 0.45
        tiles = tiles * (1 - alpha) + colour * alpha
    h, w = tiles.shape[1:3]
    scale = scale or max(1, math.ceil(64 / max(h, w)))
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    th, tw = h * scale, w * scale
    canvas = PILImage.new("RGB", (ncol * (tw + pad) + pad, nrow * (th + pad) + pad), (40, 40, 40))
    draw = ImageDraw.Draw(canvas)
    for i, tile in enumerate(tiles.astype(np.uint8)):
        r, c = divmod(i, ncol)
        x, y = pad + c * (tw + pad), pad + r * (th + pad)
        picture = PILImage.fromarray(tile)
        if scale > 1:
            picture = picture.resize((tw, th), PILImage.NEAREST)
        canvas.paste(picture, (x, y))
        if captions is not None and captions[i]:
            draw.text((x + 2, y + 1), captions[i], fill=(255, 230, 0))
    return canvas


def save_grid(path: str | os.PathLike, images: np.ndarray, overwrite: bool = False, **grid_options) -> PILImage.Image:
    """Write :func:`image_grid` of ``images`` to a PNG (atomically; refuses to overwrite);
    returns the picture."""
    picture = image_grid(images, **grid_options)
    with atomic_path(path, overwrite) as tmp:
        picture.save(tmp, format="PNG")
    return picture


def tint(images: torch.Tensor, labels: torch.Tensor, alpha: float = 0.45) -> torch.Tensor:
    """Grey ``(B, 1, H, W)`` in [-1, 1] with class indices ``(B, H, W)`` drawn in colour ->
    ``(B, 3, H, W)`` in [-1, 1] (the colours of :func:`medgan.report.grid.image_grid`)."""
    import torch

    colours = torch.as_tensor(MASK_COLOURS / 127.5 - 1.0, dtype=images.dtype, device=images.device)
    grey = images[:, :1].expand(-1, 3, -1, -1)
    colour = colours[(labels - 1).clamp(min=0) % len(colours)].permute(0, 3, 1, 2)  # (B, 3, H, W)
    a = (labels > 0).to(images.dtype)[:, None] * alpha
    return grey * (1 - a) + colour * a
