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

from pathlib import Path
from typing import Any

__all__ = ["TASKS", "TaskRegistry", "load_model"]


class TaskRegistry(Mapping):
    """Task name -> task class (a :class:`medgan.train.task.Task`), loaded on first use."""

    def __init__(self, locations: dict[str, str]):
        self._locations = dict(locations)  # name -> "module:Class"
        self._loaded: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        if name not in self._loaded:
            module, _, attr = self._locations[name].partition(":")  # KeyError for an unknown task
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]

    def register(self, name: str, location: str) -> None:
        """Add a task: ``location`` is ``"package.module:Class"`` (imported on first use)."""
        if name in self._locations and self._locations[name] != location:
            raise ValueError(f"task {name!r} is already registered as {self._locations[name]}")
        self._locations[name] = location

    def unregister(self, name: str) -> None:
        self._locations.pop(name, None)
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._locations)

    def __len__(self) -> int:
        return len(self._locations)


TASKS = TaskRegistry({
    "synth": "medgan.tasks.synth.recipe:SynthesisTask",
    "enhance": "medgan.tasks.enhance.recipe:EnhanceTask",
})


def load_model(path: str | Path, device: str = "cpu") -> Any:
    """The model of a trained run, as its task's typed record (``from_pretrained`` style).

    Builds only the networks the task exported for inference (``RUN/<name>/config.json`` +
    ``model.safetensors``, no pickle), in eval mode on ``device``, and hands them to the
    task's :meth:`~medgan.train.task.Task.from_pretrained`, which checks their configs and
    returns e.g. a :class:`~medgan.tasks.synth.recipe.SynthesisModel` or an
    :class:`~medgan.tasks.enhance.recipe.EnhancementModel`.

    Args:
        path: a run folder, or one exported network's folder (e.g. ``RUN/generator``).
        device: where to put the networks.

    Raises:
        MedganError: no exported network at ``path``, a task this medgan does not know, or a
            config / weights that do not fit together.
    """
    import json

    from medgan.errors import MedganError
    from medgan.train.checkpoint import exported_folders, load_network

    folders = exported_folders(path)
    if not folders:
        raise MedganError("no exported model here (a folder with config.json + model.safetensors)", path=path,
                          hint="give a run folder made by medgan train")
    tasks = {json.loads((f / "config.json").read_text()).get("task", "synth") for f in folders.values()}
    if len(tasks) != 1 or next(iter(tasks)) not in TASKS:
        raise MedganError(f"the exported networks belong to task(s) {', '.join(sorted(map(str, tasks)))}", path=path,
                          hint=f"this medgan knows: {', '.join(TASKS)}")
    task = TASKS[next(iter(tasks))]
    loaded = {name: load_network(folder, lambda info, name=name: task.build_network(name, info), device)
              for name, folder in folders.items()}
    return task.from_pretrained(loaded)
