"""What an anomaly method is: its networks, training and scoring in one class.

The task (:class:`~medgan.tasks.anomaly.recipe.AnomalyTask`) owns what every method shares:
resolving the run's config, the fixed images of the sample grids, the export, calibration,
evaluation and report. A method owns the rest; scoring is a class method, so inference uses
it without a training config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from medgan import losses
from medgan.errors import MedganError
from medgan.nets.dcgan import SIZES, DCGANConfig
from medgan.train.distributed import unwrap
from medgan.train.task import Networks, Optimizer, Phase, Update

__all__ = ["AnomalyMethod", "Defaults", "FittedRule", "dcgan_config", "features", "no_gradient"]


@dataclass(frozen=True)
class Defaults:
    """A method's Adam learning rate and betas, adversarial loss and critic updates per step,
    how its maps and images are scored (``--normalise-residual``, ``--image-score``) and its
    training steps (``None``: the engine's 4000), used where the run leaves them on auto; and
    its latent size."""

    lr: float
    betas: tuple[float, float]
    loss: str = "bce"
    n_critic: int = 1
    z_dim: int = 100
    normalise_residual: str = "on"
    image_score: str = "map-max"
    steps: int | None = None


def dcgan_config(net: Mapping[str, Any], d_norm: str = "batch") -> DCGANConfig:
    """The DCGAN-shaped networks' config from a run's ``model.net`` (other keys are ignored)."""
    keys = {"z_dim", "image_size", "channels", "width", "upsample"}
    return DCGANConfig(**{k: v for k, v in net.items() if k in keys}, d_norm=d_norm)


def features(D: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(B, C0 * s0 * s0)``: a DCGAN discriminator's last convolutional features."""
    return unwrap(D).features(x).flatten(1)


class AnomalyMethod:
    """One anomaly method (see :mod:`medgan.tasks.anomaly.methods`).

    Built by the task with the resolved run config and the networks' config ``net`` (the
    :attr:`net_keys` of ``model.net``). The defaults here are for DCGAN-shaped networks
    (:mod:`medgan.nets.dcgan`, :mod:`medgan.nets.encoder`); a method with other networks
    sets :attr:`model` and :attr:`net_keys` and overrides :meth:`resolve_net`.

    Class attributes:
        name: its ``--method`` name.
        networks: the networks it trains, built in this order (the order seeds their weights).
        exported: those written to the run folder for scoring.
        defaults: see :class:`Defaults`.
        model: the ``model.name`` of its runs (``--model`` may only repeat it).
        net_keys: the keys of ``model.net`` its networks are built from, exported as ``net``.
    """

    name: ClassVar[str]
    networks: ClassVar[tuple[str, ...]]
    exported: ClassVar[tuple[str, ...]]
    defaults: ClassVar[Defaults]
    model: ClassVar[str] = "dcgan"
    #: what its maps hold, for how they are drawn and stored (:func:`medgan.tasks.anomaly.detect.map_units`):
    #: ``None`` for a residual |x - x^| in [-1, 1] units, else a description of maps on a scale
    #: like a z-score's (a rule's standard deviations, a patch distance)
    map_description: ClassVar[str | None] = None
    net_keys: ClassVar[tuple[str, ...]] = ("z_dim", "image_size", "channels", "width", "upsample")

    def __init__(self, config, net: dict[str, Any]):
        self.config = config
        self.net = net
        self.d_loss, self.g_loss = losses.ADVERSARIAL[config.loss.name]

    # ---- set-up (class methods: they read the config, never keep it)

    @classmethod
    def line(cls) -> str:
        """What ``medgan train anomaly`` says it trains and how it measured, in one line."""
        raise NotImplementedError

    @classmethod
    def resolve(cls, config) -> None:
        """Checks of the resolved config that only this method makes (none by default)."""

    @classmethod
    def resolve_net(cls, config, dataset) -> None:
        """Fill ``config.model.net`` with the networks' whole config, as they are built and
        exported, for the training images ``dataset``; refuse a size they cannot make."""
        size = config.data.options.size
        if size not in SIZES:
            raise MedganError(f"the anomaly networks make {', '.join(map(str, SIZES))}-pixel images, not {size}", hint="use --size 64")
        net = config.model.net
        net.setdefault("z_dim", cls.defaults.z_dim)
        net.update(z_dim=int(net["z_dim"]), image_size=dataset.image_size[0], channels=dataset.channels,
                   width=int(net.get("width", 32)), upsample=net.get("upsample", "deconv"))

    @classmethod
    def build(cls, name: str, net: Mapping[str, Any]) -> nn.Module:
        """The untrained network ``name`` from the networks' config."""
        raise MedganError(f"the {cls.name} method has no network named {name!r}")

    # ---- training

    def build_networks(self) -> dict[str, nn.Module]:
        return {name: self.build(name, self.net) for name in self.networks}

    def optimizers(self) -> dict[str, Optimizer]:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def plan(self, steps: list[int]) -> None:
        """A time budget's steps, one per phase (see :meth:`medgan.train.task.Task.plan`)."""
        self.config.loop.steps = steps[0]

    def render(self, nets: Networks, fixed: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        """``(2B, C, S, S)``: image, reconstruction pairs of the fixed images ``fixed["x"]`` at
        ``step`` (``fixed["z"]``: latent codes, for a method with ``z_dim`` whose grid shows samples)."""
        x = fixed["x"]
        rec = nets.generator(nets.encoder(x))
        return torch.stack([x, rec], dim=1).flatten(0, 1)

    # ---- scoring

    @classmethod
    def score(cls, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores (B,), reconstructions (B, C, S, S))`` of images ``x`` in [-1, 1] by a
        trained :class:`~medgan.tasks.anomaly.model.AnomalyModel` (networks in eval mode);
        each image's values depend on that image alone."""
        raise NotImplementedError


def no_gradient(nets: Networks) -> torch.Tensor:
    """A zero loss that reaches no weight: the engine's optimiser step then changes nothing."""
    some = next(iter(nets.values()))
    return torch.zeros((), device=next(some.parameters()).device, requires_grad=True)


class FittedRule(AnomalyMethod):
    """A method without learned weights: its one network holds statistics of the training
    normals, which one phase ``fit`` fills, a batch per step (:meth:`objective` adds it and
    returns :func:`no_gradient`). The optimiser is there because the engine holds one per
    phase; it never moves a weight."""

    defaults = Defaults(lr=1e-3, betas=(0.9, 0.999), normalise_residual="off")  # a rule's map is already on its own scale

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        return {self.networks[0]: Optimizer(self.networks, o.lr_g, (o.beta1, o.beta2))}

    def phases(self) -> list[Phase]:
        return [Phase("fit", self.config.loop.steps, (Update("fit", self.networks[0], self.objective),))]

    def objective(self, nets: Networks, batch):
        raise NotImplementedError
