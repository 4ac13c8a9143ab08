"""The template task's inference command, on the shared file walker:
``medgan template-reconstruct MODEL INPUT --out OUT`` writes G(E(x)) for every PNG of INPUT
(a file, or a folder mirrored), all or nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

#: This task in miniature, for the registry's contract test (tests/tasks/test_task_contract.py):
#: ``train``, flags of a short run on embedded data; ``infer``, its inference command, with
#: ``{run}``, ``{input}`` (a folder of images) and ``{out}`` (a new path) filled in.
EXAMPLE = {"train": ["--data", "phantom", "--n-images", "16", "--encoder-steps", "2"],
           "infer": ["template-reconstruct", "{run}", "{input}", "--out", "{out}"]}


class ReconstructJob:
    """A :class:`medgan.infer.FileJob`: one 8-bit PNG in, its reconstruction out."""

    verb = "template-reconstruct"

    def __init__(self, model, overwrite: bool):
        self.model, self.overwrite = model, overwrite

    def output_name(self, name: Path, fmt: str) -> Path:
        return name

    def run(self, src: Path, dest: Path, fmt: str, bar: Any) -> None:
        from medgan.io import read_raster, write_png

        image = read_raster(src).array.astype(np.float32) / 255.0  # the phantom range 0..1
        write_png(dest, self.model.reconstruct(image[None])[0], value_range=(0.0, 1.0), overwrite=self.overwrite)


def add_commands(commands: argparse._SubParsersAction) -> None:
    cmd = commands.add_parser("template-reconstruct", help="G(E(x)) of images (the test-only template task)")
    cmd.add_argument("model", help="run folder made by medgan train template")
    cmd.add_argument("input", help="a PNG or a folder of them")
    cmd.add_argument("--out", required=True, help="output PNG or folder")
    cmd.add_argument("--overwrite", action="store_true")
    cmd.set_defaults(func=cmd_reconstruct)


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from medgan.infer import apply_to_files
    from medgan.tasks import load_model

    out = apply_to_files(ReconstructJob(load_model(args.model), args.overwrite), args.input, args.out,
                         formats=("png",), overwrite=args.overwrite, progress=False)
    print(f"reconstructed: {out}")
    return 0
