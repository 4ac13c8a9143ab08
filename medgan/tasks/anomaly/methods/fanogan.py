"""f-AnoGAN (Schlegl et al. 2019): a WGAN-GP on normal images, then an encoder into its latent space.

Phase ``gan``: a WGAN-GP, ``z ~ U(-1, 1)``, a critic with layer norm instead of batch norm (the
gradient penalty is per sample), ``n_critic`` 5, Adam 1e-4 with betas (0, 0.9) as in
Gulrajani et al. Phase ``encoder`` (G and the critic frozen, in eval mode): izi_f, an encoder
E with tanh output trained so that ``G(E(x))`` redraws ``x``:
``mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2``, ``f`` the critic's last
convolutional features. Score: the same two residuals; map ``|x - G(E(x))|``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medgan import losses
from medgan.errors import MedganError
from medgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from medgan.nets.encoder import ImageEncoder
from medgan.tasks.anomaly.methods.base import AnomalyMethod, Defaults, dcgan_config, features
from medgan.train.distributed import unwrap
from medgan.train.task import Networks, Optimizer, Phase, Update

__all__ = ["FAnoGAN"]


class FAnoGAN(AnomalyMethod):
    """f-AnoGAN: the WGAN-GP, then the encoder (see the module doc)."""

    name = "fanogan"
    networks = ("generator", "critic", "encoder")
    exported = ("generator", "critic", "encoder")
    defaults = Defaults(lr=1e-4, betas=(0.0, 0.9), loss="wgan-gp", n_critic=5, z_dim=128)

    def __init__(self, config, net: dict[str, Any]):
        super().__init__(config, net)
        self.gan_steps = config.loop.steps
        self.encoder_steps = config.task_config.encoder_steps or config.loop.steps

    @classmethod
    def line(cls) -> str:
        # Figures: benchmarks/anomaly_vs_baselines.py, phantoms, 600 steps, 3 seeds (README).
        return ("f-AnoGAN (a WGAN-GP, then an encoder): the weakest detector in benchmarks/anomaly_vs_baselines.py "
                "(phantom pixel AUPRC 0.02) at 6x the autoencoder's time (--method ae, the default)")

    @classmethod
    def resolve(cls, config) -> None:
        if config.loss.name != "wgan-gp":
            raise MedganError(f"f-AnoGAN trains a WGAN-GP, not --loss {config.loss.name}", hint="leave --loss out")

    @classmethod
    def build(cls, name: str, net) -> nn.Module:
        critic = replace(dcgan_config(net), d_norm="layer")  # the gradient penalty is per sample
        if name == "generator":
            return DCGANGenerator(dcgan_config(net))
        if name == "encoder":
            return ImageEncoder(critic, bounded=True)  # tanh: z lives in [-1, 1]
        if name == "critic":
            return DCGANDiscriminator(critic)
        return super().build(name, net)

    # ---- training

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        betas = (o.beta1, o.beta2)
        return {"generator": Optimizer(("generator",), o.lr_g, betas), "critic": Optimizer(("critic",), o.lr_d, betas),
                "encoder": Optimizer(("encoder",), o.lr_g, betas)}

    def phases(self) -> list[Phase]:
        return [Phase("gan", self.gan_steps, (Update("d", "critic", self.critic_objective, repeat=self.config.optim.n_critic),
                                               Update("g", "generator", self.generator_objective))),
                Phase("encoder", self.encoder_steps, (Update("e", "encoder", self.encoder_objective),))]

    def plan(self, steps: list[int]) -> None:
        """The GAN phase's steps in ``loop.steps``, the encoder's in ``encoder_steps``."""
        self.config.loop.steps = self.gan_steps = steps[0]
        self.config.task_config.encoder_steps = self.encoder_steps = steps[1]

    def _z(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.rand(n, self.net["z_dim"], device=device) * 2 - 1  # U(-1, 1), what E's tanh can reach

    def critic_objective(self, nets: Networks, batch):
        real = batch["image"]
        with torch.no_grad():
            fake = nets.generator(self._z(len(real), real.device))
        adversarial = self.d_loss(nets.critic(real), nets.critic(fake))
        gp = losses.gradient_penalty(unwrap(nets.critic), real, fake)
        return {"loss": adversarial + self.config.loss.gp_weight * gp, "w_distance": -adversarial.detach(), "gp": gp.detach()}

    def generator_objective(self, nets: Networks, batch):
        fake = nets.generator(self._z(len(batch["image"]), batch["image"].device))
        return {"loss": self.g_loss(nets.critic(fake))}

    def encoder_objective(self, nets: Networks, batch):
        x = batch["image"]
        rec = nets.generator(nets.encoder(x))
        pixel = F.mse_loss(rec, x)
        feature = F.mse_loss(features(nets.critic, rec), features(nets.critic, x))
        return {"loss": pixel + self.config.task_config.kappa * feature, "pixel_mse": pixel.detach(), "feature_mse": feature.detach()}

    def render(self, nets: Networks, fixed: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        if step < self.gan_steps:  # the GAN phase: images | samples G(z)
            return torch.stack([fixed["x"], nets.generator(fixed["z"])], dim=1).flatten(0, 1)
        return super().render(nets, fixed, step)

    # ---- scoring

    @classmethod
    def score(cls, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pixel residual plus ``kappa`` times the critic-feature residual."""
        nets = model.nets
        rec = nets["generator"](nets["encoder"](x))
        pixel = ((x - rec) ** 2).flatten(1).mean(1)
        feature = ((features(nets["critic"], x) - features(nets["critic"], rec)) ** 2).mean(1)
        return pixel + model.kappa * feature, rec
