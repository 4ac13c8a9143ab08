"""A trained enhancement generator: its typed record and how it is built and loaded (what
inference needs, apart from training).

The training recipe (:mod:`.recipe`), the evaluation (:mod:`.evaluate`) and ``medgan enhance``
(:mod:`.inference`) import this module; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError

__all__ = ["EnhancementModel", "build_network", "from_pretrained", "load_model"]


@dataclass
class EnhancementModel:
    """A trained enhancement generator and what applying it needs (see :func:`load_model`
    and :mod:`medgan.tasks.enhance.inference`).

    Attributes:
        generator: G in eval mode: ``(B, C, h, w)`` in [-1, 1] -> ``(B, C, h*scale, w*scale)``.
        intensity: the training range (data units) that [-1, 1] stands for.
        scale: upsampling factor (1 for denoising).
        multiple: input sides must be multiples of this (padded otherwise).
        degradation: what it was trained to undo (``Degradation`` fields).
        adversarial: trained with the adversary (``False``: the L1-only baseline).
        info: the export's ``config.json``.
    """

    generator: nn.Module
    intensity: IntensityMap
    scale: int
    multiple: int
    degradation: dict[str, Any]
    adversarial: bool
    info: dict[str, Any]

    @property
    def label(self) -> str:
        """``"<model> step <n>"``, written into derived DICOM headers."""
        name = str(self.info.get("model", "unknown"))
        return f"{name} step {self.info['step']}" if self.info.get("step") is not None else name

    @property
    def removes_artefacts(self) -> bool:
        """Trained to undo an artefact (undersampled or motion MRI, sparse-view CT), not noise or resolution."""
        from medgan.tasks.enhance.degrade import ARTEFACTS

        return self.degradation.get("kind") in ARTEFACTS

    @property
    def description(self) -> str:
        """What was done to an image, for a derived series' description."""
        from medgan.tasks.enhance.degrade import Degradation

        text = "Artefacts reduced" if self.removes_artefacts else "Denoised" if self.scale == 1 else f"Super-resolved x{self.scale}"
        if self.degradation:
            try:  # the kind's own parameters, in the command-line form
                undone = Degradation.from_dict(self.degradation).spec()
            except MedganError:  # a config written by hand or by another version
                undone = ", ".join(f"{k}={v}" for k, v in self.degradation.items())
            text += f" (trained to undo {undone})"
        return text


def build_network(name: str, info: dict[str, Any]) -> nn.Module:
    """The untrained exported network ``name`` (``generator`` or ``discriminator``) from its
    ``config.json``, by the model registry (``info["model"]``, ``info["net"]``)."""
    from medgan.nets import build_network as build

    if name not in ("generator", "discriminator"):
        raise MedganError(f"the 'enhance' task cannot rebuild a network named {name!r}")
    net = build(info["model"], info["net"], name)
    if name == "generator" and info.get("data_consistency"):
        from medgan.nets.kspace import DataConsistent

        net = DataConsistent(net)
    return net


def from_pretrained(exported: dict[str, tuple[nn.Module, dict[str, Any]]]) -> EnhancementModel:
    """The record of the loaded networks (``name -> (module, info)``), its config checked."""
    if "generator" not in exported:
        raise MedganError("the run exported no generator", hint="give the run folder of medgan train enhance")
    G, info = exported["generator"]
    if info.get("task") != "enhance":
        raise MedganError(f"this model was trained for the task {info.get('task')!r}, not 'enhance'",
                          hint="give the run folder of a model trained with the enhance task")
    if not isinstance(info.get("intensity"), dict):
        raise MedganError("the model's config has no 'intensity' range", hint="re-export the model with a current medgan")
    scale, multiple = info.get("scale", 1), info.get("multiple", 1)
    if not isinstance(scale, int) or scale < 1:
        raise MedganError(f"the model's scale {scale!r} is not a positive integer", hint="check the model's config.json")
    if not isinstance(multiple, int) or multiple < 1:
        raise MedganError(f"the model's size multiple {multiple!r} is not a positive integer", hint="check the model's config.json")
    return EnhancementModel(G, IntensityMap(**info["intensity"]), scale, multiple, dict(info.get("degradation") or {}),
                            bool(info.get("adversarial", True)), info)


def load_model(run: str | Path, device: str = "cpu") -> EnhancementModel:
    """The :class:`EnhancementModel` of a run folder, ready to apply; one clear error for a
    run of another task."""
    from medgan.tasks import load_model_of

    return load_model_of(EnhancementModel, run, device, "medgan train enhance")
