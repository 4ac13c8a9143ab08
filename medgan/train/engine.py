"""The one training engine.

Reads top to bottom like nanoGPT's ``train.py``: set-up, data, networks, optimisers,
resume, then the loop. A task (see :mod:`medgan.train.task`) supplies named networks,
which of them each optimiser trains, and its phases of updates (a GAN: ``n_critic``
discriminator updates, then one generator update, ``docs/design.md`` §3.3; f-AnoGAN: a WGAN-GP, then an
encoder with both frozen; a baseline or a classifier: one update, no adversary). Everything
else is here: optimisers, EMA, mixed precision, DDP, checkpoints, logging, sample grids,
guards, the export.

A run is a folder that explains itself::

    runs/00003-synth-dcgan-brain-mri/
      config.json              resolved config
      stats.jsonl              append-only: losses, D outputs, timings (one line per log step)
      samples/step-0000250.png grids from one fixed set of inputs
      curves.png               loss curves, redrawn with each sample grid and every 30 s of logging
      tensorboard/             event files: every logged value and every sample grid (with
                               the optional tensorboard package; tensorboard --logdir runs/)
      checkpoints/             training-state-<step>.pt (resume state, newest two)
      generator/               config.json + model.safetensors: each network the task
                               exports for inference, in a folder of its name
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from medgan.data.sampling import BalancedSampler
from medgan.errors import MedganError, warn
from medgan.io.output import atomic_path
from medgan.report.curves import plot_curves
from medgan.report.grid import save_grid
from medgan.tasks import TASKS
from medgan.train import distributed as dist
from medgan.train.budget import NOMINAL_STEPS, REPLAN_AT, SAFETY, Plan, plan_steps
from medgan.train.checkpoint import (
    export_network, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state, upgrade_state,
)
from medgan.train.config import TrainConfig
from medgan.train.ema import make_ema, update_ema
from medgan.train.events import EventLog
from medgan.train.progress import Progress
from medgan.train.task import Networks, Phase, Update

# D "wins completely" when σ(D(real)) > 1 - ε and σ(D(fake)) < ε for this many steps.
D_WINS_EPS, D_WINS_STEPS = 0.02, 500
#: curves.png is redrawn at a log step once this many seconds have passed since it last was
#: (and at every sample grid): live, at a bounded cost (a redraw takes about 0.3 s)
CURVES_EVERY_SECONDS = 30.0


class Trainer:
    """Builds everything a run needs from a :class:`TrainConfig` and runs the loop.

    Args:
        config: the run's config (resolved here if it was not).
        run_dir: the run folder (created; must be new unless ``resume``).
        resume: continue from the newest checkpoint in ``run_dir``.
        progress: show a progress bar (rank 0 only).

    Attributes:
        nets: the task's networks by name (plain modules); ``ema`` their averaged copies.
        optimizers: Adam per optimiser name of the task.
        phases: the task's phases; ``steps`` their total.
    """

    def __init__(self, config: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True):
        # ---- data first: the config is resolved against the images it will train on, the
        # one resolution --dry-run prints too.
        dataset, self.holdout = config.load_data()
        self.config, self.run_dir, self.progress = config.resolve(dataset), Path(run_dir), progress
        if not resume and (self.run_dir / "config.json").exists():
            raise MedganError("already holds a run", path=self.run_dir, hint="resume it with --resume, or train into a new folder")
        loop = config.loop
        # Without --steps a time budget decides the length (plan_budget); the nominal steps
        # only set the phases' proportions. Given with a budget, --steps is a cap.
        self._steps_asked = loop.steps is not None
        if loop.steps is None:
            loop.steps = NOMINAL_STEPS
        self.plan: Plan | None = None
        self._clock: float | None = None  # when the budget's clock started (plan_budget)
        # seconds kept for the end of the run, a checkpoint takes, and passed before the loop's first step
        self._reserve = self._save_seconds = self._loop_offset = 0.0
        self._replans: dict[int, int] = {}  # per phase: how many of REPLAN_AT's revisions were made
        self.dist = dist.setup(loop.device)
        self.device = self.dist.device
        if loop.batch_size % self.dist.world_size:
            raise MedganError(f"--batch-size {loop.batch_size} does not divide over {self.dist.world_size} processes", hint="use a multiple of the process count")
        torch.manual_seed(loop.seed + self.dist.rank)  # weights are then broadcast by DDP
        np.random.seed(loop.seed + self.dist.rank)

        # ---- the task. It may keep part of the data for itself (a segmentation run's
        # unlabelled images): the engine's batches come from ``task.dataset``.
        self.task = TASKS[config.task](config, dataset)
        self.dataset = self.task.dataset
        self.local_batch = loop.batch_size // self.dist.world_size
        if config.data.balance_classes:
            labels = self.dataset.data.labels
            if labels is None or self.dataset.data.class_names is None:
                raise MedganError("--balance-classes needs labelled data (subfolders per class, --labels-csv or an npz with labels)",
                                  path=config.data.source)
            self.sampler = BalancedSampler(labels, num_replicas=self.dist.world_size, rank=self.dist.rank, seed=loop.seed)
        else:
            # A task that learns from a few labelled images (segmentation, image-label pairs)
            # repeats them to fill a batch; an epoch then shows each about batch / n times.
            n = len(self.dataset)
            repeats = math.ceil(loop.batch_size / n) if self.task.repeat_small_data and 0 < n < loop.batch_size else 1
            self.sampler = DistributedSampler(range(n * repeats), num_replicas=self.dist.world_size, rank=self.dist.rank,
                                              shuffle=True, seed=loop.seed, drop_last=True)
        self.batches_per_epoch = len(self.sampler) // self.local_batch
        if self.batches_per_epoch == 0:
            raise MedganError(f"{len(self.dataset)} training images are fewer than one batch of {loop.batch_size}", hint="lower --batch-size")
        self._epoch, self._order = -1, []

        # ---- networks, optimisers, phases
        # Channels-last activations let oneDNN (CPU) and cuDNN (CUDA) pick their fastest
        # convolution kernels (~15% faster DCGAN steps here); the model computes the same thing.
        self.nets = Networks({name: net.to(self.device, memory_format=torch.channels_last)
                              for name, net in self.task.networks().items()})
        #: what ``loop.init_from`` loaded: network -> tensors taken, and the networks left fresh
        self.initialised: dict[str, Any] = self._init_from(loop.init_from) if loop.init_from and not resume else {}
        self.ema = Networks({name: make_ema(self.nets[name]) for name in self.task.averaged if loop.ema > 0 and name in self.nets})
        self.specs = self.task.optimizers()
        self.phases = self.task.phases()
        self._check_plan()
        self.steps = sum(p.steps for p in self.phases)
        cuda_amp = loop.amp and self.device.type == "cuda"
        self.amp_dtype = torch.float16 if cuda_amp else torch.bfloat16
        self.optimizers, self.scalers = self._make_optimizers()
        self.step = 0
        self.stopped_by_budget = False  # set when fit() ended on loop.time_budget
        self._d_wins = 0
        if resume:
            self._resume()
        self.wrapped = self._wrap(self.nets)
        self.fixed = self.task.fixed_inputs(loop.n_samples, self.device)

    def _make_optimizers(self) -> tuple[dict[str, torch.optim.Optimizer], dict[str, torch.amp.GradScaler]]:
        """Fresh Adam optimisers over ``self.nets`` and their loss scalers (active for fp16 on CUDA only)."""
        optimizers = {name: torch.optim.Adam([q for n in spec.networks for q in self.nets[n].parameters()], lr=spec.lr, betas=spec.betas)
                      for name, spec in self.specs.items()}
        scaling = self.amp_dtype == torch.float16
        return optimizers, {name: torch.amp.GradScaler("cuda", enabled=scaling) for name in self.specs}

    def _init_from(self, source: str) -> dict[str, Any]:
        """Load the exported networks of run ``source`` into this run's networks of the same
        names (before the EMA copies and optimisers are made): every tensor whose name and
        shape match; a tensor of the same name and another shape is refused in one line."""
        from safetensors.torch import load_file

        from medgan.train.checkpoint import exported_folders

        folders = exported_folders(source) if Path(source).exists() else {}
        if not folders:
            raise MedganError("no exported networks to start from (RUN/<name>/config.json + model.safetensors)", path=source,
                              hint="give a run folder made by medgan train (--init-from RUN)")
        matched = {name: folder for name, folder in folders.items() if name in self.nets}
        if not matched:
            raise MedganError(f"none of its networks ({', '.join(folders)}) is one of this run's ({', '.join(self.nets)})", path=source,
                              hint="start from a run of the same task and model")
        report: dict[str, Any] = {"source": str(source), "loaded": {}, "fresh": sorted(set(self.nets) - set(matched))}
        for name, folder in matched.items():
            weights = load_file(str(folder / "model.safetensors"))
            own = self.nets[name].state_dict()
            for key, tensor in weights.items():
                if key in own and own[key].shape != tensor.shape:
                    raise MedganError(f"network {name}, tensor {key}: shape {tuple(tensor.shape)} there, {tuple(own[key].shape)} here",
                                      path=folder, hint="start from a run with the same network settings (--width, --depth, --size ...)")
            taken = {k: v for k, v in weights.items() if k in own}
            self.nets[name].load_state_dict(taken, strict=False)
            report["loaded"][name] = {"tensors": len(taken), "of": len(own),
                                      "not_in_source": sorted(set(own) - set(taken))[:20]}
        if not any(entry["tensors"] for entry in report["loaded"].values()):
            raise MedganError(f"no tensor of {', '.join(matched)} there has a name this run's networks have", path=source,
                              hint="start from a run of the same task, model and options")
        return report

    def _wrap(self, nets: Networks) -> Networks:
        """The trained networks DDP-wrapped (under torchrun), the others as they are."""
        trained = {n for spec in self.specs.values() for n in spec.networks}
        return Networks({name: dist.wrap(net, self.dist) if name in trained else net for name, net in nets.items()})

    def _check_plan(self) -> None:
        """The task's optimisers and phases name networks and optimisers that exist."""
        for name, spec in self.specs.items():
            missing = [n for n in spec.networks if n not in self.nets]
            if missing:
                raise MedganError(f"task {self.task.name!r}: optimiser {name!r} trains unknown networks {missing}")
        for phase in self.phases:
            if phase.steps < 0 or not phase.updates:
                raise MedganError(f"task {self.task.name!r}: phase {phase.name!r} needs updates and steps >= 0")
            for update in phase.updates:
                if update.optimizer not in self.specs or update.repeat < 1:
                    raise MedganError(f"task {self.task.name!r}: update {update.name!r} names optimiser {update.optimizer!r} (have: {', '.join(self.specs)})")

    def phase_at(self, step: int) -> tuple[Phase, int, int]:
        """``(phase, first step of the phase, index of its first batch)`` for the update after ``step``."""
        start = first_batch = 0
        for phase in self.phases:
            if step < start + phase.steps or phase is self.phases[-1]:
                return phase, start, first_batch
            start += phase.steps
            first_batch += phase.steps * phase.batches_per_step
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------------- data

    def batch(self, k: int) -> dict[str, torch.Tensor]:
        """The ``k``-th batch of the run (a pure function of ``k`` and the seed: exact resume)."""
        epoch, pos = divmod(k, self.batches_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order, self._epoch = list(self.sampler), epoch
        index = torch.tensor(self._order[pos * self.local_batch : (pos + 1) * self.local_batch]) % len(self.dataset)  # repeated sets wrap
        batch = {k: v.to(self.device, non_blocking=True) for k, v in self.dataset.batch(index).items()}
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        batch["number"] = torch.tensor(k)  # lets a task draw batch-level randomness as a function of k
        return batch

    # ----------------------------------------------------------------------- state

    def state(self) -> dict:
        return {
            "step": self.step,
            "config": self.config.to_dict(),
            "networks": {name: net.state_dict() for name, net in self.nets.items()},
            "ema": {name: net.state_dict() for name, net in self.ema.items()},
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scalers": {name: scaler.state_dict() for name, scaler in self.scalers.items()},
            "d_wins": self._d_wins,
            "rng": rng_state(),
        }

    def _resume(self) -> None:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            raise MedganError("no checkpoint to resume from", path=self.run_dir / "checkpoints", hint="start a new run instead of --resume")
        state = upgrade_state(load_checkpoint(path))
        for part, own in (("networks", self.nets), ("ema", self.ema), ("optimizers", self.optimizers), ("scalers", self.scalers)):
            missing = set(own) - set(state[part])
            if missing and part != "ema":
                raise MedganError(f"the checkpoint has no {part} {', '.join(sorted(missing))}", path=path,
                                  hint="resume with the config the run was started with")
            for name, obj in own.items():
                if name in state[part]:
                    obj.load_state_dict(state[part][name])
        self.step, self._d_wins = int(state["step"]), int(state["d_wins"])
        if self.dist.world_size == 1:  # per-rank RNG streams are only saved for rank 0
            set_rng_state(state["rng"])
        else:
            torch.manual_seed(self.config.loop.seed + self.dist.rank + 1_000_003 * self.step)

    # ----------------------------------------------------------------------- one step

    def _autocast(self):
        if not self.config.loop.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _check(self, losses: dict[str, torch.Tensor], who: str) -> None:
        bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
        if dist.broadcast_flag(bool(bad), self.dist):
            last = latest_checkpoint(self.run_dir)
            keep = f"the last good checkpoint is {last}" if last else "no checkpoint was written yet"
            raise MedganError(
                f"the {who} loss became NaN/Inf at step {self.step + 1} ({', '.join(bad) or 'on another process'}); {keep}",
                path=self.run_dir,
                hint="lower the learning rates (--lr-g/--lr-d), turn off --amp, or add --spectral-norm or --r1 10",
            )

    def _update(self, update: Update, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One optimiser step on ``update.objective(nets, batch)["loss"]`` (mixed precision
        aware). The optimiser's networks are passed wrapped for DDP with gradients on; the
        others plain and frozen (no wasted weight gradients, no DDP sync of them)."""
        trains = self.specs[update.optimizer].networks
        for name, net in self.nets.items():
            net.requires_grad_(name in trains)
        nets = Networks({name: self.wrapped[name] if name in trains else net for name, net in self.nets.items()})
        with self._autocast():
            out = update.objective(nets, batch)
        self._check(out, update.optimizer)
        optimizer, scaler = self.optimizers[update.optimizer], self.scalers[update.optimizer]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(out["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        return out

    def train_step(self) -> dict[str, float]:
        """The updates of the current phase, once; returns the logged scalars."""
        cfg = self.config
        phase, start, first_batch = self.phase_at(self.step)
        local = self.step - start
        trained = {n for u in phase.updates for n in self.specs[u.optimizer].networks}
        for name, net in self.nets.items():
            net.train(name in trained)
        self.task.before_step(self.nets, self.step)
        factor = cfg.optim.lr_factor(local, phase.steps)  # a function of the step: resume stays exact
        for name in {u.optimizer for u in phase.updates}:
            for group in self.optimizers[name].param_groups:
                group["lr"] = self.specs[name].lr * factor
        per_step = phase.batches_per_step
        batches = [self.batch(first_batch + local * per_step + k) for k in range(per_step)]
        losses: dict[str, torch.Tensor] = {}
        logged: dict[str, torch.Tensor] = {}
        for update in phase.updates:
            for batch in batches[per_step - update.repeat:]:
                out = self._update(update, batch)
            losses[f"loss_{update.name}"] = out["loss"]
            logged.update({k: v for k, v in out.items() if k != "loss"})
        for name, net in self.nets.items():
            net.requires_grad_(True)

        for name, ema in self.ema.items():
            if name in trained:
                update_ema(ema, self.nets[name], cfg.loop.ema, local)
        self.step += 1
        return {k: float(v.detach()) for k, v in {**losses, **logged}.items()}

    # ----------------------------------------------------------------------- a time budget

    def plan_budget(self) -> Plan | None:
        """Measure, then lay a ``--time-budget`` run out over the steps it will reach.

        Times a few steps of every phase on copies of the networks and optimisers (the run's
        own stay untouched, its random streams too), and the sample grid and the checkpoint;
        then scales every phase by one factor to fill the budget (:mod:`medgan.train.budget`)
        and has the task lay its phases and schedules over the planned steps. The budget's
        clock starts here. Called by :meth:`fit` when not called before; a no-op without a
        budget, after the first step, or for a run planned already (a resumed one keeps its
        plan, which its config holds in ``loop.plan``).

        Returns:
            the plan (``None`` when nothing was planned); a budget too short for every phase
            is also said in one warning line.
        """
        loop = self.config.loop
        if loop.time_budget <= 0 or self.step > 0 or loop.plan or self.plan is not None:
            return self.plan
        self._clock = time.perf_counter()
        costs = [self._probe(index) for index in range(len(self.phases))]
        started = time.perf_counter()
        with torch.no_grad():
            self._render()
        render = time.perf_counter() - started
        started = time.perf_counter()
        torch.save(self.state(), io.BytesIO())
        save = time.perf_counter() - started
        # Every rank plans from the same figures (the slowest rank's), so all lay out the same steps.
        *costs, render, save, elapsed = dist.all_max([*costs, render, save, time.perf_counter() - self._clock], self.dist)
        # A sample grid redraws the curves too (about its own cost again); the end of the run
        # writes the last grid, a checkpoint and the export.
        per_step = [c + 2 * render / loop.sample_every + save / loop.checkpoint_every for c in costs]
        available = (loop.time_budget - elapsed) * SAFETY - 2 * (render + save)
        asked = [p.steps for p in self.phases]
        steps, scale = plan_steps(asked, per_step, available, cap=self._steps_asked)
        self._lay_out(steps)
        self._reserve, self._save_seconds = 2 * (render + save), save
        self.plan = Plan(loop.time_budget, [p.name for p in self.phases], per_step, asked, steps, scale, self._steps_asked)
        loop.plan = self.plan.to_dict()
        if self.plan.short and self.dist.is_main:
            warn(self.plan.describe(), hint="give a longer --time-budget for a useful model")
        return self.plan

    def measure_pace(self) -> list[float]:
        """Seconds per step of every phase, measured on copies of the networks (as a time
        budget's plan measures them; the run itself is left untouched), so that a run
        without a budget can say before its first step how long it will take."""
        return dist.all_max([self._probe(index) for index in range(len(self.phases))], self.dist)

    def _lay_out(self, steps: list[int]) -> None:
        """Have the task lay its phases (and the config) out over ``steps`` per phase."""
        self.task.plan(steps)
        self.phases = self.task.phases()
        self._check_plan()
        if [p.steps for p in self.phases] != steps:
            raise MedganError(f"task {self.task.name!r}: its phases do not follow the planned steps {steps}",
                              hint="make Task.plan write them where Task.phases reads them")
        self.steps = sum(steps)

    def _replan(self, elapsed: float, cut: bool = False) -> None:
        """Lay the rest of a planned run out again over the time left, from how fast the host
        really ran it so far (a plan from a few probed steps can be off by a fifth on a busy
        host, and a shared host's pace drifts): at :data:`REPLAN_AT` of each phase, at the end
        of each phase but the last, and when the budget ran out before the last phase (``cut``:
        the current phase ends here, so every later phase still trains). The remaining steps of
        every phase are scaled by one factor; a phase yet to start keeps at least one step; with
        ``--steps`` no phase exceeds what was asked."""
        plan, loop = self.plan, self.config.loop
        current = self._phase_index(self.step - 1)
        steps = list(plan.steps)
        done_here = self.step - sum(steps[:current])
        if cut:
            steps[current] = done_here
        done = sum(n * c for n, c in zip(steps[:current], plan.seconds_per_step)) + done_here * plan.seconds_per_step[current]
        pace = (elapsed - self._loop_offset) / done if done > 0 else 1.0
        remaining = [steps[current] - done_here, *steps[current + 1 :]]
        work = sum(n * c * pace for n, c in zip(remaining, plan.seconds_per_step[current:]))
        # what is left, less the end of the run and, at a phase's end, the checkpoint written there
        available = (loop.time_budget - elapsed) * SAFETY - self._reserve - (self._save_seconds if remaining[0] == 0 else 0.0)
        scale = max(available, 0.0) / work if work > 0 else 1.0
        steps[current:] = [done_here + math.floor(remaining[0] * scale), *(max(1, math.floor(n * scale)) for n in remaining[1:])]
        if plan.capped:
            steps = [min(n, asked) for n, asked in zip(steps, plan.asked)]
        self._lay_out(steps)
        plan.steps = steps
        plan.revisions.append({"step": self.step, "elapsed": round(elapsed, 3), "pace": round(pace, 4), "steps": steps})
        loop.plan = plan.to_dict()
        if self.dist.is_main:
            self.config.save(self.run_dir / "config.json")  # a resume from here on follows the new lay-out

    def _phase_index(self, step: int) -> int:
        """Index of the phase that the update after ``step`` belongs to."""
        return self.phases.index(self.phase_at(step)[0])

    def _probe(self, index: int) -> float:
        """Seconds per step of phase ``index``, on copies: one warm-up step (it allocates and picks
        kernels), then at least 3 steps and at least 0.5% of the budget (0.5 to 20 s)."""
        start = sum(p.steps for p in self.phases[:index])
        target = min(max(0.005 * self.config.loop.time_budget, 0.5), 20.0)
        saved = (self.nets, self.ema, self.wrapped, self.optimizers, self.scalers, self.step, rng_state())
        try:
            self.nets = Networks({name: copy.deepcopy(net) for name, net in saved[0].items()})
            self.ema = Networks({name: copy.deepcopy(net) for name, net in saved[1].items()})
            self.wrapped = self._wrap(self.nets)
            self.optimizers, self.scalers = self._make_optimizers()
            self.step = start
            self.train_step()
            began, timed = time.perf_counter(), 0
            while True:
                self.step = start
                self.train_step()
                timed += 1
                if timed >= 3 and dist.broadcast_flag(time.perf_counter() - began >= target or timed >= 50, self.dist):
                    return (time.perf_counter() - began) / timed
        finally:
            self.nets, self.ema, self.wrapped, self.optimizers, self.scalers, self.step, rng = saved
            set_rng_state(rng)

    # ----------------------------------------------------------------------- the loop

    def fit(self) -> Path:
        """Train every phase to its end (or until ``loop.time_budget`` seconds of this call
        have passed); export the task's networks; returns the run folder."""
        cfg, loop, main = self.config, self.config.loop, self.dist.is_main
        self.plan_budget()
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.json")
        self._events = EventLog(self.run_dir, enabled=main)
        if main:
            if self.step == 0:
                self._write_samples()
        stats_file = self.run_dir / "stats.jsonl"
        if main and self.step > 0:
            _drop_rows_after(stats_file, self.step)
        window: list[dict[str, float]] = []
        last_log = time.perf_counter()
        started = self._clock or last_log  # a planned budget counts its measurements too
        self._loop_offset = last_log - started
        bar = Progress(self.steps, self.step, enabled=main and self.progress)
        last_plot = last_log
        try:
            while self.step < self.steps:
                window.append(self.train_step())
                self._watch_discriminator(window[-1])
                # A wall-clock budget ends the run like its last step would (log, samples,
                # checkpoint, export); every rank stops at the same step.
                elapsed = time.perf_counter() - started
                out_of_time = (loop.time_budget > 0 and self.step < self.steps
                               and dist.broadcast_flag(elapsed >= loop.time_budget, self.dist))
                # A planned run is laid out again from its real pace (see _replan); out of time
                # before its last phase, it ends the current one here so the next ones still train.
                if self.plan is not None:
                    index = self._phase_index(self.step - 1)
                    begun, length = sum(p.steps for p in self.phases[:index]), self.phases[index].steps
                    last = index == len(self.phases) - 1
                    cut = out_of_time and not last
                    made = self._replans.get(index, 0)
                    due = made < len(REPLAN_AT) and length >= 20 and self.step - begun >= max(1, int(REPLAN_AT[made] * length))
                    if cut or due or (self.step == begun + length and not last):
                        self._replans[index] = made + due
                        self._replan(dist.all_max([elapsed], self.dist)[0], cut=cut)
                        bar.total(self.steps)
                        out_of_time = out_of_time and not cut
                phase_end = self.phase_at(self.step - 1)[0] is not self.phase_at(self.step)[0]
                done = self.step == self.steps or out_of_time
                validating = self.step % (loop.val_every or loop.sample_every) == 0 or done
                if self.step % loop.log_every == 0 or done or phase_end or validating:
                    now = time.perf_counter()
                    keys = dict.fromkeys(k for w in window for k in w)  # a phase change brings new keys
                    record = {k: float(np.mean([w[k] for w in window if k in w])) for k in keys}
                    seconds = (now - last_log) / len(window)
                    record.update(step=self.step, sec_per_step=seconds, img_per_sec=loop.batch_size / seconds,
                                  elapsed=now - started)
                    if len(self.phases) > 1:
                        record["phase"] = self.phase_at(self.step - 1)[0].name
                    if validating and self.holdout is not None and len(self.holdout):
                        record.update(self._validate())
                    window, last_log = [], now
                    if main:
                        with open(stats_file, "a") as handle:
                            handle.write(json.dumps(record) + "\n")
                        self._events.scalars(record, self.step)
                        if now - last_plot >= CURVES_EVERY_SECONDS:  # live curves, at a bounded cost
                            plot_curves(stats_file, self.run_dir / "curves.png")
                            last_plot = now
                    bar.update(self.step, record)
                else:
                    bar.update(self.step, None)
                if main and (self.step % loop.sample_every == 0 or done):
                    self._write_samples()
                    plot_curves(stats_file, self.run_dir / "curves.png")
                    last_plot = time.perf_counter()
                if self.step % loop.checkpoint_every == 0 or done or phase_end:
                    self._checkpoint()
                if out_of_time:
                    self.stopped_by_budget = True
                    if self.plan is not None and main:
                        warn(f"the run was slower than its plan: the time budget ended it at step {self.step} of {self.steps}, "
                             f"in phase {self.phase_at(self.step - 1)[0].name!r}", hint="give a longer --time-budget, or --resume")
                    break
        finally:
            bar.close()
            self._events.close()
        if main:
            self.export()
            self.task.after_training(self.run_dir)
        checksum = float(sum(p.detach().double().sum() for net in self.nets.values() for p in net.parameters()))
        in_sync = dist.all_equal(checksum, self.dist)
        if main and self.dist.enabled:
            with open(stats_file, "a") as handle:
                handle.write(json.dumps({"step": self.step, "world_size": self.dist.world_size, "replicas_in_sync": in_sync}) + "\n")
        dist.barrier(self.dist)
        dist.teardown(self.dist)
        return self.run_dir

    def export(self) -> list[Path]:
        """Write every network the task exports to ``RUN/<name>/`` (its EMA copy where one exists)."""
        folders = []
        for name in self.task.exported:
            averaged = name in self.ema
            info = {"task": self.config.task, "network": name, "step": self.step, "ema": averaged, **self.task.export_info(name)}
            folders.append(export_network(self.run_dir / name, self.ema[name] if averaged else self.nets[name], info))
        return folders

    def _checkpoint(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self.run_dir / "checkpoints", self.step, self.state())
        dist.barrier(self.dist)

    @contextlib.contextmanager
    def _inference_nets(self):
        """The networks as sample grids and validation see them: the EMA copies where they
        exist, in eval mode and without gradients; their modes are restored afterwards."""
        nets = Networks({name: self.ema.get(name, net) for name, net in self.nets.items()})
        modes = {name: net.training for name, net in nets.items()}
        for net in nets.values():
            net.eval()
        try:
            with torch.no_grad():
                yield nets
        finally:
            for name, net in nets.items():
                net.train(modes[name])

    def _render(self) -> np.ndarray:
        """The sample grid's images from the fixed inputs."""
        with self._inference_nets() as nets:
            return self.task.render(nets, self.fixed).float().cpu().numpy()

    def _validate(self) -> dict[str, float]:
        """The task's validation figures on the held-out images."""
        with self._inference_nets() as nets:
            return {k: float(v) for k, v in self.task.validate(nets, self.holdout).items()}

    def _write_samples(self) -> None:
        images = self._render()
        picture = save_grid(self.run_dir / "samples" / f"step-{self.step:07d}.png", images[:, 0] if images.shape[1] == 1 else images,
                            value_range=self.task.display_range(), ncol=self.task.grid_columns, overwrite=True)
        events = getattr(self, "_events", None)
        if events is not None:
            events.image("samples", np.asarray(picture.convert("RGB")), self.step)

    def _watch_discriminator(self, stats: dict[str, float]) -> None:
        if "d_real" not in stats:
            return
        wins = stats["d_real"] > 1 - D_WINS_EPS and stats["d_fake"] < D_WINS_EPS
        self._d_wins = self._d_wins + 1 if wins else 0
        if self._d_wins == D_WINS_STEPS and self.dist.is_main:
            warnings.warn(
                f"the discriminator has won completely for {D_WINS_STEPS} steps (D(real)≈1, D(G(z))≈0): G gets no useful "
                "gradient. Try --augment translation,cutout,color, --spectral-norm, a lower --lr-d, --r1 10, or more data.",
                stacklevel=2,
            )


def _drop_rows_after(stats_file: Path, step: int) -> None:
    """Forget the rows logged after the checkpoint a run resumes from.

    A run killed between two checkpoints has logged steps it will now train again; kept,
    they would appear twice in the curves and to every reader. Only on resume is the
    append-only file rewritten (atomically), and only to drop those rows.
    """
    if not stats_file.is_file():
        return
    lines = stats_file.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) != len(lines):
        with atomic_path(stats_file, overwrite=True) as tmp:
            tmp.write_text("".join(kept))
