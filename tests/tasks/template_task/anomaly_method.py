"""A fourth anomaly method in miniature: one class, and one line in
:data:`medgan.tasks.anomaly.methods.METHODS` (``"template-restore":
"template_task.anomaly_method:TemplateRestorer"``) makes it a ``--method`` of ``medgan train
anomaly``, trained, exported, calibrated, evaluated, reported and used by ``medgan detect``
like the others (tests/tasks/test_template_task.py checks each step).

The method: a two-layer convolutional restorer trained on normal images to undo added noise;
an image's score is its mean squared residual after restoration, its map ``|x - x^|``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medgan.tasks.anomaly.methods.base import AnomalyMethod, Defaults
from medgan.train.task import Networks, Optimizer, Phase, Update


class TemplateRestorer(AnomalyMethod):
    """Restore noisy normal images (see the module doc)."""

    name = "template-restore"
    networks = ("restorer",)
    exported = ("restorer",)
    defaults = Defaults(lr=1e-3, betas=(0.9, 0.999))

    @classmethod
    def line(cls) -> str:
        return "the template's restorer (a two-layer CNN that undoes noise on normal images; not measured)"

    @classmethod
    def build(cls, name: str, net) -> nn.Module:
        if name == "restorer":
            c, w = int(net["channels"]), int(net["width"])
            return nn.Sequential(nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, c, 3, padding=1), nn.Tanh())
        return super().build(name, net)

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        return {"restorer": Optimizer(("restorer",), o.lr_g, (o.beta1, o.beta2))}

    def phases(self) -> list[Phase]:
        return [Phase("train", self.config.loop.steps, (Update("r", "restorer", self.objective),))]

    def objective(self, nets: Networks, batch):
        x = batch["image"]  # (B, C, S, S) in [-1, 1]
        noisy = x + 0.2 * torch.randn_like(x)
        loss = F.l1_loss(nets.restorer(noisy), x)
        return {"loss": loss, "l1": loss.detach()}

    def render(self, nets: Networks, fixed, step: int) -> torch.Tensor:
        x = fixed["x"]
        return torch.stack([x, nets.restorer(x)], dim=1).flatten(0, 1)  # image | restored pairs

    @classmethod
    def score(cls, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rec = model.nets["restorer"](x)
        return ((x - rec) ** 2).flatten(1).mean(1), rec
