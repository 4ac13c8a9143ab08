"""What each synthesis idea buys: medgan variants, one after another, scored the same way.

Every variant is ``TrainConfig()`` (what ``medgan demo`` trains) with one or two fields
changed, trained on the embedded brain slices for ``--steps`` steps (or ``--budget``
seconds of this machine), then scored: KID and FID of ``--n`` images from the exported
generator against the training slices (the fid-helper Inception). Equal steps keep the
comparison independent of what else the machine runs; each row also has its seconds per
step, so quality per CPU-minute follows for variants whose steps cost more. Prints one JSON
object with a row per variant: what changed, steps, seconds per step, KID, FID, and KID
relative to the first variant.

    python benchmarks/synth_ablation.py [--steps 800 | --budget 240] [--n 500] [--seeds 0] [--variants default,translation,...]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medgan.data.training import DataConfig, load_training_data
from medgan.tasks.synth.evaluate import generated_images, realism_metrics
from medgan.train import TrainConfig, Trainer

#: name -> overrides of TrainConfig().to_dict(), as nested dicts.
VARIANTS: dict[str, dict] = {
    "default": {},
    "seed": {"model": {"name": "dcgan", "net": {"width": 32}}, "loss": {"name": "bce"}, "loop": {"augment": "", "ema": 0.0}},
    "translation": {"loop": {"augment": "translation"}},
    "color": {"loop": {"augment": "translation,cutout,color"}},
    "d-no-bn": {"model": {"net": {"width": 32, "d_norm": "none"}}},
    "hinge+sn": {"loss": {"name": "hinge"}, "model": {"net": {"width": 32, "spectral_norm": True, "d_norm": "none"}}},
    "lr2x": {"optim": {"lr_g": 4e-4, "lr_d": 4e-4}},
    "ttur": {"optim": {"lr_g": 1e-4, "lr_d": 4e-4}},
    "resize": {"model": {"net": {"width": 32, "upsample": "resize"}}},
    "width48": {"model": {"net": {"width": 48}}},
    "r1": {"loss": {"r1_gamma": 1.0}},
    "lsgan": {"loss": {"name": "lsgan"}},
    "lr8e-4": {"optim": {"lr_g": 8e-4, "lr_d": 8e-4}},
    "adam0.5": {"optim": {"beta1": 0.5, "beta2": 0.999}},  # DCGAN's betas (the default before 0 / 0.99)
    "d-lr2x": {"optim": {"lr_g": 4e-4, "lr_d": 8e-4}},
    "batch64": {"loop": {"batch_size": 64}},
    "combined": {"loss": {"name": "hinge"}, "model": {"net": {"width": 32, "spectral_norm": True, "d_norm": "none"}},
                 "optim": {"lr_g": 4e-4, "lr_d": 4e-4}, "loop": {"augment": "translation"}},
}


def merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` applied (nested dicts merged, ``net`` replaced whole); copies."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) and key != "net" else copy.deepcopy(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800, help="training steps per variant (default 800)")
    parser.add_argument("--budget", type=float, default=0.0, help="training seconds per variant instead of --steps")
    parser.add_argument("--n", type=int, default=500, help="images drawn per variant (default 500)")
    parser.add_argument("--seeds", default="0", help="comma-separated run seeds; figures are their mean (default 0)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated from {', '.join(VARIANTS)}")
    args = parser.parse_args()

    dataset, _ = load_training_data(DataConfig())
    train = dataset.batch(torch.arange(len(dataset)))["image"].numpy()
    seeds = [int(x) for x in args.seeds.split(",")]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            changes, runs = VARIANTS[name], []
            for seed in seeds:
                values = merged(TrainConfig().to_dict(), changes)
                steps = 10**7 if args.budget else args.steps
                values["loop"] = {**values["loop"], "steps": steps, "seed": seed, "time_budget": args.budget,
                                  "sample_every": steps, "checkpoint_every": steps}
                config = TrainConfig.from_dict(values)
                run = Path(tmp) / f"{name}-{seed}"
                trainer = Trainer(config, run, progress=False)
                started = time.perf_counter()
                trainer.fit()
                seconds = time.perf_counter() - started
                fake = generated_images(run, args.n, seed)
                figures, _, _ = realism_metrics(train, fake, require_inception=True, seed=seed, metrics=["kid", "fid"])
                runs.append({"seed": seed, "steps": trainer.step, "sec_per_step": seconds / trainer.step,
                             "kid": figures["kid_mean"], "fid": figures["fid"]})
            kids = [r["kid"] for r in runs]
            rows[name] = {"changes": changes, "batch": config.loop.batch_size, "steps": runs[0]["steps"],
                          "sec_per_step": float(np.mean([r["sec_per_step"] for r in runs])),
                          "kid": float(np.mean(kids)), "kid_seed_std": float(np.std(kids)),
                          "fid": float(np.mean([r["fid"] for r in runs])), "runs": runs}
            print(json.dumps({name: rows[name]}), flush=True)
    first = next(iter(rows.values()))["kid"]
    for row in rows.values():
        row["kid_over_first"] = row["kid"] / first
    print(json.dumps({"steps": None if args.budget else args.steps, "budget_seconds": args.budget or None, "n_generated": args.n,
                      "seeds": seeds, "n_train": len(train), "variants": rows}, indent=2))


if __name__ == "__main__":
    main()
