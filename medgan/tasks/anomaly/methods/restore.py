"""Restoration (after Kascenas et al., MIDL 2022): a U-Net taught to undo coarse noise on
normal images, so that on a scan it redraws the normal tissue and leaves the lesion in the residual.

Training: a normal image ``x`` in [-1, 1] plus :func:`coarse_noise` (Gaussian values on a
coarse grid of ``--noise-grid`` cells per side, upsampled bilinearly and shifted by a random
offset, added inside the body unless ``--noise-everywhere``) goes in; the clean ``x`` is the
target, under the mean squared error over the body. Coarse noise looks like a blob of the
size of a lesion, not like grain: the network learns to replace such blobs by the normal
tissue around them, which is what an anomaly is to it at test time.

The restorer is :class:`~medgan.nets.unet.UNetGenerator` (skips at every level, residual
output ``x + r``, starting as the identity) with the innermost level at 8x8 pixels.
``--adversarial on`` adds a conditional PatchGAN critic that judges (noisy, restored)
against (noisy, clean) pairs; the restorer then minimises ``mse + w * adv``.

Score: the mean squared residual inside the body; map ``|x - x^|`` (smoothed and masked by
the task's map code, :func:`~medgan.tasks.anomaly.model.score_images`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medgan.errors import MedganError
from medgan.nets.patchgan import PatchGANDiscriminator
from medgan.nets.unet import UNetConfig, UNetGenerator
from medgan.tasks.anomaly.methods.base import AnomalyMethod, Defaults
from medgan.tasks.anomaly.model import body
from medgan.train.task import Networks, Optimizer, Phase, Update

__all__ = ["Restorer", "coarse_noise"]

INNERMOST = 8  # pixels per side of the U-Net's innermost level (Kascenas: 128 / 2^4)


def coarse_noise(shape: tuple[int, int, int, int], grid: int, amplitude: float, inside: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Smooth noise at the scale of a lesion: Gaussian values on a coarse grid, upsampled.

    Args:
        shape: ``(B, C, H, W)`` of the noise.
        grid: cells per side; one cell spans ``H / grid`` by ``W / grid`` pixels.
        amplitude: standard deviation of the grid's values (the field between grid points,
            a bilinear mean of them, varies less).
        inside: ``(B, H, W)`` or ``(B, 1, H, W)`` booleans: the noise is zero elsewhere.
        generator: the random stream (default torch's global one).

    Returns:
        ``(B, C, H, W)`` noise on the CPU. Each image's grid is shifted by its own random
        offset of less than a cell, so cell borders fall anywhere.

    Raises:
        ValueError: a grid of less than one cell, or finer than the image.
    """
    b, c, h, w = shape
    if not 1 <= grid <= min(h, w):
        raise ValueError(f"the noise grid needs 1 to {min(h, w)} cells per side, got {grid}")
    cell_h, cell_w = h / grid, w / grid
    # Two spare cells: one to shift into, and two half cells at the edges, where bilinear
    # upsampling repeats the outer values and the field would vary more; they are cut off.
    values = amplitude * torch.randn(b, c, grid + 2, grid + 2, generator=generator)
    big = F.interpolate(values, size=(round((grid + 2) * cell_h), round((grid + 2) * cell_w)), mode="bilinear",
                        align_corners=False)  # (B, C, ~H + 2 cells, ~W + 2 cells)
    lo_h, lo_w = round(cell_h / 2), round(cell_w / 2)
    dy = lo_h + torch.randint(0, big.shape[-2] - h - 2 * lo_h + 1, (b,), generator=generator)
    dx = lo_w + torch.randint(0, big.shape[-1] - w - 2 * lo_w + 1, (b,), generator=generator)
    noise = torch.stack([big[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])  # (B, C, H, W)
    if inside is not None:
        inside = inside if inside.ndim == 4 else inside[:, None]
        noise = noise * inside.to(noise.dtype).cpu()
    return noise


def innermost_depth(size: int) -> int:
    """The U-Net's stride-2 levels for ``size``-pixel images: it halves while the next level
    keeps :data:`INNERMOST` pixels or more (0: an odd size, or under twice that)."""
    depth = 0
    while size % 2 ** (depth + 1) == 0 and size // 2 ** (depth + 1) >= INNERMOST:
        depth += 1
    return depth


class Restorer(AnomalyMethod):
    """A coarse-noise restoration U-Net, optionally against a PatchGAN critic (see the module doc)."""

    name = "restore"
    networks = ("restorer", "critic")
    exported = ("restorer",)
    defaults = Defaults(lr=1e-3, betas=(0.5, 0.999), steps=600)  # measured at 600 steps (about 6 min at 64 px on 2 cores)
    model = "pix2pix"
    net_keys = ("image_size", "channels", "width", "depth", "d_layers")

    @classmethod
    def line(cls) -> str:
        # Figures: benchmarks/anomaly_vs_baselines.py, 600 steps, 3 seeds, --normalise-residual on, map-max (README).
        return ("restore: a U-Net trained to remove coarse noise from normal images (Kascenas et al. 2022), its residual "
                "z-scored: the one method that beats the intensity rule on both cases measured, clearly on the real brain "
                "slices (image AUROC 0.59 vs 0.50, pixel AUPRC 0.04 vs 0.01), narrowly on phantoms (0.78 vs 0.77; 0.30 vs "
                "0.18), where --method ae does better at a twentieth of the training time; no method sees a mass effect")

    @classmethod
    def resolve(cls, config) -> None:
        a = config.task_config
        if a.adversarial == "on" and config.loss.name == "wgan-gp":
            raise MedganError("the restorer's critic has no gradient penalty, so --loss wgan-gp does not apply", hint="leave --loss out")

    @classmethod
    def resolve_net(cls, config, dataset) -> None:
        size = dataset.image_size[0]
        depth = innermost_depth(size)
        if depth < 1 or dataset.image_size[0] != dataset.image_size[1]:
            raise MedganError(f"the restorer needs square images of an even size of at least {2 * INNERMOST} pixels, not {size}", hint="use --size 64")
        if config.task_config.noise_grid > size:
            raise MedganError(f"--noise-grid {config.task_config.noise_grid} is finer than the {size}-pixel images", hint="e.g. --noise-grid 8")
        net = config.model.net
        d_layers = 3 if size > 64 else 2  # a critic's patch of 70 or 34 pixels
        for key, value in (("depth", depth), ("d_layers", d_layers)):
            if key in net and int(net[key]) != value:  # a saved config.json holds them; they follow the size, never set
                raise MedganError(f"model.net.{key} {net[key]}: the restorer's {key} follows the image size ({value} at {size} px)",
                                  hint=f"remove model.net.{key} from the config file")
        net.update(image_size=size, channels=dataset.channels, width=int(net.get("width", 32)), depth=depth, d_layers=d_layers)

    @classmethod
    def unet_config(cls, net) -> UNetConfig:
        c = int(net["channels"])
        return UNetConfig(in_channels=c, out_channels=c, width=int(net["width"]), depth=int(net["depth"]), norm="instance",
                          d_width=int(net["width"]), d_layers=int(net["d_layers"]))

    @classmethod
    def build(cls, name: str, net) -> nn.Module:
        if name == "restorer":
            return UNetGenerator(cls.unet_config(net))
        if name == "critic":
            return PatchGANDiscriminator(cls.unet_config(net))  # judges (noisy input, image) pairs
        return super().build(name, net)

    # ---- training

    def __init__(self, config, net):
        super().__init__(config, net)
        self.adversarial = config.task_config.adversarial == "on"

    def build_networks(self) -> dict[str, nn.Module]:
        names = self.networks if self.adversarial else ("restorer",)
        return {name: self.build(name, self.net) for name in names}

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        betas = (o.beta1, o.beta2)
        out = {"restorer": Optimizer(("restorer",), o.lr_g, betas)}
        if self.adversarial:
            out["critic"] = Optimizer(("critic",), o.lr_d, betas)
        return out

    def phases(self) -> list[Phase]:
        updates = (Update("r", "restorer", self.restorer_objective),)
        if self.adversarial:
            updates = (Update("d", "critic", self.critic_objective, repeat=self.config.optim.n_critic), *updates)
        return [Phase("train", self.config.loop.steps, updates)]

    def noisy(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` with this run's coarse noise (from torch's global stream, which the engine seeds)."""
        a = self.config.task_config
        inside = body(x) if a.noise_inside_body else None
        return x + coarse_noise(tuple(x.shape), a.noise_grid, a.noise_amplitude, inside).to(x.device)

    def restorer_objective(self, nets: Networks, batch):
        x = batch["image"]  # (B, C, S, S) in [-1, 1]
        noisy = self.noisy(x)
        rec = nets.restorer(noisy)
        inside = body(x)[:, None].to(x.dtype)  # (B, 1, S, S): the background is not what is learned
        mse = ((rec - x) ** 2 * inside).sum() / (inside.sum() * x.shape[1]).clamp(min=1)
        out = {"mse": mse.detach()}
        if self.adversarial:
            adv = self.g_loss(nets.critic(noisy, rec))
            out["adv"] = adv.detach()
            mse = mse + self.config.task_config.adversarial_weight * adv
        return {"loss": mse, **out}

    def critic_objective(self, nets: Networks, batch):
        x = batch["image"]
        noisy = self.noisy(x)
        with torch.no_grad():
            rec = nets.restorer(noisy)
        real, fake = nets.critic(noisy, x), nets.critic(noisy, rec)
        return {"loss": self.d_loss(real, fake), "d_real": real.detach().mean(), "d_fake": fake.detach().mean()}

    def render(self, nets: Networks, fixed, step: int) -> torch.Tensor:
        x = fixed["x"]
        return torch.stack([x, nets.restorer(x)], dim=1).flatten(0, 1)  # image | restored pairs

    # ---- scoring

    @classmethod
    def score(cls, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean squared residual inside the body (the whole image when it has none)."""
        rec = model.nets["restorer"](x)
        inside = body(x)
        inside = inside | ~inside.flatten(1).any(1)[:, None, None]  # (B, S, S)
        err = ((x - rec) ** 2).mean(1)  # (B, S, S)
        return (err * inside).flatten(1).sum(1) / inside.flatten(1).sum(1), rec
