"""Transitional conditioning against plain conditioning: does a class collapse?

On two labelled sets (CT head phantoms normal / lesion; the embedded brain slices by
orientation), the same class-conditional DCGAN (medgan's recipe, class-balanced batches)
trained for ``--steps`` steps twice, one after the other: ``plain`` (the class terms on
from step 0) and ``transitional`` (unconditional for the first quarter of the run, then
faded in over the next half; Shahbazi et al. 2022). Each is scored per class: KID against
the class's own training images, and intra-class diversity (mean MS-SSIM of random pairs,
generated against real; a class is flagged collapsed when its generated diversity falls
below half its real one; ``ms_ssim_ratio`` is generated over real MS-SSIM). Prints one
JSON object.

``--variants`` picks among them; a ``+mbstd`` suffix (``transitional+mbstd``) gives D a
minibatch standard-deviation channel over groups of 4.

    python benchmarks/synth_conditional.py [--steps 1200] [--n 400] [--cases phantom,brain-mri]
        [--variants plain,transitional,transitional+mbstd]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from medgan.tasks.synth.evaluate import evaluate_synthesis_run
from medgan.train import TrainConfig, Trainer

CASES = {
    "phantom": {"source": "phantom", "options": {"size": 64, "n": 512, "lesion_fraction": 0.5}},
    "brain-mri": {"source": "brain-mri", "options": {"size": 64}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--n", type=int, default=400, help="images generated per run (the classes in turn)")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--variants", default="plain,transitional")
    args = parser.parse_args()

    schedules = {"plain": {"condition_start": 0, "condition_ramp": 0},
                 "transitional": {"condition_start": args.steps // 4, "condition_ramp": args.steps // 2}}
    variants = {name: schedules[name.split("+")[0]] for name in args.variants.split(",")}
    out: dict = {"steps": args.steps, "n_generated": args.n, "cases": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases.split(","):
            rows = {}
            for name, synth in variants.items():
                net = {"num_classes": -1, **({"mbstd": 4} if name.endswith("+mbstd") else {})}
                values = {"data": {**CASES[case], "balance_classes": True}, "model": {"net": net}, "synth": synth,
                          "loop": {"steps": args.steps, "sample_every": args.steps, "checkpoint_every": args.steps}}
                run = Path(tmp) / f"{case}-{name}"
                started = time.perf_counter()
                Trainer(TrainConfig.from_dict(values), run, progress=False).fit()
                seconds = time.perf_counter() - started
                record = evaluate_synthesis_run(run, n=args.n, require_inception=True, metrics=["kid"])
                for row in record["classes"]:  # the bar: generated intra-class MS-SSIM within 1.3x the real one's
                    if row["ms_ssim_real"]:
                        row["ms_ssim_ratio"] = row["ms_ssim_generated"] / row["ms_ssim_real"]
                rows[name] = {"synth": synth, "train_minutes": seconds / 60, "kid": record["metrics"]["kid_mean"],
                              "classes": record["classes"]}
                print(json.dumps({case: {name: rows[name]}}), flush=True)
            out["cases"][case] = rows
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
