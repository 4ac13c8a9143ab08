"""One training engine; the task recipes that plug into it live in :mod:`medgan.tasks`.

The names below are imported on first use (PEP 562), so the command line can read the
config dataclasses of :mod:`medgan.train.config` without importing the engine (torch,
matplotlib).
"""

from medgan.lazy import lazy_exports

_LOCATIONS = {
    "DataConfig": "medgan.data.training", "LoopConfig": "medgan.train.config", "LossConfig": "medgan.train.config",
    "ModelConfig": "medgan.train.config", "OptimConfig": "medgan.train.config", "TrainConfig": "medgan.train.config",
    "Trainer": "medgan.train.engine",
}
__all__ = list(_LOCATIONS)

__getattr__, __dir__ = lazy_exports(__name__, _LOCATIONS)
