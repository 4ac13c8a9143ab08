"""The enhancement task's own options (the ``enhance`` section of a run's config; each field
with an option is a ``medgan train enhance`` flag)."""

from __future__ import annotations

from dataclasses import dataclass

from medgan.options import option

__all__ = ["EnhanceConfig"]


@dataclass
class EnhanceConfig:
    """Paired enhancement: what to undo and how to weigh the objective.

    Attributes:
        mode: ``"denoise"`` (pix2pix U-Net) or ``"sr"`` (residual pixel-shuffle generator).
        degradation: see :func:`medgan.tasks.enhance.degrade.parse_degradation`, e.g.
            ``"lowdose-ct:dose=0.25"``, ``"rician:snr=10"``, ``"sr:factor=2"``; empty: by
            mode and data (``sr:factor=2``; low-dose CT for data in HU, else Rician SNR 10).
        adversarial: ``False`` trains the same generator on L1 alone (the baseline).
        l1_weight: weight of the L1 term (100 in pix2pix, with adversarial weight 1).
        ssim_weight: optional weight of a (1 - SSIM) term.
        degradation_seed: seed of the (precomputed) degraded inputs.
        realizations: noise draws kept per training image (a batch picks one per image, so
            the network sees fresh noise, not one fixed pattern to memorise); 0 = 4 for
            random degradations (noise) and 1 for deterministic ones (downsampling).
        flip: mirror each (degraded, clean) pair left-right with probability 1/2.
    """

    mode: str = option("denoise", "denoising (pix2pix U-Net) or super-resolution", choices=("denoise", "sr"))
    degradation: str = option("", "what to undo: lowdose-ct:dose=0.25, lowdose-ct-image:dose=0.25, rician:snr=10, gaussian:sigma=20, "
                              "sr:factor=2 ('': by mode and data)")
    adversarial: bool = option(True, "train the same generator without the adversary (the baseline)", flag="--l1-only")
    l1_weight: float = option(100.0, "weight of the L1 term")
    ssim_weight: float = option(0.0, "weight of a 1-SSIM term")
    degradation_seed: int = 0
    realizations: int = option(0, "noise draws kept per training image (0: 4 for noise, 1 for downsampling)")
    flip: bool = option(True, "do not mirror training pairs left-right")
