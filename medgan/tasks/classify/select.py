"""Selective synthetic augmentation: draw more synthetic images than needed, score each, and
keep the best of every class.

``medgan augment-eval --select METHOD --select-keep F`` draws ``ceil(n_k / F)`` images of
each class ``k`` (``n_k``: what the unselected synthetic arm draws of it), scores them, and
keeps the ``n_k`` highest-scoring ones, so the selected arm trains on as many synthetic
images, in the same class balance, as the unselected one. The scores:

- ``confidence``: the probability a classifier trained on the real images alone (the
  ``classical`` arm: the same recipe and budget) gives the image's conditioning class;
- ``discriminator``: the logit of the synthesis run's discriminator for the image with its
  class label (a class-conditional projection D), exported from the run's last training
  state (:func:`medgan.tasks.synth.model.export_discriminator`).

Plain functions of arrays, so each step can be tested on hand-made scores.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.data.intensity import IntensityMap

__all__ = ["SCORES", "SELECT_METHODS", "confidence_scores", "discriminator_scores", "over_generate", "save_selection_grid",
           "select_per_class", "selection_summary"]

SELECT_METHODS = ("none", "confidence", "discriminator")
#: what each method's score is, for the record
SCORES = {"confidence": "classifier probability of the conditioning class", "discriminator": "discriminator logit with the class label"}


def over_generate(counts: np.ndarray, keep: float) -> np.ndarray:
    """Images to draw per class so that keeping ``counts[k]`` of class ``k`` keeps about the
    fraction ``keep`` of it: ``ceil(counts / keep)`` (``counts`` itself at ``keep == 1``)."""
    # rounded first, so 3 / 0.3 = 10.000000000000002 draws 10, not 11
    return np.array([math.ceil(round(int(c) / keep, 9)) for c in counts], dtype=np.int64)


def select_per_class(scores: np.ndarray, labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Indices of the ``counts[k]`` highest-scoring images of each class ``k`` (ties: the
    earlier image), in ascending order.

    Raises:
        ValueError: a class with fewer images than it should keep, or scores and labels of
            different lengths.
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    if scores.shape != labels.shape:
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    kept = []
    for k, count in enumerate(counts):
        members = np.flatnonzero(labels == k)
        if count > len(members):
            raise ValueError(f"class {k} has {len(members)} images, fewer than the {count} to keep")
        order = np.argsort(-scores[members], kind="stable")  # best first; equal scores keep their order
        kept.append(members[order[: int(count)]])
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


def confidence_scores(classifier, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The probability ``classifier`` (a :class:`~medgan.tasks.classify.model.ClassifierModel`
    or anything with its ``predict_proba``) gives each image's own class ``labels[i]``;
    ``images`` in the data's units."""
    probs = classifier.predict_proba(images)  # (N, K)
    return probs[np.arange(len(labels)), np.asarray(labels)].astype(np.float64)


@torch.no_grad()
def discriminator_scores(discriminator: nn.Module, intensity: IntensityMap, images: np.ndarray, labels: np.ndarray | None,
                         batch_size: int = 256) -> np.ndarray:
    """The logit of ``discriminator`` (eval mode) for each image, with its class label when
    ``labels`` is given (a class-conditional D); ``images`` ``(N, H, W)`` or ``(N, C, H, W)``
    in the data's units, mapped to [-1, 1] by ``intensity`` (the synthesis run's)."""
    x = intensity.forward(images)
    x = x[:, None] if x.ndim == 3 else x  # (N, C, H, W) in [-1, 1]
    device = next(discriminator.parameters()).device
    out = []
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(x[start : start + batch_size]).to(device)
        kwargs = {} if labels is None else {"labels": torch.from_numpy(np.asarray(labels[start : start + batch_size], np.int64)).to(device)}
        out.append(discriminator(batch, **kwargs).float().reshape(len(batch)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def selection_summary(scores: np.ndarray, labels: np.ndarray, kept: np.ndarray, class_names: list[str]) -> dict[str, dict[str, Any]]:
    """Per class: images generated and kept, the share kept, and the mean score of the kept
    and of the rejected images (``None`` when none was rejected)."""
    chosen = np.zeros(len(labels), bool)
    chosen[kept] = True
    out = {}
    for k, name in enumerate(class_names):
        member = labels == k
        keep, reject = scores[member & chosen], scores[member & ~chosen]
        out[name] = {"generated": int(member.sum()), "kept": len(keep), "kept_fraction": len(keep) / max(1, int(member.sum())),
                     "mean_score_kept": float(keep.mean()) if len(keep) else None,
                     "mean_score_rejected": float(reject.mean()) if len(reject) else None}
    return out


def save_selection_grid(path: str | Path, blocks: list[dict[str, Any]], value_range: tuple[float, float] | None,
                        columns: int = 8) -> Path:
    """``selection.png``: for each block (a setting) and class, a row of kept images over a
    row of rejected ones, each ranked best first and spread evenly over its ranks, each tile
    captioned with its score; the first tile of a row names the setting, class and row.

    Args:
        blocks: ``{"title", "images", "labels", "scores", "kept", "class_names"}`` per setting
            (``images`` in the data's units, ``kept`` indices as :func:`select_per_class` gives).
        value_range: data values shown as black and white.
        columns: images per row (besides the label tile).
    """
    from medgan.report.grid import save_grid

    tiles, captions = [], []
    for block in blocks:
        images, labels, scores = np.asarray(block["images"]), np.asarray(block["labels"]), np.asarray(block["scores"])
        chosen = np.zeros(len(labels), bool)
        chosen[block["kept"]] = True
        blank = np.full(images.shape[1:], value_range[0] if value_range else float(images.min()), np.float32)
        for k, name in enumerate(block["class_names"]):
            for row, members in (("kept", np.flatnonzero((labels == k) & chosen)), ("rejected", np.flatnonzero((labels == k) & ~chosen))):
                ranked = members[np.argsort(-scores[members], kind="stable")]
                shown = ranked[np.unique(np.linspace(0, len(ranked) - 1, min(columns, len(ranked))).round().astype(int))] if len(ranked) else ranked
                tiles += [blank] + [images[i] for i in shown] + [blank] * (columns - len(shown))
                captions += [f"{block['title']}\n{str(name)[:10]}\n{row}"] + [f"{scores[i]:.3g}" for i in shown] + [""] * (columns - len(shown))
    save_grid(path, np.stack(tiles), overwrite=True, value_range=value_range, ncol=columns + 1, captions=captions)
    return Path(path)
