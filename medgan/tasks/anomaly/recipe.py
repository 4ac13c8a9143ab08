"""Anomaly detection: a model of normal images whose failure to redraw an image is its score.

Three methods, on the same DCGAN-shaped networks (:mod:`medgan.nets.dcgan`,
:mod:`medgan.nets.encoder`) and one engine, each a class of :mod:`medgan.tasks.anomaly.methods`
(its networks, phases, objectives and score):

- **f-AnoGAN** (Schlegl et al. 2019): a WGAN-GP on normal images, then an encoder into its
  latent space (:mod:`~medgan.tasks.anomaly.methods.fanogan`);
- **GANomaly** (Akcay et al. 2018): an encoder-decoder-encoder generator against a
  discriminator (:mod:`~medgan.tasks.anomaly.methods.ganomaly`);
- **ae**: the plain autoencoder baseline on L1 (:mod:`~medgan.tasks.anomaly.methods.ae`).

This module is the training recipe the engine runs: it resolves the run's config, builds the
chosen method and hands it the engine's calls. The trained model, its loading and its scoring
are :mod:`medgan.tasks.anomaly.model`. Scores are calibrated after training on held-out
normal volumes (:mod:`medgan.tasks.anomaly.evaluate`, written to ``RUN/calibration.json``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medgan.errors import MedganError
from medgan.tasks.anomaly import model
from medgan.tasks.anomaly.methods import method_class
from medgan.tasks.anomaly.model import AnomalyModel
from medgan.train.task import Networks, Optimizer, Phase, Task

__all__ = ["AnomalyModel", "AnomalyTask"]


class AnomalyTask(Task):
    """A model of normal images by one of the methods of :mod:`medgan.tasks.anomaly.methods`."""

    name = "anomaly"
    models = None  # each method's own (AnomalyMethod.model), checked by resolve
    samples_title = "The same training images at every step: image | reconstruction (f-AnoGAN's GAN phase: image | a sample G(z))"
    grid_columns = 8

    @classmethod
    def method_line(cls, config) -> str:
        return method_class(config.task_config.method).line()

    @classmethod
    def default_model(cls, config) -> str:
        return method_class(config.task_config.method).model

    @classmethod
    def run_name(cls, config) -> str:
        return config.task_config.method  # "restore", not the U-Net it trains ("pix2pix")

    @classmethod
    def resolve(cls, config, dataset) -> None:
        a = config.task_config
        method = method_class(a.method)
        if config.model.name != method.model:
            raise MedganError(f"the {a.method} method trains its own {method.model} networks, not --model {config.model.name}",
                              hint="leave out --model")
        d = method.defaults
        for name, value in (("lr_g", d.lr), ("lr_d", d.lr), ("beta1", d.betas[0]), ("beta2", d.betas[1]), ("n_critic", d.n_critic)):
            if getattr(config.optim, name) is None:
                setattr(config.optim, name, value)
        if config.loss.name == "auto":
            config.loss.name = d.loss
        if a.normalise_residual == "auto":
            a.normalise_residual = d.normalise_residual
        if a.image_score == "auto":
            a.image_score = d.image_score
        if config.loop.steps is None and not config.loop.time_budget and d.steps:
            config.loop.steps = d.steps  # what the method was measured at (a budget plans its own)
        method.resolve(config)
        if config.loop.augment == "auto":
            config.loop.augment = ""
        if config.loop.augment:
            raise MedganError("--augment would teach the model of normal images that augmented images are normal", hint="leave it out")
        method.resolve_net(config, dataset)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        method = method_class(config.task_config.method)
        #: the networks' config (exported in each network's ``config.json``).
        self.net = {key: config.model.net[key] for key in method.net_keys}
        #: the chosen method: its networks, optimisers, phases and objectives.
        self.method = method(config, self.net)
        self.exported = self.method.exported
        self._step = 0  # of the run, for the sample grids of f-AnoGAN's two phases

    # ---- the engine's calls, answered by the method

    def networks(self) -> dict[str, nn.Module]:
        return self.method.build_networks()

    def optimizers(self) -> dict[str, Optimizer]:
        return self.method.optimizers()

    def phases(self) -> list[Phase]:
        return self.method.phases()

    def plan(self, steps: list[int]) -> None:
        self.method.plan(steps)

    # ---- sample grids: image | reconstruction

    def before_step(self, nets: Networks, step: int) -> None:
        self._step = step

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        k = max(1, min(n // 2, len(self.dataset)))
        index = torch.as_tensor(np.unique(np.linspace(0, len(self.dataset) - 1, k).round().astype(np.int64)))
        fixed = {"x": self.dataset.batch(index)["image"].to(device)}
        if "z_dim" in self.net:  # latent codes for a method whose grid shows samples G(z)
            z = torch.rand(len(index), self.net["z_dim"], generator=torch.Generator().manual_seed(self.config.loop.seed + 7919)) * 2 - 1
            fixed["z"] = z.to(device)
        return fixed

    @torch.no_grad()
    def render(self, nets, fixed):
        return self.method.render(nets, fixed, self._step)  # (2B, C, S, S)

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

        return evaluate_anomaly_run(run_dir, metrics)

    @classmethod
    def describe_evaluation(cls, record):
        line = (f"{record['n_normal']} held-out normal images (not used to calibrate) and {record['n_anomalous']} with lesions; "
                f"threshold at alpha {record['alpha']:g}")
        baseline = record.get("baseline")  # the z-score rule on the same images (evaluate.baseline_record)
        return line if baseline is None else f"{line}; the model {baseline['verdict']}"

    @classmethod
    def report_parts(cls, run_dir):
        from medgan.tasks.anomaly.report import anomaly_section

        return anomaly_section(run_dir)

    # ---- export and loading

    def validate(self, nets: Networks, holdout) -> dict[str, float]:
        """Image AUROC of the method's raw score (before the residual normalisation, which is
        fitted after training) between up to 64 held-out normals and the same images with
        simulated lesions (``val_auroc``; embedded sources only: a user's data holds no known
        anomalies)."""
        from medgan.data.labels import evenly_chosen
        from medgan.tasks.anomaly.evaluate import lesion_set

        if not len(holdout):
            return {}
        if getattr(self, "_val", None) is None:
            normals = holdout.subset(evenly_chosen(len(holdout), 64))
            lesions = lesion_set(self.config.data.source, normals, self.config.loop.seed)
            if lesions is None or not len(lesions[0]):
                self._val = ()
            else:
                imap = self.dataset.intensity
                as_batch = lambda a: torch.from_numpy(imap.forward(a.astype(np.float32))[:, None] if a.ndim == 3 else imap.forward(a))  # noqa: E731
                self._val = (as_batch(normals.images), as_batch(lesions[0]))
        if not self._val:
            return {}
        trained = AnomalyModel(self.method.name, dict(nets), self.dataset.intensity, float(self.config.task_config.kappa),
                               self.export_info(self.exported[0]))
        device = next((p.device for net in nets.values() for p in net.parameters()), torch.device("cpu"))
        normal, lesion = (torch.cat([type(self.method).score(trained, x[i : i + 32].to(device))[0].float().cpu()
                                     for i in range(0, len(x), 32)]) for x in self._val)
        # AUROC as the Mann-Whitney statistic: the chance that a lesion image outscores a normal one (ties count half)
        greater = (lesion[:, None] > normal[None, :]).float().mean() + 0.5 * (lesion[:, None] == normal[None, :]).float().mean()
        return {"val_auroc": float(greater)}

    def export_info(self, name: str) -> dict[str, Any]:
        opts = self.config.data.options
        return {"method": self.method.name, "net": dict(self.net), "intensity": self.dataset.intensity.to_dict(),
                "anomaly": asdict(self.config.task_config), "source": self.config.data.source, "units": self.dataset.data.units,
                "resize": {"size": opts.size, "mode": opts.resize_mode}, "preprocess": {"window": opts.window, "normalize": opts.normalize}}

    @classmethod
    def build_network(cls, name: str, info: dict[str, Any]) -> nn.Module:
        return model.build_network(name, info)

    @classmethod
    def from_pretrained(cls, exported, run: str | Path | None = None) -> AnomalyModel:
        """The :class:`AnomalyModel` of the loaded networks, calibrated from the run folder
        ``run`` when given (see :func:`medgan.tasks.anomaly.model.from_pretrained`)."""
        return model.from_pretrained(exported, run)
