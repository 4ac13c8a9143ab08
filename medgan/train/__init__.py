"""One training engine; the task recipes that plug into it live in :mod:`medgan.tasks`."""

from medgan.train.config import DataConfig, LoopConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
from medgan.train.engine import Trainer

__all__ = ["DataConfig", "LoopConfig", "LossConfig", "ModelConfig", "OptimConfig", "TrainConfig", "Trainer"]
