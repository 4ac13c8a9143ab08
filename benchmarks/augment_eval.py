"""Does synthetic data help a classifier? ``medgan augment-eval`` on two labelled tasks, one after the other.

- ``phantom-lesion``: CT head phantoms in HU, half with 1-3 subtle lesions (20-60 HU
  hypo- or hyper-dense blobs in the brain, shown over the whole -1000..1000 HU range, so a
  lesion is 1-3% of the grey scale); each phantom is its own patient; 25% of the patients
  are the test set.
- ``phantom-lesion-window``: the same phantoms through a brain window (40 / 160 HU), where
  the lesions are low-contrast but visible (12-37% of the grey scale).
- ``brain-orientation``: the embedded T1 MRI slices labelled axial / coronal / sagittal;
  trained on one head (MNI152), tested on the other (Colin27), so it measures transfer to
  a new subject; few labels (5%, 10%, 100%).

For each: the table of ``medgan augment-eval`` (real, classical, real + synthetic,
classical + synthetic, synthetic only, and with ``--select`` (default discriminator, as ``medgan augment-eval``) real +
selected synthetic and classical + selected synthetic: as many synthetic images, the best
``--select-keep`` of a larger draw per class; mean ± std over seeds), what the selection
kept, and the time it took. Every arm of a case trains on the same data with the same
budget, one after the other. Prints one JSON object; the plots (``results.png``,
``selection.png``) land in ``--out``.

    python benchmarks/augment_eval.py [--cases phantom-lesion,brain-orientation] [--seeds 0,1,2] [--out bench-augment]
        [--select confidence|discriminator|none] [--select-keep 0.5]
        [--fractions 0.05,0.1] [--conditions classical,classical+selected]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from medgan.data.source_options import SourceOptions
from medgan.tasks.classify.augment_eval import AugmentEvalConfig, markdown_table, run_augment_eval

CASES = {
    "phantom-lesion": dict(source="phantom", options=SourceOptions(size=64, n=600, lesion_fraction=0.5), test_fraction=0.25,
                           fractions=(0.1, 0.25, 1.0)),
    # the same phantoms seen through a brain window (centre 40, width 160 HU): a lesion is
    # 12-37% of the grey scale instead of 1-3%
    "phantom-lesion-window": dict(source="phantom", options=SourceOptions(size=64, n=600, lesion_fraction=0.5, window="40,160"),
                                  test_fraction=0.25, fractions=(0.1, 0.25, 1.0)),
    # two heads: the split puts one in training and the other in the test set
    "brain-orientation": dict(source="brain-mri", options=SourceOptions(size=64), test_fraction=0.5, fractions=(0.05, 0.1, 1.0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated from {', '.join(CASES)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--gan-steps", type=int, default=1000)
    parser.add_argument("--classifier-steps", type=int, default=250)
    parser.add_argument("--select", default="discriminator", choices=("none", "confidence", "discriminator"),
                        help="selection of the selected arms (none: leave them out)")
    parser.add_argument("--select-keep", type=float, default=0.5, help="share of the generated images kept per class")
    parser.add_argument("--conditions", help="comma-separated arms instead of all (e.g. classical,classical+selected)")
    parser.add_argument("--fractions", help="shares of the training labels instead of each case's own (e.g. 1 for a smoke run)")
    parser.add_argument("--out", default="bench-augment", help="folder for every case's runs, tables and plots")
    args = parser.parse_args()

    seeds = tuple(int(s) for s in args.seeds.split(","))
    extra = {"fractions": tuple(float(f) for f in args.fractions.split(","))} if args.fractions else {}
    if args.conditions:
        extra["conditions"] = tuple(args.conditions.split(","))
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}, "cases": {}}
    for name in args.cases.split(","):
        config = AugmentEvalConfig(**{**CASES[name], **extra}, seeds=seeds, gan_steps=args.gan_steps,
                                   classifier_steps=args.classifier_steps, select=args.select, select_keep=args.select_keep)
        started = time.perf_counter()
        results = run_augment_eval(config, Path(args.out) / name, progress=False, overwrite=True)
        report["cases"][name] = {"minutes": (time.perf_counter() - started) / 60, "n_pool": results["n_pool"], "n_test": results["n_test"],
                                 "test": results["test"], "test_classes": results["test_classes"], "gans": results["gans"],
                                 "table": results["table"], "selection": results["selection"], "markdown": markdown_table(results)}
        print(json.dumps({name: report["cases"][name]["table"]}), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
