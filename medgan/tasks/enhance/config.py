"""The enhancement task's own options (the ``enhance`` section of a run's config; each field
with an option is a ``medgan train enhance`` flag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from medgan.options import option
from medgan.tasks.enhance import methods
from medgan.train.config import GAN_SETTINGS

__all__ = ["EnhanceConfig"]


@dataclass
class EnhanceConfig:
    """Enhancement: what to undo, what the network learns from, and how to weigh the objective.

    Attributes:
        mode: ``"denoise"`` (DnCNN by default, or the pix2pix U-Net), ``"sr"`` (residual
            pixel-shuffle generator) or ``"artefact"`` (undersampled or motion-corrupted
            MRI: the pix2pix U-Net on L1 by default; sparse-view CT: the DnCNN on L2).
        supervision: ``"paired"`` (degraded -> clean pairs simulated from clean images),
            ``"self"`` (Neighbor2Neighbor on noisy images alone: no clean image is seen;
            see :mod:`medgan.tasks.enhance.methods.selfsup`) or ``"unpaired"`` (CycleGAN between
            noisy images and clean images of other patients; see
            :mod:`medgan.tasks.enhance.methods.unpaired`); one class each in
            :mod:`medgan.tasks.enhance.methods`.
        clean_data: unpaired only: the folder (or file) of clean images, read like
            ``--data``; empty: the training images are split in two disjoint halves, the
            first degraded (the noisy side), the second kept clean (a simulation to measure
            unpaired training against paired training).
        degradation: see :func:`medgan.tasks.enhance.degrade.parse_degradation`, e.g.
            ``"lowdose-ct:dose=0.25"``, ``"rician:snr=10"``, ``"sr:factor=2"``; empty: by
            mode and data (``sr:factor=2``; low-dose CT for data in HU, else Rician SNR 10).
        levels: several levels of the degradation's noise parameter (``sigma``, ``snr`` or
            ``dose``), e.g. ``"10,20,40"``: one blind model for all of them (each noise draw
            of a training image takes the next level); empty: the degradation's own level.
        adversarial: ``True`` adds the PatchGAN adversary (pix2pix, SRGAN); ``False`` trains
            the generator on the reconstruction loss alone; ``None``: by model, on for
            pix2pix only. The measured winners on real anatomy have no adversary
            (``benchmarks/enhance_quality.py``: the DnCNN on L2 for noise, the SRResNet on
            L1 for x2), so they are the defaults.
        recon_loss: ``"l1"`` (pix2pix), ``"l2"`` (mean squared error: DnCNN's, and what
            maximises PSNR) or ``"auto"``: L2 for the DnCNN, L1 otherwise.
        l1_weight: weight of the reconstruction term (100 in pix2pix, with adversarial weight 1).
        ssim_weight: optional weight of a (1 - SSIM) term.
        degradation_seed: seed of the (precomputed) degraded inputs.
        realizations: noise draws kept per training image (a batch picks one per image, so
            the network sees fresh noise, not one fixed pattern to memorise); 0 = 4 for
            random degradations (noise, at least 2 per level) and one per level for
            deterministic ones (downsampling, sparse-view CT).
        flip: show each (degraded, clean) pair under one of the 8 symmetries of the square
            (mirrors and 90-degree turns, both images alike; 4 for non-square images).
        data_consistency: ``"on"``: the generator's output keeps the k-space lines its
            zero-filled input acquired (:class:`medgan.nets.kspace.DataConsistent`);
            ``"auto"``: on for ``undersample-mri``, off otherwise.
    """

    #: the option that picks one of the task's methods (a class each, medgan.tasks.enhance.methods)
    method_field: ClassVar[str] = "supervision"
    #: the run-wide settings an enhancement run reads (see medgan.train.config.TASK_SETTINGS)
    settings: ClassVar[dict[str, str]] = {
        **GAN_SETTINGS, "loop.ema": "EMA decay of the generator that is exported (0: off; default 0.999)",
        "model.name": "dncnn (denoising's default), pix2pix (a U-Net against a PatchGAN) or srgan (super-resolution's default)",
        "model.net.width": "channel width of the generator (default 32)", "model.net.layers": "",
        "model.net.depth": "pix2pix U-Net stride-2 levels", "model.net.d_width": "PatchGAN first-layer channels (default 64)",
        "model.net.d_norm": "PatchGAN normalisation (default batch)",
        "model.net.spectral_norm": "spectral normalisation in the PatchGAN (default off)",
        "loss.name": "adversarial loss with --adversary: bce (default), minimax, hinge, lsgan or wgan-gp",
        "optim.lr_g": "generator learning rate (Adam; default 2e-4)", "optim.lr_d": "PatchGAN learning rate (default 2e-4)",
        "optim.beta1": "Adam beta1 (default 0.5)", "optim.beta2": "Adam beta2 (default 0.999)",
        "optim.n_critic": "PatchGAN steps per generator step (default 1)",
        "optim.decay": "learning-rate schedule: linear (default: 2nd half to 0, as pix2pix), none or cosine",
    }

    mode: str = option("denoise", "denoise, sr or artefact (undersampled / motion MRI, sparse-view CT)",
                       choices=("denoise", "sr", "artefact"))
    degradation: str = option("", "what to undo, e.g. lowdose-ct:dose=0.25, rician:snr=10, gaussian:sigma=20, sr:factor=2 "
                              "(default: by mode and data)", metavar="SPEC")
    supervision: str = option("paired", "degraded -> clean pairs (default), noisy images alone (Neighbor2Neighbor) or "
                              "unpaired noisy and clean images (CycleGAN)", choices=tuple(methods.METHODS))
    clean_data: str = option("", "unpaired: clean images of other patients (default: half of --data, kept clean)", metavar="SOURCE")
    levels: str = option("", "noise levels for one blind model, e.g. 10,20,40 (the degradation's sigma, snr or dose)")
    adversarial: bool | None = option(None, "train against a PatchGAN adversary (pix2pix, SRGAN)", flag=("--adversary", "--l1-only"),
                                      shown="by model: on for pix2pix only")
    recon_loss: str = option("auto", "reconstruction loss (auto: l2 for the DnCNN, else l1)", choices=("auto", "l1", "l2"))
    l1_weight: float = option(100.0, "weight of the reconstruction (L1 or L2) term")
    ssim_weight: float = option(0.0, "weight of a 1-SSIM term")
    degradation_seed: int = 0
    realizations: int = option(0, "noise draws kept per training image (0: 4 for noise, one per level otherwise)")
    data_consistency: str = option("auto", "keep a zero-filled input's acquired k-space lines (auto: undersample-mri)",
                                   choices=("auto", "on", "off"))
    flip: bool = option(True, "do not mirror or turn training pairs (by default each pair is shown under one of the square's 8 symmetries)")
