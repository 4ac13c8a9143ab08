"""What a training run shows while it runs: a bar on a terminal, plain lines elsewhere.

On a terminal, a rich progress bar with the ETA and the run's latest logged values. Under
nohup, SLURM or CI, where stderr is a file and a redrawn bar would leave one truncated line
for the whole run, a plain line instead every few log steps (about 50 in a run): the step,
the logged values, seconds per step and the ETA. Either shows each task's own values (its
``loss_*`` first), not a fixed list of GAN keys.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO

__all__ = ["Progress", "shown_values"]

#: keys of a stats record that are bookkeeping, not values to watch.
BOOKKEEPING = frozenset({"step", "sec_per_step", "img_per_sec", "elapsed", "phase"})
LINES_PER_RUN = 50


def shown_values(record: dict, limit: int = 6) -> str:
    """``"loss_d 0.512  loss_g 1.23  d_real 0.61"``: the losses first, then the other logged values."""
    keys = [k for k in record if k.startswith("loss_")] + [k for k in record if not k.startswith("loss_") and k not in BOOKKEEPING]
    values = [(k, record[k]) for k in keys if isinstance(record[k], (int, float)) and math.isfinite(record[k])]
    return "  ".join(f"{k} {v:.4g}" for k, v in values[:limit])


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """The run's progress (a no-op when not ``enabled``).

    Args:
        total: the run's steps (:meth:`total` changes it when a plan does).
        start: the step the run starts from (a resumed run's).
        enabled: show anything at all (rank 0 only, and not under ``--no-progress``).
        stream: where to write (stderr); plain lines when it is not a terminal.
    """

    def __init__(self, total: int, start: int, enabled: bool, stream: IO[str] | None = None):
        self.enabled, self.steps, self.start = enabled, total, start
        if not enabled:
            return
        self.stream = stream or sys.stderr
        self.plain = not (hasattr(self.stream, "isatty") and self.stream.isatty())
        self.began, self.next_line = time.perf_counter(), start
        if self.plain:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self.bar = Bar(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                       TimeRemainingColumn(), TextColumn("{task.fields[values]}"), console=Console(file=self.stream))
        self.task = self.bar.add_task("train", total=total, completed=start, values="")
        self.bar.start()

    def update(self, step: int, record: dict | None) -> None:
        """After each step; ``record`` is the step's stats line when it logged one."""
        if not self.enabled:
            return
        if not self.plain:
            fields = {"values": shown_values(record)} if record is not None else {}
            self.bar.update(self.task, completed=step, **fields)
            return
        if record is None or (step < self.next_line and step < self.steps):
            return
        self.next_line = step + max(1, (self.steps - self.start) // LINES_PER_RUN)
        elapsed = time.perf_counter() - self.began
        eta = elapsed / max(step - self.start, 1) * (self.steps - step)
        phase = f" [{record['phase']}]" if "phase" in record else ""
        print(f"step {step}/{self.steps}{phase}  {shown_values(record)}  {record.get('sec_per_step', float('nan')):.3g} s/step  "
              f"elapsed {_clock(elapsed)}  eta {_clock(eta)}", file=self.stream, flush=True)

    def total(self, steps: int) -> None:
        """The run's length changed (a time budget laid it out again)."""
        if self.enabled:
            self.steps = steps
            if not self.plain:
                self.bar.update(self.task, total=steps)

    def close(self) -> None:
        if self.enabled and not self.plain:
            self.bar.stop()
