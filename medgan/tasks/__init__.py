"""The tasks, one package each: its model (``model.py``: the typed record of a trained run,
how its networks are rebuilt and loaded, its scoring), its recipe (networks and objectives
for the engine), its inference, evaluation, report sections and task-specific data code.
The model sits below the rest: recipe, evaluation, report and commands import it, never
each other in a circle.

- :mod:`medgan.tasks.synth`: unconditional and class-conditional synthesis, and sampling.
- :mod:`medgan.tasks.enhance`: denoising and super-resolution, paired, self-supervised
  (noisy images alone) or unpaired (CycleGAN), their degradations, the classical baselines,
  and inference on DICOM/NIfTI/PNG/TIFF keeping geometry.
- :mod:`medgan.tasks.classify`: the downstream classifier of the data-augmentation tests.
- :mod:`medgan.tasks.segment`: a U-Net alone or with a critic, semi-supervised with
  unlabelled images; label maps, overlays, volumes and DICOM SEG at inference.
- :mod:`medgan.tasks.anomaly`: f-AnoGAN, GANomaly and an autoencoder trained on normal
  images, their scores calibrated on held-out normals (conformal p-values and thresholds).

:data:`TASKS` is the one place a task registers (one entry: its name, where its recipe
class, options and commands live); ``medgan train <task>``, ``medgan evaluate`` and the
report take tasks from here. Everything is imported on first use, so the engine can import
this registry without the recipes that import the engine's contract (no import cycle), and
the command line starts without importing torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from pathlib import Path
from typing import Any

from medgan.lazy import load

__all__ = ["TASKS", "TaskRegistry", "load_model"]


class TaskRegistry(Mapping):
    """Task name -> task class (a :class:`medgan.train.task.Task`), loaded on first use.

    Each entry also names the task's options dataclass and the function adding its own
    commands, in light modules of their own: the ``medgan`` parser is built from those
    alone, so ``medgan --help`` or ``medgan data show`` never import a recipe (and torch).
    """

    def __init__(self, entries: dict[str, dict[str, str | None]]):
        self._entries: dict[str, dict[str, str | None]] = {}
        self._loaded: dict[str, type] = {}
        for name, entry in entries.items():
            self.register(name, **entry)

    def __getitem__(self, name: str) -> type:
        if name not in self._loaded:
            self._loaded[name] = load(self._entries[name]["recipe"])  # KeyError for an unknown task
        return self._loaded[name]

    def options(self, name: str) -> type | None:
        """The task's options dataclass (its fields are ``medgan train <task>`` flags and the
        ``<task>`` section of a run's config), or ``None``."""
        location = self._entries[name]["options"]
        return None if location is None else load(location)

    def add_commands(self, name: str, commands) -> None:
        """Add the task's own commands (its inference: ``medgan generate``, ``medgan enhance`` ...)
        to the ``medgan`` sub-command parser; each sets ``func`` to a function of the parsed
        arguments that only parses and calls the API."""
        location = self._entries[name]["commands"]
        if location is not None:
            load(location)(commands)

    def example(self, name: str) -> dict[str, Any] | None:
        """The task in miniature (``EXAMPLE`` of its commands module): ``train``, the flags of
        a short run on embedded data, ``infer``, its inference command with ``{run}``,
        ``{input}`` and ``{out}`` to fill in, and optionally ``evaluate``, flags of a quick
        ``medgan evaluate``; ``None`` when the task has not written one.
        The registry's contract test runs it for every task."""
        import importlib

        location = self._entries[name]["commands"]
        return None if location is None else getattr(importlib.import_module(location.partition(":")[0]), "EXAMPLE", None)

    def register(self, name: str, recipe: str, options: str | None = None, commands: str | None = None) -> None:
        """Add a task: each location is ``"package.module:name"``, imported on first use.

        Args:
            recipe: the :class:`~medgan.train.task.Task` subclass.
            options: its options dataclass (a module that does not import torch), if any.
            commands: ``add_commands(subparsers)`` of its own commands, if any.
        """
        entry = {"recipe": recipe, "options": options, "commands": commands}
        if name in self._entries and self._entries[name] != entry:
            raise ValueError(f"task {name!r} is already registered as {self._entries[name]}")
        self._entries[name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


TASKS = TaskRegistry({
    "synth": {"recipe": "medgan.tasks.synth.recipe:SynthesisTask", "options": "medgan.tasks.synth.config:SynthConfig",
              "commands": "medgan.tasks.synth.command:add_commands"},
    "enhance": {"recipe": "medgan.tasks.enhance.recipe:EnhanceTask", "options": "medgan.tasks.enhance.config:EnhanceConfig",
                "commands": "medgan.tasks.enhance.command:add_commands"},
    "classify": {"recipe": "medgan.tasks.classify.recipe:ClassifyTask", "options": "medgan.tasks.classify.config:ClassifyConfig",
                 "commands": "medgan.tasks.classify.command:add_commands"},
    "segment": {"recipe": "medgan.tasks.segment.recipe:SegmentTask", "options": "medgan.tasks.segment.config:SegmentConfig",
                "commands": "medgan.tasks.segment.command:add_commands"},
    "anomaly": {"recipe": "medgan.tasks.anomaly.recipe:AnomalyTask", "options": "medgan.tasks.anomaly.config:AnomalyConfig",
                "commands": "medgan.tasks.anomaly.command:add_commands"},
})


def load_model_of(kind: type, path: str | Path, device: str = "cpu", train_command: str = "medgan train") -> Any:
    """:func:`load_model`, checked to be a ``kind`` record (one clear error for a run of
    another task, naming ``train_command`` as the way to make the right one)."""
    from medgan.errors import MedganError

    model = load_model(path, device)
    if not isinstance(model, kind):
        raise MedganError(f"not a {kind.__name__} (task {model.info.get('task')!r})", path=path,
                          hint=f"give a run folder made by {train_command}")
    return model


def load_model(path: str | Path, device: str = "cpu") -> Any:
    """The model of a trained run, as its task's typed record (``from_pretrained`` style).

    Builds only the networks the task exported for inference (``RUN/<name>/config.json`` +
    ``model.safetensors``, no pickle), in eval mode on ``device``, and hands them to the
    task's :meth:`~medgan.train.task.Task.from_pretrained`, which checks their configs and
    returns e.g. a :class:`~medgan.tasks.synth.model.SynthesisModel` (each task's loader,
    ``synthesis_model(run)`` ..., lives in its ``model.py`` and calls :func:`load_model_of`) or an
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
    from medgan.train.checkpoint import exported_folders, is_export, load_network

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
    run = Path(path).parent if is_export(Path(path)) else Path(path)  # what the run keeps besides its networks (a calibration)
    return task.from_pretrained(loaded, run=run)
