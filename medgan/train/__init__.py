"""One training engine; the task recipes that plug into it live in :mod:`medgan.tasks`.

The names below are imported on first use (PEP 562), so the command line can read the
config dataclasses of :mod:`medgan.train.config` without importing the engine (torch,
matplotlib).
"""

import importlib

_LOCATIONS = {
    "DataConfig": "medgan.data.training", "LoopConfig": "medgan.train.config", "LossConfig": "medgan.train.config",
    "ModelConfig": "medgan.train.config", "OptimConfig": "medgan.train.config", "TrainConfig": "medgan.train.config",
    "Trainer": "medgan.train.engine",
}
__all__ = list(_LOCATIONS)


def __getattr__(name: str):
    if name not in _LOCATIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LOCATIONS[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
