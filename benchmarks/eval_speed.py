"""Inception-v3 feature extraction (FID/KID) as a fraction of this machine's fp32 roof, and
what bf16 would change.

Prints one JSON object: the machine and its roofs (``roof.py``), then for each way of
running the standard FID network the images per second, FLOP/s and fraction of the roof:

- ``torchscript``: the TorchScript file as shipped (how features were computed before);
- ``folded``: :mod:`medgan.metrics.inception_net`, batch norm folded into the convolutions,
  channels-last, the batch in one call over all the threads;
- ``folded-cores``: the same, run as ``InceptionFeatures`` runs it on a CPU: ``PER_CORE``
  images per core and forward pass, each core single-threaded (:mod:`medgan.cores`);
- ``folded-bf16``: the same under bf16 autocast (only where the CPU has native bf16).

and, on real data (the embedded brain MRI: one head against the other, ``--n`` slices
each), FID and KID from fp32 and from bf16 features, with their relative difference: the
test for any bf16 path (within 1%).

    python benchmarks/eval_speed.py [--batch 64] [--n 400]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch
from roof import fractions, machine, native_bf16, remeasured, roofs
from torch.utils.flop_counter import FlopCounterMode

from medgan.cores import map_cores
from medgan.metrics.inception import PER_CORE, InceptionFeatures, to_inception_input
from medgan.metrics.realism import fid_from_features, kid_from_features


def rate(model, x: torch.Tensor, bf16: bool, repeats: int, cores: bool = False) -> dict:
    """Best-of-``repeats`` images per second and FLOP/s of ``model`` on the batch ``x``, in one
    call or (``cores``) as ``InceptionFeatures`` runs it on a CPU: ``PER_CORE`` images per
    core and forward pass (``medgan.cores``)."""
    def run() -> None:
        if cores:
            map_cores(model, x.split(PER_CORE))
        else:
            model(x)

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        with FlopCounterMode(display=False) as counter:  # counted in this thread, on the whole batch
            model(x)
        run()
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t)
    flops = counter.get_total_flops()
    return {"images_per_second": round(len(x) / best, 2), "flops_per_image": flops / len(x), "achieved_flops": flops / best}


def features(extractor: InceptionFeatures, images: np.ndarray, bf16: bool) -> np.ndarray:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return extractor(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=400, help="slices per head for the FID/KID comparison (0: skip)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    roof = roofs()
    extractor = InceptionFeatures(batch_size=args.batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        script = torch.jit.load(str(extractor.weights)).eval()
    x = to_inception_input(torch.rand(args.batch, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    x = x.contiguous(memory_format=torch.channels_last)
    ways = {"torchscript": (script, False, False), "folded": (extractor.model, False, False),
            "folded-cores": (extractor.model, False, True)}
    if native_bf16():
        ways["folded-bf16"] = (extractor.model, True, False)
    speed = {name: rate(model, x, bf16, args.repeats, cores) for name, (model, bf16, cores) in ways.items()}
    roof = remeasured(roof)
    for r in speed.values():
        r.update(fractions(r["achieved_flops"], roof))
    for way in ("folded", "folded-cores"):
        speed[f"{way}_speedup"] = round(speed[way]["images_per_second"] / speed["torchscript"]["images_per_second"], 2)

    out = {"machine": machine(), "roof": roof, "batch": args.batch, "speed": speed}
    if args.n and native_bf16():
        from medgan.datasets.brain_mri import load_brain_mri

        data = load_brain_mri(with_masks=False)
        heads = [data.images[data.groups == g] for g in (0, 1)]
        heads = [h[np.linspace(0, len(h) - 1, min(args.n, len(h))).astype(int)] for h in heads]
        heads = [(h.astype(np.float32) / 127.5 - 1.0) for h in heads]  # 0..255 -> [-1, 1]
        figures = {}
        for name, bf16 in (("fp32", False), ("bf16", True)):
            f0, f1 = features(extractor, heads[0], bf16), features(extractor, heads[1], bf16)
            figures[name] = {"fid": fid_from_features(f0, f1), "kid": kid_from_features(f0, f1)[0]}
        figures["relative_difference"] = {k: abs(figures["bf16"][k] / figures["fp32"][k] - 1) for k in ("fid", "kid")}
        out["bf16_fidelity"] = {"n_per_head": len(heads[0]), **figures}
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
