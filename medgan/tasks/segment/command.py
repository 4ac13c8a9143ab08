"""The segmentation task's command: ``medgan segment MODEL INPUT --out OUT``."""

from __future__ import annotations

import argparse
from pathlib import Path

#: This task in miniature, for the registry's contract test (tests/tasks/test_task_contract.py):
#: ``train``, flags of a short run on embedded data; ``infer``, its inference command, with
#: ``{run}``, ``{input}`` (a folder of images) and ``{out}`` (a new path) filled in.
EXAMPLE = {"train": ["--data", "phantom", "--n-images", "16", "--lesion-fraction", "1", "--width", "8"],
           "infer": ["segment", "{run}", "{input}", "--out", "{out}", "--no-progress"]}


def add_commands(commands: argparse._SubParsersAction) -> None:
    seg = commands.add_parser("segment", help="segment images with a trained segmentation model (label maps, DICOM SEG, overlays, volumes)")
    seg.add_argument("model", help="run folder made by medgan train segment")
    seg.add_argument("input", help="DICOM file or series folder, NIfTI volume, PNG/TIFF, or a folder tree of them")
    seg.add_argument("--out", required=True, help="new output folder: label maps, DICOM SEG, overlays, volumes.csv, summary.json")
    seg.add_argument("--tile", type=int, default=256, help="tile size for large images (default 256)")
    seg.add_argument("--device", default="cpu")
    seg.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    seg.add_argument("--no-progress", action="store_true")
    seg.set_defaults(func=cmd_segment)


def cmd_segment(args: argparse.Namespace) -> int:
    from medgan.tasks.segment.model import segmentation_model
    from medgan.tasks.segment.inference import segment_path

    model = segmentation_model(args.model, args.device)
    out = segment_path(model, Path(args.input), Path(args.out), overwrite=args.overwrite, tile=args.tile, device=args.device,
                       progress=not args.no_progress)
    print(f"segmented: {out} (label maps, overlays, volumes.csv)")
    return 0
