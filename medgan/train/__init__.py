"""One adversarial training engine and the task recipes that plug into it."""

from medgan.train.checkpoint import load_generator
from medgan.train.config import DataConfig, LoopConfig, LossConfig, ModelConfig, OptimConfig, TrainConfig
from medgan.train.engine import Trainer
from medgan.train.enhance import EnhanceTask
from medgan.train.synth import SynthesisTask

TASKS = {"synth": SynthesisTask, "enhance": EnhanceTask}

__all__ = [
    "DataConfig", "EnhanceTask", "LoopConfig", "LossConfig", "ModelConfig", "OptimConfig", "SynthesisTask", "TASKS", "TrainConfig",
    "Trainer", "load_generator",
]
