"""What a task plugs into the engine.

A task owns its networks and its objective; the engine owns everything else (optimisers,
EMA, checkpoints, logging, progress, DDP). To add a task (enhancement, segmentation,
anomaly detection), subclass :class:`GANTask` in one new module and register it in
:data:`medgan.tasks.TASKS`.

The objectives return named scalars; ``"loss"`` is what the engine minimises, the rest
are logged. They receive G and D as the engine passes them: in the discriminator step G
is a plain module (called under ``no_grad``) and D may be DDP-wrapped; in the generator
step G may be DDP-wrapped and D is a plain module with frozen parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medgan.data.dataset import MedicalImageDataset
from medgan.errors import MedganError
from medgan.train.config import TrainConfig


class GANTask(ABC):
    """A task recipe: networks, the two objectives, and how to draw sample grids."""

    name: str = "task"
    #: ``False`` for a baseline trained without the adversary: the engine skips D's updates.
    uses_discriminator: bool = True

    def __init__(self, config: TrainConfig, dataset: MedicalImageDataset):
        self.config = config
        self.dataset = dataset

    @abstractmethod
    def networks(self) -> tuple[nn.Module, nn.Module]:
        """Fresh ``(G, D)`` built from the config."""

    @abstractmethod
    def discriminator_objective(self, G: nn.Module, D: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """D's loss on one batch (``"loss"``), plus scalars to log."""

    @abstractmethod
    def generator_objective(self, G: nn.Module, D: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """G's loss on one batch (``"loss"``), plus scalars to log."""

    @abstractmethod
    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Inputs for the sample grids, the same at every step (seeded from the config)."""

    @abstractmethod
    def render(self, G: nn.Module, fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [-1, 1] for the sample grid."""

    #: tiles per row of the sample grids (``None``: about square).
    grid_columns: int | None = None

    def display_range(self) -> tuple[float, float]:
        """Values in [-1, 1] shown as black and white in the sample grids."""
        return (-1.0, 1.0)

    def export_info(self) -> dict[str, Any]:
        """What, besides weights, is needed to use the exported generator."""
        return {}

    @classmethod
    def report_parts(cls, run_dir: Path) -> list[str]:
        """HTML sections of the run report that only this task has (after the metrics)."""
        return []

    @classmethod
    def evaluate_run(cls, run_dir: Path, *, n: int, seed: int, inception_weights: str | None,
                     require_inception: bool, metrics: list[str] | None = None) -> dict[str, Any]:
        """Score a finished run the task's own way, append the record to its ``metrics.jsonl``
        and return it (``medgan evaluate RUN`` calls this); ``metrics`` names registered
        metrics to compute instead of the task's defaults, where the task has a choice."""
        raise MedganError(f"evaluation of {cls.name!r} runs is not available yet", path=run_dir)
