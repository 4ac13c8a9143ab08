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
import time
from pathlib import Path

import numpy as np
import torch

from medgan.evaluate import generated_images, real_images, run_config
from medgan.metrics.realism import kid_from_features, swd
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
    from medgan.metrics.inception import InceptionFeatures, inception_available

    extractor = InceptionFeatures() if inception_available() else None
    seconds: dict[str, float] = {}
    f_train = None
    if extractor is not None:
        t = time.perf_counter()
        f_train = extractor(train)
        seconds["inception_features_per_1000"] = (time.perf_counter() - t) / len(train) * 1000
    results = {}
    for name, images in sets.items():
        row = {"n": int(len(images))}
        t = time.perf_counter()
        row["swd"] = float(swd(train, images)["swd_x1e3_avg"])
        seconds.setdefault("swd_per_1000", (time.perf_counter() - t) / (len(images) + len(train)) * 1000)
        if extractor is not None:
            t = time.perf_counter()
            mean, std = kid_from_features(f_train, extractor(images))
            row["kid_mean"], row["kid_std"] = float(mean), float(std)
        results[name] = row
    print(json.dumps({"run": str(run), "n_train": int(len(train)), "results": results, "seconds": seconds,
                      "inception": extractor is not None}, indent=2))


if __name__ == "__main__":
    main()
