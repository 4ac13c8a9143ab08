"""Seconds per training step of each anomaly method at the settings of
``anomaly_vs_baselines.py`` (64 px phantoms through a brain window, batch 32, width 32):
``(time of a 40-step run - time of a 10-step run) / 30``, so the fixed costs of a run
(reading the data, calibration, export) cancel. Run it on a quiet machine. Prints one JSON
object: method -> seconds per step and for the benchmark's 600 steps.

    python benchmarks/anomaly_step_time.py [--methods ae,restore,restore+critic,ganomaly,fanogan]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from anomaly_vs_baselines import CASES

from medgan.train import TrainConfig, Trainer


def run_seconds(method: str, steps: int, root: Path) -> float:
    """Wall seconds of a ``steps``-step run of ``method`` (``+critic``: with the restorer's critic)."""
    base, *variants = method.split("+")
    values = {"task": "anomaly", "data": {"source": "phantom", "options": dict(CASES["phantom"]["options"]), "holdout": 0.3},
              "model": {"name": "auto", "net": {"width": 32}},
              "loop": {"steps": steps, "batch_size": 32, "seed": 0, "log_every": 1000, "sample_every": 10**6,
                       "checkpoint_every": 10**6, "n_samples": 4, "ema": 0.0},
              "anomaly": {"method": base, "adversarial": "on" if "critic" in variants else "off", "normalise_residual": "off"}}
    if base == "fanogan":  # half the steps each phase, as the benchmark splits them
        values["loop"]["steps"], values["anomaly"]["encoder_steps"] = steps // 2, steps - steps // 2
    started = time.perf_counter()
    Trainer(TrainConfig.from_dict(values), root / f"{method}-{steps}", progress=False).fit()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="ae,restore,restore+critic,ganomaly,fanogan")
    args = parser.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            short, long = run_seconds(method, 10, Path(tmp)), run_seconds(method, 40, Path(tmp))
            per_step = (long - short) / 30
            out[method] = {"seconds_per_step": round(per_step, 3), "seconds_600_steps": round(600 * per_step)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
