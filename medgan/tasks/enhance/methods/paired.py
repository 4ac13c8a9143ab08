"""Paired training: degraded -> clean pairs simulated from clean images (pix2pix / SRGAN / DnCNN).

The clean training images are degraded once, with a seed (low-dose CT through the
projection domain, Rician MRI noise, downsampling ...; see :mod:`medgan.tasks.enhance.degrade`),
in the data's own units; the generator learns degraded -> clean. Its objective is
pix2pix's: ``λ · |G(x) - y|₁ + L_adv`` with a PatchGAN that judges (input, output) pairs,
or the reconstruction term alone for the baselines (``adversarial = False``: no D is
trained; ``recon_loss = "l2"`` with the ``dncnn`` model is DnCNN).

With ``levels`` one blind model learns several noise levels: noise draw ``r`` of every
training image is made at level ``levels[r % len(levels)]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medgan.nets import build_network, build_pair
from medgan.nets.kspace import DataConsistent
from medgan.tasks.enhance.degrade import parse_degradation
from medgan.tasks.enhance.methods.base import EnhanceMethod, symmetries
from medgan.train.task import Networks, Optimizer, Phase, Update

__all__ = ["Paired"]

#: What benchmarks/enhance_quality.py measured for each artefact (3 seeds, PSNR inside the anatomy),
#: said in the method line so a user knows what to expect before the run.
ARTEFACTS_MEASURED = {
    "undersample-mri": "measured on real brain MRI: the U-Net on L1 with data consistency, the default, led tuned TV "
                       "compressed sensing by 1.9 dB at 4x and 2.3 dB at 8x",
    "motion-mri": "measured on real brain MRI: no network reduced motion inside the anatomy (within 0.3 dB of the "
                  "corrupted input, which tuned NLM ties): keep the acquired image where the anatomy matters; the "
                  "networks clear the ghosts outside it (+3.6 to +4.0 dB over the image)",
    "sparse-view-ct": "measured on CT phantoms: the DnCNN on L2, the default, led FBP and tuned NLM/BM3D by 6.5-8.5 dB "
                      "at 60, 30 and 15 angles, and the U-Net by 2.4-3.6 dB",
}


class Paired(EnhanceMethod):
    """G: degraded image -> clean image; D (with ``adversarial``): (degraded, image) pair -> patch logits."""

    name = "paired"

    def __init__(self, task):
        super().__init__(task)
        #: ``False`` for the baselines without the adversary: no D is built or trained.
        self.adversarial = bool(task.config.task_config.adversarial)

    @classmethod
    def line(cls, config) -> str:
        e, model = config.task_config, config.model.name
        if e.mode == "artefact":
            dc = " with data consistency (the acquired k-space lines kept)" if e.data_consistency == "on" else ""
            adversary = "+ a PatchGAN adversary" if e.adversarial else "alone"
            kind = parse_degradation(e.degradation).kind
            return f"a {model} on {e.recon_loss.upper()} {adversary}{dc}, undoing {e.degradation}; {ARTEFACTS_MEASURED.get(kind, '')}".rstrip("; ")
        if model == "dncnn" and e.recon_loss == "l2" and not e.adversarial:
            return ("a DnCNN on L2 (10 layers of 32 channels), one model per noise level: the best PSNR in benchmarks/enhance_quality.py, ahead of tuned "
                    "BM3D at every level of Gaussian and Rician MRI noise (--model pix2pix for the GAN)")
        if model == "srgan" and not e.adversarial:
            return ("an SRResNet on L1: the best PSNR for x2 on real anatomy in benchmarks/enhance_quality.py (brain MRI: "
                    "+2.4 dB over bicubic; the SRGAN, --adversary, is sharper at 0.6 dB less)")
        adversary = f"{e.recon_loss.upper()} + a PatchGAN adversary" if e.adversarial else f"{e.recon_loss.upper()} alone"
        return (f"{model} on {adversary} (measured in benchmarks/enhance_quality.py: the DnCNN on L2, the default, "
                "denoises best; the adversary gained nothing there at 2.3x the time)")

    @classmethod
    def resolve(cls, config, dataset) -> None:
        e = config.task_config
        if e.adversarial is None:  # the measured winners have none; pix2pix is the GAN
            e.adversarial = config.model.name == "pix2pix"

    # ---- networks

    def build_pair(self) -> tuple[nn.Module, nn.Module | None]:
        """Fresh ``(G, D)``, G first (the order seeds their weights); D is ``None`` without the adversary."""
        name, net = self.config.model.name, self.task.net_config
        G, D = (build_network(name, net, "generator"), None) if not self.adversarial else build_pair(name, net)
        if self.config.task_config.data_consistency == "on":  # keep the zero-filled input's acquired k-space lines
            G = DataConsistent(G)
        return G, D

    def networks(self) -> dict[str, nn.Module]:
        G, D = self.build_pair()
        return {"generator": G, "discriminator": D} if self.adversarial else {"generator": G}

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        out = {"generator": Optimizer(("generator",), o.lr_g, (o.beta1, o.beta2))}
        if self.adversarial:
            out["discriminator"] = Optimizer(("discriminator",), o.lr_d, (o.beta1, o.beta2))
        return out

    def phases(self) -> list[Phase]:
        """Per step ``n_critic`` D updates on their own batches, then one G update on the last."""
        updates = (Update("g", "generator", self.generator_objective),)
        if self.adversarial:
            updates = (Update("d", "discriminator", self.discriminator_objective, repeat=self.config.optim.n_critic), *updates)
        return [Phase("train", self.config.loop.steps, updates)]

    def pair(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(degraded, clean) of a batch: one noise realisation per image and, with ``flip``, one
        of the square's symmetries per pair (both images alike); both drawn from the batch
        number, so the D and G steps see the same pairs and a resumed run the same batches."""
        index, y = batch["index"].cpu(), batch["image"]
        inputs = self.task.inputs
        g = torch.Generator().manual_seed(self.config.loop.seed * 1_000_003 + int(batch["number"]))
        realization = torch.randint(len(inputs), (len(index),), generator=g)
        x = inputs[realization, index].to(y.device)  # (B, C, h, w)
        if self.config.task_config.flip:
            x, y = symmetries([x, y], torch.randint(8, (len(index),), generator=g).to(y.device))
        return x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)

    # ---- objectives

    def discriminator_objective(self, nets: Networks, batch):
        G, D = nets.generator, nets.discriminator
        x, y = self.pair(batch)
        with torch.no_grad():
            fake = G(x)
        real_logits, fake_logits = D(x, y), D(x, fake)
        loss = self.d_loss(real_logits, fake_logits)
        return {"loss": loss, "d_real": torch.sigmoid(real_logits.detach()).mean(),
                "d_fake": torch.sigmoid(fake_logits.detach()).mean()}

    def generator_objective(self, nets: Networks, batch):
        G, D = nets.generator, nets.get("discriminator")
        e = self.config.task_config
        x, y = self.pair(batch)
        fake = G(x)
        recon = self.reconstruction(fake, y)
        loss = e.l1_weight * recon
        out = {e.recon_loss: recon.detach()}
        if self.adversarial:
            adv = self.g_loss(D(x, fake))
            loss = loss + adv
            out["g_adv"] = adv.detach()
        if e.ssim_weight > 0:
            s = ssim(fake, y)
            loss = loss + e.ssim_weight * (1 - s)
            out["ssim"] = s.detach()
        out["loss"] = loss
        return out

    def reconstruction(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The reconstruction term: mean absolute (``l1``) or squared (``l2``) error."""
        diff = output - target
        return diff.abs().mean() if self.config.task_config.recon_loss == "l1" else diff.square().mean()

    # ---- samples

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        k = max(2, n // 6 * 2)  # whole rows of two triplets
        inputs = self.task.inputs
        index = torch.arange(min(k, inputs.shape[1]))
        clean = self.task.dataset.batch(index)["image"]
        return {"x": inputs[0, index].to(device), "y": clean.to(device)}

    @torch.no_grad()
    def render(self, nets, fixed):
        """Triplets per row position: degraded (upsampled for display) | output | clean."""
        x, y = fixed["x"], fixed["y"]
        out = nets.generator(x)
        shown = F.interpolate(x, size=y.shape[-2:], mode="nearest") if x.shape[-1] != y.shape[-1] else x
        return torch.stack([shown, out, y], dim=1).flatten(0, 1).clamp(-1, 1)  # (3k, C, H, W)


def ssim(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Gaussian window 11, σ 1.5, Wang et al. constants) of images in [-1, 1],
    differentiable, for the optional SSIM term of the objective."""
    coords = torch.arange(11, dtype=a.dtype, device=a.device) - 5
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = (g / g.sum())
    kernel = (g[:, None] * g[None, :]).expand(a.shape[1], 1, 11, 11)
    blur = lambda t: F.conv2d(t, kernel, groups=a.shape[1])  # noqa: E731  valid region only
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2  # data range 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean()
