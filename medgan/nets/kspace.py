"""Data consistency for images reconstructed from undersampled k-space (DAGAN, Yang et al.
2018; the data-consistency layer of Schlemper et al. 2018): a network's output keeps the
k-space lines that were acquired and fills only the missing ones.

Which lines were acquired is read from the input itself: a zero-filled reconstruction's 2D
FFT is exactly zero on the lines that were not acquired (up to float rounding), whole rows
or whole columns of k-space. An image with no empty line (fully sampled, or reconstructed
by other means, or a tile of a larger image) passes through unchanged, so the step never
replaces a network's output by its input where nothing is known.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DataConsistent", "acquired_lines", "data_consistency"]

#: a k-space line whose largest magnitude is below this share of the spectrum's largest is empty
EMPTY = 1e-4


def acquired_lines(x: torch.Tensor, tol: float = EMPTY) -> tuple[torch.Tensor, torch.Tensor]:
    """Which k-space samples of ``x`` ``(B, C, H, W)`` were acquired, read from its zero lines.

    Returns:
        ``(mask, undersampled)``: ``(B, 1, H, W)`` float, 1 on rows and columns of k-space that
        hold data in every channel (the outer product of the acquired rows and columns), and
        ``(B,)`` bool, whether any row or column is empty (a zero-filled image).
    """
    k = torch.fft.fft2(x.float(), norm="ortho").abs().amax(dim=1)  # (B, H, W) over channels
    top = k.flatten(1).amax(dim=1).clamp(min=1e-30)[:, None]  # (B, 1)
    cols = k.amax(dim=1) > tol * top  # (B, W): a column with any data
    rows = k.amax(dim=2) > tol * top  # (B, H)
    mask = (rows[:, :, None] & cols[:, None, :]).to(x.dtype)[:, None]  # (B, 1, H, W)
    return mask, ~(cols.all(dim=1) & rows.all(dim=1))


def data_consistency(output: torch.Tensor, acquired: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The acquired k-space samples (``mask``, broadcastable to ``(B, C, H, W)``: 1 acquired)
    from ``acquired``, the others from ``output``; the real part of the inverse FFT (exact
    for real images under a conjugate-symmetric mask; differentiable in ``output``)."""
    m = mask.to(torch.float32)
    k = torch.fft.fft2(output.float(), norm="ortho") * (1 - m) + torch.fft.fft2(acquired.float(), norm="ortho") * m
    return torch.fft.ifft2(k, norm="ortho").real.to(output.dtype)


class DataConsistent(nn.Module):
    """``net`` followed by data consistency with its input, for the inputs that are
    zero-filled (:func:`acquired_lines`); the others get ``net``'s output unchanged.

    Attributes:
        net: the wrapped image-to-image network.
        enabled: ``False`` returns ``net``'s output as it is (to measure the step's worth).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if not self.enabled or out.shape != x.shape:
            return out
        mask, undersampled = acquired_lines(x)
        consistent = data_consistency(out, x, mask)
        return torch.where(undersampled[:, None, None, None], consistent, out)
