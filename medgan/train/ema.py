"""Exponential moving average of the generator's weights (for sampling)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(G: nn.Module) -> nn.Module:
    """A frozen copy of ``G`` to average into."""
    ema = copy.deepcopy(G).eval()
    ema.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: nn.Module, G: nn.Module, decay: float, step: int) -> None:
    """θ_ema ← β θ_ema + (1 − β) θ, with β ramped up as min(decay, (1 + step) / (10 + step))
    so the average does not remember the random initial weights for thousands of steps.
    Buffers (batch-norm statistics) are copied, not averaged.
    """
    beta = min(decay, (1.0 + step) / (10.0 + step))
    for p_ema, p in zip(ema.parameters(), G.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), G.buffers()):
        b_ema.copy_(b)
