"""The tasks, one package each: its recipe (networks and objectives for the engine), its
inference, evaluation, report sections and task-specific data code.

- :mod:`medgan.tasks.synth`: unconditional and class-conditional synthesis, and sampling.
- :mod:`medgan.tasks.enhance`: paired denoising and super-resolution, their degradations,
  and inference on DICOM/NIfTI/PNG/TIFF keeping geometry.

:data:`TASKS` is the one place a task registers (one line: its name and where its class
lives); ``medgan train <task>``, ``medgan evaluate`` and the report take tasks from here.
The classes are imported on first use, so the engine can import this registry without
importing the recipes that import the engine's contract (no import cycle).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

__all__ = ["TASKS", "TaskRegistry"]


class TaskRegistry(Mapping):
    """Task name -> task class (a :class:`medgan.train.task.GANTask`), loaded on first use."""

    def __init__(self, locations: dict[str, str]):
        self._locations = dict(locations)  # name -> "module:Class"
        self._loaded: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        if name not in self._loaded:
            module, _, attr = self._locations[name].partition(":")  # KeyError for an unknown task
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._locations)

    def __len__(self) -> int:
        return len(self._locations)


TASKS = TaskRegistry({
    "synth": "medgan.tasks.synth.recipe:SynthesisTask",
    "enhance": "medgan.tasks.enhance.recipe:EnhanceTask",
})
