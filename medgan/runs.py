"""A run folder as evaluation reads it: its config, its training and held-out images, and
``medgan evaluate RUN``, which hands the run to its task's evaluation.

Every task's evaluation reads its run through these functions; what is particular to a
task lives in ``medgan/tasks/<name>/evaluate.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from medgan.data.training import load_training_data
from medgan.errors import MedganError
from medgan.tasks import TASKS
from medgan.train.config import TrainConfig

__all__ = ["evaluate_run", "real_images", "run_config", "run_holdout"]


def run_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise MedganError("not a run folder (no config.json)", path=run_dir, hint="give a folder made by medgan train")
    return TrainConfig.from_dict(json.loads(path.read_text()))


def run_holdout(run_dir: Path, what: str = "patients"):
    """``(config, training dataset, held-out ImageSet)`` of a run: the images it never
    trained on, or one clear error when it kept none."""
    config = run_config(run_dir)
    dataset, holdout = load_training_data(config.data)
    if holdout is None or not len(holdout):
        raise MedganError(f"the run has no held-out {what} to test on", path=run_dir,
                          hint="train with --holdout > 0 on data with several patients or volumes")
    return config, dataset, holdout


def real_images(run_dir: Path, with_labels: bool = False):
    """The run's training images and held-out images, in [-1, 1] as ``(N, C, H, W)``, and
    the intensity map; with ``with_labels`` also the training images' class labels
    (``None`` for unlabelled data) as a fourth item."""
    config = run_config(run_dir)
    dataset, holdout = load_training_data(config.data)
    train = dataset.batch(torch.arange(len(dataset)))["image"].numpy()
    held = None
    if holdout is not None and len(holdout):
        held = dataset.intensity.forward(holdout.images)
        held = held if held.ndim == 4 else held[:, None]
    if with_labels:
        return train, held, dataset.intensity, dataset.data.labels
    return train, held, dataset.intensity


def evaluate_run(run_dir: str | Path, n: int = 1000, seed: int = 0, inception_weights: str | None = None,
                 require_inception: bool = False, metrics: list[str] | None = None) -> dict:
    """Evaluate a run with its task's own evaluation (:meth:`medgan.train.task.Task.evaluate_run`); the record is
    appended to the run's ``metrics.jsonl`` and returned."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    if config.task not in TASKS:
        raise MedganError(f"the run's task {config.task!r} is unknown to this medgan", path=run_dir,
                          hint=f"known tasks: {', '.join(TASKS)}")
    return TASKS[config.task].evaluate_run(run_dir, n=n, seed=seed, inception_weights=inception_weights,
                                           require_inception=require_inception, metrics=metrics)
