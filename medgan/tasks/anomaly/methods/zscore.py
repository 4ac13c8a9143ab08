"""The intensity rule as a method: each pixel's z-score against the training normals.

Fitted on the training images: the per-pixel mean image and standard deviation (an atlas);
the deviation is smoothed by a Gaussian (``model.net.std_sigma`` pixels) and floored
(``model.net.std_floor``, in [-1, 1] units) so that a pixel that never varied in a few
normals does not explode. Map ``|x - mean| / std`` (mean over channels); an image's score is
the map's mean inside the body (the pixels above the background in the image or the mean
image), as ``benchmarks/anomaly_vs_baselines.py``'s ``mean`` rule has measured it.

**What it assumes.** The rule compares pixel positions: an image is scored against the mean
of the training images *at the same pixel*, so inputs must be aligned like the training
images (the same anatomy at the same place, e.g. registered slices or phantoms drawn in one
frame). Real unregistered scans are not: a head shifted by a few pixels lights up at every
edge, and a lesion no brighter or darker than the tissue it sits in is invisible to it.

**How a rule without learned weights is fitted through the engine.** The run has one phase,
``fit``, whose single update adds its batch into running sums held by the exported module
(:class:`PixelStatistics`: image count, per-pixel sum and sum of squares, in float64) and
returns a loss with no gradient for any weight, so Adam leaves everything unchanged. Nothing
outside the module's state and the engine's batch ``k`` enters a step, so a resumed run
(which reloads the sums from its checkpoint) ends with exactly the sums of an uninterrupted
one, and the export, ``load_model``, calibration and ``medgan detect`` are those of every
other method. ``--steps`` is the number of batches summed: ``steps * batch`` training images
(one pass over ``N`` images is ``N // batch`` steps; more steps revisit the images in a new
order, and every full pass weighs each image alike). Each process sums its own batches, so
train the rules on one process (the statistics of a multi-process run are rank 0's share).

Why sums fed by the engine's batches rather than a fit the task runs once over the whole
training set before the loop: a rule then takes the one path every method takes (phases,
steps, time budget, checkpoints, ``--resume``, export, ``after_training`` calibration), with
no hook in the task and no phase left with nothing to do; and exactness under resume needs
nothing new, since the engine's ``k``-th batch is already a function of ``k`` and the seed.
The price is that the statistics are those of the images the steps drew, which is why
``--steps`` is documented above. (The baseline that ``medgan evaluate`` shows beside every
run is fitted on all training images at once: :func:`medgan.tasks.anomaly.evaluate.intensity_rule`.)
"""

from __future__ import annotations

import torch
from torch import nn

from medgan.tasks.anomaly.methods.base import FittedRule, no_gradient
from medgan.train.task import Networks

__all__ = ["PixelStatistics", "ZScore"]

#: ``model.net`` defaults: the deviation's smoothing (pixels) and floor ([-1, 1] units).
STD_SIGMA, STD_FLOOR = 1.0, 0.05


class PixelStatistics(nn.Module):
    """Running per-pixel sums of images ``(C, S, S)``; the mean and the smoothed, floored
    deviation are computed from them when scoring.

    The sums are parameters only so that the engine's Adam has something to hold; no loss
    ever reaches them (see the module doc), so they change by :meth:`add` alone.
    """

    def __init__(self, channels: int, size: int, std_sigma: float = STD_SIGMA, std_floor: float = STD_FLOOR):
        super().__init__()
        self.std_sigma, self.std_floor = float(std_sigma), float(std_floor)
        frozen = dict(requires_grad=False)
        self.count = nn.Parameter(torch.zeros(1, dtype=torch.float64), **frozen)
        self.total = nn.Parameter(torch.zeros(1, channels, size, size, dtype=torch.float64), **frozen)
        self.squares = nn.Parameter(torch.zeros(1, channels, size, size, dtype=torch.float64), **frozen)

    @torch.no_grad()
    def add(self, x: torch.Tensor) -> None:
        """Add images ``(B, C, S, S)`` to the sums."""
        x = x.detach().to(torch.float64)
        self.count.add_(len(x))
        self.total.add_(x.sum(0, keepdim=True))
        self.squares.add_((x * x).sum(0, keepdim=True))

    def mean_std(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, std)``, each ``(1, C, S, S)`` float32: the std smoothed, then floored."""
        from medgan.tasks.anomaly.model import gaussian_blur

        n = self.count.clamp(min=1)
        mean = self.total / n
        std = (self.squares / n - mean * mean).clamp(min=0).sqrt().float()  # (1, C, S, S)
        if self.std_sigma > 0:
            std = gaussian_blur(std[0], self.std_sigma)[None]
        return mean.float(), std.clamp(min=self.std_floor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, S, S)`` the signed z-scores of images ``x``."""
        mean, std = self.mean_std()
        return (x - mean) / std


class ZScore(FittedRule):
    """The per-pixel intensity z-score against the training normals (see the module doc)."""

    name = "zscore"
    map_description = "Anomaly map: |image - mean normal image| in units of the normal images' spread (a z-score)"
    networks = ("atlas",)
    exported = ("atlas",)
    net_keys = ("image_size", "channels", "std_sigma", "std_floor")

    @classmethod
    def line(cls) -> str:
        return ("the intensity rule: each pixel's z-score against the training normals' mean and (smoothed, floored) "
                "deviation, summed over --steps batches; it assumes inputs aligned like the training images (real "
                "unregistered scans are not) and sees no lesion that leaves its tissue's mean and spread as they were (a mass "
                "effect); its formula in benchmarks/anomaly_vs_baselines.py gives pixel AUPRC 0.18, image AUROC 0.77 on "
                "phantoms and 0.01, 0.50 on the unregistered brain slices, where the restorer (the default) beats it")

    @classmethod
    def resolve_net(cls, config, dataset) -> None:
        net = config.model.net
        net.update(image_size=dataset.image_size[0], channels=dataset.channels,
                   std_sigma=float(net.get("std_sigma", STD_SIGMA)), std_floor=float(net.get("std_floor", STD_FLOOR)))
        if net["std_sigma"] < 0 or net["std_floor"] <= 0:
            from medgan.errors import MedganError

            raise MedganError(f"model.net std_sigma {net['std_sigma']} / std_floor {net['std_floor']}: the smoothing must be "
                              ">= 0 and the floor > 0", hint="leave them out (1 pixel, 0.05)")

    @classmethod
    def build(cls, name: str, net) -> nn.Module:
        if name == "atlas":
            return PixelStatistics(int(net["channels"]), int(net["image_size"]), net.get("std_sigma", STD_SIGMA),
                                   net.get("std_floor", STD_FLOOR))
        return super().build(name, net)

    def objective(self, nets: Networks, batch):
        nets.atlas.add(batch["image"])
        return {"loss": no_gradient(nets), "images": nets.atlas.count.detach()[0].float()}

    def render(self, nets: Networks, fixed, step: int) -> torch.Tensor:
        x = fixed["x"]
        mean, _ = nets.atlas.mean_std()
        return torch.stack([x, mean.expand_as(x)], dim=1).flatten(0, 1)  # image | mean image pairs

    @classmethod
    def score(cls, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean |z| inside the body. The second value is ``x - z``, the image whose residual
        ``|x - x^|`` is the z-score map that scoring takes from every method."""
        atlas = model.nets["atlas"]
        z = atlas(x)  # (B, C, S, S)
        mean, _ = atlas.mean_std()
        inside = ((x.mean(1) > -0.95) | (mean.mean(1) > -0.95)).float()  # (B, S, S)
        scores = (z.abs().mean(1) * inside).flatten(1).sum(1) / inside.flatten(1).sum(1).clamp(min=1)
        return scores, x - z
