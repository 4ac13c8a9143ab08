"""Does ``--amp`` (bf16 autocast on CPU) keep quality at the same number of steps, and how
much faster is it? The evidence for (or against) making it the default on CPUs with native
bf16.

For each case, seed and precision (fp32, amp) one full training run through the engine,
then its quality and its median seconds per step:

- ``synth``: the main job's recipe (DCGAN on the embedded brain MRI, 64 px) for ``--steps``;
  KID and FID of ``--n`` samples against the training slices.
- ``enhance``: the DnCNN denoiser (L2) at Gaussian sigma 20 on the brain MRI, one head
  trained, the other scored; PSNR and SSIM on ``--n-test`` held-out slices.
- ``pix2pix``: the GAN (``--model pix2pix``), the U-Net with L1 + PatchGAN adversary (width 32),
  on the same data, noise and scores.

Prints one JSON object: the machine, and per case and precision the figures as
``[mean, std]`` over seeds, seconds per step, and the amp/fp32 ratios.

    python benchmarks/amp_quality.py [--cases synth enhance pix2pix] [--seeds 0 1 2] [--synth-steps 1000] [--enhance-steps 500]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from enhance_quality import mean_std
from roof import machine

from medgan.train import TrainConfig, Trainer


def median_step_seconds(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    return statistics.median(r["sec_per_step"] for r in rows if "sec_per_step" in r)


def synth(seed: int, amp: bool, args, root: Path) -> dict:
    from medgan.tasks.synth.evaluate import evaluate_synthesis_run

    config = TrainConfig.from_dict({"task": "synth", "data": {"source": "brain-mri", "holdout": 0.1},
                                    "loop": {"steps": args.synth_steps, "seed": seed, "amp": amp, "checkpoint_every": args.synth_steps,
                                             "sample_every": args.synth_steps}})
    run = Trainer(config, root / f"synth-{seed}-{amp}", progress=False).fit()
    record = evaluate_synthesis_run(run, n=args.n, seed=0, require_inception=True, metrics=["kid", "fid"])
    return {"kid": record["metrics"]["kid_mean"], "fid": record["metrics"]["fid"], "sec_per_step": median_step_seconds(run)}


# The denoisers: model, its net fields and its enhance options.
DENOISERS = {
    "enhance": {"name": "dncnn", "net": {"width": 32, "layers": 10}, "enhance": {"adversarial": False, "recon_loss": "l2"},
                "loss": "lsgan"},
    "pix2pix": {"name": "pix2pix", "net": {"width": 32}, "enhance": {"adversarial": True}, "loss": "auto"},
}


def enhance(seed: int, amp: bool, args, root: Path, case: str = "enhance") -> dict:
    from enhance_quality import BRAIN, held_out, score

    from medgan.tasks.enhance.degrade import parse_degradation
    from medgan.tasks.enhance.model import load_model
    from medgan.tasks.enhance.inference import enhance_image

    denoiser = DENOISERS[case]
    config = TrainConfig.from_dict({
        "task": "enhance", "data": BRAIN,
        "enhance": {"degradation": "gaussian:sigma=20", **denoiser["enhance"]},
        "model": {"name": denoiser["name"], "net": denoiser["net"]}, "loss": {"name": denoiser["loss"]},
        "loop": {"steps": args.enhance_steps, "batch_size": 16, "seed": seed, "amp": amp, "ema": 0.0, "augment": "",
                 "checkpoint_every": args.enhance_steps, "sample_every": args.enhance_steps}})
    run = Trainer(config, root / f"{case}-{seed}-{amp}", progress=False).fit()
    clean, _, intensity = held_out(run, args.n_test)
    degraded = parse_degradation("gaussian:sigma=20").apply(clean, seed=1).astype(np.float32)
    model = load_model(run)
    s = score(clean, np.stack([enhance_image(model, d) for d in degraded]), intensity.high - intensity.low)
    return {"psnr": s["psnr"], "ssim": s["ssim"], "sec_per_step": median_step_seconds(run)}


CASES = {"synth": synth, "enhance": enhance, "pix2pix": functools.partial(enhance, case="pix2pix")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--synth-steps", type=int, default=1000)
    parser.add_argument("--enhance-steps", type=int, default=500)
    parser.add_argument("--n", type=int, default=500, help="generated images scored (synth)")
    parser.add_argument("--n-test", type=int, default=110, help="held-out slices scored (enhance)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--runs-dir", default="", help="keep the runs here ('' = a temporary folder)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = {"machine": machine(), "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.runs_dir or tmp)
        for case in args.cases:
            table = {}
            for precision in ("fp32", "amp"):
                rows = [CASES[case](seed, precision == "amp", args, root) for seed in args.seeds]
                table[precision] = {**mean_std(rows), "per_seed": rows}
            table["amp_speedup"] = round(table["fp32"]["sec_per_step"][0] / table["amp"]["sec_per_step"][0], 2)
            out["cases"][case] = table
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
