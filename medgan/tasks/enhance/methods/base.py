"""What an enhancement method is: its networks, phases, objectives and sample grid in one class.

The task (:class:`~medgan.tasks.enhance.recipe.EnhanceTask`) owns what every method shares:
resolving the run's config, the degraded training inputs, the export, evaluation and report.
A method is built with the task and reads those from it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from medgan import losses
from medgan.train.task import Networks, Optimizer, Phase

__all__ = ["NOT_SEEN_TITLE", "EnhanceMethod", "symmetries"]

NOT_SEEN_TITLE = "The same training images at every step: noisy input | output | clean (never seen in training)"


def symmetries(images: list[torch.Tensor], k: torch.Tensor) -> list[torch.Tensor]:
    """Each ``(B, C, H, W)`` image ``i`` of every tensor under symmetry ``k[i]`` of the square
    (0..7: bit 0 mirrors left-right, bit 1 up-down, bit 2 swaps the axes), the same
    symmetry for the images of a pair. Non-square images skip the swap (4 symmetries).

    Noise and resolution loss look alike in every orientation, anatomy does not: the eight
    views make the network learn the degradation rather than one head's orientation (a
    DnCNN trained on one template head and tested on another gained 0.3 dB at sigma 10).
    """
    k = k[:, None, None, None]
    out = []
    for x in images:
        x = torch.where(k % 2 == 1, x.flip(-1), x)
        x = torch.where(k // 2 % 2 == 1, x.flip(-2), x)
        if x.shape[-1] == x.shape[-2]:
            x = torch.where(k >= 4, x.transpose(-1, -2), x)
        out.append(x)
    return out


class EnhanceMethod:
    """One way to train the enhancement generator (see :mod:`medgan.tasks.enhance.methods`).

    Built by the task once the run's config is resolved; ``task`` gives the config, the
    training images (``task.dataset``), their degraded versions ``task.inputs``
    ``(R, N, C, h, w)`` in [-1, 1], the degradation and the generator's config ``task.net_config``.

    Class attributes:
        name: its ``--supervision`` name.
        averaged: networks with an exponential moving average.
        exported: networks written to the run folder (the generator).
        samples_title: what the sample grids show.
    """

    name: ClassVar[str]
    averaged: ClassVar[tuple[str, ...]] = ("generator",)
    exported: ClassVar[tuple[str, ...]] = ("generator",)
    samples_title: ClassVar[str] = "The same training images at every step: degraded | output | clean"

    def __init__(self, task):
        self.task = task
        self.config = task.config
        self.d_loss, self.g_loss = losses.ADVERSARIAL[task.config.loss.name]

    # ---- set-up (class methods: they read the config, never keep it)

    @classmethod
    def line(cls, config) -> str:
        """What ``medgan train enhance`` says it trains and how it measured, in one line."""
        raise NotImplementedError

    @classmethod
    def resolve(cls, config, dataset) -> None:
        """This method's part of :meth:`EnhanceTask.resolve`, before the generator's config
        is completed: its own defaults and refusals."""

    @classmethod
    def check(cls, config, dataset, degradation, multiple: int) -> None:
        """Refusals that need the parsed degradation or the generator's size multiple."""

    @classmethod
    def caption(cls, options: dict[str, Any]) -> str:
        """What the sample grids of a run with the saved ``enhance`` options show."""
        return cls.samples_title

    # ---- training

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, Optimizer]:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def before_step(self, nets: Networks, step: int) -> None:
        """A schedule of the step alone (see :meth:`medgan.train.task.Task.before_step`)."""

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def render(self, nets: Networks, fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def export_info(self) -> dict[str, Any]:
        """What the exported generator's ``config.json`` holds besides the task's fields."""
        return {}
