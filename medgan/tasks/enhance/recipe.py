"""Enhancement: paired denoising and super-resolution GANs (pix2pix / SRGAN recipes).

The clean training images are degraded once, with a seed (low-dose CT through the
projection domain, Rician MRI noise, downsampling ...; see :mod:`medgan.tasks.enhance.degrade`),
in the data's own units; the generator learns degraded -> clean. Its objective is
pix2pix's: ``λ · |G(x) - y|₁ + L_adv`` with a PatchGAN that judges (input, output) pairs,
or the reconstruction term alone for the baselines (``adversarial = False``: no D is
trained; ``recon_loss = "l2"`` with the ``dncnn`` model is DnCNN).

With ``levels`` one blind model learns several noise levels: noise draw ``r`` of every
training image is made at level ``levels[r % len(levels)]``.

Without clean targets (``supervision``), :class:`EnhanceTask` builds the self-supervised
recipe (:mod:`medgan.tasks.enhance.selfsup`) or the unpaired one
(:mod:`medgan.tasks.enhance.unpaired`); both export the same generator, so
``medgan enhance`` and the evaluation treat their models alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgan import losses
from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.nets import build_network, build_pair, config_from_dict
from medgan.tasks.enhance.degrade import parse_degradation
from medgan.train.task import GANTask, Networks

MODES = {"denoise": "dncnn", "sr": "srgan"}
DENOISERS = ("pix2pix", "dncnn")  # generators that map an image to one of the same size
NOT_SEEN_TITLE = "The same training images at every step: noisy input | output | clean (never seen in training)"


@dataclass
class EnhancementModel:
    """A trained enhancement generator and what applying it needs (see
    :func:`medgan.tasks.load_model` and :mod:`medgan.tasks.enhance.inference`).

    Attributes:
        generator: G in eval mode: ``(B, C, h, w)`` in [-1, 1] -> ``(B, C, h*scale, w*scale)``.
        intensity: the training range (data units) that [-1, 1] stands for.
        scale: upsampling factor (1 for denoising).
        multiple: input sides must be multiples of this (padded otherwise).
        degradation: what it was trained to undo (``Degradation`` fields).
        adversarial: trained with the adversary (``False``: the L1-only baseline).
        info: the export's ``config.json``.
    """

    generator: nn.Module
    intensity: IntensityMap
    scale: int
    multiple: int
    degradation: dict[str, Any]
    adversarial: bool
    info: dict[str, Any]

    @property
    def label(self) -> str:
        """``"<model> step <n>"``, written into derived DICOM headers."""
        name = str(self.info.get("model", "unknown"))
        return f"{name} step {self.info['step']}" if self.info.get("step") is not None else name

    @property
    def description(self) -> str:
        """What was done to an image, for a derived series' description."""
        text = "Denoised" if self.scale == 1 else f"Super-resolved x{self.scale}"  # every scale-1 degradation is noise
        if self.degradation:
            text += " (trained to undo " + ", ".join(f"{k}={v}" for k, v in self.degradation.items()) + ")"
        return text


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


class EnhanceTask(GANTask):
    """G: degraded image -> clean image; D: (degraded, image) pair -> patch logits."""

    name = "enhance"
    lr_decay = "linear"
    # bf16 kept PSNR at equal steps and trained 2-3.5x faster (benchmarks/amp_quality.py).
    bf16_on_cpu = True
    grid_columns = 6  # two (degraded | output | clean) triplets per row
    samples_title = "The same training images at every step: degraded | output | clean"

    def __new__(cls, config, dataset):
        """The recipe of the run's ``supervision``: this class for paired training, its
        self-supervised or unpaired subclass otherwise."""
        if cls is EnhanceTask:
            supervision = getattr(config.task_config, "supervision", "paired")
            if supervision == "self":
                from medgan.tasks.enhance.selfsup import SelfSupervisedEnhanceTask as cls
            elif supervision == "unpaired":
                from medgan.tasks.enhance.unpaired import UnpairedEnhanceTask as cls
            elif supervision != "paired":
                raise MedganError(f"unknown supervision {supervision!r}", hint="use paired, self or unpaired")
        return super().__new__(cls)

    @classmethod
    def method_line(cls, config) -> str:
        e, model = config.task_config, config.model.name
        if e.supervision == "self":
            return "Neighbor2Neighbor on the noisy images alone (no clean image is seen)"
        if e.supervision == "unpaired":
            return "a CycleGAN between noisy images and clean images of other patients (no pairs)"
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
    def default_model(cls, config) -> str:
        """Follows the mode and the supervision (see :meth:`resolve`)."""
        e = config.task_config
        return "srgan" if e.mode == "sr" else ("dncnn" if e.supervision == "paired" else "pix2pix")

    @classmethod
    def resolve(cls, config, dataset) -> None:
        e = config.task_config
        # The defaults are the measured winners (benchmarks/enhance_quality.py, real brain
        # MRI): for noise the DnCNN on L2, for x2 the SRResNet on L1, neither with the
        # adversary. Self-supervised and unpaired training keep the U-Net they were measured with.
        if e.supervision == "self":
            e.adversarial, e.recon_loss = False, "l2"  # the recipe's own (see selfsup)
        if e.adversarial is None:
            e.adversarial = e.supervision == "unpaired" or config.model.name == "pix2pix"
        if e.recon_loss == "auto":
            e.recon_loss = "l2" if config.model.name == "dncnn" else "l1"
        if config.model.name == "dncnn":
            config.model.net.setdefault("layers", 10)  # 10 x 32 channels: the measured shape (the paper's is 17 x 64)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        e = config.task_config
        if e.mode not in MODES:
            raise MedganError(f"unknown enhancement mode {e.mode!r}", hint=f"use one of {', '.join(MODES)}")
        if not e.degradation:
            e.degradation = "sr:factor=2" if e.mode == "sr" else ("lowdose-ct:dose=0.25" if dataset.data.units == "HU" else "rician:snr=10")
        self.degradation = parse_degradation(e.degradation)
        scale = int(getattr(self.degradation, "factor", 1) or 1) if e.mode == "sr" else 1
        if self.degradation.kind == "none" and e.supervision == "paired":
            raise MedganError("paired training needs a degradation to simulate the inputs from the clean images",
                              hint="give --degradation (e.g. gaussian:sigma=20); for noisy images without clean targets use --supervision self")
        if e.mode == "sr" and (self.degradation.kind != "sr" or e.supervision != "paired"):
            raise MedganError(f"--mode sr needs paired training with an sr:... degradation, got {e.supervision} with {e.degradation!r}",
                              hint="use --supervision paired --degradation sr:factor=2")
        if e.mode == "denoise" and self.degradation.kind == "sr":
            raise MedganError(f"--mode denoise does not fit the degradation {e.degradation!r}",
                              hint="use a noise degradation with --mode denoise, or --mode sr")
        if e.mode == "sr" and config.model.name != "srgan" or e.mode == "denoise" and config.model.name not in DENOISERS:
            config.model.name = MODES[e.mode]
        channels = dataset.channels
        net = {"in_channels": channels, "out_channels": channels, **config.model.net}  # foreign keys are ignored
        if e.mode == "sr":
            net["scale"] = scale
        self.net_config = config_from_dict(config.model.name, net)
        config.model.net = asdict(self.net_config)  # the resolved config names every field
        self.scale = scale
        self.uses_discriminator = e.adversarial
        self.d_loss, self.g_loss = losses.ADVERSARIAL[config.loss.name]

        # Degrade every training image `realizations` times, in data units (realisation r
        # draws from SeedSequence(seed, spawn_key=(r,))), then map to the network range.
        if e.realizations < 0:
            raise MedganError(f"realizations must be >= 0, got {e.realizations}", hint="0 picks 4 for noise, 1 for downsampling")
        self.levels = self._levels(e.levels)
        e.realizations = e.realizations or (max(4, 2 * len(self.levels)) if self.degradation.random else 1)
        clean = dataset.data.images if dataset.data.images.ndim == 3 else dataset.data.images[:, 0]
        draws = []
        for r in range(e.realizations):
            degradation = self.degradation.at_level(self.levels[r % len(self.levels)]) if self.levels else self.degradation
            low = dataset.intensity.forward(degradation.apply(clean, seed=np.random.SeedSequence(e.degradation_seed, spawn_key=(r,))))
            draws.append(torch.from_numpy(low if low.ndim == 4 else low[:, None]))  # (N, C, h, w)
        self.inputs = torch.stack(draws)  # (R, N, C, h, w)

    def _levels(self, text: str) -> list[float]:
        """``"10,20,40"`` -> ``[10.0, 20.0, 40.0]``, each a valid level of the degradation."""
        if not text.strip():
            return []
        try:
            levels = [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise MedganError(f"--levels {text!r} is not a comma-separated list of numbers", hint="e.g. --levels 10,20,40") from None
        for level in levels:
            self.degradation.at_level(level)  # raises for a kind without levels or a bad value
        return levels

    # ----------------------------------------------------------------------- networks

    def build_pair(self):
        if not self.uses_discriminator:  # the L1-only baseline: no D to build or train
            return build_network(self.config.model.name, self.net_config, "generator"), None
        return build_pair(self.config.model.name, self.net_config)

    @property
    def multiple(self) -> int:
        return int(getattr(self.net_config, "multiple", 1))

    def _pair(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(degraded, clean) of a batch: one noise realisation per image and, with ``flip``, one
        of the square's symmetries per pair (both images alike); both drawn from the batch
        number, so the D and G steps see the same pairs and a resumed run the same batches."""
        index, y = batch["index"].cpu(), batch["image"]
        g = torch.Generator().manual_seed(self.config.loop.seed * 1_000_003 + int(batch["number"]))
        realization = torch.randint(len(self.inputs), (len(index),), generator=g)
        x = self.inputs[realization, index].to(y.device)  # (B, C, h, w)
        if self.config.task_config.flip:
            x, y = symmetries([x, y], torch.randint(8, (len(index),), generator=g).to(y.device))
        return x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)

    # ----------------------------------------------------------------------- objectives

    def discriminator_objective(self, nets: Networks, batch):
        G, D = nets.generator, nets.discriminator
        x, y = self._pair(batch)
        with torch.no_grad():
            fake = G(x)
        real_logits, fake_logits = D(x, y), D(x, fake)
        loss = self.d_loss(real_logits, fake_logits)
        return {"loss": loss, "d_real": torch.sigmoid(real_logits.detach()).mean(),
                "d_fake": torch.sigmoid(fake_logits.detach()).mean()}

    def generator_objective(self, nets: Networks, batch):
        G, D = nets.generator, nets.get("discriminator")
        x, y = self._pair(batch)
        fake = G(x)
        recon = self.reconstruction(fake, y)
        loss = self.config.task_config.l1_weight * recon
        out = {self.config.task_config.recon_loss: recon.detach()}
        if self.uses_discriminator:
            adv = self.g_loss(D(x, fake))
            loss = loss + adv
            out["g_adv"] = adv.detach()
        if self.config.task_config.ssim_weight > 0:
            s = _ssim(fake, y)
            loss = loss + self.config.task_config.ssim_weight * (1 - s)
            out["ssim"] = s.detach()
        out["loss"] = loss
        return out

    def reconstruction(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The reconstruction term: mean absolute (``l1``) or squared (``l2``) error."""
        diff = output - target
        return diff.abs().mean() if self.config.task_config.recon_loss == "l1" else diff.square().mean()

    # ----------------------------------------------------------------------- samples

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        k = max(2, n // 6 * 2)  # whole rows of two triplets
        index = torch.arange(min(k, self.inputs.shape[1]))
        clean = self.dataset.batch(index)["image"]
        return {"x": self.inputs[0, index].to(device), "y": clean.to(device)}

    @torch.no_grad()
    def render(self, nets, fixed):
        """Triplets per row position: degraded (upsampled for display) | output | clean."""
        x, y = fixed["x"], fixed["y"]
        out = nets.generator(x)
        shown = F.interpolate(x, size=y.shape[-2:], mode="nearest") if x.shape[-1] != y.shape[-1] else x
        return torch.stack([shown, out, y], dim=1).flatten(0, 1).clamp(-1, 1)  # (3k, C, H, W)

    def display_range(self) -> tuple[float, float]:
        """CT is shown in a soft-tissue window (centre 40, width 400 HU) so noise is visible."""
        if self.dataset.intensity.units == "HU":
            low, high = self.dataset.intensity.forward(np.array([-160.0, 240.0]))
            return float(low), float(high)
        return (-1.0, 1.0)

    @classmethod
    def samples_caption(cls, config: dict[str, Any]) -> str:
        """The grid's columns for the run's supervision, and whether its inputs have a clean truth."""
        options = config.get(cls.name) or {}
        supervision = options.get("supervision", "paired")
        if supervision == "paired":
            return cls.samples_title
        if str(options.get("degradation", "")).strip().lower() == "none":  # real noisy scans: no truth to show
            third = "output mapped back by F" if supervision == "unpaired" else "the noisy input again (no clean image exists)"
            return f"The same training images at every step: noisy input | output | {third}"
        return NOT_SEEN_TITLE

    @classmethod
    def describe_evaluation(cls, record):
        import json

        return (f"{record['n_test']} held-out images, degraded with {json.dumps(record.get('degradation'))}; data range "
                f"{record['data_range']:g} {record.get('units') or ''}; input_* = {record['settings']['input']}, model_* = the generator")

    @classmethod
    def report_parts(cls, run_dir):
        from medgan.tasks.enhance.report import comparison_section

        return comparison_section(run_dir)

    @classmethod
    def evaluate_run(cls, run_dir, *, n, seed, metrics=None, **_):
        """Held-out fidelity, input vs model: by default every registered fidelity metric
        (PSNR/SSIM/MAE/RMSE, HF energy, spectrum); the held-out set is the run's, and its
        degradation is drawn with ``seed + 1``, never the training seed 0."""
        from medgan.tasks.enhance.evaluate import evaluate_enhancement_run

        return evaluate_enhancement_run(run_dir, seed=seed + 1, metrics=metrics)

    @classmethod
    def from_pretrained(cls, exported) -> EnhancementModel:
        if "generator" not in exported:
            raise MedganError("the run exported no generator", hint="give the run folder of medgan train enhance")
        G, info = exported["generator"]
        if info.get("task") != "enhance":
            raise MedganError(f"this model was trained for the task {info.get('task')!r}, not 'enhance'",
                              hint="give the run folder of a model trained with the enhance task")
        if not isinstance(info.get("intensity"), dict):
            raise MedganError("the model's config has no 'intensity' range", hint="re-export the model with a current medgan")
        scale, multiple = info.get("scale", 1), info.get("multiple", 1)
        if not isinstance(scale, int) or scale < 1:
            raise MedganError(f"the model's scale {scale!r} is not a positive integer", hint="check the model's config.json")
        if not isinstance(multiple, int) or multiple < 1:
            raise MedganError(f"the model's size multiple {multiple!r} is not a positive integer", hint="check the model's config.json")
        return EnhancementModel(G, IntensityMap(**info["intensity"]), scale, multiple, dict(info.get("degradation") or {}),
                                bool(info.get("adversarial", True)), info)

    def export_info(self, name: str) -> dict[str, Any]:
        return {
            "model": self.config.model.name,
            "net": asdict(self.net_config),
            "intensity": self.dataset.intensity.to_dict(),
            "scale": self.scale,
            "multiple": self.multiple,
            "degradation": asdict(self.degradation),
            "levels": self.levels,
            "supervision": self.config.task_config.supervision,
            "adversarial": self.uses_discriminator,
            "recon_loss": self.config.task_config.recon_loss,
            "source": self.config.data.source,
            "channels": self.dataset.channels,
        }


def _ssim(a: torch.Tensor, b: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
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
