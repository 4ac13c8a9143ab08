"""The template task's own options: the ``template`` section of a run's config, and one
``medgan train template`` flag per field declared with :func:`medgan.options.option`."""

from __future__ import annotations

from dataclasses import dataclass

from medgan.options import option


@dataclass
class TemplateConfig:
    """Attributes:
        encoder_steps: steps of the second phase (the encoder, G and critic frozen).
        kappa: weight of the critic-feature residual in the encoder's loss and the score.
        hidden: width of the tiny MLPs.
        z_dim: latent size.
    """

    # flags are one namespace over all tasks: the anomaly task owns --encoder-steps and --kappa
    encoder_steps: int = option(4, "steps of the encoder phase, after --steps of the GAN phase", flag="--template-encoder-steps")
    kappa: float = option(1.0, "weight of the critic-feature residual", flag="--template-kappa")
    hidden: int = 32  # no option: set in a config file (a flag --hidden would clash with the networks' own)
    z_dim: int = 8
