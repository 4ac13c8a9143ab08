"""The nearest normal patch as a method: how far each patch of an image is from every patch
seen in the training normals.

Fitted on the training images: a bank of ``model.net.bank`` patches (``patch`` x ``patch``
pixels, all channels) drawn uniformly from the training images' patches at every position by
reservoir sampling. An image's patches, every ``stride`` pixels, are each as far as the
Euclidean distance in [-1, 1] units to their nearest bank patch; the map spreads each patch's
distance over its pixels (the mean over the patches covering a pixel); an image's score is
its largest patch distance, as ``benchmarks/anomaly_vs_baselines.py``'s ``knn`` rule has
measured it. (That rule's bank holds patches at its stride only; drawn from every position,
the bank gave pixel AUPRC 0.16 instead of 0.14 on the phantoms, the same on the brain slices,
and tolerates shifts smaller than the stride better.)

**What it assumes.** The bank forgets where a patch came from, so an image need not be
aligned with the training images (a phantom shifted by 2 pixels raises its score by about
40%, the z-score rule's by 170%; tests/tasks/test_anomaly_rules.py); but patches are compared
pixel for pixel at one scale and orientation, so inputs must have the training images' pixel
size, orientation and intensity units, and a lesion must change a patch's content (normal
tissue in the wrong place is normal to it). Scans at another scale or rotation than the
training images are not what it was fitted on.

**How it is fitted through the engine** (as :mod:`~medgan.tasks.anomaly.methods.zscore`):
one phase, ``fit``, whose update feeds its batch's patches into the reservoir held by the
exported module (:class:`PatchBank`) and returns a loss with no gradient. The reservoir's
draws come from a generator seeded by the run's seed and the engine's batch number, and its
state (the bank and the number of patches seen) is checkpointed with it, so a resumed run
ends with the same bank as an uninterrupted one. ``--steps`` is the number of batches whose
patches the bank is drawn from.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgan.errors import MedganError
from medgan.tasks.anomaly.methods.base import FittedRule, no_gradient
from medgan.train.task import Networks

__all__ = ["NearestPatch", "PatchBank"]

#: ``model.net`` defaults: patch side and step in pixels, patches kept.
PATCH, STRIDE, BANK = 8, 4, 20000
#: the step between the patches offered to the bank: every position, so that an image shifted by
#: less than ``stride`` still finds its patches there.
BANK_STRIDE = 1
#: query patches compared with the bank at once (bounds memory: ROWS x bank distances).
ROWS = 1024


class PatchBank(nn.Module):
    """A reservoir of normal patches and the distance of new ones to their nearest.

    The bank and the count are parameters only so that the engine's Adam has something to
    hold; no loss ever reaches them, so they change by :meth:`add` alone.
    """

    def __init__(self, channels: int, patch: int = PATCH, stride: int = STRIDE, bank: int = BANK):
        super().__init__()
        self.patch, self.stride = int(patch), int(stride)
        frozen = dict(requires_grad=False)
        self.bank = nn.Parameter(torch.zeros(int(bank), channels * self.patch**2), **frozen)
        self.seen = nn.Parameter(torch.zeros(1, dtype=torch.float64), **frozen)  # patches offered so far

    def patches(self, x: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        """``(B, L, C * p * p)`` the patches of images ``(B, C, S, S)``, every ``stride`` pixels (default the bank's)."""
        return F.unfold(x, self.patch, stride=stride or self.stride).transpose(1, 2)

    @torch.no_grad()
    def add(self, x: torch.Tensor, generator: torch.Generator) -> None:
        """Offer the patches of images ``(B, C, S, S)`` to the reservoir (Vitter's algorithm R:
        after ``n`` patches, each is in the bank with probability ``min(1, size / n)``)."""
        new = self.patches(x.detach().float(), BANK_STRIDE).reshape(-1, self.bank.shape[1])  # (B * L, D)
        size, seen = len(self.bank), int(self.seen.item())
        index = torch.arange(seen, seen + len(new), dtype=torch.float64)  # each patch's place in the stream
        draw = torch.floor(torch.rand(len(new), generator=generator, dtype=torch.float64) * (index + 1))
        slot = torch.where(index < size, index, draw).long()
        keep = (slot < size).numpy()
        slots, rows = slot.numpy()[keep], np.flatnonzero(keep)
        # a slot drawn twice keeps the later patch, as the sequential algorithm would
        last = len(slots) - 1 - np.unique(slots[::-1], return_index=True)[1]
        self.bank[torch.from_numpy(slots[last])] = new[torch.from_numpy(rows[last])].to(self.bank.device)
        self.seen.add_(len(new))

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` each patch's distance to its nearest bank patch (the filled part)."""
        filled = self.bank[: max(1, min(len(self.bank), int(self.seen.item())))]
        q = self.patches(x)  # (B, L, D)
        flat = q.reshape(-1, q.shape[-1])
        d = torch.cat([torch.cdist(flat[i : i + ROWS], filled).min(1).values for i in range(0, len(flat), ROWS)])
        return d.view(q.shape[:2])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores (B,), maps (B, S, S))``: the largest patch distance, and the mean distance
        of the patches covering each pixel."""
        d = self.distances(x)  # (B, L)
        size = x.shape[-2:]
        spread = d[:, None].expand(-1, self.patch**2, -1)  # (B, p*p, L)
        total = F.fold(spread.contiguous(), size, self.patch, stride=self.stride)
        count = F.fold(torch.ones_like(spread), size, self.patch, stride=self.stride)
        return d.max(1).values, (total / count.clamp(min=1))[:, 0]


class NearestPatch(FittedRule):
    """The distance to the nearest normal patch (see the module doc)."""

    name = "knn"
    map_description = "Anomaly map: distance of each patch to its nearest normal patch, in the model's [-1, 1] units"
    networks = ("bank",)
    exported = ("bank",)
    net_keys = ("image_size", "channels", "patch", "stride", "bank")

    @classmethod
    def line(cls) -> str:
        return ("the nearest normal patch: each 8x8 patch's distance to a bank of patches drawn from --steps batches of the "
                "training normals, no learned weights; it assumes inputs at the training images' pixel size, orientation "
                "and units (not their position); in benchmarks/anomaly_vs_baselines.py pixel AUPRC 0.01 on phantoms and 0.03 "
                "on the brain slices, image AUROC 0.52 and 0.54: below the restorer (the default) on both")

    @classmethod
    def resolve_net(cls, config, dataset) -> None:
        net = config.model.net
        size = dataset.image_size[0]
        net.update(image_size=size, channels=dataset.channels, patch=int(net.get("patch", min(PATCH, size))),
                   stride=int(net.get("stride", STRIDE)), bank=int(net.get("bank", BANK)))
        if not (1 <= net["patch"] <= size and net["stride"] >= 1 and net["bank"] >= 1):
            raise MedganError(f"model.net patch {net['patch']} / stride {net['stride']} / bank {net['bank']}: a patch must fit "
                              f"in the {size}-pixel images, and stride and bank be at least 1", hint="leave them out (8, 4, 20000)")

    @classmethod
    def build(cls, name: str, net) -> nn.Module:
        if name == "bank":
            return PatchBank(int(net["channels"]), net.get("patch", PATCH), net.get("stride", STRIDE), net.get("bank", BANK))
        return super().build(name, net)

    def objective(self, nets: Networks, batch):
        # the reservoir's draws: a function of the run's seed and the batch number alone
        generator = torch.Generator().manual_seed(self.config.loop.seed * 1_000_003 + int(batch["number"]))
        nets.bank.add(batch["image"], generator)
        return {"loss": no_gradient(nets), "patches": nets.bank.seen.detach()[0].float()}

    def render(self, nets: Networks, fixed, step: int) -> torch.Tensor:
        x = fixed["x"]
        _, maps = nets.bank(x)
        shown = (maps / maps.flatten(1).amax(1).clamp(min=1e-6)[:, None, None]) * 2 - 1  # each map to [-1, 1]
        return torch.stack([x, shown[:, None].expand_as(x)], dim=1).flatten(0, 1)  # image | map pairs

    @classmethod
    def score(cls, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The largest patch distance. The second value is ``x - map``, the image whose residual
        ``|x - x^|`` is the patch-distance map that scoring takes from every method."""
        scores, maps = model.nets["bank"](x.float())
        return scores, x - maps[:, None]
