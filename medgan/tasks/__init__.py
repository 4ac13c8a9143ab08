"""The tasks, one package each: its recipe (networks and objectives for the engine), its
inference and its task-specific data code.

- :mod:`medgan.tasks.synth`: unconditional and class-conditional synthesis, and sampling.
- :mod:`medgan.tasks.enhance`: paired denoising and super-resolution, their degradations,
  and inference on DICOM/NIfTI/PNG/TIFF keeping geometry.

:data:`TASKS` is the one place a task registers: ``medgan train <task>`` takes its names
from here.
"""

from medgan.tasks.enhance.recipe import EnhanceTask
from medgan.tasks.synth.recipe import SynthesisTask

TASKS = {"synth": SynthesisTask, "enhance": EnhanceTask}

__all__ = ["TASKS", "EnhanceTask", "SynthesisTask"]
