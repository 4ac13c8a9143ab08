"""The template task's recipe: networks, objectives, phases, sample grid, export, typed model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgan import losses
from medgan.data.intensity import IntensityMap
from medgan.errors import MedganError
from medgan.train.task import Networks, Optimizer, Phase, Task, Update



# ----------------------------------------------------------------------------- networks
# (in a real task these live in medgan/nets/, which holds networks only)


class Generator(nn.Module):
    """z (B, z_dim) -> image (B, 1, S, S) in [-1, 1]."""

    def __init__(self, z_dim: int, hidden: int, size: int):
        super().__init__()
        self.size = size
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ReLU(), nn.Linear(hidden, size * size), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, self.size, self.size)


class Critic(nn.Module):
    """image -> score (B,); ``features`` is the hidden layer (f-AnoGAN's feature residual)."""

    def __init__(self, hidden: int, size: int):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(size * size, hidden), nn.LeakyReLU(0.2))
        self.head = nn.Linear(hidden, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x)).squeeze(1)


class Encoder(nn.Module):
    """image -> z (B, z_dim), bounded like the latents G saw."""

    def __init__(self, z_dim: int, hidden: int, size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(size * size, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, z_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _build(name: str, net: dict[str, int]) -> nn.Module:
    if name == "generator":
        return Generator(net["z_dim"], net["hidden"], net["image_size"])
    if name == "critic":
        return Critic(net["hidden"], net["image_size"])
    if name == "encoder":
        return Encoder(net["z_dim"], net["hidden"], net["image_size"])
    raise MedganError(f"the template task has no network named {name!r}")


# ----------------------------------------------------------------------------- the typed model


@dataclass
class TemplateModel:
    """What :func:`medgan.tasks.load_model` returns for a template run."""

    generator: nn.Module
    encoder: nn.Module
    critic: nn.Module
    intensity: IntensityMap
    kappa: float
    info: dict[str, Any]

    @torch.no_grad()
    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """``(N, S, S)`` images in data units -> their reconstructions G(E(x)), in data units."""
        x = torch.from_numpy(self.intensity.forward(np.asarray(images, np.float32))[:, None])
        return self.intensity.inverse(self.generator(self.encoder(x)).numpy())[:, 0]

    @torch.no_grad()
    def score(self, images: np.ndarray) -> np.ndarray:
        """Per-image residual score (pixel MSE + κ · critic-feature MSE), batch-independent."""
        x = torch.from_numpy(self.intensity.forward(np.asarray(images, np.float32))[:, None])
        rec = self.generator(self.encoder(x))
        pixel = ((rec - x) ** 2).flatten(1).mean(1)
        feature = ((self.critic.features(rec) - self.critic.features(x)) ** 2).mean(1)
        return (pixel + self.kappa * feature).numpy()


# ----------------------------------------------------------------------------- the recipe


class TemplateTask(Task):
    """Phase ``gan``: critic then generator (hinge loss); phase ``encoder``: E trained so that
    G(E(x)) reproduces x, with G and the critic frozen (and in eval mode)."""

    name = "template"
    exported = ("generator", "critic", "encoder")  # no EMA: E must invert the G it is exported with

    @classmethod
    def resolve(cls, config, dataset) -> None:
        if config.task_config.encoder_steps < 0:
            raise MedganError(f"--encoder-steps {config.task_config.encoder_steps} must be >= 0")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        c = config.task_config
        self.net = {"z_dim": c.z_dim, "hidden": c.hidden, "image_size": dataset.image_size[0]}
        self.d_loss, self.g_loss = losses.ADVERSARIAL["hinge"]

    def networks(self) -> dict[str, nn.Module]:
        return {name: _build(name, self.net) for name in ("generator", "critic", "encoder")}

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        return {"generator": Optimizer(("generator",), o.lr_g, (o.beta1, o.beta2)),
                "critic": Optimizer(("critic",), o.lr_d, (o.beta1, o.beta2)),
                "encoder": Optimizer(("encoder",), o.lr_g, (o.beta1, o.beta2))}

    def phases(self) -> list[Phase]:
        return [
            Phase("gan", self.config.loop.steps, (Update("d", "critic", self.critic_objective, repeat=self.config.optim.n_critic),
                                                  Update("g", "generator", self.generator_objective))),
            Phase("encoder", self.config.task_config.encoder_steps, (Update("e", "encoder", self.encoder_objective),)),
        ]

    def _z(self, n: int, device: torch.device) -> torch.Tensor:
        return torch.randn(n, self.net["z_dim"], device=device)

    def critic_objective(self, nets: Networks, batch):
        real = batch["image"]
        with torch.no_grad():
            fake = nets.generator(self._z(len(real), real.device))
        loss = self.d_loss(nets.critic(real), nets.critic(fake))
        return {"loss": loss}

    def generator_objective(self, nets: Networks, batch):
        fake = nets.generator(self._z(len(batch["image"]), batch["image"].device))
        return {"loss": self.g_loss(nets.critic(fake))}

    def encoder_objective(self, nets: Networks, batch):
        x = batch["image"]
        rec = nets.generator(nets.encoder(x))
        pixel = F.mse_loss(rec, x)
        feature = F.mse_loss(nets.critic.features(rec), nets.critic.features(x))
        return {"loss": pixel + self.config.task_config.kappa * feature, "pixel_mse": pixel.detach()}

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        index = torch.arange(min(n // 2, len(self.dataset)))
        return {"x": self.dataset.batch(index)["image"].to(device)}

    def render(self, nets: Networks, fixed):
        x = fixed["x"]
        return torch.stack([x, nets.generator(nets.encoder(x))], dim=1).flatten(0, 1)  # x | G(E(x)) pairs

    def export_info(self, name: str) -> dict[str, Any]:
        return {"net": dict(self.net), "intensity": self.dataset.intensity.to_dict(), "config": asdict(self.config.task_config)}

    @classmethod
    def build_network(cls, name: str, info: dict[str, Any]) -> nn.Module:
        return _build(name, info["net"])

    @classmethod
    def from_pretrained(cls, exported, run=None) -> TemplateModel:
        missing = {"generator", "critic", "encoder"} - set(exported)
        if missing:
            raise MedganError(f"the run exported no {', '.join(sorted(missing))}", hint="give the whole run folder")
        info = exported["generator"][1]
        return TemplateModel(exported["generator"][0], exported["encoder"][0], exported["critic"][0],
                             IntensityMap(**info["intensity"]), float(info["config"]["kappa"]), info)

    @classmethod
    def evaluate_run(cls, run_dir, *, n, seed, metrics=None, **_):
        from template_task.evaluate import evaluate_template_run

        return evaluate_template_run(run_dir, metrics=metrics)

    @classmethod
    def describe_evaluation(cls, record):
        return f"{record['n_test']} held-out images reconstructed through E and G"

    @classmethod
    def report_parts(cls, run_dir):
        from template_task.report import reconstruction_section

        return reconstruction_section(run_dir)
