"""``medgan augment-eval``: does synthetic data help a classifier trained on few real images?

For every fraction of the real training labels (10%, 25%, 100% by default):

1. a class-stratified subset of the real training patients' images is drawn (the same one
   for every condition and seed, so the conditions are compared on the same images);
2. a class-conditional GAN (medgan's synthesis recipe with Adam β1 = 0, class-balanced
   batches, transitional conditioning) is trained on that subset only;
3. the same ResNet-18 is trained through the engine, with no adversary, for the same number
   of steps, on each condition:

   - ``real``: the real subset;
   - ``classical``: the real subset with classical augmentation (flips, small affine,
     brightness / contrast);
   - ``synthetic``: the real subset plus class-balanced synthetic images;
   - ``classical+synthetic``: both;
   - ``synthetic-only``: synthetic images alone (train on synthetic, test on real);
   - ``selected`` and ``classical+selected`` (with ``--select``): as ``synthetic`` and
     ``classical+synthetic``, with as many synthetic images kept from a larger draw by a
     score (:mod:`medgan.tasks.classify.select`): the confidence of the seed's ``classical``
     classifier (reused when that arm runs, else trained alone, the same way) or the GAN's
     discriminator (taken from its last training state before the states are deleted);

   once per seed (the classifier's initialisation and batch order, and the synthetic draw);
4. every classifier is scored on the untouched test images: held-out patients (a
   patient-level split made before anything is subsampled) or a test source the user names.

No model selection happens on the test images: every classifier trains for a fixed number
of steps and is scored once, at its end. Everything lands in ``OUT/``: the data of each
setting (npz), every run folder (its exported network, samples, losses and test record;
the training states are deleted), ``results.json``, ``results.md`` (the table) and
``results.png`` (the plot); with ``--select``, ``selection.png`` (kept and rejected
synthetic images of each setting's first seed) and the selection of every seed in
``results.json`` (``selection``) and ``results.md``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medgan.data.imageset import ImageSet
from medgan.data.intensity import IntensityMap
from medgan.data.source_options import SourceOptions
from medgan.errors import MedganError
from medgan.io.output import atomic_path
from medgan.io.records import append_jsonl, utc_now
from medgan.tasks.classify.select import SCORES, SELECT_METHODS

__all__ = ["CONDITIONS", "AugmentEvalConfig", "run_augment_eval"]

#: condition -> (real images, classical augmentation, synthetic images: None, "synthetic"
#: (a plain draw) or "selected" (the best of a larger draw, see --select))
CONDITIONS: dict[str, tuple[bool, bool, str | None]] = {
    "real": (True, False, None),
    "classical": (True, True, None),
    "synthetic": (True, False, "synthetic"),
    "classical+synthetic": (True, True, "synthetic"),
    "synthetic-only": (False, False, "synthetic"),
    "selected": (True, False, "selected"),
    "classical+selected": (True, True, "selected"),
}
METRICS = ("accuracy", "balanced_accuracy", "auroc", "ece")


@dataclass
class AugmentEvalConfig:
    """The grid of runs.

    Attributes:
        source / options: the labelled real images and how to read them.
        test_source: labelled real images to test on instead of held-out patients.
        test_fraction: share of patients held out for testing (without ``test_source``).
        fractions: shares of the remaining (training) images given to each setting.
        seeds: classifier seeds per condition.
        conditions: names from :data:`CONDITIONS` (``None``: all, the selected ones only
            with ``select``).
        gan_steps / classifier_steps: training steps of each GAN and each classifier.
        batch_size: images per step (both; at most the setting's image count).
        synthetic_ratio: synthetic images per real training image (class-balanced); the
            synthetic-only condition gets the same number.
        classifier_width: first-stage channels of the ResNet-18.
        gan_width: DCGAN width of the generator and discriminator.
        device: ``auto``, ``cpu``, ``cuda`` ...
        split_seed: seed of the test split and of the subsets.
        select: how the selected conditions choose their synthetic images: ``none``,
            ``confidence`` or ``discriminator`` (see :mod:`medgan.tasks.classify.select`);
            ``None``: ``discriminator`` (measured best: +2.0 balanced-accuracy points over
            classical augmentation at 5% of the brain-orientation labels) when the
            conditions include a selected one or are all, else ``none``.
        select_keep: share of the generated images kept per class (``ceil(n / keep)`` are
            drawn to keep ``n``, the unselected arms' count).
    """

    source: str = "phantom"
    options: SourceOptions = field(default_factory=lambda: SourceOptions(size=64))
    test_source: str | None = None
    test_fraction: float = 0.25
    fractions: tuple[float, ...] = (0.1, 0.25, 1.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    conditions: tuple[str, ...] | None = None
    gan_steps: int = 2000
    classifier_steps: int = 500
    batch_size: int = 32
    synthetic_ratio: float = 1.0
    classifier_width: int = 16
    gan_width: int = 32
    device: str = "auto"
    split_seed: int = 0
    select: str | None = None
    select_keep: float = 0.5

    def __post_init__(self) -> None:
        if self.select is None:
            wants = self.conditions is None or any(CONDITIONS.get(c, (0, 0, ""))[2] == "selected" for c in self.conditions)
            self.select = "discriminator" if wants else "none"
        if self.select not in SELECT_METHODS:
            raise MedganError(f"unknown --select {self.select!r}", hint=f"use one of {', '.join(SELECT_METHODS)}")
        if not 0 < self.select_keep <= 1:
            raise MedganError(f"--select-keep {self.select_keep} must lie in (0, 1]",
                              hint="the share of the generated images kept per class, e.g. 0.5")
        if self.conditions is None:
            self.conditions = tuple(c for c, (_, _, kind) in CONDITIONS.items() if kind != "selected" or self.select != "none")
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        if unknown or not self.conditions:
            raise MedganError(f"unknown condition(s) {', '.join(unknown) or '(none given)'}", hint=f"use some of {', '.join(CONDITIONS)}")
        if not self.fractions or any(not 0 < f <= 1 for f in self.fractions):
            raise MedganError(f"--fractions {','.join(map(str, self.fractions))} must lie in (0, 1]", hint="e.g. 0.1,0.25,1")
        selected = [c for c in self.conditions if CONDITIONS[c][2] == "selected"]
        if selected and self.select == "none":
            raise MedganError(f"condition(s) {', '.join(selected)} need a selection method", hint="add --select confidence or --select discriminator")
        if self.select != "none" and not selected:
            raise MedganError(f"--select {self.select} has no condition to act on", hint="add classical+selected (or selected) to --conditions")
        if not self.seeds:
            raise MedganError("--seeds needs at least one seed")
        if not 0 < self.test_fraction < 1:
            raise MedganError(f"--test-fraction {self.test_fraction} must lie in (0, 1)")
        if not self.synthetic_ratio > 0:
            raise MedganError(f"--synthetic-ratio {self.synthetic_ratio} must be positive")
        for name in ("gan_steps", "classifier_steps", "batch_size", "classifier_width", "gan_width"):
            if getattr(self, name) < 1:
                raise MedganError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")

    @property
    def uses_synthetic(self) -> bool:
        return any(CONDITIONS[c][2] for c in self.conditions)

    @property
    def trains_scorer(self) -> bool:
        """Confidence selection without a classical arm to reuse: one scorer per setting and seed."""
        return self.select == "confidence" and "classical" not in self.conditions


# ----------------------------------------------------------------------------- data


def labelled(data: ImageSet, what: str) -> ImageSet:
    if data.labels is None or not data.class_names or len(data.class_names) < 2:
        raise MedganError(f"the {what} images need class labels of at least two classes", path=data.name,
                          hint="use subfolders per class, --labels-csv, an npz with labels, or phantom with --lesion-fraction")
    return data


def split_train_test(config: AugmentEvalConfig) -> tuple[ImageSet, ImageSet]:
    """The training pool and the test images (held-out patients, or the test source)."""
    from medgan.data.sources import load_source
    from medgan.data.splits import split_by_group

    data = labelled(load_source(config.source, config.options), "training")
    if data.value_range is None:  # one intensity map for every setting: the whole source's range
        data.value_range = (float(data.images.min()), float(data.images.max()))
    if config.test_source is not None:
        test = labelled(load_source(config.test_source, config.options), "test")
        if list(test.class_names) != list(data.class_names):
            raise MedganError(f"the test classes {test.class_names} differ from the training classes {data.class_names}",
                              path=config.test_source, hint="label both sources with the same classes")
        return data, test
    groups = data.groups if data.groups is not None else np.arange(len(data))
    split = split_by_group(groups, (1 - config.test_fraction, config.test_fraction), config.split_seed)
    return data.subset(split["train"]), data.subset(split["val"])


def stratified_subset(data: ImageSet, fraction: float, seed: int) -> ImageSet:
    """``fraction`` of each class's images (at least two per class), a seeded choice."""
    rng = np.random.default_rng(seed)
    keep = []
    for k in range(len(data.class_names)):
        members = np.flatnonzero(data.labels == k)
        if len(members):
            count = min(len(members), max(2, int(round(fraction * len(members)))))
            keep.append(rng.choice(members, count, replace=False))
    return data.subset(np.sort(np.concatenate(keep)))


def with_images(data: ImageSet, images: np.ndarray, labels: np.ndarray, name: str) -> ImageSet:
    """A set of ``images`` with ``data``'s classes, units and range."""
    return ImageSet(images=images.astype(np.float32), labels=labels.astype(np.int64), class_names=list(data.class_names),
                    value_range=data.value_range, units=data.units, name=name)


def balanced_labels(n: int, classes: int) -> np.ndarray:
    """``n`` labels, the classes as equal as ``n`` allows (grouped by class)."""
    return np.repeat(np.arange(classes), [n // classes + (k < n % classes) for k in range(classes)])


# ----------------------------------------------------------------------------- runs


def _train(values: dict[str, Any], run_dir: Path, keep_discriminator: bool = False) -> Path:
    """Train one run; its exported networks stay, its training states go (dozens of runs
    would otherwise keep hundreds of MB of optimiser state nobody resumes). With
    ``keep_discriminator`` a GAN's D is first exported from its last state (``RUN/discriminator/``)."""
    import shutil

    from medgan.tasks.synth.model import export_discriminator
    from medgan.train import TrainConfig, Trainer

    Trainer(TrainConfig.from_dict(values), run_dir, progress=False).fit()
    if keep_discriminator:
        export_discriminator(run_dir)
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    return run_dir


def _loop(steps: int, batch: int, seed: int, device: str) -> dict[str, Any]:
    return {"steps": steps, "batch_size": batch, "seed": seed, "device": device, "log_every": max(1, steps // 20),
            "sample_every": steps, "checkpoint_every": steps, "n_samples": 16}


def train_gan(config: AugmentEvalConfig, data_file: Path, n_images: int, run_dir: Path) -> Path:
    """A class-conditional GAN on one setting's real images (medgan's recipe)."""
    steps = config.gan_steps
    values = {"task": "synth", "data": {"source": str(data_file), "options": {"size": config.options.size}, "holdout": 0.0,
                                        "balance_classes": True},
              "model": {"name": "dcgan", "net": {"width": config.gan_width, "num_classes": -1}},
              "loop": _loop(steps, min(config.batch_size, n_images), 0, config.device),
              # transitional conditioning, shortened for short runs
              "synth": {"condition_start": min(500, steps // 4), "condition_ramp": min(1000, steps // 2)}}
    return _train(values, run_dir, keep_discriminator=config.select == "discriminator")


def train_classifier(config: AugmentEvalConfig, data_file: Path, n_images: int, classical: bool, seed: int, run_dir: Path) -> Path:
    values = {"task": "classify", "data": {"source": str(data_file), "options": {"size": config.options.size}, "holdout": 0.0},
              "model": {"net": {"width": config.classifier_width}},
              "loop": _loop(config.classifier_steps, min(config.batch_size, n_images), seed, config.device),
              "classify": {"augmentation": "classical" if classical else "none"}}
    return _train(values, run_dir)


def select_synthetic(config: AugmentEvalConfig, gan: Path, pool: ImageSet, n_synthetic: int, seed: int,
                     scorer: Path | None) -> tuple[ImageSet, dict[str, Any]]:
    """The selected arm's synthetic images: as many per class as the plain draw has, the
    best-scoring of ``1 / select_keep`` times as many (``scorer``: the classifier run of
    confidence selection). Returns the images and what was drawn, scored and kept (the
    arrays under ``"arrays"``, for the picture)."""
    from medgan.tasks.classify.model import classifier_model
    from medgan.tasks.classify.select import (confidence_scores, discriminator_scores, over_generate, select_per_class,
                                              selection_summary)
    from medgan.tasks.synth.generate import sample
    from medgan.tasks.synth.model import load_discriminator

    k = len(pool.class_names)
    counts = np.bincount(balanced_labels(n_synthetic, k), minlength=k)  # what the unselected arms draw per class
    wanted = np.repeat(np.arange(k), over_generate(counts, config.select_keep))
    images, labels, _, _ = sample(gan, labels=wanted, seed=1000 + seed)  # at keep 1: the unselected arms' very images
    if config.select == "confidence":
        scores = confidence_scores(classifier_model(scorer), images, labels)
        source = scorer
    else:
        D, d_info = load_discriminator(gan)
        scores = discriminator_scores(D, IntensityMap(**d_info["intensity"]), images, labels)
        source = gan / "discriminator"
    kept = select_per_class(scores, labels, counts)
    record = {"method": config.select, "keep": config.select_keep, "score": SCORES[config.select], "scorer": source,
              "classes": selection_summary(scores, labels, kept, list(pool.class_names)),
              "arrays": {"images": images, "labels": labels, "scores": scores, "kept": kept}}
    return with_images(pool, images[kept], labels[kept], "selected"), record


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation (over seeds) of each metric."""
    out: dict[str, dict[str, float]] = {"mean": {}, "std": {}}
    for name in METRICS:
        values = np.array([r["metrics"][name] for r in runs], dtype=np.float64)
        out["mean"][name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        out["std"][name] = float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")
    return out


def run_augment_eval(config: AugmentEvalConfig, out: str | Path, progress: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Run the whole grid into ``out`` and return the results (also ``out/results.json``).

    Raises:
        MedganError: unlabelled data, classes that differ between training and test data,
            too few patients to hold some out, an output folder that already holds data.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from medgan.tasks.classify.evaluate import classifier_scores
    from medgan.tasks.classify.model import classifier_model
    from medgan.tasks.synth.generate import sample

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MedganError("output folder already holds data", path=out, hint="pass --overwrite or choose another folder")
    pool, test = split_train_test(config)
    if overwrite and out.exists():
        import shutil

        for sub in ("data", "runs"):
            shutil.rmtree(out / sub, ignore_errors=True)
        (out / "selection.png").unlink(missing_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    test.save_npz(out / "data" / "test.npz")
    k = len(pool.class_names)
    test_classes = {name: int((test.labels == i).sum()) for i, name in enumerate(pool.class_names)}
    test_name = config.test_source or f"held-out patients ({config.test_fraction:.0%})"
    runs_per_seed = len(config.conditions) + config.trains_scorer
    per_setting = (config.gan_steps if config.uses_synthetic else 0) + runs_per_seed * len(config.seeds) * config.classifier_steps
    rows: list[dict[str, Any]] = []
    gans: dict[str, Any] = {}
    selections: list[dict[str, Any]] = []
    pictures: list[dict[str, Any]] = []  # the first seed's selection of each setting
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"), TimeElapsedColumn(),
                  TextColumn("ETA"), TimeRemainingColumn(), disable=not progress, transient=False) as bar:
        task = bar.add_task("augment-eval", total=per_setting * len(config.fractions))
        for fraction in config.fractions:
            tag = f"f{fraction:g}"
            real = stratified_subset(pool, fraction, config.split_seed)
            real_file = real.save_npz(out / "data" / f"{tag}-real.npz")
            n_real, n_synthetic = len(real), int(round(config.synthetic_ratio * len(real)))
            gan = None
            if config.uses_synthetic:
                bar.update(task, description=f"{tag}: GAN on {n_real} images")
                tick = time.perf_counter()
                gan = train_gan(config, real_file, n_real, out / "runs" / f"{tag}-gan")
                gans[tag] = {"run": str(gan.relative_to(out)), "n_images": n_real, "steps": config.gan_steps,
                             "seconds": time.perf_counter() - tick}
                bar.advance(task, config.gan_steps)
            for seed in config.seeds:
                synthetic = {}
                if gan is not None and any(CONDITIONS[c][2] == "synthetic" for c in config.conditions):
                    # class-balanced synthetic images, a fresh draw per seed
                    images, labels, _, _ = sample(gan, labels=balanced_labels(n_synthetic, k), seed=1000 + seed)
                    synthetic["synthetic"] = with_images(pool, images, labels, "synthetic")
                classical_run = None
                # the selected conditions last: confidence selection reuses the classical arm's classifier
                for condition in sorted(config.conditions, key=lambda c: CONDITIONS[c][2] == "selected"):
                    use_real, classical, kind = CONDITIONS[condition]
                    if kind == "selected" and kind not in synthetic:
                        scorer = classical_run
                        if config.select == "confidence" and scorer is None:  # the classical arm, trained for the scores alone
                            bar.update(task, description=f"{tag}: scorer (classical), seed {seed}")
                            scorer = train_classifier(config, real_file, n_real, True, seed, out / "runs" / f"{tag}-scorer-s{seed}")
                            bar.advance(task, config.classifier_steps)
                        bar.update(task, description=f"{tag}: selecting synthetic images ({config.select}), seed {seed}")
                        synthetic["selected"], record = select_synthetic(config, gan, pool, n_synthetic, seed, scorer)
                        arrays = record.pop("arrays")
                        selections.append({"fraction": fraction, "seed": seed, **record, "scorer": str(record["scorer"].relative_to(out))})
                        if seed == config.seeds[0]:
                            pictures.append({"title": f"{fraction:.0%} s{seed}", "class_names": list(pool.class_names), **arrays})
                    parts = ([real] if use_real else []) + ([synthetic[kind]] if kind else [])
                    train = parts[0] if len(parts) == 1 else with_images(pool, np.concatenate([p.images for p in parts]),
                                                                        np.concatenate([p.labels for p in parts]), "mixed")
                    name = f"{tag}-{condition}-s{seed}"
                    data_file = out / "data" / f"{tag}-{'real+' if use_real else ''}{kind}-s{seed}.npz" if kind else real_file
                    if not data_file.exists():  # with and without classical augmentation: the same images
                        train.save_npz(data_file)
                    bar.update(task, description=f"{tag}: {condition}, seed {seed}")
                    tick = time.perf_counter()
                    run = train_classifier(config, data_file, len(train), classical, seed, out / "runs" / name)
                    figures = classifier_scores(classifier_model(run), test)
                    append_jsonl(run / "metrics.jsonl", {"kind": "evaluate", "task": "classify", "time": utc_now(), "step": config.classifier_steps,
                                                         "n_test": len(test), "test_classes": test_classes, "metrics": figures,
                                                         "settings": {"test": test_name}})
                    rows.append({"fraction": fraction, "condition": condition, "seed": seed, "n_real": n_real if use_real else 0,
                                 "n_synthetic": n_synthetic if kind else 0, "metrics": figures,
                                 "seconds": time.perf_counter() - tick, "run": str(run.relative_to(out))})
                    if condition == "classical":
                        classical_run = run
                    bar.advance(task, config.classifier_steps)
    table = []
    for fraction in config.fractions:
        for condition in config.conditions:
            runs = [r for r in rows if r["fraction"] == fraction and r["condition"] == condition]
            table.append({"fraction": fraction, "condition": condition, "n_real": runs[0]["n_real"], "n_synthetic": runs[0]["n_synthetic"],
                          "seeds": len(runs), **summarise(runs)})
    values = asdict(config)
    values["options"] = asdict(config.options)
    results = {"config": values, "classes": list(pool.class_names), "n_pool": len(pool), "n_test": len(test),
               "test_classes": test_classes, "test": test_name,
               "gans": gans, "table": table, "runs": rows, "selection": selections, "seconds": time.perf_counter() - started}
    if pictures:
        from medgan.tasks.classify.select import save_selection_grid

        save_selection_grid(out / "selection.png", pictures, pool.value_range)
    with atomic_path(out / "results.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    with atomic_path(out / "results.md", overwrite=True) as tmp:
        tmp.write_text(markdown_table(results) + "\n")
    plot_results(results, out / "results.png")
    return results


# ----------------------------------------------------------------------------- table and plot


def condition_label(condition: str, config: dict[str, Any]) -> str:
    """A condition as the table and the plot name it: a selected one with its method and share kept."""
    if CONDITIONS.get(condition, (0, 0, None))[2] == "selected":
        return f"{condition} ({config.get('select')}, keep {config.get('select_keep', 1):.0%})"
    return condition


def markdown_table(results: dict[str, Any]) -> str:
    """The table: one row per (fraction, condition), mean ± std over seeds; with a selection,
    a second table: per setting and class, images kept of those generated and the mean score
    of the kept and the rejected ones (means over seeds)."""
    lines = ["| real labels | condition | real + synthetic images | accuracy | balanced accuracy | AUROC | ECE |",
             "|---|---|---|---|---|---|---|"]
    for row in results["table"]:
        cells = [f"{row['mean'][m]:.3f} ± {row['std'][m]:.3f}" for m in METRICS]
        lines.append(f"| {row['fraction']:.0%} | {condition_label(row['condition'], results['config'])} | "
                     f"{row['n_real']} + {row['n_synthetic']} | " + " | ".join(cells) + " |")
    selection = results.get("selection") or []
    if selection:
        lines += ["", f"Selection ({selection[0]['method']}: {selection[0]['score']}; mean over {len(results['config']['seeds'])} seeds; "
                      "pictures of the first seed in selection.png)", "",
                  "| real labels | class | kept / generated | mean score kept | mean score rejected |", "|---|---|---|---|---|"]
        for fraction in dict.fromkeys(r["fraction"] for r in selection):
            records = [r for r in selection if r["fraction"] == fraction]
            for name in records[0]["classes"]:
                parts = [r["classes"][name] for r in records]

                def mean(key, parts=parts):
                    values = [p[key] for p in parts if p[key] is not None]
                    return f"{np.mean(values):.3f}" if values else "-"

                lines.append(f"| {fraction:.0%} | {name} | {parts[0]['kept']} / {parts[0]['generated']} | "
                             f"{mean('mean_score_kept')} | {mean('mean_score_rejected')} |")
    return "\n".join(lines)


def plot_results(results: dict[str, Any], path: Path) -> Path:
    """Balanced accuracy and AUROC against the share of real labels, one line per condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    conditions = list(dict.fromkeys(r["condition"] for r in results["table"]))
    for ax, metric, title in ((axes[0], "balanced_accuracy", "balanced accuracy"), (axes[1], "auroc", "AUROC")):
        for condition in conditions:
            rows = [r for r in results["table"] if r["condition"] == condition]
            x = [100 * r["fraction"] for r in rows]
            ax.errorbar(x, [r["mean"][metric] for r in rows], yerr=[r["std"][metric] for r in rows], marker="o", capsize=3,
                        label=condition_label(condition, results["config"]))
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks([100 * f for f in results["config"]["fractions"]], [f"{f:.0%}" for f in results["config"]["fractions"]])
        ax.set_xlabel("real training labels used")
        ax.set_title(f"{title} on {results['n_test']} real test images")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"does synthetic data help? ({results['config']['source']}, mean ± std over {len(results['config']['seeds'])} seeds)")
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
