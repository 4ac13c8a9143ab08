"""The segmentation task's own options (the ``segment`` section of a run's config; each
field with an option is a ``medgan train segment`` flag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from medgan.errors import MedganError
from medgan.options import option

__all__ = ["AUGMENTATIONS", "DICE_TERMS", "SegmentConfig"]

AUGMENTATIONS = ("classical", "elastic", "mirror")
DICE_TERMS = ("all", "foreground", "batch")


@dataclass
class SegmentConfig:
    """A U-Net segmentor, alone or with a critic, on labelled and unlabelled images.

    The weights and thresholds default to Hung et al. 2018 ("Adversarial learning for
    semi-supervised semantic segmentation"): adversarial weight 0.01 on labelled and 0.001
    on unlabelled predictions, self-training weight 0.1 on the unlabelled pixels the
    critic believes with confidence above 0.2, self-training from a quarter of the run on.

    Attributes:
        adversarial: ``"off"`` (the default): the U-Net on Dice + cross-entropy alone, which
            the critic did not beat at 8, 32 or all labels while costing 2.5-2.9x per step
            (``benchmarks/segment_vs_unet.py``, README); ``"on"``: a critic judges (image,
            class-probability map) pairs, real one-hot label maps against predicted ones
            (Luc et al. 2016), and unlabelled images train through it.
        unlabelled: a source of images without masks (any source ``medgan data show`` reads,
            read with the same options); they train the segmentor through the critic.
        labelled: labelled training slices to keep (0: all), spread evenly over the training
            slices in their order (volume by volume, slice by slice): each volume gets its
            share, every few slices, as a user labels a scan; the masks of the other
            training slices are dropped and the slices join the unlabelled images.
        class_names: JSON file naming the label values, ``{"0": "background", "1": "tumour"}``
            or a list; default: the data's own names (embedded sets) or ``label0, label1 ...``.
        adv_weight: weight of the adversarial term on labelled predictions.
        semi_adv_weight: weight of the adversarial term on unlabelled predictions.
        semi_weight: weight of the self-training cross-entropy on confident unlabelled pixels.
        semi_threshold: critic confidence (sigmoid) above which an unlabelled pixel's
            predicted class becomes its target.
        semi_start: fraction of the run before self-training starts (the critic must first
            learn what a real label map looks like).
        critic_maps: ``"soft"``: the critic sees the softmax of a prediction (Luc et al.,
            Hung et al.), which a critic tells from one-hot truth by its softness alone;
            ``"hard"``: the one-hot argmax, with the softmax's gradient (straight-through),
            so that the critic can only judge the shapes.
        feature_weight: weight of SegAN's multi-scale L1 loss between the critic's features of
            (image, prediction) and (image, label map) (Xue et al. 2018; 0: off).
        flip: mirror each labelled pair left-right with probability 1/2.
        augmentation: ``"classical"``: besides the mirroring, a rotation of up to 10 degrees,
            a zoom of up to 10% and a shift of up to 5% of both image and label map, and a
            brightness/contrast change of the image; ``"elastic"``: the same and a smooth
            elastic deformation of up to 3% of the side (what nnU-Net and MONAI's segmentation
            tutorials add; the default: it gained 0.9-2.1 Dice with 8 labelled images and tied
            at 32 and with all labels in benchmarks/segment_vs_unet.py); ``"mirror"``: the
            mirroring alone.
        dice: the Dice term of the loss: ``"all"`` (MONAI's ``DiceCELoss`` default: per image
            and class, background included), ``"foreground"`` (background left out: a small
            structure is not outweighed by the background's near-perfect Dice) or ``"batch"``
            (foreground classes, overlap pooled over the batch, so an image without the
            structure does not score an empty prediction 0 or 1 by the smoothing term).
        mean_teacher: weight of mean teacher's consistency term on unlabelled images
            (Tarvainen & Valpola 2017; Yu et al. 2019 use 0.1 for few-label segmentation;
            0: off): the mean squared difference of the class probabilities of the U-Net
            (the student) and of its exponential moving average (the teacher) on the same
            unlabelled images under different noise, ramped up as exp(-5 (1 - t)^2).
        teacher_decay: the teacher's EMA decay per step (ramped up from 0.9 over the first steps).
        consistency_rampup: share of the run over which the consistency weight ramps up.
        synthetic: a synthesis run trained with ``--pairs`` (``medgan train synth --pairs``):
            ``synthetic_n`` of its image-label pairs are drawn once, and from
            ``synthetic_start`` of the run on, ``synthetic_ratio`` of every batch is drawn
            from them instead of the labelled images (same batch size, same cost per step).
    """

    #: the run-wide settings a segmentation run reads (see medgan.train.config.TASK_SETTINGS)
    settings: ClassVar[dict[str, str]] = {
        "model.net.width": "U-Net channels at full resolution, doubled per level (default 16, MONAI's tutorial widths)",
        "model.net.depth": "U-Net stride-2 levels (default 4: image sizes multiples of 16)",
        "model.net.d_width": "critic first-layer channels (--adversarial on; default 64)",
        "loss.name": "the critic's loss (--adversarial on): bce (default), hinge or lsgan",
        "optim.lr_g": "U-Net learning rate (Adam; default 1e-3)", "optim.lr_d": "critic learning rate (default 1e-4)",
        "optim.beta1": "Adam beta1 (default 0.9)", "optim.beta2": "Adam beta2 (default 0.999)",
        "optim.decay": "learning-rate schedule: none (default, the measured best), linear, cosine or late-cosine",
    }

    adversarial: str = option("off", "off (default): the U-Net alone, the measured best per CPU-second; on: a critic judges "
                                     "(image, label map) pairs and trains on --unlabelled images", choices=("on", "off"))
    unlabelled: str = option("", "images without masks (any source) that train the U-Net through the critic", metavar="SOURCE")
    labelled: int = option(0, "labelled training slices to keep, spread over each volume (default 0: all); the rest are unlabelled")
    class_names: str = option("", "JSON file naming the label values (default: the data's)", metavar="FILE")
    adv_weight: float = option(0.01, "weight of the adversarial term on labelled images")
    semi_adv_weight: float = option(0.001, "weight of the adversarial term on unlabelled images")
    semi_weight: float = option(0.1, "weight of self-training on confident unlabelled pixels")
    semi_threshold: float = option(0.2, "critic confidence above which an unlabelled pixel is self-trained")
    semi_start: float = option(0.25, "fraction of the run before self-training starts")
    critic_maps: str = option("hard", "what the critic sees of a prediction: soft (softmax) or hard (one-hot, straight-through)",
                              choices=("soft", "hard"))
    feature_weight: float = option(0.0, "weight of SegAN's multi-scale L1 critic-feature loss (0: off)")
    flip: bool = option(True, "do not mirror training images left-right", flag="--no-mirror")
    augmentation: str = option("elastic", "elastic (classical + elastic deformation), classical (mirror, small affine, "
                               "brightness/contrast) or mirror",
                               choices=AUGMENTATIONS)
    dice: str = option("all", "Dice term: all, foreground (no background) or batch (foreground, over the batch)", choices=DICE_TERMS)
    mean_teacher: float = option(0.0, "mean teacher: consistency weight on unlabelled images (0: off)")
    teacher_decay: float = 0.99  # config file only, as the one below
    consistency_rampup: float = 0.4
    synthetic: str = option("", "a synth --pairs run whose pairs join the batches", metavar="RUN")
    synthetic_ratio: float = option(0.5, "--synthetic: share of each batch")
    synthetic_start: float = option(0.0, "--synthetic: share of the run before they join")
    synthetic_n: int = option(1000, "--synthetic: pairs drawn once from the run")

    def __post_init__(self) -> None:
        if self.adversarial not in ("on", "off"):
            raise MedganError(f"--adversarial {self.adversarial!r}", hint="use on or off")
        if self.labelled < 0:
            raise MedganError(f"--labelled {self.labelled} must not be negative", hint="0 keeps every label")
        for name in ("adv_weight", "semi_adv_weight", "semi_weight", "feature_weight"):
            if getattr(self, name) < 0:
                raise MedganError(f"--{name.replace('_', '-')} {getattr(self, name)} must not be negative")
        if self.augmentation not in AUGMENTATIONS:
            raise MedganError(f"--augmentation {self.augmentation!r}", hint=f"use one of {', '.join(AUGMENTATIONS)}")
        if self.dice not in DICE_TERMS:
            raise MedganError(f"--dice {self.dice!r}", hint=f"use one of {', '.join(DICE_TERMS)}")
        if not 0 < self.synthetic_ratio < 1 or not 0 <= self.synthetic_start < 1 or self.synthetic_n < 1:
            raise MedganError(f"--synthetic-ratio {self.synthetic_ratio} must be in (0, 1), --synthetic-start {self.synthetic_start} "
                              f"in [0, 1) and --synthetic-n {self.synthetic_n} at least 1")
        if self.mean_teacher < 0 or not 0 <= self.teacher_decay < 1 or not 0 <= self.consistency_rampup <= 1:
            raise MedganError(f"--mean-teacher {self.mean_teacher} must not be negative, --teacher-decay {self.teacher_decay} "
                              f"must be in [0, 1) and --consistency-rampup {self.consistency_rampup} in [0, 1]")
        if self.critic_maps not in ("soft", "hard"):
            raise MedganError(f"--critic-maps {self.critic_maps!r}", hint="use soft or hard")
        if not 0 <= self.semi_threshold < 1 or not 0 <= self.semi_start <= 1:
            raise MedganError(f"--semi-threshold {self.semi_threshold} must be in [0, 1) and --semi-start {self.semi_start} in [0, 1]")

    @property
    def uses_critic(self) -> bool:
        return self.adversarial == "on"

    @property
    def uses_teacher(self) -> bool:
        return self.mean_teacher > 0
