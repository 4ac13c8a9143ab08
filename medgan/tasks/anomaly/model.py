"""A trained anomaly detector: its typed record, how it is built and loaded with its
calibration, and how it scores images (what inference needs, apart from training).

The training recipe (:mod:`.recipe`), the evaluation and calibration (:mod:`.evaluate`), the
report and ``medgan detect`` import this module; it imports none of them.

Every network is in eval mode at scoring (batch norm with its running statistics), so one
image's score never depends on the others in its batch; no score is rescaled over the
images scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.tasks.anomaly.calibration import Calibration
from medgan.tasks.anomaly.methods import METHODS, method_class

__all__ = ["CALIBRATION", "AnomalyModel", "body", "body_mask", "build_network", "from_pretrained", "gaussian_blur", "load_model",
           "map_peak", "read_calibration", "score_images", "score_set"]

#: the run's calibration, written after training (:func:`medgan.tasks.anomaly.evaluate.calibrate_run`).
CALIBRATION = "calibration.json"


@dataclass
class AnomalyModel:
    """A trained anomaly detector (see :func:`load_model`).

    Attributes:
        method: its ``--method`` name (:data:`~medgan.tasks.anomaly.methods.METHODS`).
        nets: its exported networks in eval mode.
        intensity: the training data's units that [-1, 1] stands for.
        kappa: f-AnoGAN's feature weight in the score.
        info: the export's ``config.json``.
        calibration: level (``"image"``, ``"volume"``) -> its
            :class:`~medgan.tasks.anomaly.calibration.Calibration` (empty: uncalibrated).
        pixel_threshold: map value above which a body pixel is called anomalous (``None``: not calibrated).
    """

    method: str
    nets: dict[str, nn.Module]
    intensity: IntensityMap
    kappa: float
    info: dict[str, Any]
    calibration: dict[str, Any] = field(default_factory=dict)
    pixel_threshold: float | None = None

    @property
    def label(self) -> str:
        return f"medgan {self.method} step {self.info.get('step')}"


# ---------------------------------------------------------------------------- build and load


def build_network(name: str, info: dict[str, Any]) -> nn.Module:
    """The untrained network ``name`` of an exported ``config.json`` (its method and ``net``)."""
    return method_class(str(info.get("method"))).build(name, info["net"])


def from_pretrained(exported: dict[str, tuple[nn.Module, dict[str, Any]]], run: str | Path | None = None) -> AnomalyModel:
    """The record of the loaded networks (``name -> (module, info)``), with the calibration of
    the run folder ``run`` when given (:func:`read_calibration`)."""
    some = next(iter(exported.values()))[1]
    method = some.get("method")
    if method not in METHODS:
        raise MedganError(f"the exported networks name no known method ({method!r})", hint="give the run folder of medgan train anomaly")
    needed = method_class(method).exported
    missing = set(needed) - set(exported)
    if missing:
        raise MedganError(f"the run exported no {', '.join(sorted(missing))}", hint="give the whole run folder")
    nets = {name: exported[name][0].eval() for name in needed}
    model = AnomalyModel(method, nets, IntensityMap(**some["intensity"]), float(some["anomaly"].get("kappa", 1.0)), some)
    return model if run is None else read_calibration(model, run)


def read_calibration(model: AnomalyModel, run: str | Path) -> AnomalyModel:
    """``model`` with the calibration of ``RUN/calibration.json`` (left uncalibrated without one)."""
    file = Path(run) / CALIBRATION
    if file.is_file():
        record = json.loads(file.read_text())
        model.calibration = {level: Calibration.from_dict(c) for level, c in record.get("levels", {}).items() if "scores" in c}
        pixel = record.get("levels", {}).get("pixel")
        model.pixel_threshold = float(pixel["threshold"]) if pixel and "threshold" in pixel else None
    return model


def load_model(run: str | Path, device: str = "cpu") -> AnomalyModel:
    """The :class:`AnomalyModel` of a run folder, ready to score: its networks and its
    calibration (none when uncalibrated); one clear error for a run of another task."""
    from medgan.tasks import load_model_of

    return load_model_of(AnomalyModel, run, device, "medgan train anomaly")  # the generic loader reads the calibration


# ---------------------------------------------------------------------------- scoring


@torch.no_grad()
def score_images(model: AnomalyModel, x: torch.Tensor, map_sigma: float = 0.0,
                 image_score: str = "method") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores, pixel maps and reconstructions of images already in [-1, 1].

    Args:
        x: ``(B, C, S, S)`` images at the model's size, in [-1, 1].
        map_sigma: Gaussian smoothing of the maps, in pixels.
        image_score: ``"method"`` (the method's own score, see its class) or ``"map-max"``
            (the largest value of the smoothed map inside the body).

    Returns:
        ``(scores (B,), maps (B, S, S), reconstructions (B, C, S, S))``; each image's values
        depend on that image alone.
    """
    for net in model.nets.values():
        net.eval()
    scores, rec = method_class(model.method).score(model, x)
    maps = (x - rec).abs().mean(1)  # (B, S, S)
    if map_sigma > 0:
        maps = gaussian_blur(maps, map_sigma)
    if image_score == "map-max":
        scores = map_peak(maps, body(x))
    return scores, maps, rec


def score_set(model: AnomalyModel, images: np.ndarray, batch_size: int = 32, map_sigma: float | None = None,
              image_score: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (N,), maps (N, S, S))`` of images in the data's units at the model's size.

    ``map_sigma`` and ``image_score`` default to the run's. Batches only bound memory: every
    network is in eval mode, so a score does not depend on which other images share its batch."""
    options = model.info["anomaly"]
    sigma = float(options.get("map_sigma", 0.0)) if map_sigma is None else map_sigma
    how = str(options.get("image_score", "method")) if image_score is None else image_score
    x = model.intensity.forward(np.asarray(images, np.float32))
    x = x[:, None] if x.ndim == 3 else x
    scores, maps = [], []
    for start in range(0, len(x), batch_size):
        s, m, _ = score_images(model, torch.from_numpy(np.ascontiguousarray(x[start : start + batch_size])), sigma, how)
        scores.append(s.numpy())
        maps.append(m.numpy())
    return np.concatenate(scores).astype(np.float64), np.concatenate(maps)


def body(x: torch.Tensor) -> torch.Tensor:
    """``(B, S, S)`` pixels inside the body (or brain) of images in [-1, 1]: above the lowest
    5% of the training range (air, background)."""
    return x.mean(1) > -0.9


def body_mask(model: AnomalyModel, images: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` :func:`body` of images in the data's units: where pixel thresholds are
    calibrated and applied."""
    x = model.intensity.forward(np.asarray(images, np.float32))
    return body(torch.from_numpy(x if x.ndim == 4 else x[:, None])).numpy()


def map_peak(maps: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the largest map value inside ``inside`` (the whole map where it is empty)."""
    inside = inside | ~inside.flatten(1).any(1)[:, None, None]
    return maps.masked_fill(~inside, float("-inf")).flatten(1).max(1).values


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """``(B, H, W)`` maps smoothed by a Gaussian of ``sigma`` pixels (separable, reflected edges)."""
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    out = maps[:, None]
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return out[:, 0]
