"""Paired enhancement networks: pix2pix U-Net, conditional PatchGAN, SRResNet."""

import json
from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F

from medgan.nets import (
    PatchGANConfig,
    PatchGANDiscriminator,
    SRConfig,
    SRResNetGenerator,
    UNetConfig,
    UNetGenerator,
    build_pair,
    config_from_dict,
)
from medgan.nets.unet import straight_through_clamp


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def randomise(net: torch.nn.Module) -> None:
    """Non-trivial weights everywhere (so identity tests do not rely on the initialisation)."""
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.3)


# ---------------------------------------------------------------- U-Net

@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("norm,up", [("batch", "deconv"), ("instance", "resize"), ("none", "deconv")])
def test_unet_keeps_the_shape_and_range(size, channels, norm, up):
    G = UNetGenerator(UNetConfig(in_channels=channels, out_channels=channels, width=8, norm=norm, up=up))
    randomise(G)  # large residuals: the output must still be clamped
    x = images(2, channels, *size)
    y = G(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_unet_rejects_sizes_that_are_not_a_multiple_of_2_to_the_depth():
    G = UNetGenerator(UNetConfig(width=8, depth=4))
    with pytest.raises(ValueError, match=r"divisible by 16, got 100x64.*pad to 112x64"):
        G(images(1, 1, 100, 64))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        G(images(1, 3, 64, 64))
    G3 = UNetGenerator(UNetConfig(width=8, depth=3))
    assert G3(images(1, 1, 40, 24)).shape == (1, 1, 40, 24)  # 8 divides both


def test_unet_starts_as_the_identity_and_is_the_identity_whenever_the_head_is_zero():
    G = UNetGenerator(UNetConfig(width=8))
    x = images(2, 1, 32, 32)
    assert torch.equal(G(x), x)
    randomise(G)
    assert not torch.allclose(G(x), x)
    torch.nn.init.zeros_(G.head.weight)
    torch.nn.init.zeros_(G.head.bias)
    assert torch.equal(G(x), x)


def test_unet_residual_head_learns_from_the_first_step():
    G = UNetGenerator(UNetConfig(width=8))
    x = images(2, 1, 32, 32)
    F.l1_loss(G(x), torch.zeros_like(x)).backward()
    assert G.head.weight.grad.abs().sum() > 0


def test_straight_through_clamp_passes_only_gradients_that_lead_back_into_range():
    for weights, expected in (([1.0, 2.0, 3.0], [0.0, 2.0, 3.0]), ([-1.0, 2.0, -3.0], [-1.0, 2.0, 0.0])):
        v = torch.tensor([-1.5, 0.3, 1.2], requires_grad=True)
        y = straight_through_clamp(v)
        assert y.tolist() == pytest.approx([-1.0, 0.3, 1.0])
        (y * torch.tensor(weights)).sum().backward()
        # descent moves v by -grad: -1.5 may only rise (grad < 0), 1.2 may only fall (grad > 0)
        assert v.grad.tolist() == expected
    # In the network: a head that pushes every pixel below -1 is still pulled back up.
    G = UNetGenerator(UNetConfig(width=8))
    torch.nn.init.constant_(G.head.bias, -3.0)
    x = images(2, 1, 16, 16)
    y = G(x)
    assert torch.equal(y, torch.full_like(x, -1.0))
    F.l1_loss(y, torch.zeros_like(x)).backward()
    assert G.head.bias.grad.item() < 0  # gradient descent raises the bias


def test_unet_options():
    assert not any(isinstance(m, torch.nn.Dropout) for m in UNetGenerator(UNetConfig(width=8)).modules())
    G = UNetGenerator(UNetConfig(width=8, depth=4, dropout=0.5))
    assert sum(isinstance(m, torch.nn.Dropout) for m in G.modules()) == 2  # the innermost depth // 2 blocks
    assert all(isinstance(m, torch.nn.Dropout) for m in (G.up[0][-1], G.up[1][-1]))
    # A translation between channel counts is not residual.
    G = UNetGenerator(UNetConfig(in_channels=2, out_channels=1, width=8, residual=False))
    y = G(images(2, 2, 32, 32))
    assert y.shape == (2, 1, 32, 32) and y.abs().max() < 1
    with pytest.raises(ValueError, match="residual=False"):
        UNetConfig(in_channels=2, out_channels=1)
    with pytest.raises(ValueError, match="norm"):
        UNetConfig(norm="group")


# ---------------------------------------------------------------- SRResNet

@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("channels,norm", [(1, "batch"), (3, "none")])
def test_sr_upsamples_by_the_scale(scale, channels, norm):
    G = SRResNetGenerator(SRConfig(in_channels=channels, out_channels=channels, scale=scale, width=8, n_blocks=2, norm=norm))
    randomise(G)
    y = G(images(2, channels, 12, 20))
    assert y.shape == (2, channels, 12 * scale, 20 * scale)
    assert y.min() >= -1 and y.max() <= 1


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_with_a_zero_residual_branch_is_clamped_bicubic_upsampling(scale):
    G = SRResNetGenerator(SRConfig(scale=scale, width=8, n_blocks=2))
    x = images(2, 1, 10, 14)
    bicubic = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(-1, 1)
    assert bicubic.abs().max() == 1  # bicubic overshoots here, so the clamp is exercised
    torch.testing.assert_close(G(x), bicubic, rtol=0, atol=0)  # at initialisation
    randomise(G)
    assert not torch.allclose(G(x), bicubic)
    torch.nn.init.zeros_(G.tail.weight)
    torch.nn.init.zeros_(G.tail.bias)
    torch.testing.assert_close(G(x), bicubic, rtol=0, atol=0)


@pytest.mark.parametrize("scale", [2, 4])
def test_the_bicubic_baseline_is_what_the_sr_network_starts_from(scale):
    """'Gain over bicubic' must mean over the network's own skip: one interpolator for both."""
    import numpy as np

    from medgan.tasks.enhance.degrade import upsample_bicubic

    G = SRResNetGenerator(SRConfig(scale=scale, width=8, n_blocks=2))
    x = images(3, 1, 10, 14) * 0.5  # inside [-1, 1] after upsampling: no clamp involved
    baseline = upsample_bicubic(x[:, 0].double().numpy(), scale)  # (N, 10 s, 14 s), the benchmark's row
    np.testing.assert_allclose(G(x)[:, 0].detach().numpy(), baseline, rtol=0, atol=1e-6)


def test_sr_config_is_checked():
    with pytest.raises(ValueError, match="power of two"):
        SRConfig(scale=3)
    with pytest.raises(ValueError, match="norm"):
        SRConfig(norm="instance")


# ---------------------------------------------------------------- PatchGAN

def test_patchgan_gives_a_map_of_patch_logits_and_gradients_reach_both_inputs():
    D = PatchGANDiscriminator(PatchGANConfig(cond_channels=1, image_channels=1, width=8))
    assert D.config.receptive_field == 70
    kinds = [type(m).__name__ for m in D.layers]
    assert kinds[:3] == ["Conv2d", "LeakyReLU", "Conv2d"]  # no norm on the input layer
    condition = images(2, 1, 64, 64, seed=1).requires_grad_()
    image = images(2, 1, 64, 64, seed=2).requires_grad_()
    logits = D(condition, image)
    assert logits.shape == (2, 1, 6, 6)
    logits.mean().backward()
    assert condition.grad.abs().sum() > 0 and image.grad.abs().sum() > 0


def test_patchgan_logits_only_see_their_patch():
    D = PatchGANDiscriminator(PatchGANConfig(width=8, n_layers=2, norm="none"))
    assert D.config.receptive_field == 34
    condition, image = images(1, 1, 64, 64, seed=1), images(1, 1, 64, 64, seed=2)
    before = D(condition, image)
    image[..., 0, 0] += 1.0  # top-left pixel
    after = D(condition, image)
    assert before.shape == (1, 1, 14, 14)
    assert not torch.equal(before[..., 0, 0], after[..., 0, 0])
    assert torch.equal(before[..., 4:, :], after[..., 4:, :]) and torch.equal(before[..., :, 4:], after[..., :, 4:])


def test_patchgan_upsamples_a_smaller_condition_by_the_scale():
    D = PatchGANDiscriminator(PatchGANConfig(width=8, scale=4, norm="none"))
    low, high = images(2, 1, 16, 16, seed=1), images(2, 1, 64, 64, seed=2)
    upsampled = F.interpolate(low, size=(64, 64), mode="bicubic", align_corners=False)
    torch.testing.assert_close(D(low, high), D(upsampled, high))
    with pytest.raises(ValueError, match="differ by the scale 4"):
        D(images(2, 1, 32, 32), high)
    with pytest.raises(ValueError, match="at least 24x24"):
        D(images(2, 1, 16, 16), images(2, 1, 16, 16))


def test_patchgan_spectral_norm_wraps_every_convolution():
    D = PatchGANDiscriminator(PatchGANConfig(width=8, spectral_norm=True, norm="none"))
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and all(hasattr(m, "parametrizations") for m in convs)
    assert D(images(1, 1, 32, 32), images(1, 1, 32, 32)).shape == (1, 1, 2, 2)


# ---------------------------------------------------------------- registry

def test_build_pair_pix2pix_from_a_dict():
    values = {"in_channels": 1, "out_channels": 1, "width": 8, "d_width": 8, "d_norm": "instance",
              "spectral_norm": True, "image_size": 64, "channels": 1}  # the last two belong to other models
    config = config_from_dict("pix2pix", values)
    assert isinstance(config, UNetConfig)
    assert config_from_dict("pix2pix", json.loads(json.dumps(asdict(config)))) == config
    G, D = build_pair("pix2pix", values)
    assert isinstance(G, UNetGenerator) and isinstance(D, PatchGANDiscriminator)
    assert D.config.in_channels == 2 and D.config.norm == "instance" and D.config.spectral_norm
    x = images(2, 1, 64, 64)
    assert D(x, G(x)).shape == (2, 1, 6, 6)


def test_build_pair_srgan_from_a_dict():
    config = config_from_dict("srgan", {"in_channels": 3, "out_channels": 3, "scale": 2, "width": 8, "n_blocks": 1, "d_width": 8})
    assert config_from_dict("srgan", json.loads(json.dumps(asdict(config)))) == config
    G, D = build_pair("srgan", config)
    assert isinstance(G, SRResNetGenerator) and isinstance(D, PatchGANDiscriminator)
    assert (D.config.cond_channels, D.config.image_channels, D.config.scale) == (3, 3, 2)
    low = images(2, 3, 32, 32)
    high = G(low)
    assert high.shape == (2, 3, 64, 64)
    assert D(low, high).shape == (2, 1, 6, 6)
    with pytest.raises(TypeError, match="PatchGANConfig"):
        PatchGANDiscriminator({"width": 8})
