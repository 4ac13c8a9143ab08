"""The classification task's commands: ``medgan classify MODEL INPUT --out OUT`` and
``medgan augment-eval --data SOURCE --out FOLDER``."""

from __future__ import annotations

import argparse
from pathlib import Path

#: This task in miniature, for the registry's contract test (tests/tasks/test_task_contract.py):
#: ``train``, flags of a short run on embedded data; ``infer``, its inference command, with
#: ``{run}``, ``{input}`` (a folder of images) and ``{out}`` (a new path) filled in.
EXAMPLE = {"train": ["--data", "phantom", "--n-images", "24", "--lesion-fraction", "0.5", "--width", "8"],
           "infer": ["classify", "{run}", "{input}", "--out", "{out}", "--no-progress"]}

CONDITION_NAMES = "real, classical, synthetic, classical+synthetic, synthetic-only, selected, classical+selected"


def _numbers(kind):
    def parse(text: str):
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None

    return parse


def add_commands(commands: argparse._SubParsersAction) -> None:
    from medgan.cli import add_source_options

    cls = commands.add_parser("classify", help="classify images with a trained classifier (predictions.csv: class and probabilities)")
    cls.add_argument("model", help="run folder made by medgan train classify")
    cls.add_argument("input", help="DICOM file or series folder, NIfTI volume, PNG/TIFF, or a folder tree of them")
    cls.add_argument("--out", required=True, help="new output folder: predictions.csv, summary.json")
    cls.add_argument("--device", default="cpu")
    cls.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    cls.add_argument("--no-progress", action="store_true")
    cls.set_defaults(func=cmd_classify)

    ae = commands.add_parser("augment-eval", help="does synthetic data help a classifier? real vs classical vs synthetic augmentation at few labels")
    ae.add_argument("--data", default="phantom", help="labelled real images: folder with a subfolder per class, CSV labels, npz, "
                                                      "brain-mri, or phantom with --lesion-fraction (default phantom)")
    ae.add_argument("--out", required=True, help="new folder for the data, the runs, results.json/.md/.png")
    ae.add_argument("--test-data", help="labelled real images to test on (default: held-out patients of --data)")
    ae.add_argument("--test-fraction", type=float, default=0.25, help="share of patients held out for testing (default 0.25)")
    ae.add_argument("--fractions", type=_numbers(float), default=(0.1, 0.25, 1.0), help="shares of the training labels (default 0.1,0.25,1)")
    ae.add_argument("--seeds", type=_numbers(int), default=(0, 1, 2), help="classifier seeds (default 0,1,2)")
    ae.add_argument("--conditions", type=lambda t: tuple(x.strip() for x in t.split(",") if x.strip()), default=None,
                    help=f"which of {CONDITION_NAMES} (default all; --select none leaves out the selected ones)")
    ae.add_argument("--gan-steps", type=int, default=2000, help="steps of each setting's conditional GAN (default 2000)")
    ae.add_argument("--classifier-steps", type=int, default=500, help="steps of each classifier (default 500)")
    ae.add_argument("--batch-size", type=int, default=32)
    ae.add_argument("--synthetic-ratio", type=float, default=1.0, help="synthetic images per real training image (default 1)")
    ae.add_argument("--select", choices=("none", "confidence", "discriminator"), default=None,
                    help="how the selected conditions keep the best synthetic images per class: discriminator (the GAN's D "
                         "logit; the default, measured best), confidence (probability of the image's class under the classical "
                         "arm's classifier) or none (leave the selected conditions out)")
    ae.add_argument("--select-keep", type=float, default=0.5, metavar="FRACTION",
                    help="share of the generated images kept per class, in (0, 1]: 1/FRACTION times the images are drawn "
                         "to keep as many as the unselected arms use (default 0.5)")
    ae.add_argument("--classifier-width", type=int, default=16, help="ResNet-18 first-stage channels (default 16)")
    ae.add_argument("--gan-width", type=int, default=32, help="DCGAN width (default 32)")
    ae.add_argument("--device", default="auto")
    ae.add_argument("--split-seed", type=int, default=0, help="seed of the test split and the label subsets")
    ae.add_argument("--overwrite", action="store_true", help="replace what an earlier run left in --out")
    ae.add_argument("--no-progress", action="store_true")
    ae.add_argument("--json", action="store_true", help="also print results.json's table as one JSON line")
    add_source_options(ae)
    ae.set_defaults(func=cmd_augment_eval)


def cmd_augment_eval(args: argparse.Namespace) -> int:
    import json

    from medgan.cli import source_options
    from medgan.tasks.classify.augment_eval import AugmentEvalConfig, markdown_table, run_augment_eval

    options = source_options(args)
    if options.size is None:
        options.size = 64
    config = AugmentEvalConfig(source=args.data, options=options, test_source=args.test_data, test_fraction=args.test_fraction,
                               fractions=args.fractions, seeds=args.seeds, conditions=args.conditions,
                               gan_steps=args.gan_steps, classifier_steps=args.classifier_steps, batch_size=args.batch_size,
                               synthetic_ratio=args.synthetic_ratio, classifier_width=args.classifier_width, gan_width=args.gan_width,
                               device=args.device, split_seed=args.split_seed, select=args.select, select_keep=args.select_keep)
    results = run_augment_eval(config, Path(args.out), progress=not args.no_progress, overwrite=args.overwrite)
    print(markdown_table(results))
    pictures = ", ".join(str(Path(args.out) / name) for name in ("results.png", "selection.png") if (Path(args.out) / name).is_file())
    print(f"results: {Path(args.out) / 'results.json'}, {Path(args.out) / 'results.md'}, {pictures}")
    if args.json:
        print(json.dumps({"table": results["table"]}))
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from medgan.tasks.classify.inference import classify_path
    from medgan.tasks.classify.model import classifier_model

    model = classifier_model(args.model, args.device)
    out = classify_path(model, Path(args.input), Path(args.out), overwrite=args.overwrite, progress=not args.no_progress)
    print(f"classified: {out} (predictions.csv)")
    return 0
