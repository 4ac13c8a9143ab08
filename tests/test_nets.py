import pytest
import torch

from medgan.nets import DCGANConfig, MLPConfig, build_pair


def test_mlp_gan_is_the_seeds_formula():
    G, D = build_pair("mlp", MLPConfig(hidden=32))
    z = torch.randn(5, 100)
    expected = torch.tanh(G.fc2(torch.relu(G.fc1(z)))).view(5, 1, 28, 28)
    torch.testing.assert_close(G(z), expected)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    prob = torch.sigmoid(D.fc4(torch.nn.functional.leaky_relu(D.fc3(x.flatten(1)), 0.2))).squeeze(1)
    torch.testing.assert_close(torch.sigmoid(D(x)), prob)


@pytest.mark.parametrize("size", [28, 32, 64, 128])
@pytest.mark.parametrize("upsample", ["deconv", "resize"])
def test_dcgan_shapes_and_range(size, upsample):
    G, D = build_pair("dcgan", DCGANConfig(image_size=size, width=8, upsample=upsample, channels=2))
    x = G(torch.randn(3, 100))
    assert x.shape == (3, 2, size, size) and x.abs().max() <= 1
    assert D(x).shape == (3,)


def test_dcgan_discriminator_follows_the_seed_layout():
    _, D = build_pair("dcgan", DCGANConfig(image_size=64, width=8))
    kinds = [type(m).__name__ for m in D.features]
    assert kinds[:2] == ["Conv2d", "LeakyReLU"]  # no batch norm on the input layer
    assert "BatchNorm2d" in kinds and isinstance(D.fc, torch.nn.Linear)


def test_spectral_norm_bounds_the_discriminator_weights():
    _, D = build_pair("dcgan", DCGANConfig(image_size=32, width=8, spectral_norm=True, d_norm="none"))
    for _ in range(20):  # power iterations converge during training-mode forwards
        D(torch.randn(4, 1, 32, 32))
    weight = D.fc.weight
    assert torch.linalg.matrix_norm(weight, ord=2).item() == pytest.approx(1.0, abs=0.05)


def test_conditional_generator_uses_the_label():
    G, D = build_pair("dcgan", DCGANConfig(image_size=32, width=8, num_classes=3))
    G.eval()
    z = torch.randn(1, 100).repeat(3, 1)
    x = G(z, labels=torch.tensor([0, 1, 2]))
    assert not torch.allclose(x[0], x[1])
    assert D(x, labels=torch.tensor([0, 1, 2])).shape == (3,)
