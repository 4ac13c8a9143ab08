"""What a task plugs into the engine.

A task owns its networks, its objectives and the order in which they are optimised; the
engine (:mod:`medgan.train.engine`) owns everything else: optimisers, EMA, mixed precision,
checkpoints, logging, progress, DDP and the export. To add a task, write a
``medgan/tasks/<name>/`` package whose recipe subclasses :class:`Task` (or
:class:`GANTask` for a generator/discriminator pair) and add one line to
:data:`medgan.tasks.TASKS`.

A task declares:

- **named networks** (:meth:`Task.networks`): ``{"generator": G, "discriminator": D}``,
  or ``{"generator", "critic", "encoder"}`` for f-AnoGAN, ``{"segmentor", "critic"}``, a
  lone ``{"classifier"}`` ...; built in that order (the order seeds their weights);
- **optimisers** (:meth:`Task.optimizers`): which networks each one trains, at what rate;
- **phases** (:meth:`Task.phases`): consecutive stretches of steps, each a list of
  :class:`Update` s run in order at every step. f-AnoGAN trains a WGAN-GP, then an encoder
  with G and the critic frozen; a baseline without an adversary has one update per step.

In an update, the networks its optimiser trains are passed DDP-wrapped (when distributed)
with gradients on; every other network is passed as a plain module with its parameters
frozen. Networks trained in the current phase are in training mode, the rest in eval mode.
Objectives take ``(nets, batch)`` and return named scalars; ``"loss"`` is minimised, the
rest are logged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medgan.data.dataset import MedicalImageDataset
from medgan.errors import MedganError

__all__ = ["GANTask", "Networks", "Optimizer", "Phase", "Task", "Update"]


class Networks(dict):
    """Named networks, also readable as attributes: ``nets.generator`` is ``nets["generator"]``."""

    def __getattr__(self, name: str) -> nn.Module:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no network named {name!r} (have: {', '.join(self)})") from None


Objective = Callable[[Networks, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Optimizer:
    """An Adam optimiser over some of the task's networks.

    Attributes:
        networks: names of the networks it trains.
        lr: base learning rate (the run's schedule multiplies it, per phase).
        betas: Adam's betas.
    """

    networks: tuple[str, ...]
    lr: float
    betas: tuple[float, float] = (0.5, 0.999)


@dataclass(frozen=True)
class Update:
    """One optimiser step within a training step.

    Attributes:
        name: short name; the minimised loss is logged as ``loss_<name>`` (``d``, ``g`` ...).
        optimizer: the optimiser's name in :meth:`Task.optimizers`.
        objective: ``(nets, batch) -> {"loss": ..., other logged scalars}``.
        repeat: updates per step, each on its own batch (a critic's ``n_critic``). A step of
            a phase draws as many batches as its largest ``repeat``; an update with
            ``repeat = r`` uses the last ``r`` of them, so a generator update after five
            critic updates sees the last critic batch.
    """

    name: str
    optimizer: str
    objective: Objective
    repeat: int = 1


@dataclass(frozen=True)
class Phase:
    """Consecutive steps that run the same updates (resumable at any step)."""

    name: str
    steps: int
    updates: tuple[Update, ...] = field(default_factory=tuple)

    @property
    def batches_per_step(self) -> int:
        return max(u.repeat for u in self.updates)


class Task(ABC):
    """A task recipe: networks, optimisers, phases, sample grids, and how its runs are
    exported, loaded, evaluated and reported."""

    name: str = "task"
    #: networks with an exponential moving average (when ``loop.ema > 0``); the EMA copy is
    #: what sample grids show and what is exported.
    averaged: tuple[str, ...] = ()
    #: networks written to ``RUN/<name>/`` (config.json + model.safetensors) for inference.
    exported: tuple[str, ...] = ()
    #: tiles per row of the sample grids (``None``: about square).
    grid_columns: int | None = None
    #: what the report says the sample grids show.
    samples_title: str = "Samples from one fixed set of z"
    #: learning-rate schedule when the run's is ``auto`` (see :class:`OptimConfig`).
    lr_decay: str = "none"
    #: train in bf16 mixed precision by default on a CPU that computes bf16 natively (when
    #: ``loop.amp`` is not given; see :mod:`medgan.train.precision`): only where quality at
    #: equal steps was measured to hold.
    bf16_on_cpu: bool = False
    #: model names the task accepts in ``model.name`` (``None``: the GAN registry :data:`medgan.nets.MODELS`).
    models: tuple[str, ...] | None = None
    #: fill a batch from fewer images by repeating them (a task made for a few labelled
    #: images); otherwise a training set smaller than one batch is an error.
    repeat_small_data: bool = False

    def __init__(self, config, dataset: MedicalImageDataset):
        self.config = config
        #: the images the engine draws its batches from; a task may replace it in its
        #: ``__init__`` with a part of the data (a segmentation run keeps its labelled
        #: slices here and the unlabelled ones for itself).
        self.dataset = dataset

    # ---- set-up

    @classmethod
    def resolve(cls, config, dataset: MedicalImageDataset) -> None:
        """Fill the task's derived fields of a :class:`TrainConfig` and check them: defaults
        by method and by the data (``dataset``, the images the run trains on), the networks'
        full configs. Called by :meth:`TrainConfig.resolve`, the one place a config changes:
        ``__init__`` and the training code only read it, so ``--dry-run`` prints what
        ``config.json`` holds."""

    # ---- training

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Fresh networks by name, built in this order."""

    @abstractmethod
    def optimizers(self) -> dict[str, Optimizer]:
        """Optimisers by name."""

    @abstractmethod
    def phases(self) -> list[Phase]:
        """The phases of a run, in order; their steps add up to the run's length."""

    def plan(self, steps: list[int]) -> None:
        """Lay the run out over ``steps[i]`` steps of phase ``i`` (a time budget's plan, see
        :mod:`medgan.train.budget`): write them into the config where :meth:`phases` reads
        them, so that the phases, every schedule and ``config.json`` follow. The default is
        for one phase of ``loop.steps``; a task with more phases overrides it."""
        if len(steps) != 1:
            raise MedganError(f"task {self.name!r} has {len(steps)} phases: it must say how a time budget lays them out",
                              hint="override Task.plan")
        self.config.loop.steps = steps[0]

    def validate(self, nets: Networks, holdout) -> dict[str, float]:
        """Cheap figures of the networks (in eval mode, EMA copies where they exist) on the
        run's held-out images (an :class:`~medgan.data.imageset.ImageSet`, possibly empty),
        named ``val_*``; ``{}`` for a task without one. Called every ``loop.val_every`` steps,
        under ``torch.no_grad``; logged, never used to choose a checkpoint."""
        return {}

    def before_step(self, nets: Networks, step: int) -> None:
        """Called by the engine before each training step with the plain networks and the
        run's step: the place for schedules that live in the networks (e.g. the class
        strength of transitional conditioning). A function of ``step`` only, so resume is exact."""

    @classmethod
    def default_model(cls, config) -> str:
        """The model a run of this task trains when ``--model`` is not given (``auto``)."""
        return cls.models[0] if cls.models else "dcgan"

    @classmethod
    def run_name(cls, config) -> str:
        """What a new run folder is named after, between the task and the data
        (``runs/00001-enhance-dncnn-ct_folder``): the model it trains."""
        return config.model.name

    @classmethod
    def method_line(cls, config) -> str | None:
        """What ``medgan train`` says it trains and why, in one line (``None``: nothing)."""
        return None

    # ---- sample grids

    @abstractmethod
    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Inputs for the sample grids, the same at every step (seeded from the config)."""

    @abstractmethod
    def render(self, nets: Networks, fixed: dict[str, torch.Tensor]) -> torch.Tensor:
        """Images ``(N, C, H, W)`` in [-1, 1] for the sample grid (``nets`` in eval mode, the
        EMA copies in place of averaged networks)."""

    def display_range(self) -> tuple[float, float]:
        """Values in [-1, 1] shown as black and white in the sample grids."""
        return (-1.0, 1.0)

    @classmethod
    def samples_caption(cls, config: dict[str, Any]) -> str:
        """What a run's sample grids show, for the report (from its saved ``config.json``;
        a task whose grids depend on its options overrides this)."""
        return cls.samples_title

    # ---- export and loading

    def export_info(self, name: str) -> dict[str, Any]:
        """What, besides its weights, rebuilds and uses the exported network ``name``
        (written to its ``config.json``; must be JSON)."""
        return {}

    @classmethod
    def build_network(cls, name: str, info: dict[str, Any]) -> nn.Module:
        """The untrained network ``name`` from its exported ``config.json`` (for the loader)."""
        raise MedganError(f"the {cls.name!r} task cannot rebuild a network named {name!r}")

    @classmethod
    def from_pretrained(cls, exported: dict[str, tuple[nn.Module, dict[str, Any]]], run: Path | None = None) -> Any:
        """The task's typed model record, ready to use, from its loaded networks (``name ->
        (module, info)``) and the run folder they came from (``run``: what a task keeps
        beside its networks, e.g. an anomaly model's calibration); see :func:`medgan.tasks.load_model`."""
        raise MedganError(f"the {cls.name!r} task has no inference model")

    def after_training(self, run_dir: Path) -> None:
        """Called once on the main process after the export, with the run folder: the place
        for what needs the finished model (an anomaly detector calibrates its scores on
        held-out normals here)."""

    # ---- evaluation and report

    @classmethod
    def evaluate_run(cls, run_dir: Path, *, n: int, seed: int, inception_weights: str | None,
                     require_inception: bool, metrics: list[str] | None = None) -> dict[str, Any]:
        """Score a finished run the task's own way, append the record to its ``metrics.jsonl``
        and return it (``medgan evaluate RUN`` calls this); ``metrics`` names registered
        metrics to compute instead of the task's defaults, where the task has a choice."""
        raise MedganError(f"evaluation of {cls.name!r} runs is not available yet", path=run_dir)

    @classmethod
    def describe_evaluation(cls, record: dict[str, Any]) -> str:
        """One plain-text line saying what an evaluation record of this task measured (for
        ``medgan evaluate`` and the report)."""
        return f"{record.get('n_test', '?')} held-out images"

    @classmethod
    def report_parts(cls, run_dir: Path) -> list[str]:
        """HTML sections of the run report that only this task has (after the metrics)."""
        return []


class GANTask(Task):
    """A generator G and a discriminator D trained against each other (``docs/design.md`` §3.3): per step,
    ``n_critic`` D updates on their own batches, then one G update on the last batch; with
    ``uses_discriminator = False`` (a baseline without the adversary) D is not built and only
    G is trained. Subclasses write the two objectives and :meth:`build_pair`.
    """

    #: ``False`` for a baseline trained without the adversary.
    uses_discriminator: bool = True
    averaged = ("generator",)
    exported = ("generator",)

    @abstractmethod
    def build_pair(self) -> tuple[nn.Module, nn.Module | None]:
        """Fresh ``(G, D)``; D may be ``None`` when :attr:`uses_discriminator` is off."""

    def networks(self) -> dict[str, nn.Module]:
        G, D = self.build_pair()
        return {"generator": G, "discriminator": D} if self.uses_discriminator else {"generator": G}

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        out = {"generator": Optimizer(("generator",), o.lr_g, (o.beta1, o.beta2))}
        if self.uses_discriminator:
            out["discriminator"] = Optimizer(("discriminator",), o.lr_d, (o.beta1, o.beta2))
        return out

    def phases(self) -> list[Phase]:
        updates = (Update("g", "generator", self.generator_objective),)
        if self.uses_discriminator:
            updates = (Update("d", "discriminator", self.discriminator_objective, repeat=self.config.optim.n_critic), *updates)
        return [Phase("train", self.config.loop.steps, updates)]

    def discriminator_objective(self, nets: Networks, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """D's loss on one batch (``"loss"``), plus scalars to log."""
        raise NotImplementedError

    @abstractmethod
    def generator_objective(self, nets: Networks, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """G's loss on one batch (``"loss"``), plus scalars to log."""

    @classmethod
    def build_network(cls, name: str, info: dict[str, Any]) -> nn.Module:
        """Only the network asked for, from the model registry (``info["model"]``, ``info["net"]``)."""
        from medgan.nets import build_network

        role = {"generator": "generator", "discriminator": "discriminator"}.get(name)
        if role is None:
            return super().build_network(name, info)
        return build_network(info["model"], info["net"], role)
