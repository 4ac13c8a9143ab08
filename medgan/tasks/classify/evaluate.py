"""Scoring a classifier on real images: accuracy, balanced accuracy, AUROC and calibration (ECE),
the registered classification metrics (:data:`medgan.metrics.registry.CLASSIFICATION`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medgan.data.imageset import ImageSet
from medgan.errors import MedganError
from medgan.io.records import append_jsonl, utc_now
from medgan.metrics.registry import CLASSIFICATION, ClassificationInputs
from medgan.runs import run_holdout
from medgan.tasks.classify.model import classifier_model

__all__ = ["classifier_scores", "evaluate_classifier_run"]


def classifier_scores(model, test: ImageSet, metrics: list[str] | None = None) -> dict[str, float]:
    """The model's metrics on a labelled set of real images (their class names must match):
    the registered classification metrics named in ``metrics`` (default all: accuracy,
    balanced accuracy, AUROC, ECE)."""
    if test.labels is None:
        raise MedganError("the test images have no labels", hint="give a labelled source")
    if test.class_names is not None and list(test.class_names) != list(model.class_names):
        raise MedganError(f"the test classes {test.class_names} differ from the classifier's {model.class_names}",
                          hint="test on data labelled with the same classes, in the same order")
    chosen = CLASSIFICATION.check(metrics)
    return CLASSIFICATION.compute(ClassificationInputs(test.labels, model.predict_proba(test.images)), chosen)


def evaluate_classifier_run(run_dir: str | Path, metrics: list[str] | None = None) -> dict:
    """Score a classification run on its held-out patients with the registered classification
    metrics named in ``metrics`` (default all); appended to ``metrics.jsonl``."""
    CLASSIFICATION.check(metrics)  # an unknown name before any work
    run_dir = Path(run_dir)
    _, _, holdout = run_holdout(run_dir)
    model = classifier_model(run_dir)
    figures = classifier_scores(model, holdout, metrics)
    counts = np.bincount(holdout.labels, minlength=len(model.class_names))
    record = {"kind": "evaluate", "task": "classify", "time": utc_now(), "step": model.info.get("step"), "n_test": len(holdout),
              "test_classes": {name: int(c) for name, c in zip(model.class_names, counts)}, "metrics": figures,
              "settings": {"metrics": CLASSIFICATION.check(metrics), "ece_bins": 15, "auroc": "binary" if len(model.class_names) == 2 else "one-vs-rest, macro"}}
    append_jsonl(run_dir / "metrics.jsonl", record)
    return record
