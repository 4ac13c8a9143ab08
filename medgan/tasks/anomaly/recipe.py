"""Anomaly detection: a model of normal images whose failure to redraw an image is its score.

Three methods, on the same DCGAN-shaped networks (:mod:`medgan.nets.dcgan`,
:mod:`medgan.nets.encoder`) and one engine:

- **f-AnoGAN** (Schlegl et al. 2019). Phase ``gan``: a WGAN-GP on normal images, ``z ~ U(-1, 1)``,
  a critic with layer norm instead of batch norm (the gradient penalty is per sample),
  ``n_critic`` 5, Adam 1e-4 with betas (0, 0.9) as in Gulrajani et al. Phase ``encoder`` (G and
  the critic frozen, in eval mode): izi_f, an encoder E with tanh output trained so that
  ``G(E(x))`` redraws ``x``: ``mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2``, ``f`` the
  critic's last convolutional features. Score: the same two residuals; map ``|x - G(E(x))|``.
- **GANomaly** (Akcay et al. 2018). G = encoder ``E1`` -> decoder (a DCGAN generator) -> encoder
  ``E2``; a DCGAN discriminator D (batch norm, BCE). G minimises ``w_adv * |f(x) - f(x^)|^2 +
  w_con * |x - x^|_1 + w_enc * |E1(x) - E2(x^)|^2`` (``f``: D's last features). Score: the latent
  distance ``mean (E1(x) - E2(x^))^2``; map ``|x - x^|``.
- **ae**: ``E1`` and the decoder alone on L1 (the plain autoencoder baseline); score the mean
  squared residual, map ``|x - x^|``.

Every network is in eval mode at scoring (batch norm with its running statistics), so one
image's score never depends on the others in its batch; no score is rescaled over the
images scored. Scores are calibrated after training on held-out normal volumes
(:mod:`medgan.tasks.anomaly.calibration`, written to ``RUN/calibration.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgan import losses
from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.nets.dcgan import SIZES, DCGANConfig, DCGANDiscriminator, DCGANGenerator
from medgan.nets.encoder import ImageEncoder
from medgan.train.distributed import unwrap
from medgan.train.task import Networks, Optimizer, Phase, Task, Update

__all__ = ["AnomalyModel", "AnomalyTask", "body", "gaussian_blur", "map_peak", "score_images"]

#: the networks each method trains, and those it exports for scoring.
NETWORKS = {"fanogan": ("generator", "critic", "encoder"), "ganomaly": ("encoder", "generator", "encoder2", "discriminator"),
            "ae": ("encoder", "generator")}
EXPORTED = {"fanogan": ("generator", "critic", "encoder"), "ganomaly": ("encoder", "generator", "encoder2"), "ae": ("encoder", "generator")}
#: Adam (lr, betas) and the adversarial loss of each method when left on auto.
DEFAULTS = {"fanogan": (1e-4, (0.0, 0.9), "wgan-gp", 5), "ganomaly": (2e-4, (0.5, 0.999), "bce", 1), "ae": (1e-3, (0.9, 0.999), "bce", 1)}


def net_config(info: dict[str, Any], method: str) -> tuple[DCGANConfig, DCGANConfig]:
    """(generator / encoder config, critic config) of a method from the run's ``model.net``."""
    keys = {"z_dim", "image_size", "channels", "width", "upsample"}
    base = DCGANConfig(**{k: v for k, v in info.items() if k in keys}, d_norm="batch")
    return base, replace(base, d_norm="layer" if method == "fanogan" else "batch")


def _build(name: str, method: str, net: dict[str, Any]) -> nn.Module:
    base, critic = net_config(net, method)
    if name == "generator":
        return DCGANGenerator(base)
    if name in ("encoder", "encoder2"):
        # f-AnoGAN's E ends in tanh (z lives in [-1, 1]); GANomaly's codes are unbounded.
        return ImageEncoder(critic if method == "fanogan" else base, bounded=method == "fanogan")
    if name in ("critic", "discriminator"):
        return DCGANDiscriminator(critic)
    raise MedganError(f"the anomaly task has no network named {name!r}")


def _features(D: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return unwrap(D).features(x).flatten(1)  # (B, C0 * s0 * s0), the last convolutional features


@dataclass
class AnomalyModel:
    """A trained anomaly detector (see :func:`medgan.tasks.load_model`).

    Attributes:
        method: ``"fanogan"``, ``"ganomaly"`` or ``"ae"``.
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


@torch.no_grad()
def score_images(model: AnomalyModel, x: torch.Tensor, map_sigma: float = 0.0,
                 image_score: str = "method") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scores, pixel maps and reconstructions of images already in [-1, 1].

    Args:
        x: ``(B, C, S, S)`` images at the model's size, in [-1, 1].
        map_sigma: Gaussian smoothing of the maps, in pixels.
        image_score: ``"method"`` (the method's own score, see the module doc) or
            ``"map-max"`` (the largest value of the smoothed map inside the body).

    Returns:
        ``(scores (B,), maps (B, S, S), reconstructions (B, C, S, S))``; each image's values
        depend on that image alone.
    """
    nets = model.nets
    for net in nets.values():
        net.eval()
    if model.method == "fanogan":
        rec = nets["generator"](nets["encoder"](x))
        pixel = ((x - rec) ** 2).flatten(1).mean(1)
        feature = ((_features(nets["critic"], x) - _features(nets["critic"], rec)) ** 2).mean(1)
        scores = pixel + model.kappa * feature
    else:
        z = nets["encoder"](x)
        rec = nets["generator"](z)
        if model.method == "ganomaly":
            scores = ((z - nets["encoder2"](rec)) ** 2).mean(1)
        else:
            scores = ((x - rec) ** 2).flatten(1).mean(1)
    maps = (x - rec).abs().mean(1)  # (B, S, S)
    if map_sigma > 0:
        maps = gaussian_blur(maps, map_sigma)
    if image_score == "map-max":
        scores = map_peak(maps, body(x))
    return scores, maps, rec


def body(x: torch.Tensor) -> torch.Tensor:
    """``(B, S, S)`` pixels inside the body (or brain) of images in [-1, 1]: above the lowest
    5% of the training range (air, background)."""
    return x.mean(1) > -0.9


def map_peak(maps: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the largest map value inside ``inside`` (the whole map where it is empty)."""
    inside = inside | ~inside.flatten(1).any(1)[:, None, None]
    return maps.masked_fill(~inside, float("-inf")).flatten(1).max(1).values


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    out = maps[:, None]
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
    return out[:, 0]


class AnomalyTask(Task):
    """f-AnoGAN (two phases), GANomaly or a plain autoencoder on normal images (see the module doc)."""

    name = "anomaly"
    models = ("dcgan",)
    samples_title = "The same training images at every step: image | reconstruction (f-AnoGAN's GAN phase: image | a sample G(z))"
    grid_columns = 8

    @classmethod
    def method_line(cls, config) -> str:
        # Figures: benchmarks/anomaly_vs_baselines.py, phantoms, 600 steps, 3 seeds (README).
        method = config.task_config.method
        if method == "ae":
            return ("a plain autoencoder on L1: the best learned detector in benchmarks/anomaly_vs_baselines.py (phantom "
                    "pixel AUPRC 0.19 against f-AnoGAN's 0.02 at a sixth of its time); the untrained atlas z-score rule "
                    "still beats it there (0.54), see the README")
        if method == "fanogan":
            return ("f-AnoGAN (a WGAN-GP, then an encoder): the weakest detector in benchmarks/anomaly_vs_baselines.py "
                    "(phantom pixel AUPRC 0.02) at 6x the autoencoder's time (--method ae, the default)")
        return ("GANomaly: close to the autoencoder in benchmarks/anomaly_vs_baselines.py (phantom pixel AUPRC 0.13 "
                "against 0.19) at 3x its time (--method ae, the default)")

    @classmethod
    def resolve(cls, config, dataset) -> None:
        a = config.task_config
        lr, betas, loss, n_critic = DEFAULTS[a.method]
        for name, value in (("lr_g", lr), ("lr_d", lr), ("beta1", betas[0]), ("beta2", betas[1]), ("n_critic", n_critic)):
            if getattr(config.optim, name) is None:
                setattr(config.optim, name, value)
        if config.loss.name == "auto":
            config.loss.name = loss
        if a.method == "fanogan" and config.loss.name != "wgan-gp":
            raise MedganError(f"f-AnoGAN trains a WGAN-GP, not --loss {config.loss.name}", hint="leave --loss out")
        if config.loop.augment == "auto":
            config.loop.augment = ""
        if config.loop.augment:
            raise MedganError("--augment would teach the model of normal images that augmented images are normal", hint="leave it out")
        size = config.data.options.size
        if size not in SIZES:
            raise MedganError(f"the anomaly networks make {', '.join(map(str, SIZES))}-pixel images, not {size}", hint="use --size 64")
        config.model.net.setdefault("z_dim", 128 if a.method == "fanogan" else 100)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.method = config.task_config.method
        net = config.model.net
        self.net = {"z_dim": int(net["z_dim"]), "image_size": dataset.image_size[0], "channels": dataset.channels,
                    "width": int(net.get("width", 64)), "upsample": net.get("upsample", "deconv")}
        config.model.net = {**net, **self.net}
        self.exported = EXPORTED[self.method]
        self.d_loss, self.g_loss = losses.ADVERSARIAL[config.loss.name]
        a = config.task_config
        self.gan_steps = config.loop.steps
        self.encoder_steps = (a.encoder_steps or config.loop.steps) if self.method == "fanogan" else 0
        self._step = 0  # of the run, for the sample grids of f-AnoGAN's two phases

    # ---- networks and phases

    def networks(self) -> dict[str, nn.Module]:
        return {name: _build(name, self.method, self.net) for name in NETWORKS[self.method]}

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        betas = (o.beta1, o.beta2)
        if self.method == "fanogan":
            return {"generator": Optimizer(("generator",), o.lr_g, betas), "critic": Optimizer(("critic",), o.lr_d, betas),
                    "encoder": Optimizer(("encoder",), o.lr_g, betas)}
        if self.method == "ganomaly":
            return {"generator": Optimizer(("encoder", "generator", "encoder2"), o.lr_g, betas),
                    "discriminator": Optimizer(("discriminator",), o.lr_d, betas)}
        return {"generator": Optimizer(("encoder", "generator"), o.lr_g, betas)}

    def phases(self) -> list[Phase]:
        n_critic = self.config.optim.n_critic
        if self.method == "fanogan":
            return [Phase("gan", self.gan_steps, (Update("d", "critic", self.critic_objective, repeat=n_critic),
                                                   Update("g", "generator", self.generator_objective))),
                    Phase("encoder", self.encoder_steps, (Update("e", "encoder", self.encoder_objective),))]
        if self.method == "ganomaly":
            return [Phase("train", self.gan_steps, (Update("d", "discriminator", self.ganomaly_d_objective, repeat=n_critic),
                                                     Update("g", "generator", self.ganomaly_g_objective)))]
        return [Phase("train", self.gan_steps, (Update("g", "generator", self.ae_objective),))]

    def plan(self, steps: list[int]) -> None:
        """A time budget's steps: the GAN phase's in ``loop.steps``, f-AnoGAN's encoder's in ``encoder_steps``."""
        self.config.loop.steps = self.gan_steps = steps[0]
        if self.method == "fanogan":
            self.config.task_config.encoder_steps = self.encoder_steps = steps[1]

    # ---- f-AnoGAN

    def _z(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.rand(n, self.net["z_dim"], device=device) * 2 - 1  # U(-1, 1), what E's tanh can reach

    def critic_objective(self, nets: Networks, batch):
        real = batch["image"]
        with torch.no_grad():
            fake = nets.generator(self._z(len(real), real.device))
        adversarial = self.d_loss(nets.critic(real), nets.critic(fake))
        gp = losses.gradient_penalty(unwrap(nets.critic), real, fake)
        return {"loss": adversarial + self.config.loss.gp_weight * gp, "w_distance": -adversarial.detach(), "gp": gp.detach()}

    def generator_objective(self, nets: Networks, batch):
        fake = nets.generator(self._z(len(batch["image"]), batch["image"].device))
        return {"loss": self.g_loss(nets.critic(fake))}

    def encoder_objective(self, nets: Networks, batch):
        x = batch["image"]
        rec = nets.generator(nets.encoder(x))
        pixel = F.mse_loss(rec, x)
        feature = F.mse_loss(_features(nets.critic, rec), _features(nets.critic, x))
        return {"loss": pixel + self.config.task_config.kappa * feature, "pixel_mse": pixel.detach(), "feature_mse": feature.detach()}

    # ---- GANomaly and the autoencoder

    def _reconstruct(self, nets: Networks, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = nets.encoder(x)
        return z, nets.generator(z)

    def ganomaly_d_objective(self, nets: Networks, batch):
        x = batch["image"]
        with torch.no_grad():
            _, rec = self._reconstruct(nets, x)
        real, fake = nets.discriminator(x), nets.discriminator(rec)
        return {"loss": self.d_loss(real, fake), "d_real": torch.sigmoid(real.detach()).mean(), "d_fake": torch.sigmoid(fake.detach()).mean()}

    def ganomaly_g_objective(self, nets: Networks, batch):
        a, x = self.config.task_config, batch["image"]
        z, rec = self._reconstruct(nets, x)
        D = nets.discriminator
        adv = F.mse_loss(_features(D, rec), _features(D, x).detach())
        con = F.l1_loss(rec, x)
        enc = F.mse_loss(nets.encoder2(rec), z)
        return {"loss": a.w_adv * adv + a.w_con * con + a.w_enc * enc, "adv": adv.detach(), "l1": con.detach(), "latent": enc.detach()}

    def ae_objective(self, nets: Networks, batch):
        x = batch["image"]
        _, rec = self._reconstruct(nets, x)
        loss = F.l1_loss(rec, x)
        return {"loss": loss, "l1": loss.detach()}

    # ---- sample grids: image | reconstruction

    def before_step(self, nets: Networks, step: int) -> None:
        self._step = step

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        k = max(1, min(n // 2, len(self.dataset)))
        index = torch.as_tensor(np.unique(np.linspace(0, len(self.dataset) - 1, k).round().astype(np.int64)))
        z = torch.rand(len(index), self.net["z_dim"], generator=torch.Generator().manual_seed(self.config.loop.seed + 7919)) * 2 - 1
        return {"x": self.dataset.batch(index)["image"].to(device), "z": z.to(device)}

    @torch.no_grad()
    def render(self, nets, fixed):
        x = fixed["x"]
        if self.method == "fanogan" and self._step < self.gan_steps:  # the GAN phase: images | samples G(z)
            return torch.stack([x, nets.generator(fixed["z"])], dim=1).flatten(0, 1)
        rec = nets.generator(nets.encoder(x))
        return torch.stack([x, rec], dim=1).flatten(0, 1)  # (2B, C, S, S): image, reconstruction pairs

    def after_training(self, run_dir) -> None:
        """Calibrate on the held-out normal volumes (``RUN/calibration.json``); a run kept
        without hold-out says so in one line and stays uncalibrated."""
        from medgan.errors import warn
        from medgan.tasks.anomaly.evaluate import calibrate_run

        if not self.config.data.holdout:
            warn("the run kept no held-out normal volumes, so its scores are not calibrated",
                 hint="calibrate with medgan calibrate RUN NORMAL_SOURCE, or train with --holdout > 0")
            return
        record = calibrate_run(run_dir)
        for note in record["notes"]:
            warn(note, path=run_dir)

    @classmethod
    def evaluate_run(cls, run_dir, *, n, seed, inception_weights, require_inception, metrics=None):
        """False-positive rate on held-out normals at the calibrated threshold; AUROC, AUPRC,
        pixel AUROC / AUPRC and best Dice against lesions for the embedded sources."""
        from medgan.tasks.anomaly.evaluate import evaluate_anomaly_run

        return evaluate_anomaly_run(run_dir)

    @classmethod
    def describe_evaluation(cls, record):
        return (f"{record['n_normal']} held-out normal images (not used to calibrate) and {record['n_anomalous']} with lesions; "
                f"threshold at alpha {record['alpha']:g}")

    @classmethod
    def report_parts(cls, run_dir):
        from medgan.tasks.anomaly.report import anomaly_section

        return anomaly_section(run_dir)

    # ---- export and loading

    def export_info(self, name: str) -> dict[str, Any]:
        opts = self.config.data.options
        return {"method": self.method, "net": dict(self.net), "intensity": self.dataset.intensity.to_dict(),
                "anomaly": asdict(self.config.task_config), "source": self.config.data.source, "units": self.dataset.data.units,
                "resize": {"size": opts.size, "mode": opts.resize_mode}, "preprocess": {"window": opts.window, "normalize": opts.normalize}}

    @classmethod
    def build_network(cls, name: str, info: dict[str, Any]) -> nn.Module:
        return _build(name, str(info.get("method")), info["net"])

    @classmethod
    def from_pretrained(cls, exported) -> AnomalyModel:
        some = next(iter(exported.values()))[1]
        method = some.get("method")
        if method not in EXPORTED:
            raise MedganError(f"the exported networks name no known method ({method!r})", hint="give the run folder of medgan train anomaly")
        missing = set(EXPORTED[method]) - set(exported)
        if missing:
            raise MedganError(f"the run exported no {', '.join(sorted(missing))}", hint="give the whole run folder")
        nets = {name: exported[name][0].eval() for name in EXPORTED[method]}
        return AnomalyModel(method, nets, IntensityMap(**some["intensity"]), float(some["anomaly"].get("kappa", 1.0)), some)
