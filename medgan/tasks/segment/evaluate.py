"""Evaluation of a segmentation run on its held-out volumes.

Each held-out group (a patient's volume, or one embedded head) is segmented slice by slice
and scored per foreground class with the registered segmentation metrics
(:data:`medgan.metrics.registry.SEGMENTATION`: ``overlap``, ``surface``, ``nsd``, all by
default, or those of ``--metrics``), which follow the rules of
:func:`medgan.metrics.segmentation.slice_stack_metrics`: Dice and IoU over the whole volume,
HD95, ASD and normalised surface Dice (at 2) in the slices' planes (mm where the files give
pixel spacing, pixels otherwise). The run's figure for a class is the mean over volumes (nan
ignored: a volume where the class is absent from truth and prediction does not count). The
best and worst held-out slices (by their mean foreground Dice) are drawn to
``segmentation-best-worst.png`` for the report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medgan.data.imageset import ImageSet
from medgan.errors import MedganError
from medgan.io.records import append_jsonl, utc_now
from medgan.metrics.registry import SEGMENTATION, SegmentationInputs
from medgan.metrics.segmentation import dice
from medgan.runs import run_holdout
from medgan.tasks.segment.model import segmentation_model, to_indices
from medgan.tasks.segment.report import PICTURE, SCORES

__all__ = ["evaluate_segmentation_run", "segmentation_scores"]

NSD_TOLERANCE = 2.0  # mm where the files give pixel spacing, else pixels
#: What a volume's row holds per class: the scores and the slices where only one side has the class.
PER_CLASS = (*SCORES, "missed_slices", "extra_slices")


def segmentation_scores(model, test: ImageSet, predicted: np.ndarray | None = None, metrics: list[str] | None = None) -> dict:
    """The model's per-class and mean scores on labelled real images, per volume and overall.

    Args:
        model: a :class:`~medgan.tasks.segment.model.SegmentationModel`.
        test: images with masks (label values as the model's) and groups (volumes).
        predicted: the model's label maps of ``test`` if already computed.
        metrics: the :data:`~medgan.metrics.registry.SEGMENTATION` metrics to compute
            (``overlap``: Dice, IoU; ``surface``: HD95, ASD; ``nsd``); default all.

    Returns:
        ``{"metrics": {"dice": mean over classes, "dice_<class>": ..., "hd95_<class>": ...},
        "volumes": [{"group", "slices", "<score>_<class>" ...}], "slice_dice": (N,) mean
        foreground Dice of each slice, "predicted": (N, H, W) label values}``.

    Raises:
        MedganError: test images without masks, or an unknown metric name.
    """
    from medgan.tasks.segment.inference import segment_images

    chosen = SEGMENTATION.check(metrics)
    if test.masks is None:
        raise MedganError("the test images have no masks", hint="give a source with masks")
    truth = to_indices(test.masks, model.label_values, "the test masks")
    if predicted is None:
        predicted = segment_images(model, test.images)
    pred = to_indices(predicted, model.label_values, "the predictions")
    labels = list(range(1, len(model.class_names)))
    groups = test.groups if test.groups is not None else np.arange(len(test))
    volumes, scored = [], []
    for group in np.unique(groups):
        index = np.flatnonzero(groups == group)
        spacing = None if test.spacing is None else test.spacing[index]
        inputs = SegmentationInputs(pred[index], truth[index], spacing, labels, tolerance=NSD_TOLERANCE)
        figures = SEGMENTATION.compute(inputs, chosen)
        scored = [name for name in PER_CLASS if name in figures]
        row = {"group": int(group), "slices": int(len(index))}
        for k in labels:
            row.update({f"{name}_{model.class_names[k]}": figures[f"{name}_{k}"] for name in scored})
        volumes.append(row)
    figures: dict[str, float] = {}
    for name in (s for s in SCORES if s in scored):
        per_class = []
        for k in labels:
            values = np.array([v[f"{name}_{model.class_names[k]}"] for v in volumes], np.float64)
            mean = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            figures[f"{name}_{model.class_names[k]}"] = mean
            per_class.append(mean)
        kept = [v for v in per_class if np.isfinite(v)]
        figures[name] = float(np.mean(kept)) if kept else float("nan")
    slice_dice = np.array([np.nanmean([dice(pred[i] == k, truth[i] == k, nan_for_empty=True) for k in labels] or [np.nan]) for i in range(len(pred))])
    return {"metrics": figures, "volumes": volumes, "slice_dice": slice_dice, "predicted": predicted, "chosen": chosen}


def evaluate_segmentation_run(run_dir: str | Path, metrics: list[str] | None = None) -> dict:
    """Score a segmentation run on its held-out volumes with the registered segmentation
    metrics named in ``metrics`` (default all); appended to ``metrics.jsonl``."""
    from medgan.report.grid import save_grid

    SEGMENTATION.check(metrics)  # an unknown name before any work
    run_dir = Path(run_dir)
    _, _, holdout = run_holdout(run_dir, "volumes")
    if holdout.masks is not None and holdout.annotated is not None:  # a partly labelled hold-out: score its labelled slices
        if not holdout.annotated.any():
            raise MedganError("no held-out slice has a mask", path=run_dir, hint="hold out labelled volumes, or label some of their slices")
        holdout = holdout.subset(holdout.labelled_index())
    model = segmentation_model(run_dir)
    result = segmentation_scores(model, holdout, metrics=metrics)
    _draw_best_worst(run_dir / PICTURE, model, holdout, result["predicted"], result["slice_dice"], save_grid)
    record = {"kind": "evaluate", "task": "segment", "time": utc_now(), "step": model.info.get("step"), "n_test": len(holdout),
              "n_volumes": len(result["volumes"]), "class_names": model.class_names[1:],
              "distance_units": "mm" if holdout.spacing is not None else "pixels",
              "metrics": result["metrics"], "volumes": result["volumes"],
              "settings": {"overlap": "per volume (all its slices pooled); a class absent from truth and prediction is not scored",
                           "distances": "2D per slice, pooled per volume; HD95 = 95th percentile of both directions",
                           "nsd_tolerance": NSD_TOLERANCE, "metrics": result["chosen"],
                           "adversarial": bool(model.info.get("adversarial")), "labelled": model.info.get("labelled"),
                           "unlabelled": model.info.get("unlabelled")}}
    append_jsonl(run_dir / "metrics.jsonl", record)
    return record


def _draw_best_worst(path: Path, model, test: ImageSet, predicted: np.ndarray, slice_dice: np.ndarray, save_grid, k: int = 4) -> None:
    """Rows of (image | prediction | truth) for the ``k`` best and ``k`` worst held-out slices."""
    scored = np.flatnonzero(np.isfinite(slice_dice))
    if not len(scored):
        return
    order = scored[np.argsort(slice_dice[scored])]
    rows = list(order[::-1][:k]) + [i for i in order[:k] if i not in order[::-1][:k]]
    images, masks, captions = [], [], []
    truth = to_indices(test.masks, model.label_values, "the test masks")
    pred = to_indices(predicted, model.label_values, "the predictions")
    for rank, i in enumerate(rows):
        image = test.images[i] if test.images.ndim == 3 else test.images[i, 0]
        images += [image] * 3
        masks += [np.zeros_like(truth[i]), pred[i], truth[i]]
        captions += [f"{'best' if rank < k else 'worst'} {slice_dice[i]:.2f}", "prediction", "truth"]
    low, high = model.intensity.low, model.intensity.high
    save_grid(path, np.stack(images), value_range=(low, high), ncol=3, masks=np.stack(masks), captions=captions, scale=4, overwrite=True)
