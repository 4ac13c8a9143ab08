"""A trained anomaly detector: its typed record, how it is built and loaded with its
calibration, and how it scores images (what inference needs, apart from training).

The training recipe (:mod:`.recipe`), the evaluation and calibration (:mod:`.evaluate`), the
report and ``medgan detect`` import this module; it imports none of them.

Every network is in eval mode at scoring (batch norm with its running statistics), so one
image's score never depends on the others in its batch; no score is rescaled over the
images scored.

A map is the residual ``|x - x^|`` at the model's square size, optionally made a z-score
against the residual's per-pixel mean and spread on the calibration normals
(:class:`ResidualNormalisation`, ``RUN/normalisation.safetensors``, loaded with the
calibration), median filtered, smoothed and cut to the eroded body (:func:`finish_maps`).
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

__all__ = ["CALIBRATION", "NORMALISATION", "AnomalyModel", "ResidualNormalisation", "body", "body_mask", "build_network",
           "finish_maps", "fit_normalisation", "from_pretrained", "gaussian_blur", "load_model", "map_peak", "maps_of",
           "read_calibration", "residual_maps", "residual_set", "score_images", "score_set"]

#: the run's calibration, written after training (:func:`medgan.tasks.anomaly.evaluate.calibrate_run`).
CALIBRATION = "calibration.json"
#: the per-pixel mean and spread of the residual on the calibration normals (``--normalise-residual on``), beside it.
NORMALISATION = "normalisation.safetensors"
#: Gaussian smoothing (pixels) of the residual's spread, and its floor as a share of the median spread in the body.
SPREAD_SIGMA, SPREAD_FLOOR = 2.0, 0.25


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
    normalisation: ResidualNormalisation | None = None

    def option(self, name: str, default: Any) -> Any:
        """The run's anomaly option ``name`` (``default`` for a run made before it existed)."""
        return self.info.get("anomaly", {}).get(name, default)

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
    """``model`` with the calibration of ``RUN/calibration.json`` (left uncalibrated without one)
    and, when that calibration normalised the residual, the statistics of ``RUN/normalisation.safetensors``.

    Raises:
        MedganError: ``calibration.json`` names a normalisation whose file is missing or does
            not fit the model's size.
    """
    file = Path(run) / CALIBRATION
    if file.is_file():
        record = json.loads(file.read_text())
        model.calibration = {level: Calibration.from_dict(c) for level, c in record.get("levels", {}).items() if "scores" in c}
        pixel = record.get("levels", {}).get("pixel")
        model.pixel_threshold = float(pixel["threshold"]) if pixel and "threshold" in pixel else None
        model.normalisation = None
        if record.get("normalisation"):
            model.normalisation = ResidualNormalisation.load(Path(run) / NORMALISATION, int(model.info["net"]["image_size"]),
                                                             record["normalisation"])
    return model


def load_model(run: str | Path, device: str = "cpu") -> AnomalyModel:
    """The :class:`AnomalyModel` of a run folder, ready to score: its networks and its
    calibration (none when uncalibrated); one clear error for a run of another task."""
    from medgan.tasks import load_model_of

    return load_model_of(AnomalyModel, run, device, "medgan train anomaly")  # the generic loader reads the calibration


# ---------------------------------------------------------------------------- scoring


@torch.no_grad()
def residual_maps(model: AnomalyModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(scores (B,), residuals (B, S, S), reconstructions (B, C, S, S))`` of images ``x`` in
    [-1, 1] at the model's size: the method's own scores and the raw map ``|x - x^|`` (mean over channels)."""
    for net in model.nets.values():
        net.eval()
    scores, rec = method_class(model.method).score(model, x)
    return scores, (x - rec).abs().mean(1), rec  # (B,), (B, S, S), (B, C, S, S)


def finish_maps(model: AnomalyModel, residuals: torch.Tensor, x: torch.Tensor, map_sigma: float,
                normalisation: ResidualNormalisation | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(maps (B, S, S), inside (B, S, S))``: raw residuals made into the run's anomaly maps.

    In order: z-scores against ``normalisation`` (when given), the run's ``--median-filter``,
    a Gaussian of ``map_sigma`` pixels, then zero outside the body eroded by the run's
    ``--body-erosion`` (when > 0; ``inside`` is that eroded body, where maps are scored)."""
    maps = residuals if normalisation is None else normalisation.apply(residuals)
    size = int(model.option("median_filter", 0))
    if size > 1:
        from scipy.ndimage import median_filter

        maps = torch.from_numpy(median_filter(maps.numpy(), size=(1, size, size), mode="reflect"))
    if map_sigma > 0:
        maps = gaussian_blur(maps, map_sigma)
    erosion = int(model.option("body_erosion", 0))
    inside = body(x, erosion)
    if erosion > 0:
        maps = maps * inside
    return maps, inside


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
        depend on that image alone. The maps are :func:`finish_maps` of the residual, with
        the model's normalisation when it has one (z-scores, else ``|x - x^|``).
    """
    scores, residuals, rec = residual_maps(model, x)
    maps, inside = finish_maps(model, residuals, x, map_sigma, model.normalisation)
    if image_score == "map-max":
        scores = map_peak(maps, inside)
    return scores, maps, rec


def score_set(model: AnomalyModel, images: np.ndarray, batch_size: int = 32, map_sigma: float | None = None,
              image_score: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (N,), maps (N, S, S))`` of images in the data's units at the model's size.

    ``map_sigma`` and ``image_score`` default to the run's. Batches only bound memory: every
    network is in eval mode, so a score does not depend on which other images share its batch."""
    residuals = residual_set(model, images, batch_size)
    return maps_of(model, residuals, model.normalisation, batch_size, map_sigma, image_score)


def residual_set(model: AnomalyModel, images: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(method scores (N,), raw residuals (N, S, S), images in [-1, 1] (N, C, S, S))`` of
    images in the data's units at the model's size (:func:`residual_maps` in batches): what
    :func:`maps_of` finishes, and what :func:`fit_normalisation` is fitted on."""
    x = model.intensity.forward(np.asarray(images, np.float32))
    x = np.ascontiguousarray(x[:, None] if x.ndim == 3 else x)
    scores, residuals = [], []
    for start in range(0, len(x), batch_size):
        s, r, _ = residual_maps(model, torch.from_numpy(x[start : start + batch_size]))
        scores.append(s.numpy())
        residuals.append(r.numpy())
    return np.concatenate(scores).astype(np.float64), np.concatenate(residuals), x


def maps_of(model: AnomalyModel, residuals: tuple[np.ndarray, np.ndarray, np.ndarray], normalisation: ResidualNormalisation | None,
            batch_size: int = 32, map_sigma: float | None = None, image_score: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (N,), maps (N, S, S))`` from :func:`residual_set`'s output, normalised by
    ``normalisation`` (``None``: raw residuals), as :func:`score_images` makes them."""
    sigma = float(model.option("map_sigma", 0.0)) if map_sigma is None else map_sigma
    how = str(model.option("image_score", "method")) if image_score is None else image_score
    method_scores, raw, x = residuals
    scores, maps = [], []
    for start in range(0, len(raw), batch_size):
        part = slice(start, start + batch_size)
        m, inside = finish_maps(model, torch.from_numpy(raw[part]), torch.from_numpy(x[part]), sigma, normalisation)
        scores.append(map_peak(m, inside).numpy().astype(np.float64) if how == "map-max" else method_scores[part])
        maps.append(m.numpy())
    if not maps:
        return np.zeros(0), np.zeros((0, *raw.shape[1:]), np.float32)
    return np.concatenate(scores), np.concatenate(maps)


def body(x: torch.Tensor, erosion: int = 0) -> torch.Tensor:
    """``(B, S, S)`` pixels inside the body (or brain) of images in [-1, 1]: above the lowest
    5% of the training range (air, background), eroded by ``erosion`` pixels (a square of
    side ``2 erosion + 1``; the image's edge does not erode), so that the rim of the body,
    which no model redraws exactly, is not scored."""
    inside = x.mean(1) > -0.9
    if erosion > 0:  # a pixel stays when no outside pixel lies within the square around it
        outside = F.max_pool2d((~inside)[:, None].float(), 2 * erosion + 1, stride=1, padding=erosion)[:, 0]
        inside = outside == 0
    return inside


def body_mask(model: AnomalyModel, images: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` :func:`body` of images in the data's units, eroded by the run's
    ``--body-erosion``: where pixel thresholds are calibrated and applied."""
    x = model.intensity.forward(np.asarray(images, np.float32))
    return body(torch.from_numpy(x if x.ndim == 4 else x[:, None]), int(model.option("body_erosion", 0))).numpy()


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


# ---------------------------------------------------------------------------- residual normalisation


@dataclass(frozen=True)
class ResidualNormalisation:
    """Per-pixel mean and spread of the residual ``|x - x^|`` over normal images, at the
    model's square size: a map becomes ``max(0, (residual - mean) / spread)``, how many
    normal spreads a pixel's residual lies above what the model leaves there on normals.

    The diagonal form of Behrendt et al. (2024), who take the distribution of a pixel over
    many reconstructions of one image; our methods give one reconstruction each, so the
    distribution is over normal images instead. A residual below its normal mean is no
    anomaly, hence the clip at 0 (the maps stay non-negative, as ``|x - x^|`` is).

    Attributes:
        mean: ``(S, S)`` mean residual of the normals.
        spread: ``(S, S)`` their standard deviation, smoothed and floored (:func:`fit_normalisation`).
        settings: how it was fitted (saved in ``calibration.json``).
    """

    mean: np.ndarray
    spread: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def apply(self, residuals: torch.Tensor) -> torch.Tensor:
        """``(B, S, S)`` z-scores of residuals ``(B, S, S)`` at the model's size, clipped at 0."""
        if tuple(residuals.shape[-2:]) != self.mean.shape:
            raise MedganError(f"residual maps of {tuple(residuals.shape[-2:])} pixels against a normalisation of {self.mean.shape}",
                              hint="score images at the model's size (fit_square)")
        mean, spread = torch.from_numpy(self.mean).to(residuals), torch.from_numpy(self.spread).to(residuals)
        return ((residuals - mean) / spread).clamp_min(0)

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        from medgan.io.output import atomic_path

        with atomic_path(Path(path), True) as tmp:
            save_file({"mean": self.mean.astype(np.float32), "spread": self.spread.astype(np.float32)}, str(tmp))

    @classmethod
    def load(cls, path: str | Path, size: int, settings: dict[str, Any] | None = None) -> ResidualNormalisation:
        """From :meth:`save`'s file, checked against the model's square ``size``."""
        from safetensors.numpy import load_file

        path = Path(path)
        if not path.is_file():
            raise MedganError("calibration.json normalises the residual but its statistics are missing", path=path,
                              hint="recalibrate with medgan calibrate RUN NORMAL_SOURCE")
        tensors = load_file(str(path))
        mean, spread = tensors.get("mean"), tensors.get("spread")
        if mean is None or spread is None or mean.shape != (size, size) or spread.shape != (size, size) or not (spread > 0).all():
            raise MedganError(f"the residual statistics are not two positive {size}x{size} maps (mean, spread)", path=path,
                              hint="recalibrate with medgan calibrate RUN NORMAL_SOURCE")
        return cls(mean, spread, settings or {})


def fit_normalisation(residuals: np.ndarray, inside: np.ndarray | None = None, sigma: float = SPREAD_SIGMA,
                      floor: float = SPREAD_FLOOR) -> ResidualNormalisation:
    """Per-pixel mean and spread of the raw residual maps of normal images.

    The spread is each pixel's standard deviation over the images, smoothed by a Gaussian of
    ``sigma`` pixels (a few normals estimate one pixel's spread badly; its neighbours' are
    alike) weighted by how often each pixel is body (normalised convolution: the air's zero
    spread would otherwise thin the spread along the body's edge), and never below the
    pixel's own (smoothing may lift a spread the few normals underestimated, but must not
    thin a sharp band of large spread, an edge the model never redraws exactly, into false
    alarms); then floored at ``floor`` times its median inside the body, so that a pixel the
    normals happened to leave quiet (air, or few images) cannot turn a small residual into a
    huge z-score.

    Args:
        residuals: ``(N, S, S)`` raw residuals ``|x - x^|`` (:func:`residual_maps`) of normals, N >= 2.
        inside: ``(N, S, S)`` their body masks (``None``: every pixel), where the median is taken.
        sigma: smoothing of the spread, in pixels (0: none).
        floor: the floor as a share of the median spread in the body.

    Raises:
        MedganError: fewer than 2 images.
    """
    r = np.asarray(residuals, np.float64)
    if r.ndim != 3 or len(r) < 2:
        raise MedganError(f"{len(r)} normal images cannot give a spread of the residual: 2 are needed at least",
                          hint="calibrate on more normals, or --normalise-residual off")
    mean = r.mean(0)
    spread = r.std(0, ddof=1)
    share = np.ones(mean.shape) if inside is None else np.asarray(inside, bool).mean(0)  # (S, S) how often a pixel is body
    if sigma > 0:  # weighted by the body share, so the air's zero spread does not thin the body's at its edge
        blur = lambda a: gaussian_blur(torch.from_numpy(a[None]), sigma)[0].numpy()  # noqa: E731
        weight = blur(share)
        smooth = np.where(weight > 1e-3, blur(spread * share) / np.maximum(weight, 1e-3), blur(spread))
        spread = np.maximum(spread, smooth)  # smoothing only lifts: a sharp band of large spread keeps its own
    where = share >= 0.5  # body in most normals
    median = float(np.median(spread[where])) if where.any() else float(np.median(spread))
    lowest = max(floor * median, 1e-6)
    settings = {"n": int(len(r)), "spread_sigma": float(sigma), "spread_floor": float(floor), "floor_value": lowest}
    return ResidualNormalisation(mean.astype(np.float32), np.maximum(spread, lowest).astype(np.float32), settings)
