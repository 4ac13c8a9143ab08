"""Inference at scale: ``medgan enhance``, ``medgan segment`` and ``medgan detect`` on one CT
volume of 512 x 512 x 100 (a NIfTI of head phantoms in HU), timed end to end as a user runs
them (a new process: start-up, reading, the network, writing).

The models are each task's default network at its default size, trained for 2 steps on
64 px phantoms (inference time does not depend on the weights). Prints one JSON object
with the machine, seconds per command and per slice, and for ``enhance`` the network's
FLOPs per slice (counted by ``torch.utils.flop_counter``) and the FLOP/s they make over the
command's wall time, as a fraction of the fp32 roof of ``roof.py``.

``detect`` runs once per ``--anomaly-methods`` entry (default: restore, ae), each trained with
residual normalisation on (the z-scores cost one more pass over the map).

    python benchmarks/infer_speed.py [--slices 100] [--size 512] [--commands enhance segment detect]
                                     [--anomaly-methods restore ae]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from roof import machine, remeasured, roofs
from torch.utils.flop_counter import FlopCounterMode

TRAIN = {
    "enhance": ["train", "enhance", "--model", "pix2pix", "--degradation", "lowdose-ct-image:dose=0.25"],  # the tiled U-Net
    "segment": ["train", "segment", "--lesion-fraction", "1"],
    "detect": ["train", "anomaly", "--normalise-residual", "on"],  # with each --anomaly-methods
}


def phantom_volume(path: Path, slices: int, size: int) -> None:
    """``slices`` head phantoms of ``size``² in HU, written as one NIfTI volume (1 mm)."""
    import nibabel as nib

    from medgan.datasets.phantom import phantom_set

    images = phantom_set(n=slices, size=size, seed=5).images.astype(np.float32)  # (D, H, W) HU
    volume = np.ascontiguousarray(np.transpose(images, (2, 1, 0)))  # (x, y, z)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))


def medgan(*args: str) -> float:
    """Run ``medgan ARGS`` in a new process; its wall seconds."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "medgan.cli", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"medgan {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def enhance_flops(run: Path, size: int) -> float:
    """FLOPs of ``medgan enhance`` on one ``size``² slice (its tiles through the network)."""
    from medgan.tasks.enhance.model import load_model
    from medgan.tasks.enhance.inference import enhance_image

    model = load_model(run)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiles then run in this thread, where the counter sees them
    try:
        with FlopCounterMode(display=False) as counter:
            enhance_image(model, np.zeros((size, size), dtype=np.float32))
    finally:
        torch.set_num_threads(threads)
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--commands", nargs="+", default=list(TRAIN), choices=list(TRAIN))
    parser.add_argument("--anomaly-methods", nargs="+", default=["restore", "ae"], help="the detectors medgan detect is timed with")
    args = parser.parse_args()
    roof = roofs()
    out = {"machine": machine(), "roof": roof, "volume": [args.size, args.size, args.slices], "commands": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        volume = tmp / "volume.nii.gz"
        phantom_volume(volume, args.slices, args.size)
        jobs = [(c, [], c) for c in args.commands if c != "detect"]
        jobs += [("detect", ["--method", m], f"detect ({m})") for m in args.anomaly_methods if "detect" in args.commands]
        for command, extra, key in jobs:
            run = tmp / f"run-{key.replace(' ', '-')}"
            medgan(*TRAIN[command], *extra, "--data", "phantom", "--n-images", "48", "--steps", "2", "--batch-size", "8",
                   "--run-dir", str(run), "--no-progress")
            dest = tmp / ("enhanced.nii.gz" if command == "enhance" else f"out-{run.name}")  # enhance mirrors the input's format
            seconds = medgan(command, str(run), str(volume), "--out", str(dest), "--no-progress")
            out["commands"][key] = {"seconds": round(seconds, 1), "seconds_per_slice": round(seconds / args.slices, 3)}
            if command == "enhance":
                flops = enhance_flops(run, args.size)
                rate = flops * args.slices / seconds
                out["commands"][command].update({"network_flops_per_slice": flops, "achieved_flops": rate})
    out["roof"] = roof = remeasured(roof)
    for figures in out["commands"].values():
        if "achieved_flops" in figures:
            figures["fraction_of_fp32_roof"] = round(figures["achieved_flops"] / roof["fp32"], 3)
    out["threads"] = int(os.environ.get("OMP_NUM_THREADS", 0)) or None
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
