"""Loss curves drawn from a run's ``stats.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from medgan.io.output import atomic_path  # noqa: E402


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSONL file (a torn last line from an interrupted write is skipped)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_curves(stats_file: Path, out: Path) -> Path | None:
    """Losses (top) and, below, D's mean output on real and generated images (adversarial
    runs) or the reconstruction error (paired runs without a discriminator), against step."""
    rows = [r for r in read_jsonl(stats_file) if "step" in r and "loss_g" in r]
    if not rows:
        return None
    steps = [r["step"] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for key, label in (("loss_d", "D loss"), ("loss_g", "G loss"), ("r1", "R1"), ("gp", "gradient penalty")):
        if key in rows[-1]:
            top.plot(steps, [r.get(key, float("nan")) for r in rows], label=label)
    top.set_ylabel("loss")
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    if "d_real" in rows[-1]:  # adversarial runs: how sure D is about real and generated images
        for key, label in (("d_real", "D(real)"), ("d_fake", "D(G(z))")):
            bottom.plot(steps, [r.get(key, float("nan")) for r in rows], label=label)
        bottom.set_ylim(0, 1)
        bottom.set_ylabel("mean σ(D)")
    elif "l1" in rows[-1]:  # paired runs without D: the reconstruction error
        bottom.plot(steps, [r.get("l1", float("nan")) for r in rows], label="L1 in [-1, 1] units")
        bottom.set_ylabel("L1")
    bottom.set_xlabel("step")
    bottom.legend(loc="upper right")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
