"""The ``medgan`` command: parse, validate, resolve, call the API — nothing else.

Every user mistake reaches here as a :class:`MedganError` and is printed as one line
(``medgan: error: <file>: <what>; <remedy>``) with exit status 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medgan import __version__
from medgan.errors import MedganError


# ----------------------------------------------------------------------------- options


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how to read a data source (shared by every command that reads one)."""
    g = parser.add_argument_group("reading the data")
    g.add_argument("--size", type=int, help="resize every image to SIZE x SIZE (needed when sizes differ)")
    g.add_argument("--resize-mode", choices=["pad", "crop", "stretch"], default="pad", help="keep the aspect ratio by padding (default) or cropping, or stretch")
    g.add_argument("--axis", default="0", help="slice axis of volumes: 0, 1, 2, axial, coronal or sagittal (default 0)")
    g.add_argument("--volume", type=int, help="volume index of a 4D NIfTI")
    g.add_argument("--rgb", action="store_true", help="keep colour images in colour (default: convert to grey)")
    g.add_argument("--window", help="CT window: brain, subdural, stroke, lung, mediastinum, abdomen, liver, bone or CENTER,WIDTH in HU")
    g.add_argument("--normalize", choices=["auto", "percentile", "none"], default="auto", help="intensity normalisation (auto: per-volume percentiles for MRI)")
    g.add_argument("--labels-csv", help="CSV with columns file,label")
    g.add_argument("--masks", help="folder of masks paired with the images by file name")
    g.add_argument("--split", default="train", choices=["train", "val", "test"], help="split of a MedMNIST npz (default train)")
    g.add_argument("--n", type=int, default=256, help="number of phantoms to draw (phantom source)")
    g.add_argument("--seed", type=int, default=0, help="seed of generated sources (phantom)")
    g.add_argument("--kind", choices=["head", "torso"], default="head", help="phantom anatomy")
    g.add_argument("--lesion-fraction", type=float, default=0.0, help="fraction of phantoms with lesions")


def source_options(args: argparse.Namespace):
    """Validated :class:`SourceOptions` from parsed arguments."""
    from medgan.data import SourceOptions

    if args.size is not None and not 8 <= args.size <= 4096:
        raise MedganError(f"--size {args.size} is out of range", hint="give a size between 8 and 4096 pixels")
    if not 0.0 <= args.lesion_fraction <= 1.0:
        raise MedganError(f"--lesion-fraction {args.lesion_fraction} is not a fraction", hint="give a number between 0 and 1")
    if args.n < 1:
        raise MedganError(f"--n {args.n} must be at least 1")
    axis = int(args.axis) if args.axis.lstrip("-").isdigit() else args.axis
    return SourceOptions(
        size=args.size, resize_mode=args.resize_mode, axis=axis, volume=args.volume, grey=not args.rgb,
        window=args.window, normalize=args.normalize, labels_csv=args.labels_csv, masks=args.masks,
        split=args.split, n=args.n, seed=args.seed, kind=args.kind, lesion_fraction=args.lesion_fraction,
    )


# ----------------------------------------------------------------------------- commands


def _show(data, out: Path, overwrite: bool, console) -> dict:
    """Print a summary of ``data`` and write its sample grid (with masks beside, if any)."""
    from PIL import Image as PILImage

    from medgan.data import sample_indices, summarize
    from medgan.report import image_grid
    from medgan.io.output import atomic_path

    summary = summarize(data)
    pick = sample_indices(data, n=64)
    captions = None
    if data.labels is not None and data.class_names:
        captions = [data.class_names[int(data.labels[i])][:10] for i in pick]
    grid = image_grid(data.images[pick], value_range=data.value_range, captions=captions)
    if data.masks is not None:
        overlay = image_grid(data.images[pick], value_range=data.value_range, masks=data.masks[pick])
        both = PILImage.new("RGB", (grid.width * 2 + 8, grid.height), (0, 0, 0))
        both.paste(grid, (0, 0))
        both.paste(overlay, (grid.width + 8, 0))
        grid = both
    with atomic_path(out, overwrite) as tmp:
        grid.save(tmp, format="PNG")
    summary["grid"] = str(out)
    table_rows = [(k, json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in summary.items()]
    from rich.table import Table

    table = Table(title=f"{data.name}: {len(data)} images", show_header=False)
    for k, v in table_rows:
        table.add_row(k, v)
    console.print(table)
    return summary


def cmd_data_show(args: argparse.Namespace) -> int:
    from rich.console import Console

    from medgan.data import load_source

    options = source_options(args)
    name = Path(str(args.source)).name.split(".")[0] or "data"
    out = Path(args.out) if args.out else Path(f"{name}-samples.png")
    if out.exists() and not args.overwrite:  # fail before the (possibly long) read
        raise MedganError("output file already exists", path=out, hint="pass --overwrite to replace it, or --out another file")
    data = load_source(args.source, options)
    summary = _show(data, out, args.overwrite, Console(stderr=False))
    if args.json:
        print(json.dumps(summary))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The README's main job: the embedded brain MRI, its summary and a sample grid."""
    from rich.console import Console

    from medgan.data import SourceOptions, load_source
    from medgan.io.output import atomic_dir

    console = Console()
    run_dir = _next_run_dir(Path(args.runs_dir), "demo")
    with atomic_dir(run_dir) as tmp:
        data = load_source("brain-mri", SourceOptions())
        summary = _show(data, tmp / "samples.png", False, console)
        summary["grid"] = str(run_dir / "samples.png")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"wrote [bold]{run_dir}[/bold] (samples.png, summary.json)")
    return 0


def _next_run_dir(root: Path, description: str) -> Path:
    """``root/00000-description``, numbered one past the highest run already there."""
    numbers = [int(p.name.split("-")[0]) for p in root.glob("[0-9][0-9][0-9][0-9][0-9]-*") if p.name.split("-")[0].isdigit()] if root.is_dir() else []
    return root / f"{max(numbers, default=-1) + 1:05d}-{description}"


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medgan", description="GANs for medical imaging: synthesis, enhancement, segmentation, anomaly detection.")
    parser.add_argument("--version", action="version", version=f"medgan {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the main job on the embedded brain MRI slices")
    demo.add_argument("--runs-dir", default="runs", help="folder that receives the numbered run folder (default runs)")
    demo.set_defaults(func=cmd_demo)

    data = commands.add_parser("data", help="look at a data source")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION")
    show = data_commands.add_parser("show", help="print a summary of a source and write a sample grid PNG")
    show.add_argument("source", help="folder, file (DICOM, NIfTI, PNG/TIFF/JPEG, NPY/NPZ), brain-mri, phantom or a MedMNIST name")
    show.add_argument("--out", help="sample grid PNG to write (default SOURCE-samples.png)")
    show.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    show.add_argument("--json", action="store_true", help="also print the summary as one JSON line")
    add_source_options(show)
    show.set_defaults(func=cmd_data_show)
    data.set_defaults(func=lambda args: _help(data))
    return parser


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MedganError as error:
        print(f"medgan: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medgan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
