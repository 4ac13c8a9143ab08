"""Loss curves drawn from a run's ``stats.jsonl``."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from medgan.io.output import atomic_path  # noqa: E402
from medgan.io.records import read_jsonl  # noqa: E402


_BOOKKEEPING = {"step", "sec_per_step", "img_per_sec", "elapsed", "phase", "world_size", "replicas_in_sync"}
_NAMES = {"loss_d": "D loss", "loss_g": "G loss", "r1": "R1", "gp": "gradient penalty"}


def plot_curves(stats_file: Path, out: Path) -> Path | None:
    """Losses (top: every ``loss_*`` the task logs, with R1 / gradient penalty) and, below,
    D's mean output on real and generated images (adversarial runs), or the reconstruction
    error (``l1``), or the task's other logged figures, against step; a dotted line marks
    where a phase begins."""
    rows = [r for r in read_jsonl(stats_file) if "step" in r and any(k.startswith("loss_") for k in r)]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    series = lambda key: [r.get(key, float("nan")) for r in rows]  # noqa: E731  nan where a phase did not log it
    validation = [k for k in keys if k.startswith("val_")]
    fig, axes = plt.subplots(3 if validation else 2, 1, figsize=(7, 8.5 if validation else 6), sharex=True)
    top, bottom = axes[0], axes[1]
    for key in [k for k in keys if k.startswith("loss_")] + [k for k in ("r1", "gp") if k in keys]:
        top.plot(steps, series(key), label=_NAMES.get(key, key))
    top.set_ylabel("loss")
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    if "d_real" in keys:  # adversarial runs: how sure D is about real and generated images
        for key, label in (("d_real", "D(real)"), ("d_fake", "D(G(z))")):
            bottom.plot(steps, series(key), label=label)
        bottom.set_ylim(0, 1)
        bottom.set_ylabel("mean σ(D)")
    elif "l1" in keys or "l2" in keys:  # paired runs without D: the reconstruction error
        key = "l1" if "l1" in keys else "l2"
        bottom.plot(steps, series(key), label=f"{key.upper()} in [-1, 1] units")
        bottom.set_ylabel(key.upper())
    else:
        for key in [k for k in keys if k not in _BOOKKEEPING and not k.startswith(("loss_", "val_")) and k not in ("r1", "gp")]:
            bottom.plot(steps, series(key), label=key)
    if validation:  # held-out figures, where they were measured
        panel = axes[2]
        for key in validation:
            points = [(r["step"], r[key]) for r in rows if key in r]
            panel.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=key.removeprefix("val_"))
        panel.set_ylabel("held-out validation")
        panel.legend(loc="best")
        panel.grid(alpha=0.3)
    for previous, row in zip(rows, rows[1:]):
        if row.get("phase") != previous.get("phase"):
            for axis in axes:
                axis.axvline(previous["step"], color="grey", linestyle=":", linewidth=1)
    axes[-1].set_xlabel("step")
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="upper right")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
