"""Segmentation: a U-Net, alone or against a critic, with unlabelled images (semi-supervised).

Networks: ``segmentor`` (MONAI's residual U-Net, :mod:`medgan.nets.segmentor`) maps an image
to class logits; ``critic`` (a conditional PatchGAN without normalisation) sees an image
beside a class-probability map and says, per patch, whether the map is a real label map
(one-hot) or a prediction (Luc et al. 2016). Per step:

- **critic** (BCE): real = (x, one-hot y), fake = (x, softmax S(x)) for the labelled batch and
  (x_u, softmax S(x_u)) for an unlabelled batch of the same size;
- **segmentor**: Dice + cross-entropy on the labelled batch (MONAI's ``DiceCELoss``, what a
  MONAI user writes), plus ``adv_weight`` x the non-saturating adversarial loss of its
  labelled predictions, plus on the unlabelled batch (Hung et al. 2018) ``semi_adv_weight``
  x the adversarial loss and, from ``semi_start`` of the run on, ``semi_weight`` x the
  cross-entropy towards its own predicted classes on the pixels where the critic's
  confidence (its logits upsampled to the image, through a sigmoid) exceeds ``semi_threshold``.
  Optionally SegAN's multi-scale L1 between the critic's features of (x, prediction) and
  (x, truth) (Xue et al. 2018), here a feature-matching term for the segmentor with the
  critic trained by BCE (SegAN's critic maximising the L1 itself needs weight clipping).

With ``--adversarial off`` only the segmentor is built and trained, on Dice + CE: the same
network, data and steps, half the forward passes of the semi-supervised run (no unlabelled
batch) and no critic (about a third of the adversarial step's cost).

**Mean teacher** (``--mean-teacher W``; Tarvainen & Valpola 2017, as Yu et al. 2019 use it
for few-label segmentation), semi-supervised without an adversary: a ``teacher`` network,
the exponential moving average of the segmentor (updated before every step, so resume stays
exact; no optimiser trains it), sees an unlabelled batch under one draw of noise, the
segmentor under another, and the segmentor adds W x ramp(t) x the mean squared difference
of their class probabilities. Both networks are exported (``RUN/segmentor``, ``RUN/teacher``);
inference and evaluation of ``RUN`` use the teacher, measured better than its segmentor.

Label values: masks may use any integers (0/255 PNG masks, atlas label numbers); the run's
classes are the values named in ``--class-names`` or, without it, those found in the
training masks, and the network predicts their index (``label_values[k]`` is class ``k``'s
value, written back into label maps at inference). 0 is the background.
"""

from __future__ import annotations

import math
from dataclasses import asdict, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgan import losses
from medgan.data.dataset import MedicalImageDataset
from medgan.data.imageset import ImageSet
from medgan.errors import MedganError, warn
from medgan.nets.patchgan import PatchGANConfig, PatchGANDiscriminator
from medgan.nets.segmentor import SegmentorConfig, UNetSegmentor
from medgan.report.grid import tint  # noqa: F401 (re-exported)
from medgan.train.augment import classical_augment
from medgan.train.ema import update_ema
from medgan.data.labels import evenly_chosen, label_classes, one_hot, parse_class_names, to_indices  # noqa: F401 (re-exported)
from medgan.tasks.segment.model import MODEL, SegmentationModel, build_segmentor, from_exported
from medgan.train.task import Networks, Optimizer, Phase, Task, Update

def critic_map(logits: torch.Tensor, hard: bool) -> torch.Tensor:
    """``(B, K, H, W)`` logits -> what the critic sees: the softmax, or (``hard``) the one-hot
    argmax carrying the softmax's gradient (straight-through)."""
    p = torch.softmax(logits.float(), 1)
    if not hard:
        return p
    return one_hot(p.argmax(1), p.shape[1]) + p - p.detach()


class SegmentTask(Task):
    """``segmentor``: image -> class logits; ``critic``: (image, class map) -> patch logits."""

    name = "segment"
    models = (MODEL,)
    exported = ("segmentor",)
    # A constant rate, as MONAI's tutorials: at 10 CPU-minutes on all labels a cosine decay
    # cost 0.7-1.4 Dice on the other head (benchmarks/segment_vs_unet.py --budget 600).
    lr_decay = "none"
    grid_columns = 6  # two (image | prediction | truth) triplets per row
    repeat_small_data = True  # 8 labelled slices fill a batch of 32
    samples_title = "The same training slices at every step: image | prediction | truth"

    @classmethod
    def resolve(cls, config, dataset) -> None:
        if config.model.name != MODEL:
            raise MedganError(f"the segment task trains a {MODEL}, not {config.model.name!r}", hint="leave out --model")
        # Adam as in MONAI's tutorials for the segmentor (1e-3 here: short CPU runs), Hung et
        # al.'s 1e-4 for the critic; betas 0.9 / 0.999 for both, BCE for the critic.
        for name, value in (("lr_g", 1e-3), ("lr_d", 1e-4), ("beta1", 0.9), ("beta2", 0.999)):
            if getattr(config.optim, name) is None:
                setattr(config.optim, name, value)
        if config.loss.name == "auto":
            config.loss.name = "bce"
        # 16-32-64-128-256, MONAI's tutorial widths: at 10 CPU-minutes on all labels the
        # wider 32-512 U-Net lost to it by taking a third of its steps (benchmarks/segment_vs_unet.py).
        config.model.net.setdefault("width", 16)
        if config.loop.augment == "auto":
            config.loop.augment = ""
        if config.loop.augment:
            raise MedganError("--augment (DiffAugment) is for GANs that make images", hint="leave it out for segmentation")
        s = config.task_config
        if s.unlabelled and not (s.uses_critic or s.uses_teacher):
            raise MedganError("--unlabelled images train the U-Net through the critic or a mean teacher, both off by default",
                              path=s.unlabelled, hint="add --mean-teacher 0.1 or --adversarial on")
        # The networks' full configs, so config.json names every field: the U-Net's classes are
        # the run's label values (cls.classes), its sides must be multiples of 2^depth.
        net = config.model.net
        _, class_names = cls.classes(config, dataset)
        unet = SegmentorConfig(channels=dataset.channels, num_classes=len(class_names), **{
            key: net[key] for key in ("width", "depth", "res_units", "dropout") if key in net})
        size = dataset.image_size
        if size[0] % unet.multiple or size[1] % unet.multiple:
            raise MedganError(f"a depth-{unet.depth} U-Net needs sides that are multiples of {unet.multiple}, "
                              f"the images are {size[0]}x{size[1]}", hint=f"use --size {max(16, size[0] // 16 * 16)}")
        config.model.net = {**asdict(unet), "d_width": int(net.get("d_width", 64)), "d_layers": int(net.get("d_layers", 3))}

    @staticmethod
    def classes(config, dataset) -> tuple[list[int], list[str]]:
        """The run's ``(label_values, class_names)``: those of ``--class-names``, else the
        values the training masks hold (see :func:`label_classes`)."""
        data, where = dataset.data, config.data.source
        if data.masks is None:
            raise MedganError("segmentation needs masks", path=where,
                              hint="give --masks FOLDER (one mask per image, same name), or brain-mri / phantom")
        s = config.task_config
        names = parse_class_names(s.class_names) if s.class_names else None
        return label_classes(data.masks[data.labelled_index()], names, data.mask_names, where)

    @classmethod
    def method_line(cls, config) -> str:
        if config.task_config.adversarial == "on":
            return "a U-Net against a critic (--adversarial on; measured: no Dice gain at 2.5-2.9x the step cost)"
        if config.task_config.synthetic:
            return ("a U-Net on labelled and generated image-label pairs (--synthetic; measured: 0.8-4.8 Dice below the U-Net "
                    "alone at 8 and 32 labels, a tie on a partly labelled scan)")
        if config.task_config.uses_teacher:
            return ("a U-Net with a mean teacher on the unlabelled images (--mean-teacher; measured: a tie with the U-Net alone "
                    "at 8 labels, 1 Dice below at 32, in equal seconds); the teacher is what the run gives")
        if config.task_config.augmentation == "elastic" and config.optim.decay == "none":
            return ("a U-Net on Dice + cross-entropy with classical augmentation, elastic deformation and a constant rate: "
                    "the best per CPU-second in benchmarks/segment_vs_unet.py (+0.9 to +2.1 Dice over classical augmentation "
                    "alone with 8 labelled images, which itself beat MONAI's tutorial loop by 10 lesion Dice on CT phantoms at "
                    "10 minutes; --adversarial on adds the critic)")
        return ("a U-Net on Dice + cross-entropy (the measured best is classical augmentation with elastic deformation at a "
                "constant rate, the default)")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        s = config.task_config
        data, where = dataset.data, config.data.source
        self.label_values, self.class_names = self.classes(config, dataset)
        annotated = data.labelled_index()  # all, or those a partly labelled scan has masks for
        k = len(self.class_names)
        masks = to_indices(data.masks, self.label_values, where)

        # Labelled slices: the annotated ones, or `labelled` of them spread evenly; the others
        # (not annotated, or whose masks are dropped) are unlabelled.
        chosen = annotated[evenly_chosen(len(annotated), s.labelled)]
        rest = np.setdiff1d(np.arange(len(data)), chosen)
        labelled = replace(data.subset(chosen), masks=masks[chosen], mask_names=self.class_names, annotated=None)
        self.dataset = MedicalImageDataset(labelled, intensity=dataset.intensity)
        self.n_labelled = len(chosen)

        unlabelled = [data.images[rest]] if len(rest) else []
        if s.unlabelled:
            unlabelled.append(self._read_unlabelled(s.unlabelled, config, data))
        self.uses_critic = s.uses_critic
        self.hard = s.critic_maps == "hard"
        self.semi = self.uses_critic and bool(unlabelled) and (s.semi_adv_weight > 0 or s.semi_weight > 0)
        self.uses_teacher = s.uses_teacher
        if self.uses_teacher and not unlabelled:
            raise MedganError("a mean teacher learns from unlabelled images, and every training image is labelled", path=where,
                              hint="keep fewer labels (--labelled N), give --unlabelled SOURCE, or leave out --mean-teacher")
        if self.uses_teacher:
            self.exported = ("segmentor", "teacher")
        self.synthetic_x, self.synthetic_y = self._synthetic_pairs(s, dataset)
        images = np.concatenate(unlabelled) if (self.semi or self.uses_teacher) else data.images[:0]
        x = dataset.intensity.forward(images.astype(np.float32))
        self.unlabelled = torch.from_numpy(x[:, None] if x.ndim == 3 else x)  # (M, C, H, W) in [-1, 1]
        self.n_unlabelled = len(self.unlabelled)
        if len(rest) and not (self.uses_critic or self.uses_teacher):
            warn(f"{len(rest)} training images without masks are not used: only a mean teacher or the critic learns from them",
                 path=where, hint="add --mean-teacher 0.1 (or --adversarial on) to train through them")

        net = config.model.net
        self.net_config = SegmentorConfig(**{f.name: net[f.name] for f in fields(SegmentorConfig)})
        self.critic_config = PatchGANConfig(cond_channels=dataset.channels, image_channels=k, width=int(net["d_width"]),
                                            n_layers=int(net["d_layers"]), norm="none")
        self.d_loss, self.g_loss = losses.ADVERSARIAL[config.loss.name]
        from monai.losses import DiceCELoss

        # MONAI's DiceCELoss as a MONAI user writes it ("all"), or with the Dice term over the
        # foreground classes only, per image or pooled over the batch (small structures)
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, include_background=s.dice == "all", batch=s.dice == "batch")
        self._step = 0

    def _synthetic_pairs(self, s, dataset) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``--synthetic RUN``: ``synthetic_n`` pairs drawn once (seeded by the run's seed) from
        a ``--pairs`` synthesis run, as images ``(N, C, H, W)`` in this run's [-1, 1] and class
        indices ``(N, H, W)``; ``(None, None)`` without it."""
        if not s.synthetic:
            return None, None
        from medgan.tasks import load_model
        from medgan.tasks.synth.model import SynthesisModel, draw

        model = load_model(s.synthetic)
        if not isinstance(model, SynthesisModel) or not model.pairs:
            raise MedganError("--synthetic needs a synthesis run that draws image-label pairs", path=s.synthetic,
                              hint="train one with medgan train synth --pairs on the labelled images")
        unknown = [v for v in model.label_values if v not in self.label_values]
        if unknown:
            raise MedganError(f"the generated label maps hold label value {unknown[0]}, which this run's masks do not", path=s.synthetic,
                              hint=f"train the pairs on masks with this run's labels ({', '.join(map(str, self.label_values))})")
        units, size = model.intensity.units, tuple(model.info.get("image_size") or ())
        if units != dataset.intensity.units or size != tuple(dataset.image_size):
            raise MedganError(f"the generated pairs are {'x'.join(map(str, size))} px in {units or 'no units'}, this run's images "
                              f"{'x'.join(map(str, dataset.image_size))} px in {dataset.intensity.units or 'no units'}", path=s.synthetic,
                              hint="train both on the same kind of images with the same --size")
        images, labels = model.split(draw(model.generator, model.z_dim, s.synthetic_n, seed=self.config.loop.seed))
        x = dataset.intensity.forward(model.intensity.inverse(images)).astype(np.float32)  # the synthesis run's [-1, 1] -> this run's
        y = to_indices(labels, self.label_values, s.synthetic)
        return torch.from_numpy(np.clip(x, -1, 1)), torch.from_numpy(y.astype(np.int64))

    @staticmethod
    def _read_unlabelled(source: str, config, data: ImageSet) -> np.ndarray:
        from medgan.data.sources import load_source

        options = replace(config.data.options, masks=None)
        extra = load_source(source, options)
        if extra.images.shape[1:] != data.images.shape[1:]:
            raise MedganError(f"the unlabelled images are {'x'.join(map(str, extra.images.shape[1:]))}, the labelled ones "
                              f"{'x'.join(map(str, data.images.shape[1:]))}", path=source, hint="read both with the same --size")
        if extra.units != data.units:
            raise MedganError(f"the unlabelled images are in {extra.units or 'no units'}, the labelled ones in {data.units or 'no units'}",
                              path=source, hint="give images of the same kind (and the same --window)")
        return extra.images

    # ---- networks

    def networks(self) -> dict[str, nn.Module]:
        nets: dict[str, nn.Module] = {"segmentor": UNetSegmentor(self.net_config)}
        if self.uses_teacher:
            nets["teacher"] = UNetSegmentor(self.net_config)  # no optimiser: before_step averages the segmentor into it
        if self.uses_critic:
            nets["critic"] = PatchGANDiscriminator(self.critic_config)
        return nets

    def optimizers(self) -> dict[str, Optimizer]:
        o = self.config.optim
        out = {"segmentor": Optimizer(("segmentor",), o.lr_g, (o.beta1, o.beta2))}
        if self.uses_critic:
            out["critic"] = Optimizer(("critic",), o.lr_d, (o.beta1, o.beta2))
        return out

    def phases(self) -> list[Phase]:
        updates = (Update("s", "segmentor", self.segmentor_objective),)
        if self.uses_critic:
            updates = (Update("d", "critic", self.critic_objective), *updates)
        return [Phase("train", self.config.loop.steps, updates)]

    def before_step(self, nets: Networks, step: int) -> None:
        self._step = step
        if self.uses_teacher:  # the teacher after step - 1 is the average of the segmentor up to it
            update_ema(nets.teacher, nets.segmentor, self.config.task_config.teacher_decay, step)

    def consistency_weight(self, step: int) -> float:
        """The mean teacher's weight at ``step``: ``W exp(-5 (1 - t)^2)``, ``t`` the share of
        the ramp-up done (Laine & Aila 2017, as Tarvainen & Valpola)."""
        s = self.config.task_config
        ramp = s.consistency_rampup * self.config.loop.steps
        t = 1.0 if ramp <= 0 else min(1.0, step / ramp)
        return s.mean_teacher * math.exp(-5.0 * (1.0 - t) ** 2)

    # ---- batches

    def _generator(self, batch: dict[str, torch.Tensor], stream: int = 0) -> torch.Generator:
        """Drawn from the batch number: the critic and segmentor updates of a step see the
        same flips and unlabelled images, and a resumed run the same ones (``stream``: another
        sequence for the same batch, e.g. the mean teacher's noise)."""
        return torch.Generator().manual_seed(self.config.loop.seed * 1_000_003 + int(batch["number"]) + stream * 7_919)

    def _augment(self, g: torch.Generator, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images ``(B, C, H, W)`` and their class maps ``(B, H, W)`` (or ``None``) under the
        run's augmentation: each pair mirrored left-right with probability 1/2 (unless
        ``--no-mirror``) and, for ``classical``, a small rotation, zoom and shift of both and a
        brightness/contrast change of the image (:func:`medgan.train.augment.classical_augment`)."""
        s = self.config.task_config
        if s.augmentation in ("classical", "elastic"):
            out = classical_augment(x, flip=s.flip, masks=y, generator=g, elastic=0.03 if s.augmentation == "elastic" else 0.0)
            return out if y is not None else (out, None)
        if not s.flip:
            return x, y
        mirror = (torch.rand(len(x), generator=g) < 0.5).to(x.device)
        x = torch.where(mirror[:, None, None, None], x.flip(-1), x)
        return x, (None if y is None else torch.where(mirror[:, None, None], y.flip(-1), y))

    def _batches(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(labelled images (B, C, H, W), their class indices (B, H, W), unlabelled images or None);
        with ``--synthetic``, the last ``ratio`` of the labelled batch replaced by generated pairs."""
        g = self._generator(batch)
        x, y = batch["image"], batch["mask"]
        s = self.config.task_config
        if self.synthetic_x is not None and self._step >= s.synthetic_start * self.config.loop.steps:
            k = int(round(len(x) * s.synthetic_ratio))
            pick = torch.randint(len(self.synthetic_x), (k,), generator=self._generator(batch, stream=2))
            x = torch.cat([x[: len(x) - k], self.synthetic_x[pick].to(x.device, x.dtype)])
            y = torch.cat([y[: len(y) - k], self.synthetic_y[pick].to(y.device)])
        x, y = self._augment(g, x, y)
        xu = None
        if self.semi or self.uses_teacher:
            pick = torch.randint(self.n_unlabelled, (len(x),), generator=g)
            xu, _ = self._augment(g, self.unlabelled[pick].to(x.device))
        return x, y, xu

    # ---- objectives

    def critic_objective(self, nets: Networks, batch):
        S, D = nets.segmentor, nets.critic
        x, y, xu = self._batches(batch)
        k = len(self.class_names)
        with torch.no_grad():
            inputs = x if xu is None else torch.cat([x, xu])
            fake = critic_map(S(inputs), self.hard)  # (B or 2B, K, H, W)
        real_logits, fake_logits = D(x, one_hot(y, k)), D(inputs, fake)
        return {"loss": self.d_loss(real_logits, fake_logits), "d_real": torch.sigmoid(real_logits.detach()).mean(),
                "d_fake": torch.sigmoid(fake_logits.detach()).mean()}

    def segmentor_objective(self, nets: Networks, batch):
        s = self.config.task_config
        S, D = nets.segmentor, nets.get("critic")
        x, y, xu = self._batches(batch)
        logits = S(x)  # (B, K, H, W)
        supervised = self.dice_ce(logits, y[:, None])
        loss, out = supervised, {"dice_ce": supervised.detach()}
        if D is not None:
            p = critic_map(logits, self.hard)
            adv = self.g_loss(D(x, p))
            loss = loss + s.adv_weight * adv
            out["s_adv"] = adv.detach()
            if s.feature_weight > 0:
                real = D.features(x, one_hot(y, len(self.class_names)))
                fm = sum((a - b.detach()).abs().mean() for a, b in zip(D.features(x, p), real)) / len(real)
                loss = loss + s.feature_weight * fm
                out["feature_l1"] = fm.detach()
        if xu is not None and self.uses_teacher:
            g = self._generator(batch, stream=1)  # noise drawn apart from the augmentation's
            noise = lambda: (torch.randn(xu.shape, generator=g) * 0.1).clamp(-0.2, 0.2).to(xu.device)  # noqa: E731 (Yu et al.)
            with torch.no_grad():
                teacher = torch.softmax(nets.teacher(xu + noise()).float(), 1)
            student = torch.softmax(S(xu + noise()).float(), 1)
            consistency = ((student - teacher) ** 2).mean()
            w = self.consistency_weight(self._step)
            loss = loss + w * consistency
            out["consistency"], out["consistency_weight"] = consistency.detach(), torch.tensor(w)
        if xu is not None and D is not None:
            lu = S(xu)
            pu = critic_map(lu, self.hard)
            du = D(xu, pu)  # (B, 1, h, w)
            loss = loss + s.semi_adv_weight * self.g_loss(du)
            if self._step >= s.semi_start * self.config.loop.steps and s.semi_weight > 0:
                confidence = torch.sigmoid(F.interpolate(du.detach(), size=xu.shape[-2:], mode="bilinear", align_corners=False))[:, 0]
                chosen = confidence > s.semi_threshold  # (B, H, W)
                ce = F.cross_entropy(lu, pu.detach().argmax(1), reduction="none")
                semi = (ce * chosen).sum() / chosen.sum().clamp(min=1)
                loss = loss + s.semi_weight * semi
                out["semi_ce"], out["semi_pixels"] = semi.detach(), chosen.float().mean()
        out["loss"] = loss
        return out

    # ---- validation during training: Dice on held-out slices

    def validate(self, nets: Networks, holdout) -> dict[str, float]:
        """Dice over the foreground classes, pooled over up to 64 held-out slices spread over
        the set (``val_dice``; the teacher's too, ``val_dice_teacher``, in a mean-teacher run)."""
        if holdout.masks is None or not len(holdout):
            return {}
        if getattr(self, "_val", None) is None:
            part = holdout.subset(evenly_chosen(len(holdout), 64))
            try:
                y = to_indices(part.masks, self.label_values, "the held-out masks")
            except MedganError:  # a label the training masks lack: nothing fair to score
                return {}
            x = self.dataset.intensity.forward(part.images.astype(np.float32))
            self._val = (torch.from_numpy(x[:, None] if x.ndim == 3 else x), torch.from_numpy(y.astype(np.int64)))
        x, y = self._val
        out = {}
        for name in ("segmentor", "teacher") if self.uses_teacher else ("segmentor",):
            net = nets[name]
            device = next(net.parameters()).device
            pred = torch.cat([net(x[i : i + 32].to(device)).argmax(1).cpu() for i in range(0, len(x), 32)])  # (N, H, W)
            dice = [2 * ((pred == k) & (y == k)).sum() / ((pred == k).sum() + (y == k).sum())
                    for k in range(1, len(self.class_names)) if ((pred == k).sum() + (y == k).sum()) > 0]
            if dice:
                out["val_dice" if name == "segmentor" else "val_dice_teacher"] = float(torch.stack(dice).float().mean())
        return out

    # ---- sample grids: image | prediction | truth

    def fixed_inputs(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        k = max(2, n // 6 * 2)
        pick = torch.as_tensor(evenly_chosen(len(self.dataset), k))
        batch = self.dataset.batch(pick)
        return {"image": batch["image"].to(device), "mask": batch["mask"].to(device)}

    @torch.no_grad()
    def render(self, nets, fixed):
        x, y = fixed["image"], fixed["mask"]
        pred = nets.segmentor(x).argmax(1)
        return torch.stack([x[:, :1].expand(-1, 3, -1, -1), tint(x, pred), tint(x, y)], dim=1).flatten(0, 1).clamp(-1, 1)

    # ---- export, loading, evaluation

    def export_info(self, name: str) -> dict[str, Any]:
        data, opts = self.dataset.data, self.config.data.options
        return {"model": MODEL, "net": asdict(self.net_config), "intensity": self.dataset.intensity.to_dict(),
                "class_names": list(self.class_names), "label_values": [int(v) for v in self.label_values],
                "multiple": self.net_config.multiple, "source": self.config.data.source, "units": data.units,
                "adversarial": self.uses_critic, "labelled": self.n_labelled, "unlabelled": self.n_unlabelled,
                "mean_teacher": self.uses_teacher, "synthetic_pairs": 0 if self.synthetic_x is None else len(self.synthetic_x),
                # how training images were prepared, so that inference prepares new ones alike
                "resize": {"size": opts.size, "mode": opts.resize_mode},
                "preprocess": {"window": opts.window, "normalize": opts.normalize}}

    @classmethod
    def build_network(cls, name: str, info: dict[str, Any]) -> nn.Module:
        if name not in ("segmentor", "teacher"):
            return super().build_network(name, info)
        return build_segmentor(info)

    @classmethod
    def from_pretrained(cls, exported, run=None) -> SegmentationModel:
        return from_exported(exported)

    @classmethod
    def evaluate_run(cls, run_dir, *, n, seed, inception_weights, require_inception, metrics=None):
        """Dice, IoU, HD95, ASD and NSD per class on the run's held-out volumes (``metrics``:
        the registered segmentation metrics, overlap, surface and nsd; default all)."""
        from medgan.tasks.segment.evaluate import evaluate_segmentation_run

        return evaluate_segmentation_run(run_dir, metrics=metrics)

    @classmethod
    def describe_evaluation(cls, record):
        return (f"{record['n_volumes']} held-out volumes ({record['n_test']} slices); overlap per volume, "
                f"surface distances in {record['distance_units']} (2D, per slice, pooled per volume)")

    @classmethod
    def report_parts(cls, run_dir):
        from medgan.tasks.segment.report import segmentation_section

        return segmentation_section(run_dir)
