"""Process-group set-up for ``torchrun``, and helpers that are no-ops in one process.

``torchrun --nproc_per_node N -m medgan train ...`` sets ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``; the engine then joins the group (NCCL on CUDA, gloo on CPU), wraps G and D
in ``DistributedDataParallel``, splits each batch over ranks with a
``DistributedSampler``, and lets only rank 0 write files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> this process's CUDA device when there is one, else CPU."""
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        from medgan.errors import MedganError

        raise MedganError("--device cuda was asked for but no CUDA device is available", hint="use --device cpu or auto")
    return device


def setup(device_name: str) -> DistInfo:
    """Join the process group if launched by torchrun; return this process's rank and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(device=resolve_device(device_name))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=device)


def teardown(info: DistInfo) -> None:
    if info.enabled and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def wrap(module: nn.Module, info: DistInfo) -> nn.Module:
    """``DistributedDataParallel(module)`` under torchrun, ``module`` otherwise."""
    if not info.enabled:
        return module
    ids = [info.device.index] if info.device.type == "cuda" else None
    # Buffers (batch-norm statistics) are broadcast from rank 0 at every forward by default,
    # in every torch 2.x; naming the flag (deprecated in 2.13) only adds a FutureWarning per process.
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (for penalties and frozen use)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def barrier(info: DistInfo) -> None:
    if info.enabled:
        torch_dist.barrier()


def all_equal(value: float, info: DistInfo) -> bool:
    """True when every rank holds the same ``value`` (a cheap check that replicas agree)."""
    if not info.enabled:
        return True
    t = torch.tensor([value, -value], dtype=torch.float64, device=info.device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return bool(t[0] == value and -t[1] == value)


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is true on any rank (stop together)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_max(values: list[float], info: DistInfo) -> list[float]:
    """Each value's largest over the ranks (the same list on every rank)."""
    if not info.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=info.device)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return t.tolist()
