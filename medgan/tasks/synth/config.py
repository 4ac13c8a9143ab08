"""The synthesis task's own options (the ``synth`` section of a run's config; each field is a
``medgan train synth`` flag). They matter for class-conditional runs only."""

from __future__ import annotations

from dataclasses import dataclass

from medgan.errors import MedganError
from medgan.options import option

__all__ = ["SynthConfig"]


@dataclass
class SynthConfig:
    """How a class-conditional GAN receives its classes.

    Transitional conditioning (Shahbazi et al. 2022): on small data a conditional GAN often
    collapses inside a class, because D learns the classes before G has learnt images at
    all. Training starts unconditional and the class terms of G (conditional batch norm)
    and D (projection) are faded in linearly.

    Attributes:
        condition_start: steps trained unconditionally (class strength 0).
        condition_ramp: steps over which the class strength then rises from 0 to 1
            (0: a switch at ``condition_start``; ``--condition-start 0 --condition-ramp 0``
            is a conditional GAN from the first step).
    """

    condition_start: int = option(500, "conditional runs: train unconditionally for this many steps, then fade the classes in")
    condition_ramp: int = option(1000, "conditional runs: steps over which the class terms fade from 0 to full strength")

    def __post_init__(self) -> None:
        if self.condition_start < 0 or self.condition_ramp < 0:
            raise MedganError(f"--condition-start {self.condition_start} and --condition-ramp {self.condition_ramp} must not be negative")

    def strength(self, step: int) -> float:
        """Class strength in [0, 1] for training step ``step`` (0-based)."""
        if step < self.condition_start:
            return 0.0
        if self.condition_ramp == 0:
            return 1.0
        return min(1.0, (step - self.condition_start) / self.condition_ramp)
