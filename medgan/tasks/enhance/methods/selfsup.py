"""Self-supervised denoising on noisy images alone: Neighbor2Neighbor (Huang et al., CVPR 2021).

Users with real noisy scans rarely have a clean version of them. Neighbor2Neighbor needs
none: every 2x2 cell of a noisy image ``y`` gives two *neighbouring* pixels, picked at random
(horizontal or vertical neighbours, either order), which form two half-size sub-images
``g1(y)`` and ``g2(y)``. Their noise is independent and their signals nearly equal, so a
network trained to predict one from the other learns the clean signal (Noise2Noise's
argument, without a second acquisition). The objective, for the generator ``f``:

    L = |f(g1(y)) - g2(y)|²  +  γ · |f(g1(y)) - g2(y) - (g1(f̄(y)) - g2(f̄(y)))|²

where ``f̄(y)`` is the network on the full image with no gradient: the second term asks the
sub-image outputs to differ only as the full output's sub-images do, which corrects for the
two sub-images' small signal difference. ``γ`` rises linearly from 0 to 2 over the run (the
paper's schedule). The loss is L2 whatever ``recon_loss`` says: predicting a noisy target
recovers the clean image only as its *mean* (L1 would give the median).

What it can and cannot do: the noise must be independent between neighbouring pixels and
have zero mean given the image. Gaussian noise and low-dose CT noise at the pixel scale
qualify (FBP noise is correlated over a few pixels, which weakens the method); Rician
magnitude noise does not have zero mean in dark regions, so the model keeps the Rician
bias of the background. There is no adversary (no clean image to judge against).

With a simulated degradation (the training images are clean, ``--degradation`` given) the
network still sees only the degraded images: the clean ones are used for the sample grid
and the evaluation alone, which is how this recipe is measured against paired training.
With ``--degradation none`` the training images are the noisy scans themselves.
"""

from __future__ import annotations

from typing import Any

import torch

from medgan.errors import MedganError
from medgan.tasks.enhance.methods.base import NOT_SEEN_TITLE
from medgan.tasks.enhance.methods.paired import Paired
from medgan.train.task import Networks

__all__ = ["NEIGHBOUR_PAIRS", "SelfSupervised", "neighbour_subsample"]

# In a 2x2 cell flattened as (top-left, top-right, bottom-left, bottom-right) = (0, 1, 2, 3),
# the 8 ordered pairs of horizontal or vertical neighbours.
NEIGHBOUR_PAIRS = torch.tensor([[0, 1], [1, 0], [2, 3], [3, 2], [0, 2], [2, 0], [1, 3], [3, 1]])
GAMMA_END = 2.0  # weight of the regulariser at the end of the run


def neighbour_subsample(images: torch.Tensor, choice: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two neighbour sub-images of ``images`` for one pair choice per 2x2 cell.

    Args:
        images: ``(B, C, H, W)`` with even ``H`` and ``W``.
        choice: ``(B, H/2, W/2)`` integers in ``[0, 8)``, indices into :data:`NEIGHBOUR_PAIRS`
            (the same for every channel of a pixel).

    Returns:
        ``(g1, g2)``, each ``(B, C, H/2, W/2)``.
    """
    b, c, h, w = images.shape
    cells = images.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(b, c, h // 2, w // 2, 4)
    pairs = NEIGHBOUR_PAIRS.to(images.device)[choice]  # (B, H/2, W/2, 2)
    pick = lambda k: torch.gather(cells, 4, pairs[:, None, ..., k : k + 1].expand(b, c, h // 2, w // 2, 1))[..., 0]  # noqa: E731
    return pick(0), pick(1)


class SelfSupervised(Paired):
    """Neighbor2Neighbor through the engine: one generator, one L2 objective, no adversary."""

    name = "self"
    samples_title = NOT_SEEN_TITLE

    def __init__(self, task):
        super().__init__(task)
        self._gamma = 0.0

    @classmethod
    def line(cls, config) -> str:
        return "Neighbor2Neighbor on the noisy images alone (no clean image is seen)"

    @classmethod
    def resolve(cls, config, dataset) -> None:
        e = config.task_config
        e.adversarial = False  # no clean image for an adversary to judge against
        e.recon_loss = "l2"  # the mean of a noisy target is the clean image (module docstring)

    @classmethod
    def check(cls, config, dataset, degradation, multiple: int) -> None:
        if config.task_config.mode != "denoise":
            raise MedganError("self-supervised training only denoises", hint="use --mode denoise, or --supervision paired for super-resolution")
        h, w = dataset.image_size
        need = 2 * multiple
        if h % need or w % need:
            raise MedganError(f"self-supervised training halves the {h}x{w} images, and the {config.model.name} network needs "
                              f"multiples of {multiple}: the image size must be a multiple of {need}",
                              hint=f"train at --size {max(need, h // need * need)} or use a shallower network")

    @classmethod
    def caption(cls, options: dict[str, Any]) -> str:
        if str(options.get("degradation", "")).strip().lower() == "none":  # real noisy scans: no truth to show
            return "The same training images at every step: noisy input | output | the noisy input again (no clean image exists)"
        return cls.samples_title

    def before_step(self, nets: Networks, step: int) -> None:
        self._gamma = GAMMA_END * step / max(self.config.loop.steps, 1)  # a function of the step alone: resume is exact

    def generator_objective(self, nets: Networks, batch):
        G = nets.generator
        y, _ = self.pair(batch)  # (B, C, H, W) noisy; the clean half of the pair is never used
        g = torch.Generator().manual_seed(self.config.loop.seed * 1_000_003 + int(batch["number"]) + 500_009)
        choice = torch.randint(len(NEIGHBOUR_PAIRS), (y.shape[0], y.shape[-2] // 2, y.shape[-1] // 2), generator=g).to(y.device)
        g1, g2 = neighbour_subsample(y, choice)  # (B, C, H/2, W/2) each
        out = G(g1.contiguous(memory_format=torch.channels_last))
        with torch.no_grad():
            f1, f2 = neighbour_subsample(G(y), choice)
        rec = (out - g2).square().mean()
        reg = (out - g2 - (f1 - f2)).square().mean()
        return {"loss": rec + self._gamma * reg, "l2": rec.detach(), "regulariser": reg.detach(),
                "gamma": torch.tensor(self._gamma)}
