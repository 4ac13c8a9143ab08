"""The typed configuration of a training run.

One dataclass per concern; :class:`TrainConfig` holds them all. The resolved config is
written to ``config.json`` in the run folder and stored in every checkpoint, so a run can
be resumed or its generator rebuilt without the command line.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from medgan.data.sources import SourceOptions
from medgan.errors import MedganError


@dataclass
class DataConfig:
    """Where the training images come from.

    Attributes:
        source: any source ``medgan data show`` reads (folder, file, brain-mri, phantom, MedMNIST name).
        options: how to read it (size, window, slicing axis, ...).
        holdout: fraction of patients/volumes kept out of training for evaluation.
        split_seed: seed of the patient-level train/hold-out split.
    """

    source: str = "brain-mri"
    options: SourceOptions = field(default_factory=lambda: SourceOptions(size=64))
    holdout: float = 0.1
    split_seed: int = 0


@dataclass
class ModelConfig:
    """Which networks: ``name`` from :data:`medgan.nets.MODELS`, ``net`` its config fields
    (defaults: the network's own, except a DCGAN width of 32, which learns the embedded
    brain slices on a CPU in minutes; raise it for larger, more varied data)."""

    name: str = "dcgan"
    net: dict[str, Any] = field(default_factory=lambda: {"width": 32})


@dataclass
class LossConfig:
    """Adversarial objective (see :mod:`medgan.losses`) and penalties.

    Attributes:
        name: ``bce`` (the seed's, non-saturating G), ``minimax``, ``hinge``, ``lsgan``, ``wgan-gp``.
        r1_gamma: weight γ of the R1 penalty γ/2·E||∇D(x)||² (0: off).
        gp_weight: weight λ of the WGAN-GP gradient penalty (used with ``wgan-gp``).
    """

    name: str = "bce"
    r1_gamma: float = 0.0
    gp_weight: float = 10.0


LR_DECAYS = ("auto", "none", "linear", "cosine")


@dataclass
class OptimConfig:
    """Adam for G and D, with separate learning rates (TTUR, Heusel et al. 2017).

    Attributes:
        decay: learning-rate schedule over the run, the same for G and D: ``"none"``,
            ``"linear"`` (pix2pix: constant for the first half, then linearly to 0),
            ``"cosine"`` (half a cosine from the base rate to 0) or ``"auto"`` (by task:
            ``linear`` for enhancement, where the regression term otherwise ends on a loss
            spike as often as not, ``none`` for synthesis).
    """

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 1
    decay: str = "auto"

    def __post_init__(self) -> None:
        if self.decay not in LR_DECAYS:
            raise MedganError(f"unknown learning-rate decay {self.decay!r}", hint=f"use one of {', '.join(LR_DECAYS)}")

    def lr_factor(self, step: int, steps: int) -> float:
        """Multiplier of the base learning rates for the update after ``step`` of ``steps``."""
        t = min(max(step / max(steps, 1), 0.0), 1.0)
        if self.decay == "linear":
            return min(1.0, 2.0 * (1.0 - t))
        if self.decay == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * t))
        return 1.0


@dataclass
class LoopConfig:
    """Length, batch, device and bookkeeping of the loop.

    Attributes:
        steps: generator updates in total.
        batch_size: images per step, summed over all processes under DDP.
        seed: seeds weights, noise, augmentation and data order (deterministic on CPU).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
        amp: mixed precision (float16 with loss scaling on CUDA, bfloat16 on CPU).
        ema: decay of the generator's exponential moving average (0: no EMA).
        augment: DiffAugment policy, comma-separated from ``translation``, ``cutout``,
            ``color`` (brightness/contrast); empty: off.
        log_every / sample_every / checkpoint_every: intervals in steps.
        n_samples: images in each sample grid (from a fixed set of z).
    """

    steps: int = 4000
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    ema: float = 0.999
    augment: str = "translation,cutout"
    log_every: int = 25
    sample_every: int = 500
    checkpoint_every: int = 500
    n_samples: int = 64


@dataclass
class EnhanceConfig:
    """Paired enhancement (task ``enhance``): what to undo and how to weigh the objective.

    Attributes:
        mode: ``"denoise"`` (pix2pix U-Net) or ``"sr"`` (residual pixel-shuffle generator).
        degradation: see :func:`medgan.data.degrade.parse_degradation`, e.g.
            ``"lowdose-ct:dose=0.25"``, ``"rician:snr=10"``, ``"sr:factor=2"``; empty: by
            mode and data (``sr:factor=2``; low-dose CT for data in HU, else Rician SNR 10).
        adversarial: ``False`` trains the same generator on L1 alone (the baseline).
        l1_weight: weight of the L1 term (100 in pix2pix, with adversarial weight 1).
        ssim_weight: optional weight of a (1 - SSIM) term.
        degradation_seed: seed of the (precomputed) degraded inputs.
        realizations: noise draws kept per training image (a batch picks one per image, so
            the network sees fresh noise, not one fixed pattern to memorise); 0 = 4 for
            random degradations (noise) and 1 for deterministic ones (downsampling).
        flip: mirror each (degraded, clean) pair left-right with probability 1/2.
    """

    mode: str = "denoise"
    degradation: str = ""
    adversarial: bool = True
    l1_weight: float = 100.0
    ssim_weight: float = 0.0
    degradation_seed: int = 0
    realizations: int = 0
    flip: bool = True


@dataclass
class TrainConfig:
    """Everything that defines a run."""

    task: str = "synth"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    enhance: EnhanceConfig = field(default_factory=EnhanceConfig)

    def __post_init__(self) -> None:
        if self.optim.decay == "auto":  # resolved, so config.json names the schedule used
            self.optim.decay = "linear" if self.task == "enhance" else "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a (possibly partial) nested dict; unknown keys are an error."""
        return _build(cls, values, "config")

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _build(cls, values: dict[str, Any], where: str):
    if not isinstance(values, dict):
        raise MedganError(f"{where} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise MedganError(f"unknown key(s) {', '.join(sorted(unknown))} in {where}", hint=f"known keys: {', '.join(known)}")
    defaults = cls()
    kwargs = {}
    for name, value in values.items():
        current = getattr(defaults, name)
        if is_dataclass(current) and isinstance(value, dict):
            kwargs[name] = _build(type(current), {**asdict(current), **value}, f"{where}.{name}")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise MedganError("config file does not exist", path=path, hint="give a YAML or JSON file")
    try:
        values = yaml.safe_load(path.read_text())  # JSON is YAML too
    except yaml.YAMLError as error:
        raise MedganError(f"not valid YAML/JSON ({str(error).splitlines()[0]})", path=path, hint="fix the syntax") from None
    if not isinstance(values, dict):
        raise MedganError("config file must hold a mapping of settings", path=path, hint="see medgan train --dry-run for the layout")
    return values


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
