"""The synthesis task's command: ``medgan generate RUN --n N --out FOLDER``."""

from __future__ import annotations

import argparse
from pathlib import Path

from medgan.errors import MedganError

#: This task in miniature, for the registry's contract test (tests/tasks/test_task_contract.py):
#: ``train``, flags of a short run on embedded data; ``infer``, its inference command, with
#: ``{run}``, ``{input}`` (a folder of images) and ``{out}`` (a new path) filled in.
EXAMPLE = {"train": ["--data", "phantom", "--n-images", "16", "--width", "8"],
           "evaluate": ["--n", "32", "--metrics", "swd,ms_ssim"],  # the Inception metrics have tests of their own
           "infer": ["generate", "{run}", "--n", "4", "--out", "{out}"]}


def add_commands(commands: argparse._SubParsersAction) -> None:
    gen = commands.add_parser("generate", help="sample synthetic images from a trained run")
    gen.add_argument("run", help="run folder made by medgan train")
    gen.add_argument("--n", type=int, help="number of images (default: the --labels counts' sum, else 64)")
    gen.add_argument("--out", required=True, help="new folder for the images")
    gen.add_argument("--format", choices=["png", "npz", "dcm", "nii"], default="png", help="file format (default png)")
    gen.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    gen.add_argument("--labels", metavar="SPEC",
                     help="class-conditional runs: which classes, by name or index, with counts: 0:2500,1:2500 or lesion:300,normal:100; "
                          "one class (lesion) for all images; classes without counts share --n evenly (default: all classes in turn)")
    gen.add_argument("--batch-size", type=int, default=256)
    gen.add_argument("--device", default="cpu")
    gen.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    gen.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from medgan.tasks.synth.generate import manifest, sample, write_images

    out = Path(args.out)
    if out.exists() and any(out.iterdir() if out.is_dir() else [out]) and not args.overwrite:
        raise MedganError("output folder already holds data", path=out, hint="pass --overwrite to replace it or choose another folder")
    images, labels, masks, info = sample(args.run, args.n, seed=args.seed, labels=args.labels, batch_size=args.batch_size, device=args.device)
    record = manifest(args.run, info, seed=args.seed, fmt=args.format, labels=labels)
    write_images(images, out, args.format, info, labels=labels, overwrite=args.overwrite, manifest=record, masks=masks)
    counts = "" if record["classes"] is None else " (" + ", ".join(f"{k}: {v}" for k, v in record["classes"].items()) + ")"
    what = "synthetic images" if masks is None else "synthetic image-label pairs (images/, masks/)"
    print(f"wrote {len(images)} {what}{counts} ({args.format}) and manifest.json to {out}")
    return 0
