"""A denoiser applied to images with values beyond its training range: a real CT, and head
phantoms whose skull lies above the range.

The model: ``medgan train enhance --data phantom --mode denoise --degradation
gaussian:sigma=40 --steps 300`` with every other setting at its default (CT head phantoms,
range -1000..1000 HU). Test images, with Gaussian noise of sigma 40 HU (seed 1):

- ``real-ct``: the one real CT slice that ships with pydicom (``CT_small.dcm``, 128 x 128, a
  vertebra; 12 pixels above 1000 HU, down to -896 below), taken as the clean image;
- ``phantom-head``: 8 unseen head phantoms (seeds 10 000...) at 256 x 256 (the model trained
  at 64: fully convolutional, it runs at any size, as on a real 512 x 512 slice), at their
  native HU: skull tables of 1100..1500 HU, above the range.

And the case the smoothed excess was made for, where nothing lies beyond the range but
noise crosses its lower edge: ``brain-mri``, a DnCNN (width 32, 10 layers, L2, 500 steps)
trained on the embedded brain slices with Gaussian noise of sigma 40 on 0..255, tested on 32
slices of the held-out head (the clean background sits at 0, the range's lower end).

Per case, for the noisy input and two ways of putting back what lies outside the range:
``kept`` (today's rule: pixels beyond the range by more than the noise are passed through,
:func:`medgan.tasks.enhance.inference.outside_range`) and ``smoothed`` (the earlier rule:
the model's output plus the excess of the input blurred by 2 pixels, everywhere): PSNR over
the model's range (2000 HU) on the whole image, RMSE and bias (HU) on the pixels whose clean
value is above the range ("bone above"), RMSE on soft tissue (clean -100..100 HU, eroded by
2 pixels). Prints one JSON object.

    python benchmarks/out_of_range.py [--steps 300] [--runs-dir bench-runs/out-of-range]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from roof import machine

from medgan.cli import main as medgan
from medgan.datasets import make_phantom
from medgan.tasks.enhance.model import load_model
from medgan.tasks.enhance.inference import DENOISE_EXCESS_SIGMA, enhance_image

SIGMA = 40.0
LOW, HIGH = -1000.0, 1000.0  # the CT model's range
MRI = ["--data", "brain-mri", "--holdout", "0.1", "--model", "dncnn", "--width", "32", "--layers", "10", "--recon-loss", "l2",
       "--l1-only", "--steps", "500"]  # --l1-only: no adversary (the reconstruction loss stays L2)


def real_ct() -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    return (ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)).astype(np.float64)


def smoothed_rule(model, noisy: np.ndarray) -> np.ndarray:
    """The earlier rule: the model's output on the clipped input plus the smoothed excess."""
    low, high = model.intensity.low, model.intensity.high
    inside = enhance_image(model, np.clip(noisy, low, high)).astype(np.float64)  # in range: the model's output alone
    smooth = ndimage.gaussian_filter(noisy, DENOISE_EXCESS_SIGMA, mode="reflect")
    return inside + smooth - np.clip(smooth, low, high)


def scores(clean: np.ndarray, out: np.ndarray, low: float = LOW, high: float = HIGH) -> dict[str, float]:
    err = out - clean
    psnr = {"psnr": float(10 * np.log10((high - low) ** 2 / np.mean(err**2)))}
    if high != HIGH:  # MRI: PSNR over the image and on the background (clean at the range's lower end)
        return {**psnr, "background_rmse": float(np.sqrt(np.mean(err[clean <= low] ** 2)))}
    above = clean > HIGH
    soft = ndimage.binary_erosion((clean > -100) & (clean < 100), iterations=2)
    rmse = lambda m: float(np.sqrt(np.mean(err[m] ** 2))) if m.any() else float("nan")  # noqa: E731
    return {**psnr, "bone_above_rmse": rmse(above), "bone_above_bias": float(np.mean(err[above])) if above.any() else float("nan"),
            "soft_tissue_rmse": rmse(soft)}


def train(run: Path, flags: list[str]) -> float:
    """Train once (a finished run is reused); the wall seconds it took."""
    t = time.time()
    if not (run / "generator" / "config.json").is_file():
        assert medgan(["train", "enhance", "--mode", "denoise", "--degradation", f"gaussian:sigma={SIGMA:g}", *flags,
                       "--run-dir", str(run), "--no-progress"]) == 0
    return time.time() - t


def compare(model, images: list[np.ndarray], seed: int = 1) -> dict:
    """Noisy input, today's rule and the smoothed rule, averaged over ``images``."""
    low, high = model.intensity.low, model.intensity.high
    rows = {"noisy": [], "kept": [], "smoothed": []}
    for k, clean in enumerate(images):
        noisy = clean + np.random.default_rng([seed, k]).normal(0, SIGMA, clean.shape)
        rows["noisy"].append(scores(clean, noisy, low, high))
        rows["kept"].append(scores(clean, enhance_image(model, noisy).astype(np.float64), low, high))
        rows["smoothed"].append(scores(clean, smoothed_rule(model, noisy), low, high))
    return {"images": len(images), "shape": list(images[0].shape), "pixels_above_range": int(sum((c > high).sum() for c in images)),
            **{rule: mean(r) for rule, r in rows.items()}}


def mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(float(np.mean([r[k] for r in rows])), 2) for k in rows[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--runs-dir", default="bench-runs/out-of-range")
    args = parser.parse_args()

    runs = Path(args.runs_dir)
    seconds = {"ct": train(runs / f"denoise-phantom-{args.steps}", ["--data", "phantom", "--model", "pix2pix", "--steps", str(args.steps)]),
               "mri": train(runs / "denoise-brain-dncnn-500", MRI)}
    ct = load_model(str(runs / f"denoise-phantom-{args.steps}"), "cpu")
    results = {"real-ct": compare(ct, [real_ct()]),
               "phantom-head": compare(ct, [make_phantom(size=256, seed=10_000 + k, kind="head").clean.astype(np.float64) for k in range(8)])}

    from medgan.runs import run_holdout

    _, _, holdout = run_holdout(runs / "denoise-brain-dncnn-500")
    slices = holdout.images if holdout.images.ndim == 3 else holdout.images[:, 0]
    slices = slices[np.linspace(0, len(slices) - 1, 32).astype(int)].astype(np.float64)
    results["brain-mri"] = compare(load_model(str(runs / "denoise-brain-dncnn-500"), "cpu"), list(slices))
    print(json.dumps({"benchmark": "out_of_range", "machine": machine(), "noise_sigma": SIGMA, "ct_steps": args.steps,
                      "train_seconds": {k: round(v, 1) for k, v in seconds.items()}, "cases": results}, indent=2))


if __name__ == "__main__":
    main()
