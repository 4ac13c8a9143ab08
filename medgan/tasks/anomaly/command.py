"""The anomaly task's commands: ``medgan detect MODEL INPUT --out OUT`` and ``medgan calibrate MODEL NORMAL_SOURCE``."""

from __future__ import annotations

import argparse

#: This task in miniature, for the registry's contract test (tests/tasks/test_task_contract.py):
#: ``train``, flags of a short run on embedded data; ``infer``, its inference command, with
#: ``{run}``, ``{input}`` (a folder of images) and ``{out}`` (a new path) filled in.
EXAMPLE = {"train": ["--data", "phantom", "--n-images", "24", "--width", "4"],
           "infer": ["detect", "{run}", "{input}", "--out", "{out}", "--no-progress"]}


def add_commands(commands: argparse._SubParsersAction) -> None:
    det = commands.add_parser("detect", help="screen images with a calibrated anomaly model (scores, p-values, decisions, heat maps)")
    det.add_argument("model", help="run folder made by medgan train anomaly")
    det.add_argument("input", help="DICOM file or series folder, NIfTI volume, PNG/TIFF, or a folder tree of them")
    det.add_argument("--out", required=True, help="new output folder: scores.csv, summary.json, anomaly maps, heat-map overlays")
    det.add_argument("--presumed-normal", action="store_true",
                     help="the inputs are believed normal (a new site): warn when their scores are not like the calibration normals'")
    det.add_argument("--device", default="cpu")
    det.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    det.add_argument("--no-progress", action="store_true")
    det.set_defaults(func=cmd_detect)
    cal = commands.add_parser("calibrate", help="recalibrate an anomaly model on a new site's normal images, without retraining")
    cal.add_argument("model", help="run folder made by medgan train anomaly")
    cal.add_argument("normals", help="normal images of the new site: any source medgan reads (read with the run's options)")
    cal.add_argument("--alpha", type=float, default=None, help="false-positive rate of the thresholds (default: the run's)")
    cal.add_argument("--calibration-fraction", type=float, default=None,
                     help="share of the volumes that calibrate; the rest check the rate reached (default: the run's)")
    cal.set_defaults(func=cmd_calibrate)


def cmd_detect(args: argparse.Namespace) -> int:
    from medgan.tasks.anomaly.detect import detect_path
    from medgan.tasks.anomaly.model import load_model

    model = load_model(args.model, args.device)
    out = detect_path(model, args.input, args.out, overwrite=args.overwrite, progress=not args.no_progress,
                      presumed_normal=args.presumed_normal)
    print(f"screened: {out} (scores.csv, summary.json, maps, heat-map overlays)")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from medgan.errors import MedganError
    from medgan.tasks.anomaly.evaluate import calibrate_source

    if args.alpha is not None and not 0 < args.alpha < 1:
        raise MedganError(f"--alpha {args.alpha} must lie in (0, 1)", hint="e.g. 0.05")
    if args.calibration_fraction is not None and not 0 < args.calibration_fraction <= 1:
        raise MedganError(f"--calibration-fraction {args.calibration_fraction} must lie in (0, 1]")
    record = calibrate_source(args.model, args.normals, args.alpha, args.calibration_fraction)
    for level, entry in record["levels"].items():
        if "error" in entry:
            print(f"{level} level: not calibrated: {entry['error']}")
            continue
        line = f"{level} level: threshold {entry['threshold']:.5g} at alpha {entry['alpha']:g} from {entry['n']} normal {level}s"
        check = entry.get("check")
        if check and level == "pixel":
            line += f"; {check['rate']:.1%} of the other normals' body pixels above it" if check["rate"] is not None else ""
        elif check:
            line += (f"; on {check['n']} other normals {check['false_positives']} flagged ({check['rate']:.1%}, "
                     f"95% CI {check['ci95'][0]:.1%}-{check['ci95'][1]:.1%})")
        print(line)
    return 0 if any("threshold" in e for e in record["levels"].values()) else 1
