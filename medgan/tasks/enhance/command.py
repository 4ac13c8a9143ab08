"""The enhancement task's command: ``medgan enhance MODEL INPUT --out OUT``."""

from __future__ import annotations

import argparse
from pathlib import Path

#: This task in miniature, for the registry's contract test (tests/tasks/test_task_contract.py):
#: ``train``, flags of a short run on embedded data; ``infer``, its inference command, with
#: ``{run}``, ``{input}`` (a folder of images) and ``{out}`` (a new path) filled in.
EXAMPLE = {"train": ["--data", "phantom", "--n-images", "16", "--width", "8", "--degradation", "gaussian:sigma=20"],
           "infer": ["enhance", "{run}", "{input}", "--out", "{out}"]}


def add_commands(commands: argparse._SubParsersAction) -> None:
    enh = commands.add_parser("enhance", help="denoise or super-resolve images with a trained enhancement model")
    enh.add_argument("model", help="run folder made by medgan train enhance")
    enh.add_argument("input", help="DICOM file or series folder, NIfTI, PNG/TIFF, or a folder of them")
    enh.add_argument("--out", required=True, help="output file or folder (same format as the input)")
    enh.add_argument("--anonymize", action="store_true", help="write DICOM without patient identifiers (default: a new series of the same patient and study)")
    enh.add_argument("--pixels-clean", action="store_true",
                     help="with --anonymize: you checked that sources marked BurnedInAnnotation=YES hold no identifying text in their pixels "
                          "(refused otherwise: header de-identification cannot remove text in the image)")
    enh.add_argument("--tile", type=int, default=256, help="tile size for large images (default 256)")
    enh.add_argument("--device", default="cpu")
    enh.add_argument("--overwrite", action="store_true")
    enh.add_argument("--no-progress", action="store_true")
    enh.set_defaults(func=cmd_enhance)


def cmd_enhance(args: argparse.Namespace) -> int:
    from medgan.tasks.enhance.inference import enhance_path
    from medgan.tasks.enhance.model import load_model

    model = load_model(args.model, args.device)
    out = enhance_path(model, Path(args.input), Path(args.out), anonymize=args.anonymize, pixels_clean=args.pixels_clean, overwrite=args.overwrite,
                       tile=args.tile, device=args.device, progress=not args.no_progress)
    print(f"enhanced: {out}")
    return 0
