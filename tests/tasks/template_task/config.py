"""The template task's own options: the ``template`` section of a run's config, and one
``medgan train template`` flag per field declared with :func:`medgan.options.option`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from medgan.options import option


@dataclass
class TemplateConfig:
    """Attributes:
        encoder_steps: steps of the second phase (the encoder, G and critic frozen).
        kappa: weight of the critic-feature residual in the encoder's loss and the score.
        hidden: width of the tiny MLPs.
        z_dim: latent size.
    """

    #: the run-wide settings a template run reads (medgan.train.config.TASK_SETTINGS): the
    #: flags medgan train template has besides the fields below; its loss is fixed (hinge)
    settings: ClassVar[dict[str, str]] = {
        "optim.lr_g": "generator and encoder learning rate (default 2e-4)", "optim.lr_d": "critic learning rate (default 2e-4)",
        "optim.beta1": "", "optim.beta2": "", "optim.n_critic": "",
    }

    # each task's flags are its own: the anomaly task has an --encoder-steps and a --kappa too
    encoder_steps: int = option(4, "steps of the encoder phase, after --steps of the GAN phase")
    kappa: float = option(1.0, "weight of the critic-feature residual")
    hidden: int = option(32, "width of the tiny MLPs")
    z_dim: int = option(8, "latent size")
