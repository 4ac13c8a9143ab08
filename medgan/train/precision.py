"""Which arithmetic a run trains in: fp32, or mixed precision (``--amp``: bf16 autocast on
CPU, fp16 with loss scaling on CUDA).

Mixed precision pays on a CPU only where it computes bf16 natively (AVX-512 BF16 or AMX);
elsewhere oneDNN emulates bf16 and the step is slower than fp32. ``loop.amp`` left unset
(``None``) is resolved here, once, into the run's config, so ``config.json`` says which
arithmetic a run used and a resumed run keeps it on any machine.

The default follows what was measured on such a CPU: the enhancement denoisers (pix2pix,
DnCNN; 3 seeds, ``benchmarks/amp_quality.py``) keep their PSNR under bf16 and train 1.9-3.5x
faster; a DCGAN's KID is 8% worse at equal steps (5 of 6 seeds) but 13% better at equal
minutes (``benchmarks/synth_vs_peers.py --contenders medgan,medgan+amp``: 1.4x the steps in
10 minutes), so enhancement and synthesis run in bf16 there, and every task not measured
stays in fp32. CUDA stays fp32 unless asked: fp16 has not been measured here.
"""

from __future__ import annotations

import torch

__all__ = ["describe", "native_bf16", "resolve_amp"]


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX tiles)."""
    cpu = torch.cpu
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(check is None for check in checks):  # a torch without the probes: read the flags
        from pathlib import Path

        info = Path("/proc/cpuinfo")
        flags = info.read_text().split() if info.is_file() else []
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return any(bool(check()) for check in checks if check is not None)


def resolve_amp(amp: bool | None, device: str, task_prefers_bf16: bool) -> bool:
    """``amp`` as given, or (``None``) the default: on only for a task that prefers it,
    training on a CPU with native bf16.

    Args:
        amp: the run's ``loop.amp`` (``None``: not given).
        device: the run's ``loop.device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        task_prefers_bf16: the task's :attr:`~medgan.train.task.Task.bf16_on_cpu`.
    """
    if amp is not None:
        return amp
    on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return task_prefers_bf16 and on_cpu and native_bf16()


def describe(amp: bool, device: torch.device) -> str:
    """The arithmetic of a run, as the command line reports it."""
    if not amp:
        return "fp32 (--amp: mixed precision)"
    return f"{'fp16' if device.type == 'cuda' else 'bf16'} mixed precision (--no-amp: fp32)"
