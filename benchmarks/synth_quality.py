"""Quality of the main job's generator on brain-mri, between a floor and a ceiling.

Prints one JSON object: KID (when the Inception weights are installed) and SWD of

- the trained generator (the README's main job, `medgan demo`) against the training slices,
- held-out real slices (the other head) against the training slices: the floor, what a
  perfect generator of *new* brains would score,
- an untrained generator (same architecture, random weights): the ceiling,

and the seconds each metric takes per 1000 images on this CPU.

    python benchmarks/synth_quality.py --run runs/00000-demo-dcgan-brain-mri [--n 1000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from medgan.runs import real_images, run_config
from medgan.tasks.synth.evaluate import generated_images, realism_metrics
from medgan.nets import build_pair


def untrained_images(run: Path, n: int, seed: int = 0) -> np.ndarray:
    config = run_config(run)
    torch.manual_seed(seed)
    G, _ = build_pair(config.model.name, config.model.net)
    G.eval()
    with torch.no_grad():
        return G(torch.randn(n, G.config.z_dim, generator=torch.Generator().manual_seed(seed))).numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True, help="run folder of the main job")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    run = Path(args.run)
    train, holdout, _ = real_images(run)
    sets = {"generator": generated_images(run, args.n), "holdout_real (floor)": holdout,
            "untrained_generator (ceiling)": untrained_images(run, args.n)}
    results, seconds_per_1000 = {}, {}
    for name, images in sets.items():
        metrics, seconds, _ = realism_metrics(train, images)
        results[name] = {"n": int(len(images)), **{k: metrics[k] for k in ("kid_mean", "kid_std", "fid", "swd") if k in metrics}}
        if name == "generator":  # timings of the first set: nothing cached but the training features
            seconds_per_1000 = {k: v / len(images) * 1000 for k, v in seconds.items()}
    print(json.dumps({"run": str(run), "n_train": int(len(train)), "results": results,
                      "seconds_per_1000_generated": seconds_per_1000}, indent=2))


if __name__ == "__main__":
    main()
