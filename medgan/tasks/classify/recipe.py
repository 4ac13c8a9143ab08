"""Classification through the engine with no adversary: one network, one update per step.

The downstream half of the data-augmentation application: the same ResNet-18 is trained on
real images, on real images with classical augmentation, with synthetic images added, or on
synthetic images alone, and scored on real held-out patients
(:mod:`medgan.tasks.classify.augment_eval`). Cross-entropy on labelled batches; classical
augmentation applied to each batch on the device.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgan.errors import MedganError
from medgan.nets.classifier import ClassifierConfig, ResNetClassifier
from medgan.train.augment import classical_augment
from medgan.tasks.classify.model import MODEL, ClassifierModel, build_classifier, from_exported
from medgan.train.task import Networks, Optimizer, Phase, Task, Update

class ClassifyTask(Task):
    """``classifier``: image -> class logits, trained on cross-entropy (classical augmentation optional)."""

    name = "classify"
    models = (MODEL,)
    exported = ("classifier",)
    lr_decay = "cosine"
    samples_title = "The same training images at every step, as the classifier sees them (augmented when augmentation is on)"

    @classmethod
    def method_line(cls, config) -> str:
        if config.task_config.augmentation == "classical":
            return ("a ResNet-18 on cross-entropy with classical augmentation: the best condition in benchmarks/augment_eval.py "
                    "(5% of the labels: balanced accuracy 0.887, against 0.812 without augmentation and 0.867 with synthetic "
                    "images added)")
        return "a ResNet-18 on cross-entropy without augmentation (--augmentation classical measured better)"

    @classmethod
    def resolve(cls, config, dataset) -> None:
        if config.model.name != MODEL:
            raise MedganError(f"the classify task trains a {MODEL}, not {config.model.name!r}", hint="leave out --model")
        data = dataset.data
        if data.labels is None or not data.class_names:
            raise MedganError("classification needs labelled data (subfolders per class, --labels-csv or an npz with labels)",
                              path=config.data.source)
        if len(data.class_names) < 2:
            raise MedganError(f"classification needs at least two classes, the data has {len(data.class_names)}", path=config.data.source)
        # the network's full config, so config.json names every field
        config.model.net = asdict(ClassifierConfig(channels=dataset.channels, num_classes=len(data.class_names),
                                                   image_size=dataset.image_size[0], width=int(config.model.net.get("width", 32))))

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.net_config = ClassifierConfig(**{f.name: config.model.net[f.name] for f in fields(ClassifierConfig)})
        self.augment = config.task_config.augmentation == "classical"

    def networks(self) -> dict[str, nn.Module]:
        return {"classifier": ResNetClassifier(self.net_config)}

    def optimizers(self) -> dict[str, Optimizer]:
        return {"classifier": Optimizer(("classifier",), self.config.task_config.lr, (0.9, 0.999))}

    def phases(self) -> list[Phase]:
        return [Phase("train", self.config.loop.steps, (Update("c", "classifier", self.objective),))]

    def objective(self, nets: Networks, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = batch["image"]  # (B, C, H, W) in [-1, 1]
        if self.augment:
            x = classical_augment(x)
        logits = nets.classifier(x)  # (B, K)
        loss = F.cross_entropy(logits, batch["label"])
        return {"loss": loss, "train_acc": (logits.detach().argmax(1) == batch["label"]).float().mean()}

    def validate(self, nets: Networks, holdout) -> dict[str, float]:
        """Accuracy and balanced accuracy (the mean of the per-class recalls) on up to 256
        held-out images spread over the set (``val_acc``, ``val_balanced_acc``)."""
        from medgan.data.labels import evenly_chosen

        if holdout.labels is None or not len(holdout):
            return {}
        if getattr(self, "_val", None) is None:
            part = holdout.subset(evenly_chosen(len(holdout), 256))
            x = self.dataset.intensity.forward(part.images.astype(np.float32))
            self._val = (torch.from_numpy(x[:, None] if x.ndim == 3 else x), torch.from_numpy(part.labels.astype(np.int64)))
        x, y = self._val
        net = nets.classifier
        device = next(net.parameters()).device
        pred = torch.cat([net(x[i : i + 64].to(device)).argmax(1).cpu() for i in range(0, len(x), 64)])
        recalls = [((pred == k) & (y == k)).sum() / (y == k).sum() for k in y.unique()]
        return {"val_acc": float((pred == y).float().mean()), "val_balanced_acc": float(torch.stack(recalls).float().mean())}

    # ---- sample grids: what the classifier is shown (augmented when augmentation is on)

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        pick = torch.linspace(0, len(self.dataset) - 1, min(n, len(self.dataset))).long()
        return {"image": self.dataset.batch(pick)["image"].to(device)}

    @torch.no_grad()
    def render(self, nets, fixed):
        with torch.random.fork_rng(devices=[]):  # the same augmented views at every step, the run's RNG untouched
            torch.manual_seed(self.config.loop.seed)
            return classical_augment(fixed["image"]) if self.augment else fixed["image"]

    # ---- export, loading, evaluation

    def export_info(self, name: str) -> dict[str, Any]:
        opts = self.config.data.options
        return {"model": MODEL, "net": asdict(self.net_config), "intensity": self.dataset.intensity.to_dict(),
                "class_names": list(self.dataset.data.class_names), "source": self.config.data.source,
                "augmentation": self.config.task_config.augmentation, "units": self.dataset.data.units,
                "resize": {"size": opts.size, "mode": opts.resize_mode}, "preprocess": {"window": opts.window, "normalize": opts.normalize}}

    @classmethod
    def build_network(cls, name: str, info: dict[str, Any]) -> nn.Module:
        if name != "classifier":
            return super().build_network(name, info)
        return build_classifier(info)

    @classmethod
    def from_pretrained(cls, exported, run=None) -> ClassifierModel:
        return from_exported(exported)

    @classmethod
    def evaluate_run(cls, run_dir, *, n, seed, inception_weights, require_inception, metrics=None):
        """Accuracy, balanced accuracy, AUROC and calibration on the run's held-out patients
        (``metrics``: the registered classification metrics; default all)."""
        from medgan.tasks.classify.evaluate import evaluate_classifier_run

        return evaluate_classifier_run(run_dir, metrics=metrics)

    @classmethod
    def describe_evaluation(cls, record):
        return f"{record['n_test']} held-out images ({', '.join(f'{k}: {v}' for k, v in record['test_classes'].items())})"
