"""The segmentation model apart from its training: the typed record of an exported U-Net,
how it is rebuilt and loaded, and the label-map helpers inference and evaluation share.

:mod:`.recipe` (training), :mod:`.evaluate`, :mod:`.report` and the ``medgan segment``
command import this module; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from medgan.data.intensity import IntensityMap
from medgan.data.labels import to_indices  # noqa: F401 (re-exported: inference and evaluation read it here)
from medgan.errors import MedganError
from medgan.nets.segmentor import SegmentorConfig, UNetSegmentor

__all__ = ["MODEL", "SegmentationModel", "build_segmentor", "from_exported", "segmentation_model", "to_indices"]
MODEL = "unet"


@dataclass
class SegmentationModel:
    """A trained segmentor (see :func:`medgan.tasks.load_model` and :mod:`medgan.tasks.segment.inference`).

    Attributes:
        segmentor: the U-Net in eval mode: ``(B, C, H, W)`` in [-1, 1] -> logits ``(B, K, H, W)``.
        intensity: the training data's units that [-1, 1] stands for.
        class_names: name of each class (index 0: background).
        label_values: the label-map value of each class.
        multiple: input sides must be multiples of this (padded otherwise).
        info: the export's ``config.json``.
    """

    segmentor: nn.Module
    intensity: IntensityMap
    class_names: list[str]
    label_values: list[int]
    multiple: int
    info: dict[str, Any]

    @property
    def label(self) -> str:
        """``"<model> step <n>"`` for output headers."""
        return f"medgan {MODEL} step {self.info.get('step')}"


def build_segmentor(info: dict[str, Any]) -> nn.Module:
    """The untrained U-Net of an exported ``config.json`` (its ``net`` section)."""
    return UNetSegmentor(SegmentorConfig(**info["net"]))


def from_exported(exported: dict[str, tuple[nn.Module, dict[str, Any]]]) -> SegmentationModel:
    """The record of a run's loaded networks (``name -> (module, config.json)``)."""
    # A mean-teacher run's teacher (the segmentor's moving average) beat its own segmentor in 8
    # of 9 runs, by 0.75 Dice on average (benchmarks/segment_vs_unet.py: 8 and 32 labelled brain
    # slices, a scan labelled every 17th slice), so the run's folder gives the teacher;
    # RUN/segmentor gives the segmentor alone.
    name = "teacher" if "teacher" in exported else "segmentor"
    if name not in exported:
        raise MedganError("the run exported no segmentor", hint="give the run folder of medgan train segment")
    net, info = exported[name]
    names, values = info.get("class_names"), info.get("label_values")
    if not isinstance(names, list) or not isinstance(values, list) or len(names) != len(values):
        raise MedganError("the model's config.json lacks matching class_names and label_values", hint="re-export it with a current medgan")
    return SegmentationModel(net, IntensityMap(**info["intensity"]), list(names), [int(v) for v in values],
                             int(info.get("multiple", 16)), info)


def segmentation_model(run: str | Path, device: str = "cpu") -> SegmentationModel:
    """The :class:`SegmentationModel` of a run (one clear error for a run of another task)."""
    from medgan.tasks import load_model_of

    return load_model_of(SegmentationModel, run, device, "medgan train segment")
