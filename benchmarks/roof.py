"""This machine's own limit: the fp32 FMA peak (and the bf16 matmul peak where the CPU has
native bf16), measured in the calling process, plus what the CPU is.

Every speed benchmark divides its FLOP/s by these figures, so its fractions hold on any
machine and on a noisy one, where absolute numbers do not. Run alone it prints the roofs:

    python benchmarks/roof.py [--threads 2]

**fp32 roof.** A tiny C kernel, compiled here with the system's C compiler for this CPU
(``-O3 -march=native``), runs 12 independent chains of 16-float fused multiply-adds per
thread (enough to cover the FMA latency on every x86 core since Haswell), on as many OpenMP
threads as torch uses. It is the physical peak of the vector units, not of any library.
Without a compiler the roof falls back to the best fp32 matrix product (``torch.mm``, 2048^3),
which reaches 85-90% of the FMA peak on the CPUs measured; the JSON says which.

**bf16 roof.** The best bf16 ``torch.mm`` (2048^3, oneDNN: AMX tiles or AVX-512 BF16 dot
products), reported only where the CPU has ``avx512_bf16`` or ``amx_bf16``: elsewhere bf16 is
emulated and slower than fp32.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import torch

from medgan.train.precision import native_bf16

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")

FMA_KERNEL = r"""
#include <omp.h>
typedef float v16 __attribute__((vector_size(64)));
/* FLOPs done: threads * iters * 12 chains * 16 lanes * 2 */
double fma_loop(long iters, int threads) {
    double total = 0.0;
    #pragma omp parallel num_threads(threads) reduction(+:total)
    {
        float seed = 1.0f + 1e-7f * omp_get_thread_num();
        v16 b = {0}, c = {0}, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
        for (int k = 0; k < 16; k++) { b[k] = 0.999999f; c[k] = 1e-6f * seed; }
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = b * seed;
        for (long i = 0; i < iters; i++) {
            a0 = a0 * b + c; a1 = a1 * b + c; a2 = a2 * b + c; a3 = a3 * b + c;
            a4 = a4 * b + c; a5 = a5 * b + c; a6 = a6 * b + c; a7 = a7 * b + c;
            a8 = a8 * b + c; a9 = a9 * b + c; a10 = a10 * b + c; a11 = a11 * b + c;
        }
        v16 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
        for (int k = 0; k < 16; k++) total += s[k];
    }
    return total;
}
"""
FLOPS_PER_ITER = 12 * 16 * 2


def cpu_flags() -> list[str]:
    """The ISA flags of :data:`ISA_FLAGS` this CPU reports (Linux ``/proc/cpuinfo``)."""
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return []
    line = next((x for x in path.read_text().splitlines() if x.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in ISA_FLAGS if f in have]


def machine() -> dict:
    """CPU model, cores, ISA flags, torch threads and version: what every figure names."""
    model = platform.processor()
    path = Path("/proc/cpuinfo")
    if path.is_file():
        model = next((x.split(":", 1)[1].strip() for x in path.read_text().splitlines() if x.startswith("model name")), model)
    return {"cpu": model, "cores": os.cpu_count(), "isa": cpu_flags(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__}


@lru_cache(maxsize=1)
def _fma_library() -> ctypes.CDLL | None:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="medgan-roof-"))
    source, library = folder / "fma.c", folder / "fma.so"
    source.write_text(FMA_KERNEL)
    done = subprocess.run([compiler, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-o", str(library), str(source)],
                          capture_output=True)
    if done.returncode != 0:
        return None
    lib = ctypes.CDLL(str(library))
    lib.fma_loop.restype = ctypes.c_double
    lib.fma_loop.argtypes = [ctypes.c_long, ctypes.c_int]
    return lib


def fma_rate(threads: int, seconds: float = 0.3, repeats: int = 5) -> float | None:
    """Best-of-``repeats`` fp32 FLOP/s of the FMA kernel on ``threads`` threads; ``None``
    without a working C compiler with OpenMP."""
    lib = _fma_library()
    if lib is None:
        return None
    iters = 1_000_000
    while True:  # size the run to about `seconds`
        t = time.perf_counter()
        lib.fma_loop(iters, threads)
        elapsed = time.perf_counter() - t
        if elapsed > seconds / 4:
            break
        iters *= 4
    iters = int(iters * seconds / max(elapsed, 1e-9))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        lib.fma_loop(iters, threads)
        best = min(best, time.perf_counter() - t)
    return threads * iters * FLOPS_PER_ITER / best


def matmul_rate(dtype: torch.dtype = torch.float32, n: int = 2048, seconds: float = 2.0, repeats: int = 10) -> float:
    """Best FLOP/s of an ``n x n`` matrix product (2 n^3 FLOPs) in ``dtype`` over ``seconds``
    of back-to-back products (at least ``repeats``). Kept running that long because the bf16
    (AMX) rate here climbs from about 0.9 to 2.1 TFLOP/s only after some 16 products."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best, start, done = float("inf"), time.perf_counter(), 0
    while done < repeats or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
        done += 1
    return 2 * n**3 / best


def roofs(threads: int | None = None) -> dict:
    """``{"fp32": FLOP/s, "fp32_source": "fma-kernel" | "matmul", "fp32_matmul": FLOP/s,
    "bf16": FLOP/s or None}`` on ``threads`` threads (default: torch's)."""
    threads = threads or torch.get_num_threads()
    fma = fma_rate(threads)
    mm = matmul_rate()
    out = {"threads": threads, "fp32": fma if fma else mm, "fp32_source": "fma-kernel" if fma else "matmul",
           "fp32_matmul": mm, "bf16": matmul_rate(torch.bfloat16) if native_bf16() else None}
    return out


def remeasured(roof: dict) -> dict:
    """``roof`` measured again after the work, keeping the larger of the two figures: the
    host's speed drifts (turbo, neighbours), and a fraction of too low a roof flatters."""
    after = roofs(roof["threads"])
    return {**roof, **{k: max(roof[k], after[k]) for k in ("fp32", "fp32_matmul", "bf16") if roof.get(k) and after.get(k)}}


def fractions(flops: float, roof: dict) -> dict:
    """A throughput as fractions of the fp32 (and bf16) roof."""
    out = {"fraction_of_fp32_roof": round(flops / roof["fp32"], 3)}
    if roof.get("bf16"):
        out["fraction_of_bf16_roof"] = round(flops / roof["bf16"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    single = fma_rate(1)
    print(json.dumps({"machine": machine(), "roof": roofs(), "fp32_fma_one_thread": single}, indent=2))


if __name__ == "__main__":
    main()
