"""GANomaly (Akcay et al. 2018): an encoder-decoder-encoder generator against a discriminator.

G = encoder ``E1`` -> decoder (a DCGAN generator) -> encoder ``E2``; a DCGAN discriminator D
(batch norm, BCE). G minimises ``w_adv * |f(x) - f(x^)|^2 + w_con * |x - x^|_1 +
w_enc * |E1(x) - E2(x^)|^2`` (``f``: D's last features). Score: the latent distance
``mean (E1(x) - E2(x^))^2``; map ``|x - x^|``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from medgan.nets.encoder import ImageEncoder
from medgan.tasks.anomaly.methods.base import AnomalyMethod, Defaults, dcgan_config, features
from medgan.train.task import Networks, Optimizer, Phase, Update

__all__ = ["GANomaly", "reconstruct"]


def reconstruct(nets: Networks, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z (B, z_dim), x^ (B, C, S, S))``: the code of ``x`` and the decoder's image of it."""
    z = nets["encoder"](x)
    return z, nets["generator"](z)


class GANomaly(AnomalyMethod):
    """GANomaly (see the module doc)."""

    name = "ganomaly"
    networks = ("encoder", "generator", "encoder2", "discriminator")
    exported = ("encoder", "generator", "encoder2")
    defaults = Defaults(lr=2e-4, betas=(0.5, 0.999))

    @classmethod
    def line(cls) -> str:
        return ("GANomaly: close to the autoencoder in benchmarks/anomaly_vs_baselines.py (phantom pixel AUPRC 0.13 "
                "against 0.19) at 3x its time (--method ae, the default)")

    @classmethod
    def build(cls, name: str, net) -> nn.Module:
        if name == "generator":
            return DCGANGenerator(dcgan_config(net))
        if name in ("encoder", "encoder2"):
            return ImageEncoder(dcgan_config(net), bounded=False)  # unbounded codes
        if name == "discriminator":
            return DCGANDiscriminator(dcgan_config(net))
        return super().build(name, net)

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        betas = (o.beta1, o.beta2)
        return {"generator": Optimizer(("encoder", "generator", "encoder2"), o.lr_g, betas),
                "discriminator": Optimizer(("discriminator",), o.lr_d, betas)}

    def phases(self) -> list[Phase]:
        return [Phase("train", self.config.loop.steps, (
            Update("d", "discriminator", self.discriminator_objective, repeat=self.config.optim.n_critic),
            Update("g", "generator", self.generator_objective)))]

    def discriminator_objective(self, nets: Networks, batch):
        x = batch["image"]
        with torch.no_grad():
            _, rec = reconstruct(nets, x)
        real, fake = nets.discriminator(x), nets.discriminator(rec)
        return {"loss": self.d_loss(real, fake), "d_real": torch.sigmoid(real.detach()).mean(), "d_fake": torch.sigmoid(fake.detach()).mean()}

    def generator_objective(self, nets: Networks, batch):
        a, x = self.config.task_config, batch["image"]
        z, rec = reconstruct(nets, x)
        D = nets.discriminator
        adv = F.mse_loss(features(D, rec), features(D, x).detach())
        con = F.l1_loss(rec, x)
        enc = F.mse_loss(nets.encoder2(rec), z)
        return {"loss": a.w_adv * adv + a.w_con * con + a.w_enc * enc, "adv": adv.detach(), "l1": con.detach(), "latent": enc.detach()}

    @classmethod
    def score(cls, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent distance between the image's code and its reconstruction's."""
        z, rec = reconstruct(model.nets, x)
        return ((z - model.nets["encoder2"](rec)) ** 2).mean(1), rec
