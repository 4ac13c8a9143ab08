"""The classifier apart from its training: the typed record of an exported ResNet-18, how it
is rebuilt and loaded, and its class probabilities.

:mod:`.recipe` (training), :mod:`.evaluate` and :mod:`.augment_eval` import this module; it
imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.nets.classifier import ClassifierConfig, ResNetClassifier

__all__ = ["MODEL", "ClassifierModel", "build_classifier", "classifier_model", "from_exported"]

MODEL = "resnet18"


@dataclass
class ClassifierModel:
    """A trained classifier (see :func:`medgan.tasks.load_model`).

    Attributes:
        classifier: the network in eval mode: ``(B, C, H, W)`` in [-1, 1] -> logits.
        intensity: the training data's units that [-1, 1] stands for.
        class_names: name of each output.
        info: the export's ``config.json``.
    """

    classifier: nn.Module
    intensity: IntensityMap
    class_names: list[str]
    info: dict[str, Any]

    @torch.no_grad()
    def predict_proba(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities ``(N, K)`` of images in the data's units, ``(N, H, W)`` or
        ``(N, C, H, W)``; each image is scored alone (eval mode), whatever the batch."""
        x = self.intensity.forward(np.asarray(images, np.float32))
        x = x[:, None] if x.ndim == 3 else x
        device = next(self.classifier.parameters()).device
        out = [torch.softmax(self.classifier(torch.from_numpy(x[i : i + batch_size]).to(device)).float(), 1).cpu().numpy()
               for i in range(0, len(x), batch_size)]
        return np.concatenate(out)


def build_classifier(info: dict[str, Any]) -> nn.Module:
    """The untrained classifier of an exported ``config.json`` (its ``net`` section)."""
    return ResNetClassifier(ClassifierConfig(**info["net"]))


def from_exported(exported: dict[str, tuple[nn.Module, dict[str, Any]]]) -> ClassifierModel:
    """The record of a run's loaded networks (``name -> (module, config.json)``)."""
    if "classifier" not in exported:
        raise MedganError("the run exported no classifier", hint="give the run folder of medgan train classify")
    net, info = exported["classifier"]
    return ClassifierModel(net, IntensityMap(**info["intensity"]), list(info["class_names"]), info)


def classifier_model(run: str | Path, device: str = "cpu") -> ClassifierModel:
    """The :class:`ClassifierModel` of a run (one clear error for a run of another task)."""
    from medgan.tasks import load_model_of

    return load_model_of(ClassifierModel, run, device, "medgan train classify")
