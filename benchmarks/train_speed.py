"""Training throughput of the engine's steps as a fraction of this machine's own limit.

Prints one JSON object: the machine (CPU model, cores, ISA flags), its roofs measured in
the same process (fp32 FMA peak; bf16 matmul peak where the CPU has native bf16; see
``roof.py``), and per case and precision the images per second, the FLOP/s reached (FLOPs
counted by ``torch.utils.flop_counter`` on one step) and their fraction of the roof.

Cases: ``synth`` (a DCGAN D+G step, 64x64, width 64, batch 64, as the main job trains),
``enhance`` (the pix2pix U-Net + PatchGAN step, 64x64, batch 16) and ``dncnn`` (the plain
denoiser, L2 alone, 64x64, batch 16). Precisions: ``fp32`` and ``amp`` (the engine's
``--amp``: bf16 autocast on CPU), the latter only where the CPU has native bf16 unless
``--precisions`` names it.

    python benchmarks/train_speed.py [--cases synth enhance dncnn] [--precisions fp32 amp] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from roof import fractions, machine, native_bf16, remeasured, roofs
from torch.utils.flop_counter import FlopCounterMode

from medgan.train import TrainConfig, Trainer

CASES = {
    "synth": {"task": "synth", "data": {"source": "phantom", "options": {"size": 64, "n": 128}, "holdout": 0.0},
              "model": {"name": "dcgan", "net": {"width": 64}}, "batch": 64},
    "enhance": {"task": "enhance", "data": {"source": "phantom", "options": {"size": 64, "n": 64}, "holdout": 0.0},
                "enhance": {"degradation": "gaussian:sigma=20"}, "model": {"name": "pix2pix", "net": {}}, "batch": 16},
    "dncnn": {"task": "enhance", "data": {"source": "phantom", "options": {"size": 64, "n": 64}, "holdout": 0.0},
              "enhance": {"degradation": "gaussian:sigma=20", "adversarial": False, "recon_loss": "l2"},
              "model": {"name": "dncnn", "net": {"layers": 17}}, "batch": 16},
}


def step_figures(case: str, amp: bool, repeats: int, tmp: str) -> dict:
    spec = dict(CASES[case])
    batch = spec.pop("batch")
    config = TrainConfig.from_dict({**spec, "loop": {"steps": 10**6, "batch_size": batch, "amp": amp, "augment": ""}})
    trainer = Trainer(config, f"{tmp}/{case}-{amp}", progress=False)
    for _ in range(3):  # warm-up: allocator, oneDNN primitive caches
        trainer.train_step()
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    flops = counter.get_total_flops()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        trainer.train_step()
        times.append(time.perf_counter() - t)
    best, median = min(times), sorted(times)[len(times) // 2]
    return {"batch": batch, "flops_per_step": flops, "step_seconds_best": round(best, 4), "step_seconds_median": round(median, 4),
            "images_per_second": round(batch / median, 2), "achieved_flops": flops / best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "amp"],
                        help="default: fp32, and amp where the CPU has native bf16")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    precisions = args.precisions or (["fp32", "amp"] if native_bf16() else ["fp32"])
    roof = roofs()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            results[case] = {}
            for precision in precisions:
                r = step_figures(case, precision == "amp", args.repeats, tmp)
                results[case][precision] = r
            if "amp" in results[case] and "fp32" in results[case]:
                results[case]["amp_speedup"] = round(results[case]["amp"]["images_per_second"]
                                                     / results[case]["fp32"]["images_per_second"], 2)
    roof = remeasured(roof)
    for case in results.values():
        for precision, r in case.items():
            if isinstance(r, dict):
                r.update(fractions(r["achieved_flops"], roof))
    print(json.dumps({"machine": machine(), "roof": roof, "results": results}, indent=2))


if __name__ == "__main__":
    main()
