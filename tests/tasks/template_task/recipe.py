"""The template task's recipe (training): objectives, phases, sample grid, export; its
networks and typed model are in :mod:`template_task.model`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medgan import losses
from medgan.errors import MedganError
from medgan.train.task import Networks, Optimizer, Phase, Task, Update

from template_task.model import TemplateModel, _build, from_exported



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
        return from_exported(exported)

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
