"""Training throughput of one DCGAN D+G step, as a fraction of this machine's fp32 matmul rate.

Prints one JSON object. Both rates are measured in the same process, so the ratio holds
on a shared, noisy machine where absolute numbers do not.

    python benchmarks/train_speed.py [--sizes 28 64] [--batch 64] [--width 64] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from medgan.data.sources import SourceOptions
from medgan.train import DataConfig, LoopConfig, ModelConfig, TrainConfig, Trainer


def matmul_rate(n: int = 2048, repeats: int = 10) -> float:
    """Best-of-``repeats`` fp32 FLOP/s of an n x n matrix product (2n^3 FLOPs)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def conv_rate(repeats: int = 10) -> float:
    """Best fp32 FLOP/s of a large 3x3 convolution (oneDNN): a second, conv-specific reference.

    On CPUs where the BLAS behind ``torch.mm`` does not use every vector unit (MKL on AMD
    processors falls back to AVX2), convolutions can beat the matmul rate; this figure
    shows how close the step comes to what this CPU's conv kernels reach at best.
    """
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False)
    x = torch.randn(64, 256, 16, 16)
    with torch.no_grad():
        conv(x)
        with FlopCounterMode(display=False) as counter:
            conv(x)
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t)
    return counter.get_total_flops() / best


def step_figures(size: int, batch: int, width: int, repeats: int, tmp: str) -> dict:
    config = TrainConfig(
        data=DataConfig(source="phantom", options=SourceOptions(size=size, n=batch * 2), holdout=0.0),
        model=ModelConfig("dcgan", {"image_size": size, "width": width}),
        loop=LoopConfig(steps=10**6, batch_size=batch, ema=0.999),
    )
    trainer = Trainer(config, f"{tmp}/speed-{size}", progress=False)
    for _ in range(3):  # warm-up: allocator, oneDNN primitive caches
        trainer.train_step()
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    flops = counter.get_total_flops()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - t)
    best = min(times)
    median = sorted(times)[len(times) // 2]
    return {"size": size, "batch": batch, "width": width, "flops_per_step": flops, "step_seconds_best": best,
            "step_seconds_median": median, "images_per_second": batch / median, "achieved_flops": flops / best}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rate_before, conv_before = matmul_rate(), conv_rate()
        results = [step_figures(s, args.batch, args.width, args.repeats, tmp) for s in args.sizes]
        rate_after, conv_after = matmul_rate(), conv_rate()
    rate, conv = max(rate_before, rate_after), max(conv_before, conv_after)
    for r in results:
        r["fraction_of_matmul_rate"] = r["achieved_flops"] / rate
        r["fraction_of_conv_rate"] = r["achieved_flops"] / conv
    print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__, "matmul_flops": rate,
                      "conv3x3_flops": conv, "results": results}, indent=2))


if __name__ == "__main__":
    main()
