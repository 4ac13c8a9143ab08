"""Shared tiled inference: any size, any channel count, the same result as one pass."""

import numpy as np
import pytest
import torch
from torch import nn

from medgan.errors import MedganError
from medgan.infer import tiled_apply


def local_net(c_in: int, c_out: int) -> nn.Module:
    """A 3x3 then 3x3 convolution: receptive-field radius 2, translation-equivariant."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(c_in, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, c_out, 3, padding=1))
    return net.eval()


@pytest.mark.parametrize("c_in, c_out", [(1, 1), (1, 3), (2, 4)])
def test_tiled_equals_one_pass_away_from_the_padded_border(c_in, c_out):
    rng = np.random.default_rng(0)
    image = rng.standard_normal((c_in, 70, 53)).astype(np.float32)
    net = local_net(c_in, c_out)
    with torch.no_grad():
        whole = net(torch.from_numpy(image)[None])[0].numpy()  # (C_out, 70, 53)
    tiled = tiled_apply(net, image[0] if c_in == 1 else image, tile=24, overlap=12, batch_size=3)
    tiled = tiled if tiled.ndim == 3 else tiled[None]
    assert tiled.shape == (c_out, 70, 53)
    # reflection padding on the bottom/right changes only pixels within the receptive field of those edges
    np.testing.assert_allclose(tiled[:, :-2, :-2], whole[:, :-2, :-2], rtol=0, atol=1e-5)


def test_a_two_d_image_with_one_output_channel_stays_two_d():
    out = tiled_apply(local_net(1, 1), np.zeros((10, 12)), tile=8, overlap=4)
    assert out.shape == (10, 12)


def test_bad_arguments_and_a_network_of_the_wrong_scale_are_refused():
    net = local_net(1, 1)
    with pytest.raises(MedganError, match="tile 8 is smaller than the model's size multiple 16"):
        tiled_apply(net, np.zeros((32, 32)), tile=8, multiple=16)
    with pytest.raises(MedganError, match="overlap 32 must be"):
        tiled_apply(net, np.zeros((32, 32)), tile=32, overlap=32)
    with pytest.raises(MedganError, match="expected an \\(H, W\\) or \\(C, H, W\\) image"):
        tiled_apply(net, np.zeros((2, 1, 8, 8)))
    with pytest.raises(MedganError, match="expected \\(B, C, 16, 16\\)"):
        tiled_apply(net, np.zeros((8, 8)), scale=2)


def test_channels_last_inference_gives_the_plain_layouts_output():
    """Tiles run channels-last (oneDNN's fast kernels) and give what the network gives in
    NCHW: the U-Net with its transposed convolutions, one pass and several tiles per batch."""
    import copy

    from medgan.nets import build_network, config_from_dict

    torch.manual_seed(1)
    net = build_network("pix2pix", config_from_dict("pix2pix", {"in_channels": 1, "out_channels": 1, "width": 8}), "generator").eval()
    plain = copy.deepcopy(net)
    image = np.random.default_rng(1).standard_normal((2, 1, 48, 48)).astype(np.float32)
    with torch.no_grad():
        whole = plain(torch.from_numpy(image)).numpy()  # (2, 1, 48, 48), NCHW
    for i in range(2):
        out = tiled_apply(net, image[i, 0], multiple=16, tile=64, batch_size=1)
        np.testing.assert_allclose(out, whole[i, 0], rtol=0, atol=1e-6)
    weight = net.down[0][0].weight  # (16, 8, 4, 4): the layouts differ
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()  # the run used the fast layout
