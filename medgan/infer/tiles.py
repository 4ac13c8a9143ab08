"""A network over an image of any size: padding to its size multiple, overlapping tiles,
seamless blending.

Hand-written rather than MONAI's ``sliding_window_inference`` because the networks here
may change the size (super-resolution by ``scale``), need inputs padded to a multiple
(a U-Net of depth 4: 16) and must blend to exactly the untiled result away from cut edges;
MONAI's window blends equal-size outputs only.

**Padding.** The image is padded by reflection on the bottom and right only (to a multiple
of ``multiple``, or to the tile grid), then the output is cropped back; so the last
rows/columns may see reflected context in one setting and the network's own padding in the
other: those border pixels are the only ones where tiled and untiled results may differ.

**Blending.** Images larger than ``tile`` are cut into overlapping tiles (stride ``tile -
overlap``); each tile's output is weighted by a separable ramp that is 0 for the first
``overlap // 4`` pixels of an inner edge, rises linearly over the middle half of the
overlap and is 1 elsewhere, so the weights of neighbouring tiles sum to exactly 1 and
pixels next to a tile's cut edge (where a convolution saw padding instead of image) never
count. For a translation-equivariant network whose receptive field radius is at most
``overlap // 4`` input pixels the tiled result equals the untiled one to float rounding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medgan.cores import map_cores, rounds
from medgan.errors import MedganError

__all__ = ["tiled_apply"]


def _ramp(length: int, overlap: int, start: bool, end: bool) -> np.ndarray:
    """1D blending weight of one tile: zero margin, linear rise over the overlap's middle half."""
    w = np.ones(length, dtype=np.float64)
    if overlap <= 0:
        return w
    i = np.arange(overlap, dtype=np.float64)
    rise = np.clip((i + 0.5 - overlap / 4) / (overlap / 2), 0.0, 1.0)  # rise[i] + rise[o-1-i] == 1
    if start:
        w[:overlap] = rise
    if end:
        w[length - overlap :] = np.minimum(w[length - overlap :], rise[::-1])
    return w


def _grid(size: int, tile: int, overlap: int, multiple: int) -> tuple[list[int], int, int]:
    """Tile starts along one axis, the tile length and the padded length."""
    if size <= tile:
        length = -(-size // multiple) * multiple
        return [0], length, length
    stride = tile - overlap
    n = -(-(size - tile) // stride) + 1
    return [k * stride for k in range(n)], tile, (n - 1) * stride + tile


def _run(net: nn.Module, tiles: np.ndarray, scale: int, device: str | torch.device) -> np.ndarray:
    """``(B, C, th, tw)`` -> ``(B, C_out, th*s, tw*s)`` through the network."""
    x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32)).to(device)  # (B, C, th, tw)
    y = net(x.contiguous(memory_format=torch.channels_last))
    if y.ndim != 4 or tuple(y.shape[2:]) != (x.shape[2] * scale, x.shape[3] * scale) or y.shape[0] != x.shape[0]:
        raise MedganError(
            f"the model turned a {tuple(x.shape)} batch into {tuple(y.shape)}, expected (B, C, "
            f"{x.shape[2] * scale}, {x.shape[3] * scale})",
            hint="check that the model's config.json (scale, multiple) matches its network",
        )
    return y.float().cpu().numpy()


@torch.no_grad()
def tiled_apply(
    net: nn.Module,
    image: np.ndarray,
    *,
    scale: int = 1,
    multiple: int = 1,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Apply ``net`` to one image by overlapping tiles (see the module docstring).

    Args:
        net: maps ``(B, C, h, w)`` to ``(B, C_out, h*scale, w*scale)``; called as it is
            (put it in eval mode first).
        image: ``(H, W)`` (one channel) or ``(C, H, W)``, in the network's input units.
        scale: the network's output size / input size.
        multiple: the size its input must be a multiple of (e.g. 16 for a depth-4 U-Net).
        tile: largest tile side fed to the network (rounded down to a multiple of ``multiple``).
        overlap: pixels shared by neighbouring tiles (``0 <= overlap < tile``).
        batch_size: tiles per forward pass on CUDA. On a CPU each core runs one tile at a
            time, single-threaded, so the output of an image of several tiles does not
            depend on the number of cores.
        device: where to run the network.

    Returns:
        float64 ``(H*scale, W*scale)`` for a 2D input with one output channel, else
        ``(C_out, H*scale, W*scale)``.

    Raises:
        MedganError: a bad shape, tile or overlap, or a network whose output does not match ``scale``.
    """
    x = np.asarray(image)
    two_d = x.ndim == 2
    if two_d:
        x = x[None]  # (1, H, W)
    if x.ndim != 3 or x.shape[1] == 0 or x.shape[2] == 0:
        raise MedganError(f"expected an (H, W) or (C, H, W) image, got shape {np.shape(image)}")
    requested, tile = tile, tile // multiple * multiple
    if tile < 1:
        raise MedganError(f"tile {requested} is smaller than the model's size multiple {multiple}", hint=f"use a tile of at least {multiple}")
    if not 0 <= overlap < tile:
        raise MedganError(f"overlap {overlap} must be >= 0 and smaller than the tile ({tile})", hint="e.g. tile 256, overlap 32")
    _, H, W = x.shape
    ys, th, Hp = _grid(H, tile, overlap, multiple)
    xs, tw, Wp = _grid(W, tile, overlap, multiple)
    padded = np.pad(x, ((0, 0), (0, Hp - H), (0, Wp - W)), mode="reflect") if (Hp, Wp) != (H, W) else x
    s, o = scale, overlap * scale
    # Channels-last weights and tiles: oneDNN's fast kernels (1.7x for the U-Net, whose
    # transposed convolutions are slow in NCHW on CPU), the same sums and the same output.
    net.to(memory_format=torch.channels_last)
    out = weight = None
    starts = [(y0, x0) for y0 in ys for x0 in xs]
    # On a CPU each core runs its own tiles, one per forward pass and single-threaded
    # (medgan.cores): faster than splitting each tile's convolutions over the cores, and the
    # output of an image of several tiles is the same on any number of cores (oneDNN's sums
    # depend on the thread count and, for small tiles, on the batch; an image of one tile
    # runs on all the cores). Tiles go a round at a time so few outputs are held at once.
    on_cpu = torch.device(device).type == "cpu"
    per_forward = 1 if on_cpu else max(1, batch_size)
    per_round = max(4 * torch.get_num_threads(), batch_size, 1) if on_cpu else per_forward
    for r in rounds(len(starts), per_round, per_forward):
        chunks = [starts[b : b + per_forward] for b in range(r.start, r.stop, per_forward)]
        results = map_cores(lambda chunk: _run(net, np.stack([padded[:, y0 : y0 + th, x0 : x0 + tw] for y0, x0 in chunk]), s, device),
                            chunks, device)
        for chunk, result in zip(chunks, results):
            if out is None:
                out = np.zeros((result.shape[1], Hp * s, Wp * s), dtype=np.float64)  # (C_out, Hp*s, Wp*s)
                weight = np.zeros((Hp * s, Wp * s), dtype=np.float64)
            for (y0, x0), tile_out in zip(chunk, result):
                wy = _ramp(th * s, o, y0 > 0, y0 != ys[-1])
                wx = _ramp(tw * s, o, x0 > 0, x0 != xs[-1])
                w = wy[:, None] * wx[None, :]  # (th*s, tw*s)
                out[:, y0 * s : (y0 + th) * s, x0 * s : (x0 + tw) * s] += w * tile_out
                weight[y0 * s : (y0 + th) * s, x0 * s : (x0 + tw) * s] += w
    result = (out / weight)[:, : H * s, : W * s]
    return result[0] if two_d and result.shape[0] == 1 else result
