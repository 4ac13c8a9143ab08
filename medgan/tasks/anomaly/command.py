"""The anomaly task's commands: ``medgan calibrate MODEL NORMAL_SOURCE``."""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction) -> None:
    cal = commands.add_parser("calibrate", help="recalibrate an anomaly model on a new site's normal images, without retraining")
    cal.add_argument("model", help="run folder made by medgan train anomaly")
    cal.add_argument("normals", help="normal images of the new site: any source medgan reads (read with the run's options)")
    cal.add_argument("--alpha", type=float, default=None, help="false-positive rate of the thresholds (default: the run's)")
    cal.add_argument("--calibration-fraction", type=float, default=None,
                     help="share of the volumes that calibrate; the rest check the rate reached (default: the run's)")
    cal.set_defaults(func=cmd_calibrate)


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
        if check:
            line += (f"; on {check['n']} other normals {check['false_positives']} flagged ({check['rate']:.1%}, "
                     f"95% CI {check['ci95'][0]:.1%}-{check['ci95'][1]:.1%})")
        print(line)
    return 0 if any("threshold" in e for e in record["levels"].values()) else 1
