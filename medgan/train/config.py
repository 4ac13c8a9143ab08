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

import argparse
import json
import math
import re
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from medgan.data.training import DataConfig
from medgan.errors import MedganError
from medgan.options import option
from medgan.train.budget import NOMINAL_STEPS


@dataclass
class ModelConfig:
    """Which networks: ``name`` from :data:`medgan.nets.MODELS`, ``net`` its config fields
    (defaults: the network's own, except a DCGAN width of 32, which learns the embedded
    brain slices on a CPU in minutes; raise it for larger, more varied data). The flags of
    ``net`` fields are :data:`NET_FLAGS`."""

    name: str = option("auto", "mlp (the two-layer GAN of docs/design.md), dcgan or fastgan for synth; pix2pix, dncnn (denoising) or srgan for enhance",
                       flag="--model", shown="auto: by task, dcgan; for enhance dncnn, or srgan by --mode; unet for segment")
    net: dict[str, Any] = field(default_factory=dict)


#: Flags of network fields (``model.net.<field>``); each model reads the fields it has.
NET_FLAGS: dict[str, dict[str, Any]] = {
    "--width": {"type": int, "help": "channel width (default 32; the segmentation U-Net 16, the measured best per CPU-second)"},
    "--layers": {"type": int, "help": "DnCNN convolutions (default 10, the measured shape; the paper's is 17)"},
    "--z-dim": {"type": int, "help": "latent size (default 100)"},
    "--depth": {"type": int, "help": "U-Net stride-2 levels (segment: 4, inputs multiples of 16)"},
    "--d-width": {"type": int, "help": "PatchGAN discriminator / segmentation critic first-layer channels (default 64)"},
    "--hidden": {"type": int, "help": "MLP hidden units (default 256)"},
    "--upsample": {"choices": ["deconv", "resize"], "help": "DCGAN upsampling: transposed conv (default) or resize-conv"},
    "--d-norm": {"choices": ["batch", "none"], "help": "DCGAN: normalisation in D (default by --recipe: none for medgan, batch for seed)"},
    "--spectral-norm": {"action": argparse.BooleanOptionalAction,
                        "help": "spectral normalisation in D (default by --recipe: on for medgan's DCGAN, off for seed)"},
    "--mbstd": {"type": int, "metavar": "N", "help": "DCGAN: a minibatch standard-deviation channel in D over groups of N images "
                                                     "(default 0: off)"},
    "--conditional": {"action": "store_const", "const": -1, "dest": "num_classes",
                      "help": "class-conditional G and D, as many classes as the data's labels"},
}


#: Run-wide settings whose meaning depends on the task: the networks, the objective, the
#: optimiser, the EMA of averaged networks and DiffAugment (dotted-path prefixes). A task's
#: options class names the ones its runs read in a class attribute ``settings`` (dotted path ->
#: the help the flag gets there, ``""`` for its general help); ``medgan train <task>`` has
#: those flags alone, a config file that sets another is refused, and ``config.json`` holds
#: the ones read. A task whose options class has no ``settings`` reads them all.
TASK_SETTINGS = ("model.", "loss.", "optim.", "loop.ema", "loop.augment", "data.balance_classes")

#: The settings every GAN task reads (a task adds its networks' fields and its own helps).
GAN_SETTINGS: dict[str, str] = {
    "loss.name": "", "optim.lr_g": "", "optim.lr_d": "", "optim.beta1": "", "optim.beta2": "", "optim.n_critic": "",
    "optim.decay": "",
}


def read_settings(options_class: type | None) -> dict[str, str] | None:
    """The task settings (:data:`TASK_SETTINGS`) a task's runs read, ``None`` for all."""
    return getattr(options_class, "settings", None)


def settings_filter(options_class: type | None):
    """``dotted path -> help`` for :func:`medgan.options.add_flags`: ``None`` for a task
    setting the task does not read, its help there for one it does, ``""`` for the rest."""
    declared = read_settings(options_class)

    def only(path: str) -> str | None:
        if declared is None or not path.startswith(TASK_SETTINGS):
            return ""
        return declared.get(path)
    return only


def check_settings(values: dict[str, Any], task: str, options_class: type | None, where: Path | str) -> None:
    """One clear error for a setting in a config file that a ``task`` run does not read."""
    declared = read_settings(options_class)
    if declared is None:
        return
    net_flags = {"model.net." + spec.get("dest", flag[2:].replace("-", "_")) for flag, spec in NET_FLAGS.items()}

    def walk(node: dict[str, Any], prefix: str):
        for key, value in node.items():
            yield from walk(value, f"{prefix}{key}.") if isinstance(value, dict) else [prefix + key]

    derived = getattr(options_class, "derived", ())  # what the task's resolution writes itself (a saved config holds it)
    for path in walk(values, ""):
        if not path.startswith(TASK_SETTINGS) or path in declared or path in derived or path == "model.name":  # resolve checks the model
            continue
        # A network's own fields that a task resolves (in_channels, d_layers, ...) are not
        # flags: the network's config checks them. The class count comes from the data.
        if path.startswith("model.net.") and (path not in net_flags or path == "model.net.num_classes"):
            continue
        raise MedganError(f"{path}: a {task} run does not read this setting", path=where,
                          hint=f"remove it (medgan train {task} --help lists what a {task} run reads)")


@dataclass
class LossConfig:
    """Adversarial objective (see :mod:`medgan.losses`) and penalties.

    Attributes:
        name: ``bce`` (``docs/design.md`` §4, non-saturating G), ``minimax``, ``hinge``, ``lsgan``,
            ``wgan-gp``, or ``auto``: the task's (synthesis: by its recipe, hinge for medgan's
            DCGAN; enhancement: bce).
        r1_gamma: weight γ of the R1 penalty γ/2·E||∇D(x)||² (0: off).
        gp_weight: weight λ of the WGAN-GP gradient penalty (used with ``wgan-gp``).
    """

    name: str = option("auto", "adversarial loss: bce (docs/design.md §4), minimax, hinge, lsgan or wgan-gp (auto: by task and recipe)",
                       flag="--loss")
    r1_gamma: float = option(0.0, "R1 penalty weight gamma (0: off)", flag="--r1")
    gp_weight: float = option(10.0, "WGAN-GP penalty weight")


LR_DECAYS = ("auto", "none", "linear", "cosine", "late-cosine")


@dataclass
class OptimConfig:
    """Adam for G and D, with separate learning rates (TTUR, Heusel et al. 2017).

    Attributes:
        lr_g, lr_d: learning rates; ``None``: the task's (synthesis: by its recipe, 4e-4 for
            medgan's DCGAN, 2e-4 for the design's; enhancement: 2e-4).
        n_critic: D updates per G update; ``None``: the task's (1; f-AnoGAN's WGAN-GP: 5).
        beta1, beta2: Adam's moment decays for G and D; ``None``: the task's (synthesis: by
            its recipe, 0 / 0.99 for medgan's DCGAN, DCGAN's 0.5 / 0.999 for the design's and
            for enhancement).
        decay: learning-rate schedule over each phase of the run, the same for every
            optimiser: ``"none"``, ``"linear"`` (pix2pix: constant for the first half, then
            linearly to 0), ``"cosine"`` (half a cosine from the base rate to 0),
            ``"late-cosine"`` (constant for the first half, then half a cosine to 0: the
            constant rate's fast start, and an annealed end) or ``"auto"`` (the task's: ``linear`` for enhancement, where the regression term
            otherwise ends on a loss spike as often as not, ``none`` for synthesis).
    """

    lr_g: float | None = option(None, "generator learning rate (default: by task and recipe)", parse=float, metavar="LR")
    lr_d: float | None = option(None, "discriminator learning rate (default: by task and recipe)", parse=float, metavar="LR")
    beta1: float | None = option(None, "Adam beta1 (default: by task and recipe)", parse=float, metavar="B1")
    beta2: float | None = option(None, "Adam beta2 (default: by task and recipe)", parse=float, metavar="B2")
    n_critic: int | None = option(None, "D steps per G step (default: by task, 1; f-AnoGAN's WGAN-GP 5)", parse=int, metavar="N")
    decay: str = option("auto", "learning-rate schedule (auto: by task; linear: 2nd half to 0)",
                        flag="--lr-decay", choices=LR_DECAYS)

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
        if self.decay == "late-cosine":
            return 0.5 * (1.0 + math.cos(math.pi * max(0.0, 2.0 * t - 1.0)))
        return 1.0


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"`` -> seconds (also an argparse type)."""
    value = text.strip().lower()
    scale = _UNITS.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 600, 90s, 10m, 1.5h)") from None
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return seconds


@dataclass
class LoopConfig:
    """Length, batch, device and bookkeeping of the loop.

    Attributes:
        steps: training steps (a GAN: generator updates); a task with several phases
            says how they share them. ``None``: 4000, or with ``time_budget`` as many as
            the budget reaches (given with a budget, it is a cap).
        batch_size: images per step, summed over all processes under DDP.
        seed: seeds weights, noise, augmentation and data order (deterministic on CPU).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
        amp: mixed precision (float16 with loss scaling on CUDA, bfloat16 on CPU); ``None``:
            the task's default on this machine (:func:`medgan.train.precision.resolve_amp`:
            on for enhancement on a CPU with native bf16), written into the resolved config.
        ema: decay of the exponential moving average of the task's averaged networks (the
            generator) (0: no EMA).
        augment: DiffAugment policy, comma-separated from ``translation``, ``cutout``,
            ``color`` (brightness/contrast); empty: off; ``auto``: the task's (synthesis:
            by its recipe, ``translation`` for medgan's; none where the task has no D to
            augment for).
        log_every / sample_every / checkpoint_every: intervals in steps.
        n_samples: images in each sample grid (from a fixed set of inputs).
        time_budget: wall-clock seconds for the run, 0 for none. The engine times a few
            steps of every phase first and lays the run out over the steps the budget
            reaches, each phase keeping its share and at least one step, the learning-rate
            schedule over the planned steps (:mod:`medgan.train.budget`); should the run
            still be slower than planned, it stops at the budget as if at its last step
            (samples, checkpoint, export). Counted per call of ``fit``: a resumed run keeps
            its plan and gets a fresh budget.
        plan: what the budget was measured to reach and the steps planned (written by the
            engine; a resumed run keeps it). Not a flag.
        val_every: steps between validations of the networks on the run's held-out images
            (the task's cheap figure: PSNR/SSIM, Dice, SWD ...), logged as ``val_*`` in
            ``stats.jsonl``; 0: with every sample grid. Never used to pick a checkpoint.
        init_from: a run (or one exported network's folder) whose exported weights start
            this run's networks of the same names, tensor by tensor where the shapes match
            (fine-tuning a model from one site's data on another's); empty: fresh weights.
    """

    steps: int | None = option(None, "training steps", shown="4000, or what --time-budget reaches")
    batch_size: int = option(32, "images per step over all processes")
    seed: int = option(0, "run seed")
    device: str = option("auto", "auto, cpu, cuda, cuda:N")
    amp: bool | None = option(None, "mixed precision: bf16 on CPU, fp16 on CUDA",
                              shown="by task and machine")
    ema: float = option(0.999, "EMA decay of G for sampling (0: off)")
    augment: str = option("auto", "DiffAugment policy: comma-separated translation,cutout,color ('' = off; auto: by task and recipe)")
    log_every: int = option(25, "steps between log lines")
    sample_every: int = option(500, "steps between sample grids")
    checkpoint_every: int = option(500, "steps between checkpoints")
    n_samples: int = option(64, "images per sample grid")
    time_budget: float = option(0.0, "wall-clock time to plan the run for (--steps caps it): 600, 90s, 10m, 1.5h (default 0: none)",
                                parse=parse_duration, metavar="TIME")
    plan: dict[str, Any] = field(default_factory=dict)
    init_from: str = option("", "start from another run's exported weights (networks of the same names)", metavar="RUN")
    val_every: int = option(0, "steps between validations on the held-out images (0: with each sample grid)")


@dataclass
class TrainConfig:
    """Everything that defines a run.

    ``task_config`` is the task's own options (the dataclass its registry entry names,
    :meth:`medgan.tasks.TaskRegistry.options`, e.g. :class:`~medgan.tasks.enhance.config.EnhanceConfig`), filled with its defaults by
    :meth:`resolve`; in ``config.json`` and config files it is the section named after the
    task (``enhance: {mode: sr}``).
    """

    task: str = "synth"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    task_config: Any = None

    def load_data(self):
        """``(training dataset, held-out ImageSet or None)`` of this run, read as the config
        says: what reading needs (the image size) is resolved first, so ``--dry-run`` and
        training read the same images and fail on a missing path alike."""
        from medgan.data.training import load_training_data

        self.resolve_before_data()
        return load_training_data(self.data)

    def resolve(self, dataset=None) -> "TrainConfig":
        """Fill every derived field and check every value: the one place a config changes
        (the command line's ``--dry-run`` and :class:`~medgan.train.Trainer` both call it, so
        ``--dry-run`` prints what ``config.json`` will hold). Returns ``self`` (idempotent).

        Args:
            dataset: the run's training :class:`~medgan.data.dataset.MedicalImageDataset`
                (from :meth:`load_data`); read here when not given. The task's part of the
                resolution (its defaults by method and data, sizes its networks can make) is
                its :meth:`~medgan.train.task.Task.resolve`, which sees it.

        Raises:
            MedganError: an unknown task, model, loss or augmentation, data that cannot be
                read, a size the model cannot make, or a value out of range, named as its
                command-line flag.
        """
        from medgan.losses import ADVERSARIAL
        from medgan.nets import MODELS
        from medgan.tasks import TASKS
        from medgan.train.augment import parse_policy
        from medgan.train.precision import resolve_amp

        if dataset is None:
            dataset, _ = self.load_data()
        self.resolve_before_data()
        task = TASKS[self.task]
        options = self.data.options
        task.resolve(self, dataset)
        self.model.net.setdefault("width", 32)  # what a task leaves unset (segment's is 16)
        # What a task leaves on auto: docs/design.md's loss and DCGAN's learning rates, no augmentation.
        if self.loss.name == "auto":
            self.loss.name = "bce"
        for name, value in (("lr_g", 2e-4), ("lr_d", 2e-4), ("beta1", 0.5), ("beta2", 0.999), ("n_critic", 1)):
            if getattr(self.optim, name) is None:
                setattr(self.optim, name, value)
        if not (0 <= self.optim.beta1 < 1 and 0 <= self.optim.beta2 < 1):
            raise MedganError(f"--beta1 {self.optim.beta1} / --beta2 {self.optim.beta2}: Adam's betas must be in [0, 1)")
        if self.loop.augment == "auto":
            self.loop.augment = ""
        self.loop.amp = resolve_amp(self.loop.amp, self.loop.device, task.bf16_on_cpu)
        models = task.models or MODELS
        if self.model.name not in models:
            raise MedganError(f"unknown model {self.model.name!r}", hint=f"use one of {', '.join(models)}")
        if self.loss.name not in ADVERSARIAL:
            raise MedganError(f"unknown loss {self.loss.name!r}", hint=f"use one of {', '.join(ADVERSARIAL)}")
        parse_policy(self.loop.augment)
        self.model.net["image_size"] = options.size
        # the image's channels, unless the task's network makes more (a --pairs generator draws its label map too)
        self.model.net.setdefault("channels", 1 if options.grey else 3)
        if self.loop.steps is None and not self.loop.time_budget:
            self.loop.steps = NOMINAL_STEPS
        for name in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every", "n_samples", "n_critic"):
            value = getattr(self.optim if name == "n_critic" else self.loop, name)
            if value is not None and value < 1:
                raise MedganError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if not (self.loop.time_budget >= 0 and math.isfinite(self.loop.time_budget)):
            raise MedganError(f"--time-budget {self.loop.time_budget} must be a non-negative number of seconds")
        if not 0 <= self.loop.ema < 1:
            raise MedganError(f"--ema {self.loop.ema} must be in [0, 1) (0 turns EMA off)")
        return self

    def resolve_before_data(self) -> "TrainConfig":
        """The part of :meth:`resolve` that reading the data needs: the task, its options,
        its model and the image size (idempotent; :meth:`resolve` calls it first)."""
        from medgan.tasks import TASKS

        if self.task not in TASKS:
            raise MedganError(f"unknown task {self.task!r}", hint=f"use one of {', '.join(TASKS)}")
        task, options_class = TASKS[self.task], TASKS.options(self.task)
        if options_class is not None and self.task_config is None:
            self.task_config = options_class()
        if options_class is not None and not isinstance(self.task_config, options_class):
            raise MedganError(f"task_config of a {self.task!r} run must be a {options_class.__name__}, got {type(self.task_config).__name__}")
        if self.optim.decay == "auto":  # resolved, so config.json names the schedule used
            self.optim.decay = task.lr_decay
        if self.model.name == "auto":  # not given: the task's (Task.default_model)
            self.model.name = task.default_model(self)
        options = self.data.options
        if options.size is None:
            options.size = 28 if self.model.name == "mlp" else 64
        if not 8 <= options.size <= 4096:
            raise MedganError(f"--size {options.size} is out of range", hint="give a size between 8 and 4096 pixels")
        if not 0 <= self.data.holdout < 1:
            raise MedganError(f"--holdout {self.data.holdout} must be in [0, 1)")
        return self

    def chosen_for_user(self) -> list[str]:
        """What the last resolution chose that the user did not give and may not expect
        (e.g. the image size), one sentence each."""
        return list(getattr(self, "_chosen", []))

    def to_dict(self) -> dict[str, Any]:
        """The config as ``config.json`` holds it: every field, except task settings
        (:data:`TASK_SETTINGS`) this run's task does not read."""
        from medgan.tasks import TASKS

        out = asdict(replace(self, task_config=None))
        del out["task_config"]
        declared = read_settings(TASKS.options(self.task)) if self.task in TASKS else None
        if declared is not None:
            for section in ("loss", "optim", "loop", "data"):
                for key in list(out[section]):
                    path = f"{section}.{key}"
                    if path.startswith(TASK_SETTINGS) and path not in declared:
                        del out[section][key]
        if self.task_config is not None:
            out[self.task] = asdict(self.task_config)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a (possibly partial) nested dict, its task's options in the section
        named after the task; unknown keys are an error (sections of other tasks, which a
        run of an older medgan may carry, are ignored)."""
        from medgan.tasks import TASKS

        if not isinstance(values, dict):
            raise MedganError(f"config must be a mapping, got {type(values).__name__}")
        values = dict(values)
        task = values.get("task", "synth")
        if task not in TASKS:
            raise MedganError(f"unknown task {task!r} in config", hint=f"use one of {', '.join(TASKS)}")
        section = values.pop(task, None)
        for other in TASKS:
            values.pop(other, None)
        config = _build(cls, values, "config")
        config_class = TASKS.options(task)
        if section is not None and config_class is None:
            raise MedganError(f"the {task!r} task has no options, but the config has a {task!r} section", hint="remove it")
        if config_class is not None:
            config.task_config = _build(config_class, section or {}, f"config.{task}")
        if "size" not in values.get("data", {}).get("options", {}):
            size = config.data.options.size
            config._chosen = [f"--size {size} was chosen for you: every image is resized to {size} x {size} (--size N sets it)"]
        return config

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _build(cls, values: dict[str, Any], where: str):
    if not isinstance(values, dict):
        raise MedganError(f"{where} must be a mapping, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls) if f.name != "task_config"}
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
        elif isinstance(current, dict) and isinstance(value, dict):  # e.g. model.net: a flag adds to the default's keys
            kwargs[name] = _checked({**current, **value}, hints[name], f"{where}.{name}")
        else:
            kwargs[name] = _checked(value, hints[name], f"{where}.{name}")
    return cls(**kwargs)


_FLOAT_TEXT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


def _checked(value: Any, hint: Any, where: str) -> Any:
    """``value`` if it has the field's type (an int is a float too), else one clear error."""
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    for kind in kinds:
        if kind is Any or (kind is type(None) and value is None):
            return value
        origin = typing.get_origin(kind) or kind
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
    expected = " or ".join("null" if o is type(None) else getattr(typing.get_origin(o) or o, "__name__", str(o)) for o in kinds)
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
