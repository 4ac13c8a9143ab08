"""The typed configuration of a training run.

One dataclass per concern; :class:`TrainConfig` holds them all. :meth:`TrainConfig.resolve`
fills the fields that follow from others (the default model of a task, the network's image
size and channels from the data options) and checks every value, for the command line and
for ``Trainer(TrainConfig(...))`` from Python alike. The resolved config is written to
``config.json`` in the run folder and stored in every checkpoint, so a run can be resumed or
its generator rebuilt without the command line. Values read from a file are type-checked
against the dataclass fields (``steps: "100"`` is refused with the key and the type).
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml

from medgan.data.training import DataConfig
from medgan.errors import MedganError


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
        time_budget: wall-clock seconds after which the run stops as if at its last step
            (samples, checkpoint, export), 0 for none; counted per call of ``fit``, so a
            resumed run gets a fresh budget. The learning-rate schedule still spans ``steps``.
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
    time_budget: float = 0.0


@dataclass
class EnhanceConfig:
    """Paired enhancement (task ``enhance``): what to undo and how to weigh the objective.

    Attributes:
        mode: ``"denoise"`` (pix2pix U-Net) or ``"sr"`` (residual pixel-shuffle generator).
        degradation: see :func:`medgan.tasks.enhance.degrade.parse_degradation`, e.g.
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

    def resolve(self) -> "TrainConfig":
        """Fill the derived fields and check every value; returns ``self`` (idempotent).

        Raises:
            MedganError: an unknown model, loss or augmentation, a size the model cannot
                make, or a value out of range, named as its command-line flag.
        """
        from medgan.losses import ADVERSARIAL
        from medgan.nets import MODELS
        from medgan.tasks import TASKS
        from medgan.train.augment import parse_policy

        if self.task not in TASKS:
            raise MedganError(f"unknown task {self.task!r}", hint=f"use one of {', '.join(TASKS)}")

        if self.task == "enhance" and self.model.name == "dcgan":  # the default model follows the task
            from medgan.tasks.enhance.recipe import MODES

            self.model.name = MODES.get(self.enhance.mode, "pix2pix")
        if self.model.name not in MODELS:
            raise MedganError(f"unknown model {self.model.name!r}", hint=f"use one of {', '.join(MODELS)}")
        if self.loss.name not in ADVERSARIAL:
            raise MedganError(f"unknown loss {self.loss.name!r}", hint=f"use one of {', '.join(ADVERSARIAL)}")
        parse_policy(self.loop.augment)
        options = self.data.options
        if options.size is None:
            options.size = 28 if self.model.name == "mlp" else 64
        if not 8 <= options.size <= 4096:
            raise MedganError(f"--size {options.size} is out of range", hint="give a size between 8 and 4096 pixels")
        self.model.net["image_size"] = options.size
        self.model.net["channels"] = 1 if options.grey else 3
        if self.model.name == "dcgan" and self.task == "synth":
            from medgan.nets.dcgan import SIZES

            if options.size not in SIZES:
                raise MedganError(f"DCGAN cannot make {options.size}x{options.size} images", hint=f"use --size one of {', '.join(map(str, SIZES))}")
        for name in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every", "n_samples"):
            if getattr(self.loop, name) < 1:
                raise MedganError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self.loop, name)}")
        if not (self.loop.time_budget >= 0 and math.isfinite(self.loop.time_budget)):
            raise MedganError(f"--time-budget {self.loop.time_budget} must be a non-negative number of seconds")
        if not 0 <= self.loop.ema < 1:
            raise MedganError(f"--ema {self.loop.ema} must be in [0, 1) (0 turns EMA off)")
        if not 0 <= self.data.holdout < 1:
            raise MedganError(f"--holdout {self.data.holdout} must be in [0, 1)")
        return self

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
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        current = getattr(defaults, name)
        if is_dataclass(current) and isinstance(value, dict):
            kwargs[name] = _build(type(current), {**asdict(current), **value}, f"{where}.{name}")
        else:
            kwargs[name] = _checked(value, hints[name], f"{where}.{name}")
    return cls(**kwargs)


_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _checked(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it has the field's type (an int is a float too), else one clear error."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    for option in options:
        if option is Any or (option is type(None) and value is None):
            return value
        origin = typing.get_origin(option) or option
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is float and isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
            return float(value)  # PyYAML reads an unquoted 2e-4 as text (YAML 1.1 wants 2.0e-4)
        if origin is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if origin in (str, bool, dict, list) and isinstance(value, origin):
            return value
        if is_dataclass(origin) and isinstance(value, origin):
            return value
    expected = " or ".join("null" if o is type(None) else getattr(typing.get_origin(o) or o, "__name__", str(o)) for o in options)
    raise MedganError(f"{where} is {value!r} ({type(value).__name__}), expected {expected}",
                      hint="fix the value in the config file (numbers unquoted, true/false for switches)")


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
