"""The anomaly task's own options (the ``anomaly`` section of a run's config; each field with
an option is a ``medgan train anomaly`` flag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from medgan.errors import MedganError
from medgan.options import option
from medgan.tasks.anomaly import methods
from medgan.train.config import GAN_SETTINGS

__all__ = ["IMAGE_SCORES", "METHODS", "AnomalyConfig"]

METHODS = methods.METHODS  # name -> class location, one class each in medgan/tasks/anomaly/methods/ (live: a method added there is a choice)
IMAGE_SCORES = ("method", "map-max")
ON_OFF = ("on", "off")
AUTO = "auto"  # the method's measured default (its class's ``defaults``)


@dataclass
class AnomalyConfig:
    """A model of normal images and how its scores are calibrated.

    Attributes:
        method: ``"restore"``, the default (Kascenas et al. 2022: a U-Net that removes coarse
            noise from normal images, so it redraws the normal tissue over a lesion): with
            its residual z-scored, the one method that beats the intensity rule on image
            AUROC and pixel AUPRC on both cases of ``benchmarks/anomaly_vs_baselines.py``
            (phantoms and the real brain slices); ``"ae"`` (a DCGAN-shaped autoencoder on L1:
            better on phantoms, at chance on the brain slices, at a twentieth of the training time);
            ``"fanogan"`` (Schlegl et al. 2019: a WGAN-GP on normal images, then an encoder
            trained with G and the critic frozen, izi_f); ``"ganomaly"`` (Akcay et al. 2018:
            encoder-decoder-encoder generator against a discriminator, latent distance as the
            score); the plain rules ``"zscore"`` and ``"knn"``.
        encoder_steps: f-AnoGAN's second phase, after ``--steps`` of the WGAN-GP (0: as many
            as the GAN phase).
        kappa: f-AnoGAN's weight of the critic-feature residual, in the encoder's loss and the score.
        w_adv, w_con, w_enc: GANomaly's weights of the feature-matching, L1 reconstruction
            and latent terms (1, 50, 1 in the paper).
        alpha: the false-positive rate of the saved thresholds.
        calibration_fraction: share of the held-out normal volumes used to calibrate; the
            rest check the false-positive rate reached.
        map_sigma: Gaussian smoothing (pixels) of the pixel anomaly maps (0: none).
        image_score: what an image's score is: ``"map-max"``, the largest value of the
            smoothed map inside the body (as anomalib scores its patch models): a small lesion
            moves a whole-image mean little but its map's peak a lot; or ``"method"``, the
            method's own (f-AnoGAN's pixel + kappa * feature residual, GANomaly's latent
            distance, the autoencoder's and the restorer's mean squared residual). ``"auto"``:
            the method's default (``defaults.image_score`` of its class), map-max for every
            method, as ``benchmarks/anomaly_vs_baselines.py`` measured.
        normalise_residual: ``"on"``: maps are z-scores of the residual against its per-pixel
            mean and spread on the calibration normals (:class:`~medgan.tasks.anomaly.model.ResidualNormalisation`);
            ``"off"``: ``|x - x^|``. ``"auto"``: the method's default, on for the learned
            methods (what carries their gain in the benchmark), off for the rules, whose maps
            are already on a normal scale.
        body_erosion: pixels (at the model's size) the body mask is eroded by before scoring;
            the map is zero outside it (0: the whole body, maps unmasked).
        median_filter: side of the median filter applied to the map (0: none; odd).
        noise_grid: the restorer's training noise: Gaussian values on a grid of this many
            cells per side, upsampled bilinearly (Kascenas et al.: 16 on 128-pixel images).
        noise_amplitude: their standard deviation, in the [-1, 1] units of the images.
        noise_inside_body: add the noise inside the body only (``--noise-everywhere``: all over).
        adversarial: ``"on"``: the restorer also plays against a PatchGAN critic of
            (noisy, restored) against (noisy, clean) pairs.
        adversarial_weight: that term's weight beside the mean squared error.
    """

    #: the option that picks one of the task's methods (a class each, medgan.tasks.anomaly.methods)
    method_field: ClassVar[str] = "method"
    #: network fields a method's resolution derives from the data (the restorer's U-Net depth and
    #: critic layers follow the image size): not flags, but a saved config.json holds them
    derived: ClassVar[tuple[str, ...]] = ("model.net.depth", "model.net.d_layers")
    #: the run-wide settings an anomaly run reads (see medgan.train.config.TASK_SETTINGS)
    settings: ClassVar[dict[str, str]] = {
        **GAN_SETTINGS, "loss.name": "adversarial loss of GANomaly (default bce); f-AnoGAN's is wgan-gp",
        "loss.gp_weight": "f-AnoGAN's WGAN-GP penalty weight (default 10)",
        "model.net.width": "encoder and decoder channel width (default 64)",
        "model.net.z_dim": "latent size (default 128 for f-AnoGAN, else 100)", "model.net.upsample": "",
    }

    method: str = option("restore", "restore (default: the only one to beat the intensity rule on both measured cases), ae, "
                                    "fanogan, ganomaly, or the plain rules zscore and knn", choices=METHODS)
    encoder_steps: int = option(0, "f-AnoGAN encoder steps (default 0: the GAN's)")
    kappa: float = option(1.0, "f-AnoGAN weight of the critic-feature residual (default 1)")
    w_adv: float = option(1.0, "GANomaly feature-matching weight")
    w_con: float = option(50.0, "GANomaly weight of the L1 reconstruction term")
    w_enc: float = option(1.0, "GANomaly weight of the latent term")
    alpha: float = option(0.05, "false-positive rate of the calibrated thresholds")
    calibration_fraction: float = option(0.5, "share of held-out normal volumes that calibrate (default 0.5)")
    map_sigma: float = option(1.0, "Gaussian smoothing of the maps, pixels (default 1; 0: none)")
    image_score: str = option(AUTO, "an image's score: map-max (the map's peak, default) or method (its own)", choices=(AUTO, *IMAGE_SCORES))
    normalise_residual: str = option(AUTO, "z-scores of the residual (default: on, off for zscore and knn)", choices=(AUTO, *ON_OFF))
    body_erosion: int = option(0, "body-mask erosion, pixels (0: none)")
    median_filter: int = option(0, "median filter of the maps, odd (0: none)")
    noise_grid: int = option(8, "restore: noise grid cells per side")
    noise_amplitude: float = option(0.2, "restore: noise std, in [-1, 1] units")
    noise_inside_body: bool = option(True, "restore: noise all over, not in the body", flag="--noise-everywhere")
    adversarial: str = option("off", "restore: a PatchGAN critic", choices=ON_OFF)
    adversarial_weight: float = option(0.01, "restore: weight of the critic's term", flag="--adv-weight")

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise MedganError(f"--method {self.method!r}", hint=f"use one of {', '.join(METHODS)}")
        if self.image_score not in (AUTO, *IMAGE_SCORES):
            raise MedganError(f"--image-score {self.image_score!r}", hint=f"use one of {', '.join(IMAGE_SCORES)}")
        if self.encoder_steps < 0:
            raise MedganError(f"--encoder-steps {self.encoder_steps} must be >= 0")
        if self.adversarial not in ON_OFF:
            raise MedganError(f"--adversarial {self.adversarial!r}", hint="use on or off")
        if self.noise_grid < 1:
            raise MedganError(f"--noise-grid {self.noise_grid} must be at least 1", hint="e.g. --noise-grid 8")
        if min(self.noise_amplitude, self.adversarial_weight) < 0:
            raise MedganError("--noise-amplitude and --adv-weight must not be negative")
        if min(self.kappa, self.w_adv, self.w_con, self.w_enc, self.map_sigma) < 0:
            raise MedganError("--kappa, --w-adv, --w-con, --w-enc and --map-sigma must not be negative")
        if not 0 < self.alpha < 1:
            raise MedganError(f"--alpha {self.alpha} must lie in (0, 1)", hint="e.g. 0.05 for a 5% false-positive rate")
        if not 0 < self.calibration_fraction <= 1:
            raise MedganError(f"--calibration-fraction {self.calibration_fraction} must lie in (0, 1]")
        if self.normalise_residual not in (AUTO, *ON_OFF):
            raise MedganError(f"--normalise-residual {self.normalise_residual!r}", hint="use on or off")
        if self.body_erosion < 0:
            raise MedganError(f"--body-erosion {self.body_erosion} must be >= 0")
        if self.median_filter < 0 or (self.median_filter > 1 and self.median_filter % 2 == 0):
            raise MedganError(f"--median-filter {self.median_filter} must be 0 or odd", hint="e.g. 3 or 5")
