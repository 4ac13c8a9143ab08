"""Enhancement: denoising and super-resolution, trained paired, self-supervised or unpaired.

Three methods, one class each in :mod:`medgan.tasks.enhance.methods` (its networks, phases,
objectives and sample grid), chosen by ``--supervision``:

- **paired** (pix2pix / SRGAN / DnCNN): degraded -> clean pairs simulated from clean images
  (:mod:`~medgan.tasks.enhance.methods.paired`);
- **self** (Neighbor2Neighbor): noisy images alone (:mod:`~medgan.tasks.enhance.methods.selfsup`);
- **unpaired** (CycleGAN): noisy images and clean images of other patients
  (:mod:`~medgan.tasks.enhance.methods.unpaired`).

This module is the training recipe the engine runs: it resolves the run's config (the
default degradation by the data's units, the model by mode, the generator's whole config,
the noise draws), degrades the training images once, with a seed, in the data's own units
(:mod:`medgan.tasks.enhance.degrade`), builds the chosen method and hands it the engine's
calls. Every method exports the same generator: the trained model and its loading are
:mod:`medgan.tasks.enhance.model`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.errors import MedganError
from medgan.nets import config_from_dict
from medgan.tasks.enhance import model
from medgan.tasks.enhance.degrade import ARTEFACTS, Degradation, parse_degradation
from medgan.tasks.enhance.methods import METHODS, method_class
from medgan.tasks.enhance.model import EnhancementModel
from medgan.train.task import Networks, Optimizer, Phase, Task

__all__ = ["EnhanceTask", "EnhancementModel"]

MODES = {"denoise": "dncnn", "sr": "srgan", "artefact": "pix2pix"}
#: artefacts whose measured winner is not the mode's U-Net on L1 (benchmarks/enhance_quality.py:
#: on sparse-view CT phantoms the DnCNN on L2 led it by 2.4-3.6 dB inside the anatomy).
ARTEFACT_MODELS = {"sparse-view-ct": "dncnn"}
DENOISERS = ("pix2pix", "dncnn")  # generators that map an image to one of the same size


def parse_levels(text: str, degradation: Degradation) -> list[float]:
    """``"10,20,40"`` -> ``[10.0, 20.0, 40.0]``, each a valid level of ``degradation``."""
    if not text.strip():
        return []
    try:
        levels = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MedganError(f"--levels {text!r} is not a comma-separated list of numbers", hint="e.g. --levels 10,20,40") from None
    for level in levels:
        degradation.at_level(level)  # raises for a kind without levels or a bad value
    return levels


def scale_of(mode: str, degradation: Degradation) -> int:
    """The generator's upsampling factor: the ``sr`` degradation's, 1 for denoising."""
    return int(getattr(degradation, "factor", 1) or 1) if mode == "sr" else 1


class EnhanceTask(Task):
    """G: degraded image -> clean image, trained by the method of the run's ``supervision``."""

    name = "enhance"
    lr_decay = "linear"
    # bf16 kept PSNR at equal steps and trained 2-3.5x faster (benchmarks/amp_quality.py).
    bf16_on_cpu = True
    grid_columns = 6  # two (degraded | output | clean) triplets per row
    samples_title = "The same training images at every step: degraded | output | clean"

    @classmethod
    def method_line(cls, config) -> str:
        return method_class(config.task_config.supervision).line(config)

    @classmethod
    def default_model(cls, config) -> str:
        """Follows the mode and the supervision (see :meth:`resolve`)."""
        e = config.task_config
        if e.mode == "artefact":
            return "auto"  # follows the artefact, known once the data's units are (resolve)
        return "srgan" if e.mode == "sr" else ("dncnn" if e.supervision == "paired" else "pix2pix")

    @classmethod
    def resolve(cls, config, dataset) -> None:
        e = config.task_config
        method = method_class(e.supervision)
        # What to undo: by mode and by the data's units when not given.
        if e.mode not in MODES:
            raise MedganError(f"unknown enhancement mode {e.mode!r}", hint=f"use one of {', '.join(MODES)}")
        if not e.degradation:
            hu = dataset.data.units == "HU"
            e.degradation = {"sr": "sr:factor=2", "artefact": "sparse-view-ct:angles=60" if hu else "undersample-mri:accel=4,center=0.08"
                             }.get(e.mode, "lowdose-ct:dose=0.25" if hu else "rician:snr=10")
        degradation = parse_degradation(e.degradation)
        if config.model.name == "auto":
            config.model.name = ARTEFACT_MODELS.get(degradation.kind, MODES[e.mode])
        if e.mode == "artefact" and e.adversarial is None:
            e.adversarial = False  # measured: the adversary tied on MRI and lost 0.6-0.9 dB on CT, at 2.5x the time
        # The defaults are the measured winners (benchmarks/enhance_quality.py, real brain
        # MRI): for noise the DnCNN on L2, for x2 the SRResNet on L1, neither with the
        # adversary. Self-supervised and unpaired training keep the U-Net they were measured
        # with; each method sets whether an adversary is trained.
        method.resolve(config, dataset)
        if e.recon_loss == "auto":
            e.recon_loss = "l2" if config.model.name == "dncnn" else "l1"
        if config.model.name == "dncnn":
            config.model.net.setdefault("layers", 10)  # 10 x 32 channels: the measured shape (the paper's is 17 x 64)

        if degradation.kind == "none" and e.supervision == "paired":
            raise MedganError("paired training needs a degradation to simulate the inputs from the clean images",
                              hint="give --degradation (e.g. gaussian:sigma=20); for noisy images without clean targets use --supervision self")
        if e.mode == "sr" and (degradation.kind != "sr" or e.supervision != "paired"):
            raise MedganError(f"--mode sr needs paired training with an sr:... degradation, got {e.supervision} with {e.degradation!r}",
                              hint="use --supervision paired --degradation sr:factor=2")
        if e.mode == "denoise" and degradation.kind == "sr":
            raise MedganError(f"--mode denoise does not fit the degradation {e.degradation!r}",
                              hint="use a noise degradation with --mode denoise, or --mode sr")
        if (e.mode == "artefact") != (degradation.kind in ARTEFACTS):
            raise MedganError(f"--mode {e.mode} does not fit the degradation {e.degradation!r}",
                              hint=f"--mode artefact goes with {', '.join(ARTEFACTS)}; the others with --mode denoise or sr")
        if e.mode == "artefact" and e.supervision != "paired":
            raise MedganError(f"--mode artefact trains on simulated pairs, not --supervision {e.supervision}", hint="use --supervision paired")
        if e.data_consistency == "auto":
            e.data_consistency = "on" if degradation.kind == "undersample-mri" else "off"
        if e.data_consistency == "on" and degradation.kind != "undersample-mri":
            raise MedganError(f"data consistency keeps acquired k-space lines, which {degradation.kind} does not have",
                              hint="use it with undersample-mri, or leave out --data-consistency")

        # The generator: the mode's own when the model given cannot do it; its whole config
        # (TrainConfig.resolve's default width of 32 included), which config.json then names.
        if e.mode == "sr" and config.model.name != "srgan" or e.mode in ("denoise", "artefact") and config.model.name not in DENOISERS:
            config.model.name = MODES[e.mode]
        config.model.net.setdefault("width", 32)
        net = {"in_channels": dataset.channels, "out_channels": dataset.channels, **config.model.net}  # foreign keys are ignored
        if e.mode == "sr":
            net["scale"] = scale_of(e.mode, degradation)
        net_config = config_from_dict(config.model.name, net)
        config.model.net = asdict(net_config)

        # Noise draws kept per training image.
        if e.realizations < 0:
            raise MedganError(f"realizations must be >= 0, got {e.realizations}", hint="0 picks 4 for noise, one per level otherwise")
        levels = parse_levels(e.levels, degradation)
        # A deterministic degradation (sparse-view CT, downsampling) needs one draw per level,
        # else a blind model would see only the first.
        e.realizations = e.realizations or (max(4, 2 * len(levels)) if degradation.random else max(1, len(levels)))
        method.check(config, dataset, degradation, int(getattr(net_config, "multiple", 1)))

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        e = config.task_config
        self.degradation = parse_degradation(e.degradation)
        self.levels = parse_levels(e.levels, self.degradation)
        self.scale = scale_of(e.mode, self.degradation)
        self.net_config = config_from_dict(config.model.name, config.model.net)

        # Degrade every training image `realizations` times, in data units (realisation r
        # draws from SeedSequence(seed, spawn_key=(r,))), then map to the network range.
        clean = dataset.data.images if dataset.data.images.ndim == 3 else dataset.data.images[:, 0]
        draws = []
        for r in range(e.realizations):
            degradation = self.degradation.at_level(self.levels[r % len(self.levels)]) if self.levels else self.degradation
            low = dataset.intensity.forward(degradation.apply(clean, seed=np.random.SeedSequence(e.degradation_seed, spawn_key=(r,))),
                                            clip=e.data_consistency != "on")  # unclipped: the empty k-space lines stay empty
            draws.append(torch.from_numpy(low if low.ndim == 4 else low[:, None]))  # (N, C, h, w)
        #: the degraded training images, ``(R, N, C, h, w)`` in [-1, 1].
        self.inputs = torch.stack(draws)

        #: the method of the run's ``supervision``: its networks, optimisers, phases and objectives.
        self.method = method_class(e.supervision)(self)
        self.averaged, self.exported = self.method.averaged, self.method.exported

    @property
    def multiple(self) -> int:
        """Input sides the generator needs multiples of."""
        return int(getattr(self.net_config, "multiple", 1))

    # ---- the engine's calls, answered by the method

    def networks(self) -> dict[str, nn.Module]:
        return self.method.networks()

    def optimizers(self) -> dict[str, Optimizer]:
        return self.method.optimizers()

    def phases(self) -> list[Phase]:
        return self.method.phases()

    def before_step(self, nets: Networks, step: int) -> None:
        self.method.before_step(nets, step)

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        return self.method.fixed_inputs(n, device)

    def validate(self, nets: Networks, holdout) -> dict[str, float]:
        """PSNR (over the [-1, 1] range) and SSIM of the generator on up to 16 held-out images,
        degraded once with a seed of their own (``val_psnr``, ``val_ssim``)."""
        from medgan.data.labels import evenly_chosen
        from medgan.tasks.enhance.methods.paired import ssim

        if self.degradation.kind == "none" or not len(holdout):
            return {}
        if getattr(self, "_val", None) is None:
            clean = holdout.images if holdout.images.ndim == 3 else holdout.images[:, 0]
            clean = clean[evenly_chosen(len(clean), 16)]
            degraded = self.degradation.apply(clean, seed=987_654)
            imap, clip = self.dataset.intensity, self.config.task_config.data_consistency != "on"
            self._val = (torch.from_numpy(imap.forward(degraded, clip=clip))[:, None], torch.from_numpy(imap.forward(clean))[:, None])
        x, y = self._val
        G = nets.generator
        device = next(G.parameters()).device
        out = torch.cat([G(x[i : i + 16].to(device)).float().cpu() for i in range(0, len(x), 16)]).clamp(-1, 1)
        mse = ((out - y) ** 2).mean(dim=(1, 2, 3)).clamp(min=1e-12)
        return {"val_psnr": float((10 * torch.log10(4.0 / mse)).mean()), "val_ssim": float(ssim(out, y))}

    def render(self, nets, fixed):
        return self.method.render(nets, fixed)

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
        return method_class(supervision).caption(options) if supervision in METHODS else cls.samples_title

    # ---- evaluation and report

    @classmethod
    def describe_evaluation(cls, record):
        return (f"{record['n_test']} held-out images, degraded with {json.dumps(record.get('degradation'))}; data range "
                f"{record['data_range']:g} {record.get('units') or ''}; input_* = {record['settings']['input']}, model_* = the generator")

    @classmethod
    def report_parts(cls, run_dir):
        from medgan.tasks.enhance.report import comparison_section

        return comparison_section(run_dir)

    @classmethod
    def evaluate_run(cls, run_dir, *, n, seed, metrics=None, **_):
        """Held-out fidelity, input vs model: the fidelity metrics named in ``metrics`` (by
        default every registered one: PSNR/SSIM/MAE/RMSE, HF energy, spectrum); the held-out
        set is the run's, and its degradation is drawn with ``seed + 1``, never the training seed 0."""
        from medgan.tasks.enhance.evaluate import evaluate_enhancement_run

        return evaluate_enhancement_run(run_dir, seed=seed + 1, metrics=metrics)

    # ---- export and loading

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
            "adversarial": bool(self.config.task_config.adversarial),
            "recon_loss": self.config.task_config.recon_loss,
            "data_consistency": self.config.task_config.data_consistency == "on",
            "source": self.config.data.source,
            "channels": self.dataset.channels,
            **self.method.export_info(),
        }

    @classmethod
    def build_network(cls, name: str, info: dict[str, Any]) -> nn.Module:
        return model.build_network(name, info)

    @classmethod
    def from_pretrained(cls, exported, run=None) -> EnhancementModel:
        return model.from_pretrained(exported)
