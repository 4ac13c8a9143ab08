"""The one adversarial training engine.

Reads top to bottom like nanoGPT's ``train.py``: set-up, data, networks, optimisers,
resume, then the loop that alternates D and G steps (seed §3.3). A task (see
:mod:`medgan.train.task`) supplies the networks and the objectives; everything else is
here: optimisers, EMA, mixed precision, DDP, checkpoints, logging, sample grids, guards.

A run is a folder that explains itself::

    runs/00003-synth-dcgan-brain-mri/
      config.json              resolved config
      stats.jsonl              append-only: losses, D outputs, timings (one line per log step)
      samples/step-0000250.png grids from one fixed set of z
      curves.png               loss curves
      checkpoints/             training-state-<step>.pt (resume state, newest two)
      generator/               config.json + model.safetensors (the export)
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from medgan.data.training import load_training_data
from medgan.errors import MedganError
from medgan.io.output import atomic_path
from medgan.report.curves import plot_curves
from medgan.report.grid import save_grid
from medgan.tasks import TASKS
from medgan.train import distributed as dist
from medgan.train.checkpoint import (
    export_generator, latest_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
)
from medgan.train.config import TrainConfig
from medgan.train.ema import make_ema, update_ema

# D "wins completely" when σ(D(real)) > 1 - ε and σ(D(fake)) < ε for this many steps.
D_WINS_EPS, D_WINS_STEPS = 0.02, 500


class Trainer:
    """Builds everything a run needs from a :class:`TrainConfig` and runs the loop.

    Args:
        config: the resolved config.
        run_dir: the run folder (created; must be new unless ``resume``).
        resume: continue from the newest checkpoint in ``run_dir``.
        progress: show a progress bar (rank 0 only).
    """

    def __init__(self, config: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True):
        self.config, self.run_dir, self.progress = config.resolve(), Path(run_dir), progress
        if not resume and (self.run_dir / "config.json").exists():
            raise MedganError("already holds a run", path=self.run_dir, hint="resume it with --resume, or train into a new folder")
        loop = config.loop
        self.dist = dist.setup(loop.device)
        self.device = self.dist.device
        if loop.batch_size % self.dist.world_size:
            raise MedganError(f"--batch-size {loop.batch_size} does not divide over {self.dist.world_size} processes", hint="use a multiple of the process count")
        torch.manual_seed(loop.seed + self.dist.rank)  # weights are then broadcast by DDP
        np.random.seed(loop.seed + self.dist.rank)

        # ---- data: whole batches of in-memory tensors, drawn by a distributed sampler
        self.dataset, self.holdout = load_training_data(config.data)
        self.local_batch = loop.batch_size // self.dist.world_size
        self.sampler = DistributedSampler(self.dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                          shuffle=True, seed=loop.seed, drop_last=True)
        self.batches_per_epoch = len(self.sampler) // self.local_batch
        if self.batches_per_epoch == 0:
            raise MedganError(f"{len(self.dataset)} training images are fewer than one batch of {loop.batch_size}", hint="lower --batch-size")
        self._epoch, self._order = -1, []

        # ---- networks, EMA, optimisers, mixed precision
        self.task = TASKS[config.task](config, self.dataset)
        G, D = self.task.networks()
        # Channels-last activations let oneDNN (CPU) and cuDNN (CUDA) pick their fastest
        # convolution kernels (~15% faster DCGAN steps here); the model computes the same thing.
        self.G = G.to(self.device, memory_format=torch.channels_last)
        self.D = D.to(self.device, memory_format=torch.channels_last)
        self.G_ema = make_ema(self.G) if loop.ema > 0 else None
        o = config.optim
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=(o.beta1, o.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=(o.beta1, o.beta2))
        cuda_amp = loop.amp and self.device.type == "cuda"
        self.amp_dtype = torch.float16 if cuda_amp else torch.bfloat16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=cuda_amp)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=cuda_amp)
        self.step = 0
        self.stopped_by_budget = False  # set when fit() ended on loop.time_budget
        self._d_wins = 0
        if resume:
            self._resume()
        self.G_train, self.D_train = dist.wrap(self.G, self.dist), dist.wrap(self.D, self.dist)
        self.fixed = self.task.fixed_inputs(loop.n_samples, self.device)

    # ----------------------------------------------------------------------- data

    def batch(self, k: int) -> dict[str, torch.Tensor]:
        """The ``k``-th batch of the run (a pure function of ``k`` and the seed: exact resume)."""
        epoch, pos = divmod(k, self.batches_per_epoch)
        if epoch != self._epoch:
            self.sampler.set_epoch(epoch)
            self._order, self._epoch = list(self.sampler), epoch
        index = torch.tensor(self._order[pos * self.local_batch : (pos + 1) * self.local_batch])
        batch = {k: v.to(self.device, non_blocking=True) for k, v in self.dataset.batch(index).items()}
        batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        batch["number"] = torch.tensor(k)  # lets a task draw batch-level randomness as a function of k
        return batch

    # ----------------------------------------------------------------------- state

    def state(self) -> dict:
        return {
            "step": self.step,
            "config": self.config.to_dict(),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": None if self.G_ema is None else self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "d_wins": self._d_wins,
            "rng": rng_state(),
        }

    def _resume(self) -> None:
        path = latest_checkpoint(self.run_dir)
        if path is None:
            raise MedganError("no checkpoint to resume from", path=self.run_dir / "checkpoints", hint="start a new run instead of --resume")
        state = load_checkpoint(path)
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None and state["G_ema"] is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
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

    def _update(self, objective, G, D, batch, optimizer, scaler, who: str) -> dict[str, torch.Tensor]:
        """One optimiser step on ``objective(G, D, batch)["loss"]`` (mixed precision aware)."""
        with self._autocast():
            out = objective(G, D, batch)
        self._check(out, who)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(out["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        return out

    def train_step(self) -> dict[str, float]:
        """One G update preceded by ``n_critic`` D updates; returns the logged scalars."""
        cfg, task = self.config, self.task
        self.G.train(), self.D.train()
        factor = cfg.optim.lr_factor(self.step, cfg.loop.steps)  # a function of the step: resume stays exact
        for optimizer, base in ((self.opt_g, cfg.optim.lr_g), (self.opt_d, cfg.optim.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = base * factor
        out_d: dict[str, torch.Tensor] = {}
        for k in range(cfg.optim.n_critic):
            batch = self.batch(self.step * cfg.optim.n_critic + k)
            if task.uses_discriminator:
                out_d = self._update(task.discriminator_objective, self.G, self.D_train, batch, self.opt_d, self.scaler_d, "discriminator")

        # G step through a frozen, unwrapped D: no wasted weight gradients, no DDP sync of D.
        self.D.requires_grad_(False)
        out_g = self._update(task.generator_objective, self.G_train, self.D, batch, self.opt_g, self.scaler_g, "generator")
        self.D.requires_grad_(True)

        if self.G_ema is not None:
            update_ema(self.G_ema, self.G, cfg.loop.ema, self.step)
        self.step += 1
        stats = {"loss_g": out_g["loss"]} if not out_d else {"loss_d": out_d["loss"], "loss_g": out_g["loss"]}
        stats.update({k: v for k, v in {**out_d, **out_g}.items() if k != "loss"})
        return {k: float(v.detach()) for k, v in stats.items()}

    # ----------------------------------------------------------------------- the loop

    def fit(self) -> Path:
        """Train to ``config.loop.steps`` (or until ``loop.time_budget`` seconds of this call
        have passed); returns the run folder."""
        cfg, loop, main = self.config, self.config.loop, self.dist.is_main
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.save(self.run_dir / "config.json")
            if self.step == 0:
                self._write_samples()
        stats_file = self.run_dir / "stats.jsonl"
        if main and self.step > 0:
            _drop_rows_after(stats_file, self.step)
        window: list[dict[str, float]] = []
        started, last_log = time.perf_counter(), time.perf_counter()
        bar = _Progress(loop.steps, self.step, enabled=main and self.progress)
        try:
            while self.step < loop.steps:
                window.append(self.train_step())
                self._watch_discriminator(window[-1])
                # A wall-clock budget ends the run like its last step would (log, samples,
                # checkpoint, export); every rank stops at the same step.
                out_of_time = loop.time_budget > 0 and dist.broadcast_flag(time.perf_counter() - started >= loop.time_budget, self.dist)
                done = self.step == loop.steps or out_of_time
                if self.step % loop.log_every == 0 or done:
                    now = time.perf_counter()
                    record = {k: float(np.mean([w[k] for w in window])) for k in window[-1]}
                    seconds = (now - last_log) / len(window)
                    record.update(step=self.step, sec_per_step=seconds, img_per_sec=loop.batch_size / seconds,
                                  elapsed=now - started)
                    window, last_log = [], now
                    if main:
                        with open(stats_file, "a") as handle:
                            handle.write(json.dumps(record) + "\n")
                    bar.update(self.step, record)
                else:
                    bar.update(self.step, None)
                if main and (self.step % loop.sample_every == 0 or done):
                    self._write_samples()
                    plot_curves(stats_file, self.run_dir / "curves.png")
                if self.step % loop.checkpoint_every == 0 or done:
                    self._checkpoint()
                if out_of_time:
                    self.stopped_by_budget = True
                    break
        finally:
            bar.close()
        if main:
            export_generator(self.run_dir / "generator", self.G_ema or self.G, {
                "task": cfg.task, "step": self.step, "ema": self.G_ema is not None, **self.task.export_info(),
            })
        checksum = float(sum(p.detach().double().sum() for p in self.G.parameters()))
        in_sync = dist.all_equal(checksum, self.dist)
        if main and self.dist.enabled:
            with open(stats_file, "a") as handle:
                handle.write(json.dumps({"step": self.step, "world_size": self.dist.world_size, "replicas_in_sync": in_sync}) + "\n")
        dist.barrier(self.dist)
        dist.teardown(self.dist)
        return self.run_dir

    def _checkpoint(self) -> None:
        if self.dist.is_main:
            save_checkpoint(self.run_dir / "checkpoints", self.step, self.state())
        dist.barrier(self.dist)

    def _write_samples(self) -> None:
        G = self.G_ema or self.G
        was_training = G.training
        G.eval()
        images = self.task.render(G, self.fixed).float().cpu().numpy()
        G.train(was_training)
        save_grid(self.run_dir / "samples" / f"step-{self.step:07d}.png", images[:, 0] if images.shape[1] == 1 else images,
                  value_range=self.task.display_range(), ncol=self.task.grid_columns, overwrite=True)

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


class _Progress:
    """A rich progress bar with ETA and the latest losses (a no-op when disabled)."""

    def __init__(self, total: int, start: int, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
            TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
        )
        self.task = self.progress.add_task("train", total=total, completed=start, losses="")
        self.progress.start()

    def update(self, step: int, record: dict | None) -> None:
        if not self.enabled:
            return
        fields = {}
        if record is not None:
            fields["losses"] = "  ".join(f"{k} {record[k]:.3f}" for k in ("loss_d", "loss_g", "d_real", "d_fake") if k in record and math.isfinite(record[k]))
        self.progress.update(self.task, completed=step, **fields)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
