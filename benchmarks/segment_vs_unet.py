"""Does the adversary help segmentation? medgan's segmentors against the same U-Net alone and
against what a user writes with MONAI alone, at few labels and at all.

Methods, one after another on the same data:

- ``monai``: MONAI's 2D ``UNet`` (its tutorials' channels 16-32-64-128-256, residual units,
  batch norm), ``DiceCELoss``, Adam 1e-3, batches of the same size, left-right flips, for
  the wall-clock seconds ``unet`` took (a plain PyTorch loop, no medgan code);
- ``unet``: ``medgan train segment --augmentation classical`` (same steps as the others; with
  ``--budget`` the task's other defaults, width included, for a planned ``--time-budget``);
- ``critic``: the same U-Net against a critic, labelled images only;
- ``semi``: the critic and the remaining training slices as unlabelled images (Hung et al. 2018);
- ``teacher``: the U-Net with a mean teacher on the remaining training slices (``--mean-teacher 0.1``,
  Tarvainen & Valpola 2017; no adversary); scored as the segmentor and, as ``teacher-ema``, as
  the teacher it exports beside it;
- ``elastic``: the U-Net with an elastic deformation added to its classical augmentation (the
  default since it won at few labels);
- ``pairs`` / ``pairs+classical``: the U-Net with half of every batch drawn from 1000
  image-label pairs of a ``medgan train synth --pairs`` run trained on the same labelled
  slices for ``--pairs-budget`` seconds (Bowles et al. 2018), with mirroring alone or with
  the classical augmentation; the GAN's seconds are reported apart (``gan_seconds``), paid
  once per labelled set.

With ``--budget`` every medgan method trains for the same planned ``--time-budget`` with the
task's defaults and its own options (equal seconds), and MONAI alone for the seconds the plain
U-Net took.

Cases: ``brain`` (the embedded brain slices' background / grey / white masks; train on one
head, test on the other), ``phantom`` (CT head phantoms with lesions through a brain window,
25% of the phantoms held out; over the full HU range nothing learns the lesions at these
budgets) and ``volume`` (one partly labelled scan: every few axial slices of the MNI head
labelled, given to medgan as a masks folder holding those slices only (``--partial-masks``),
the model segments the rest of that scan; scored on the unlabelled slices).
Each case at ``--labels`` labelled training slices (0 = all), ``--seeds`` seeds.
Per run: Dice per class (overlap per held-out volume, mean over volumes), HD95 (pixels),
seconds. Prints one JSON object with every run and mean ± std per cell.

    python benchmarks/segment_vs_unet.py [--cases brain,phantom,volume] [--labels 8,32,0] [--seeds 0,1,2] [--steps 300]
    python benchmarks/segment_vs_unet.py --budget 600 --methods unet,monai --batch-size 32   # the default at 10 minutes
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medgan.data.imageset import ImageSet
from medgan.data.training import DataConfig, load_training_data
from medgan.tasks.segment.evaluate import segmentation_scores
from medgan.tasks.segment.model import SegmentationModel, to_indices
from medgan.tasks.segment.recipe import evenly_chosen
from medgan.train import TrainConfig, Trainer

CASES = {
    "brain": {"source": "brain-mri", "options": {"size": 64}, "holdout": 0.5},
    # lesions are tens of HU from their tissue: through a brain window (40 / 160 HU), as a reader looks
    "phantom": {"source": "phantom", "options": {"size": 64, "n": 256, "lesion_fraction": 1.0, "window": "40,160"}, "holdout": 0.25},
    # one scan's axial slices as PNG images + masks (written by `scan_folder`), no hold-out
    "volume": {"source": None, "options": {"size": 64}, "holdout": 0.0, "one_scan": True},
}
METHODS = ("monai", "unet", "critic", "semi", "teacher", "elastic", "pairs", "pairs+classical")
#: each method's segment options over the task's defaults (``--budget`` runs); every method but
#: ``elastic`` and ``pairs`` keeps the classical augmentation it was first measured with (the
#: default was classical until ``elastic`` won at few labels)
CLASSICAL = {"augmentation": "classical"}
METHOD_OPTIONS = {"unet": CLASSICAL, "critic": {**CLASSICAL, "adversarial": "on", "semi_adv_weight": 0.0, "semi_weight": 0.0},
                  "semi": {**CLASSICAL, "adversarial": "on"}, "teacher": {**CLASSICAL, "mean_teacher": 0.1},
                  "elastic": {"augmentation": "elastic"}, "pairs": {"augmentation": "mirror"}, "pairs+classical": CLASSICAL}


def scan_folder(root: Path) -> str:
    """The axial slices of the embedded MNI head, in slice order, as 8-bit PNG images and
    their full masks (``images/``, ``masks/``: the truth the benchmark scores against)."""
    from PIL import Image as PILImage

    from medgan.datasets.brain_mri import load_brain_mri

    data = load_brain_mri("axial")
    head = np.flatnonzero(data.groups == 0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for n, i in enumerate(head):
        PILImage.fromarray(data.images[i].astype(np.uint8)).save(root / "images" / f"slice{n:03d}.png")
        PILImage.fromarray(data.masks[i]).save(root / "masks" / f"slice{n:03d}.png")
    return str(root / "images")


def label_every_few(root: Path, chosen: np.ndarray) -> str:
    """``masks-<n>/``: the masks of the ``chosen`` slices only, as a user who labelled every
    few slices of the scan has them (read with ``partial_masks``: the others are unlabelled)."""
    folder = root / f"masks-{len(chosen)}"
    folder.mkdir(exist_ok=True)
    names = sorted((root / "masks").iterdir())
    for i in chosen:
        shutil.copy(names[i], folder / names[i].name)
    return str(folder)


def case_data(case: dict) -> tuple[ImageSet, ImageSet]:
    """(training set, test set) of a case, read as medgan reads it."""
    config = DataConfig(source=case["source"], holdout=case["holdout"])
    for key, value in case["options"].items():
        setattr(config.options, key, value)
    dataset, holdout = load_training_data(config)
    train = dataset.data
    if case.get("one_scan"):  # scored on its own unlabelled slices, pooled as one volume
        return train, train
    return train, holdout


def set_values(values: dict, overrides: dict | None) -> None:
    """Set each ``SECTION.KEY`` (any depth, e.g. ``model.net.mbstd``) of ``overrides`` in a run's config values."""
    for key, value in (overrides or {}).items():
        *sections, name = key.split(".")
        node = values
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value


def parse_sets(items: list[str]) -> dict:
    """``KEY=JSON`` command-line items as a dict."""
    return {key: json.loads(value) for key, value in (item.split("=", 1) for item in items)}


def pairs_run(case: dict, labelled: int, seed: int, budget: float, run_dir: Path,
              overrides: dict | None = None) -> tuple[Path, float]:
    """A ``medgan train synth --pairs`` run on the case's ``labelled`` slices (chosen as the
    segmentation run chooses them) for ``budget`` seconds, with ``overrides`` (``SECTION.KEY``,
    e.g. ``model.net.mbstd``) over the task's defaults; returns (run folder, seconds)."""
    values = {"task": "synth", "data": {"source": case["source"], "options": dict(case["options"]), "holdout": case["holdout"]},
              "loop": {"time_budget": budget, "seed": seed, "batch_size": min(32, labelled) if labelled else 32},
              "synth": {"pairs": True, "labelled": labelled}}
    set_values(values, overrides)
    start = time.perf_counter()
    Trainer(TrainConfig.from_dict(values), run_dir, progress=False).fit()
    seconds = time.perf_counter() - start
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return run_dir, seconds


def pairs_picture(run: Path, out: Path, n: int = 16) -> None:
    """``n`` generated pairs of a ``--pairs`` run, each as image | image with its label map."""
    from medgan.data.labels import to_indices
    from medgan.report.grid import image_grid
    from medgan.tasks import load_model
    from medgan.tasks.synth.model import draw

    model = load_model(run)
    images, labels = model.split(draw(model.generator, model.z_dim, n, seed=0))
    index = to_indices(labels, model.label_values, "generated")  # (N, H, W)
    tiles = np.repeat(images[:, 0], 2, axis=0)  # (2N, H, W): each image twice
    masks = np.stack([np.zeros_like(index), index], 1).reshape(-1, *index.shape[1:])
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(tiles, value_range=(-1, 1), ncol=8, masks=masks).save(out)


def medgan_run(case: dict, method: str, labelled: int, seed: int, steps: int, batch: int, run_dir: Path,
               overrides: dict | None = None, budget: float = 0.0, unet_overrides: dict | None = None,
               pairs: Path | None = None) -> tuple[Path, float]:
    values = {"task": "segment", "data": {"source": case["source"], "options": dict(case["options"]), "holdout": case["holdout"]},
              "model": {"name": "unet", "net": {"width": 32}},
              "loop": {"steps": steps, "batch_size": batch, "seed": seed, "log_every": max(1, steps // 10), "sample_every": steps,
                       "checkpoint_every": steps, "n_samples": 12, "ema": 0.0},
              # the settings of the README's 300-step table (the defaults then): mirroring alone, a cosine schedule
              "optim": {"decay": "cosine"},
              "segment": {"adversarial": "off" if method == "unet" else "on", "labelled": labelled, "augmentation": "mirror"}}
    if budget:  # what a user runs: the task's defaults with the method's options, and the budget planned into steps
        values["model"] = {"name": "unet"}
        values["loop"] = {"time_budget": budget, "batch_size": batch, "seed": seed}
        values["optim"] = {}
        values["segment"] = {"labelled": labelled, **METHOD_OPTIONS[method]}
        set_values(values, unet_overrides)  # e.g. optim.decay=none: a candidate default, for every method
    elif method in ("teacher", "elastic", "pairs", "pairs+classical"):
        values["segment"].update({"adversarial": "off", **METHOD_OPTIONS[method]})
    if method.startswith("pairs"):
        values["segment"]["synthetic"] = str(pairs)
    if method != "unet":
        values["segment"].update(overrides or {})
    if method == "critic":
        values["segment"].update({"semi_adv_weight": 0.0, "semi_weight": 0.0})
    start = time.perf_counter()
    Trainer(TrainConfig.from_dict(values), run_dir, progress=False).fit()
    seconds = time.perf_counter() - start
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return run_dir, seconds


def monai_run(train: ImageSet, labelled: np.ndarray, class_values: list[int], seconds: float, batch: int, seed: int,
              low: float, high: float) -> torch.nn.Module:
    """What a user writes with MONAI alone: UNet + DiceCELoss + Adam, for ``seconds``."""
    from monai.losses import DiceCELoss
    from monai.networks.layers import Norm
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.clip((train.images[labelled] - low) / (high - low), 0, 1) * 2 - 1).float()[:, None]
    y = torch.from_numpy(to_indices(train.masks[labelled], class_values, "train").astype(np.int64))[:, None]
    net = UNet(spatial_dims=2, in_channels=1, out_channels=len(class_values), channels=(16, 32, 64, 128, 256),
               strides=(2, 2, 2, 2), num_res_units=2, norm=Norm.BATCH)
    loss_fn, opt = DiceCELoss(to_onehot_y=True, softmax=True), torch.optim.Adam(net.parameters(), 1e-3)
    net.train()
    start, steps = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        pick = rng.choice(len(x), min(batch, len(x)), replace=len(x) < batch)
        xb, yb = x[pick], y[pick]
        flip = torch.from_numpy(rng.random(len(pick)) < 0.5)[:, None, None, None]
        xb, yb = torch.where(flip, xb.flip(-1), xb), torch.where(flip, yb.flip(-1), yb)
        opt.zero_grad()
        loss_fn(net(xb), yb).backward()
        opt.step()
        steps += 1
    net.eval()
    net.steps = steps
    return net


def score(model: SegmentationModel, test: ImageSet) -> dict[str, float]:
    figures = segmentation_scores(model, test)["metrics"]
    return {k: (None if not np.isfinite(v) else round(float(v), 4)) for k, v in figures.items() if k.startswith(("dice", "hd95"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--labels", default="8,32,0", help="labelled training slices per run (0: all)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--budget", type=float, default=0.0,
                        help="seconds: the plain U-Net with the task's defaults and --time-budget (planned) instead of --steps; "
                             "MONAI alone gets the seconds it took")
    parser.add_argument("--pairs-budget", type=float, default=0.0,
                        help="seconds of the pairs GAN (default: --budget, else 300)")
    parser.add_argument("--pairs-set", action="append", default=[], metavar="SECTION.KEY=JSON",
                        help="a config value of the pairs GAN, e.g. model.net.mbstd=4")
    parser.add_argument("--picture", default="", help="a PNG of generated pairs (image | label overlay) from the first pairs GAN")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 lets two runs share 2 cores")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                        help="a segment option for the critic and semi-supervised runs, e.g. critic_maps='\"soft\"'")
    parser.add_argument("--unet-set", action="append", default=[], metavar="SECTION.KEY=JSON",
                        help="with --budget, a config value of every method's run, e.g. optim.decay='\"none\"'")
    args = parser.parse_args()
    overrides, unet_overrides, pairs_overrides = parse_sets(args.set), parse_sets(args.unet_set), parse_sets(args.pairs_set)
    from medgan.tasks import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    runs, root = [], Path(tempfile.mkdtemp(prefix="segment-bench-"))
    methods = [m for m in args.methods.split(",") if m]
    try:
        for case_name in args.cases.split(","):
            case = dict(CASES[case_name])
            if case.get("one_scan"):
                case["source"] = scan_folder(root / "scan")
                case["options"] = {**case["options"], "masks": str(root / "scan" / "masks")}
            train, test = case_data(case)
            for labelled in [int(v) for v in args.labels.split(",")]:
                chosen = evenly_chosen(len(train), labelled)
                if case.get("one_scan") and len(chosen) == len(train):
                    continue  # every slice labelled: nothing left to segment
                eval_set, run_case, run_labelled = test, case, labelled
                if case.get("one_scan"):  # trained from a masks folder holding the labelled slices only; scored on the rest
                    eval_set = train.subset(np.setdiff1d(np.arange(len(train)), chosen))
                    eval_set.groups = np.zeros(len(eval_set), np.int64)
                    options = {**case["options"], "masks": label_every_few(root / "scan", chosen), "partial_masks": True}
                    run_case, run_labelled = {**case, "options": options}, 0
                batch = min(args.batch_size, len(chosen))  # a batch cannot hold more labelled slices than there are
                for seed in [int(v) for v in args.seeds.split(",")]:
                    unet_seconds, model_info, pairs, gan_seconds = None, None, None, None
                    for method in [m for m in METHODS[1:] if m in methods or (m == "unet" and "monai" in methods)]:
                        if method in ("semi", "teacher") and len(chosen) == len(train):
                            continue  # all labelled: nothing left to be unlabelled
                        if method.startswith("pairs") and pairs is None:  # one GAN per labelled set and seed
                            pairs, gan_seconds = pairs_run(run_case, run_labelled, seed, args.pairs_budget or args.budget or 300.0,
                                                           root / f"{case_name}-{labelled}-{seed}-gan", pairs_overrides)
                            if args.picture:
                                picture = Path(args.picture)
                                pairs_picture(pairs, picture.with_name(f"{picture.stem}-{case_name}-{labelled}{picture.suffix}"))
                        run, seconds = medgan_run(run_case, method, run_labelled, seed, args.steps, batch, root / f"{case_name}-{labelled}-{seed}-{method}",
                                                  overrides, args.budget, unet_overrides, pairs)
                        model = load_model(run / "segmentor")  # a mean-teacher run's teacher is scored apart, below
                        if method == "unet":
                            unet_seconds, model_info = seconds, model
                        if method in methods:
                            config = json.loads((run / "config.json").read_text())
                            runs.append({"case": case_name, "labelled": len(chosen), "seed": seed, "method": method, "seconds": round(seconds, 1),
                                         "steps": config["loop"]["steps"], "batch": batch, "width": config["model"]["net"]["width"],
                                         **({"gan_seconds": round(gan_seconds, 1)} if method.startswith("pairs") else {}),
                                         **score(model, eval_set)})
                            print(json.dumps(runs[-1]), flush=True)
                            if method == "teacher":  # the teacher (what RUN gives medgan segment), scored beside its student
                                runs.append({**runs[-1], "method": "teacher-ema", **score(load_model(run / "teacher"), eval_set)})
                                print(json.dumps(runs[-1]), flush=True)
                    if "monai" in methods:
                        m = model_info
                        net = monai_run(train, chosen, m.label_values, unet_seconds, batch, seed, m.intensity.low, m.intensity.high)
                        plain = SegmentationModel(net, m.intensity, m.class_names, m.label_values, 16, {"model": "monai-unet"})
                        runs.append({"case": case_name, "labelled": len(chosen), "seed": seed, "method": "monai", "seconds": round(unet_seconds, 1),
                                     "steps": net.steps, "batch": batch, **score(plain, eval_set)})
                        print(json.dumps(runs[-1]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    table: dict[str, dict] = {}
    for r in runs:
        cell = table.setdefault(f"{r['case']} / {r['labelled']} labelled / {r['method']}", {"n": 0, "values": {}})
        cell["n"] += 1
        for k, v in r.items():
            if k.startswith(("dice", "hd95", "seconds", "steps")) and v is not None:
                cell["values"].setdefault(k, []).append(v)
    summary = {key: {"seeds": c["n"], **{k: f"{np.mean(v):.3f} ± {np.std(v):.3f}" for k, v in c["values"].items()}} for key, c in table.items()}
    print(json.dumps({"benchmark": "segment_vs_unet", "steps": args.steps, "budget": args.budget, "unet_overrides": unet_overrides, "pairs_overrides": pairs_overrides,
                      "pairs_budget": args.pairs_budget, "batch_size": args.batch_size, "overrides": overrides,
                      "torch_threads": torch.get_num_threads(), "runs": runs, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
