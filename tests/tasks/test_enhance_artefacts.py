"""Artefact degradations: k-space masks, undersampled and motion-corrupted MRI, sparse-view CT
and the data-consistency step, against what each must do exactly."""

import numpy as np
import pytest
import torch

from medgan.errors import MedganError
from medgan.nets.kspace import DataConsistent, acquired_lines, data_consistency
from medgan.tasks.enhance.artefacts import cartesian_mask, motion, undersample
from medgan.tasks.enhance.degrade import Degradation, fbp_roundtrip, parse_degradation


def _image(size=64, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    head = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2) * 100.0
    return head + rng.uniform(0, 20, (size, size)) * (head > 0)  # non-negative, like a magnitude image


@pytest.mark.parametrize("kind", ["random", "equispaced"])
@pytest.mark.parametrize("accel, center", [(4, 0.08), (8, 0.04)])
def test_a_mask_keeps_the_centre_is_symmetric_and_keeps_one_line_in_accel(kind, accel, center):
    width = 256
    freq = np.fft.fftfreq(width, 1 / width).round().astype(int)
    kept = []
    for seed in range(20):
        mask = cartesian_mask(width, accel, center, kind, np.random.default_rng(seed))
        assert mask.dtype == bool and mask.shape == (width,)
        assert mask[np.abs(freq) <= (round(width * center) - 1) / 2].all()  # the fully sampled centre
        for f in range(1, width // 2):
            assert mask[freq == f][0] == mask[freq == -f][0]  # conjugate pairs
        kept.append(mask.sum())
    assert np.mean(kept) == pytest.approx(width / accel, rel=0.1)


def test_zero_filling_an_unmasked_image_returns_it_and_a_masked_one_stays_real():
    x = _image()
    np.testing.assert_allclose(undersample(x, np.ones(64, bool)), x, atol=1e-9)
    mask = cartesian_mask(64, 4, 0.08, "random", np.random.default_rng(1))
    zero_filled = np.fft.ifft2(np.fft.fft2(x) * mask[None, :])
    assert np.abs(zero_filled.imag).max() < 1e-9 * np.abs(x).max()  # a symmetric mask keeps a real image real
    np.testing.assert_allclose(undersample(x, mask), zero_filled.real, atol=1e-9)
    assert np.abs(undersample(x, mask) - x).mean() > 1.0  # and it does lose something


def test_motion_with_zero_shift_or_no_moved_lines_is_the_identity_and_otherwise_ghosts():
    x = _image()
    np.testing.assert_allclose(motion(x, 0.3, 0.0, np.random.default_rng(0)), x, atol=1e-9)
    np.testing.assert_allclose(motion(x, 0.0, 3.0, np.random.default_rng(0)), x, atol=1e-9)
    moved = motion(x, 0.3, 3.0, np.random.default_rng(0))
    outside = x == 0
    assert moved[outside].mean() > 1.0  # ghosts in the background
    # a whole-image shift on every line is a plain translation: same energy, moved content
    assert np.sum(moved**2) == pytest.approx(np.sum(x**2), rel=0.05)


def test_sparse_view_ct_at_every_angle_is_the_low_dose_pipelines_noise_free_reconstruction():
    from medgan.datasets.phantom import make_phantom

    hu = make_phantom(64, seed=0).image
    np.testing.assert_allclose(Degradation("sparse-view-ct", angles=64).apply(hu), fbp_roundtrip(hu), atol=1e-3)
    few = Degradation("sparse-view-ct", angles=16).apply(hu)
    assert np.abs(few - hu).mean() > 2 * np.abs(fbp_roundtrip(hu) - hu).mean()  # streaks


def test_data_consistency_puts_the_acquired_lines_back_and_keeps_the_rest():
    x = torch.from_numpy(_image()).float()[None, None]  # (1, 1, 64, 64)
    mask = torch.from_numpy(cartesian_mask(64, 4, 0.08, "random", np.random.default_rng(2)))
    acquired = torch.from_numpy(undersample(x[0, 0].numpy().astype(np.float64), mask.numpy())).float()[None, None]
    torch.testing.assert_close(data_consistency(x, acquired, mask), x, atol=1e-3, rtol=0)  # the truth is consistent already
    torch.testing.assert_close(data_consistency(acquired, acquired, mask), acquired, atol=1e-3, rtol=0)
    guess = torch.zeros_like(x)
    merged = torch.fft.fft2(data_consistency(guess, acquired, mask), norm="ortho")
    torch.testing.assert_close(merged[..., mask], torch.fft.fft2(acquired, norm="ortho")[..., mask], atol=1e-3, rtol=0)
    assert merged[..., ~mask].abs().max() < 1e-3  # the guess's (zero) lines elsewhere


def test_artefact_degradations_parse_round_trip_and_repeat_per_image():
    d = parse_degradation("undersample-mri:accel=8,center=0.04,mask=equispaced")
    assert (d.kind, d.accel, d.center, d.mask) == ("undersample-mri", 8.0, 0.04, "equispaced")
    assert parse_degradation(d.spec()) == d
    assert parse_degradation("sparse-view-ct:angles=30").angles == 30 and not parse_degradation("sparse-view-ct").random
    assert parse_degradation("motion-mri:lines=0.2,shift=3").at_level(1.0).shift == 1.0
    images = np.stack([_image(seed=s) for s in range(3)])
    for spec in ("undersample-mri", "motion-mri"):
        deg = parse_degradation(spec)
        batch = deg.apply(images, seed=5)
        np.testing.assert_allclose(deg.apply(images[:2], seed=5)[1], batch[1], atol=1e-4)  # image i: the same draw whatever N
        assert not np.allclose(batch[0], deg.apply(images, seed=6)[0])
    masks = d.kspace_masks(3, 64, seed=5)
    np.testing.assert_allclose(d.apply(images, seed=5)[1], undersample(images[1], masks[1]), atol=1e-3)  # the mask it used


@pytest.mark.parametrize("spec, words", [
    ("undersample-mri:accel=0.5", "accel"), ("undersample-mri:center=0.5", "center"), ("undersample-mri:mask=radial", "radial"),
    ("motion-mri:lines=2", "lines"), ("motion-mri:shift=-1", "shift"), ("sparse-view-ct:angles=0", "angles"),
    ("sparse-view-ct:angles=2.5", "angles"), ("motion-mri:angles=3", "angles")])
def test_bad_artefact_parameters_are_refused_in_one_line(spec, words):
    with pytest.raises(MedganError, match=words):
        parse_degradation(spec)


def test_the_data_consistency_layer_reads_the_acquired_lines_from_a_zero_filled_input():
    x = _image()
    mask = cartesian_mask(64, 4, 0.08, "equispaced", np.random.default_rng(3))
    zero_filled = torch.from_numpy(np.stack([undersample(x, mask), x])).float()[:, None]  # (2, 1, 64, 64): one undersampled, one full
    found, undersampled = acquired_lines(zero_filled)
    assert undersampled.tolist() == [True, False]
    assert torch.equal(found[0, 0].bool(), torch.from_numpy(mask)[None, :].expand(64, 64))
    assert torch.equal(found[0, 0].T.bool(), acquired_lines(zero_filled.transpose(-1, -2))[0][0, 0].bool())  # rows as well
    layer = DataConsistent(torch.nn.Identity())
    torch.testing.assert_close(layer(zero_filled), zero_filled, atol=1e-3, rtol=0)  # consistent with itself (FFT rounding)
    truth = torch.from_numpy(x).float()[None, None]
    class Constant(torch.nn.Module):
        def __init__(self, image):
            super().__init__()
            self.image = image

        def forward(self, inp):
            return self.image.expand_as(inp)

    layer.net = Constant(truth)  # a perfect network: its output is kept, being consistent
    torch.testing.assert_close(layer(zero_filled)[0], truth[0], atol=1e-3, rtol=0)
    layer.net = Constant(torch.zeros_like(truth))  # a network that knows nothing: the acquired data come back, the full image untouched
    out = layer(zero_filled)
    torch.testing.assert_close(out[0], zero_filled[0], atol=1e-3, rtol=0)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    layer.enabled = False
    assert torch.equal(layer(zero_filled), torch.zeros_like(zero_filled))


def test_tv_reconstruction_keeps_the_acquired_lines_and_beats_zero_filling_once_tuned():
    from medgan.tasks.enhance.artefacts import tv_reconstruction
    from medgan.tasks.enhance.classical import tune

    rng = np.random.default_rng(0)
    clean = np.stack([_image(seed=s) for s in range(4)])  # piecewise flat discs: what TV is made for
    masks = [cartesian_mask(64, 4, 0.08, "random", rng) for _ in range(4)]
    zero_filled = np.stack([undersample(x, m) for x, m in zip(clean, masks)])
    found = acquired_lines(torch.from_numpy(zero_filled[:1, None]))[0][0, 0].bool().numpy()
    assert np.array_equal(found, np.broadcast_to(masks[0][None, :], (64, 64)))
    out = tv_reconstruction(zero_filled[0] / 120, weight=0.02) * 120
    k_in, k_out = np.fft.fft2(zero_filled[0]), np.fft.fft2(out)
    np.testing.assert_allclose(k_out[:, masks[0]], k_in[:, masks[0]], atol=1e-6 * np.abs(k_in).max())
    tuned = tune("tv-cs", zero_filled[:2], clean[:2], 0.0, 120.0)
    psnr = lambda a, b: 10 * np.log10(120**2 / np.mean((a - b) ** 2))  # noqa: E731
    assert tuned.validation_psnr > np.mean([psnr(z, c) for z, c in zip(zero_filled[:2], clean[:2])]) + 1.0
