"""What each synthesis idea buys: medgan variants at one wall-clock budget, one after another.

Every variant is ``TrainConfig()`` (what ``medgan demo`` trains) with a few fields changed,
trained on the embedded brain slices for ``--budget`` seconds of this machine (its own
``time_budget``), then scored the same way: KID and FID of ``--n`` images from the exported
generator against the training slices (the fid-helper Inception). Prints one JSON object
with a row per variant: what changed, steps reached, KID, FID, and KID relative to the
first variant.

    python benchmarks/synth_ablation.py [--budget 240] [--n 500] [--variants default,translation,...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from medgan.data.training import DataConfig, load_training_data
from medgan.evaluate import generated_images, realism_metrics
from medgan.train import TrainConfig, Trainer

#: name -> overrides of TrainConfig().to_dict(), as nested dicts.
VARIANTS: dict[str, dict] = {
    "default": {},
    "seed": {"model": {"name": "dcgan", "net": {"width": 32}}, "loss": {"name": "bce"}, "loop": {"augment": "", "ema": 0.0}},
    "translation": {"loop": {"augment": "translation"}},
    "translation+color": {"loop": {"augment": "translation,color"}},
    "hinge+sn": {"loss": {"name": "hinge"}, "model": {"net": {"width": 32, "spectral_norm": True, "d_norm": "none"}},
                 "loop": {"augment": "translation"}},
    "lr2x": {"optim": {"lr_g": 4e-4, "lr_d": 4e-4}, "loop": {"augment": "translation"}},
    "resize": {"model": {"net": {"width": 32, "upsample": "resize"}}, "loop": {"augment": "translation"}},
    "width48": {"model": {"net": {"width": 48}}, "loop": {"augment": "translation"}},
    "batch16": {"loop": {"augment": "translation", "batch_size": 16}},
    "r1": {"loss": {"r1_gamma": 1.0}, "loop": {"augment": "translation"}},
}


def merged(base: dict, changes: dict) -> dict:
    out = dict(base)
    for key, value in changes.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) and key != "net" else value
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=240.0, help="training seconds per variant (default 240)")
    parser.add_argument("--n", type=int, default=500, help="images drawn per variant (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated from {', '.join(VARIANTS)}")
    args = parser.parse_args()

    dataset, _ = load_training_data(DataConfig())
    train = dataset.batch(torch.arange(len(dataset)))["image"].numpy()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants.split(","):
            changes = VARIANTS[name]
            values = merged(TrainConfig().to_dict(), changes)
            values["loop"] = {**values["loop"], "steps": 10**7, "seed": args.seed, "time_budget": args.budget}
            config = TrainConfig.from_dict(values)
            trainer = Trainer(config, Path(tmp) / name, progress=False)
            started = time.perf_counter()
            trainer.fit()
            seconds = time.perf_counter() - started
            fake = generated_images(Path(tmp) / name, args.n, args.seed)
            figures, _, _ = realism_metrics(train, fake, require_inception=True, seed=args.seed, metrics=["kid", "fid"])
            rows[name] = {"changes": changes, "steps": trainer.step, "batch": config.loop.batch_size, "train_seconds": round(seconds, 1),
                          "kid": figures["kid_mean"], "kid_std": figures["kid_std"], "fid": figures["fid"]}
            print(json.dumps({name: rows[name]}), flush=True)
    first = next(iter(rows.values()))["kid"]
    for row in rows.values():
        row["kid_over_first"] = row["kid"] / first
    print(json.dumps({"budget_seconds": args.budget, "n_generated": args.n, "n_train": len(train), "variants": rows}, indent=2))


if __name__ == "__main__":
    main()
