import pytest
import torch

from medgan.nets import DCGANConfig, MLPConfig, build_pair
from medgan.nets.dcgan import DCGANDiscriminator, DCGANGenerator


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


def test_conditional_pair_starts_unconditional_uses_the_label_and_fades_with_strength():
    """Conditional batch norm starts with zero class terms (a new conditional G is the
    unconditional one); once they are learnt the label changes the image, and strength 0
    (transitional conditioning's start) turns every class term of G and D off."""
    from medgan.nets.dcgan import ConditionalBatchNorm2d, set_condition_strength

    G, D = build_pair("dcgan", DCGANConfig(image_size=32, width=8, num_classes=3))
    G.eval()
    z, labels = torch.randn(1, 100).repeat(3, 1), torch.tensor([0, 1, 2])
    x = G(z, labels=labels)
    assert torch.allclose(x[0], x[1]) and torch.allclose(x[1], x[2])
    for module in G.modules():
        if isinstance(module, ConditionalBatchNorm2d):
            torch.nn.init.normal_(module.gain.weight, 0.0, 0.5)
            torch.nn.init.normal_(module.bias.weight, 0.0, 0.5)
    x = G(z, labels=labels)
    assert not torch.allclose(x[0], x[1])
    same = x[:1].repeat(3, 1, 1, 1)
    assert not torch.allclose(D(same, labels=labels)[0], D(same, labels=labels)[1])
    set_condition_strength(G, 0.0)
    set_condition_strength(D, 0.0)
    x = G(z, labels=labels)
    assert torch.allclose(x[0], x[1]) and torch.allclose(x[1], x[2])
    logits = D(same, labels=labels)
    assert logits.shape == (3,) and torch.allclose(logits, logits[:1].expand(3))
    with pytest.raises(ValueError, match="needs labels"):
        G(z)


def test_encoder_inverts_the_generators_shape_and_a_layer_norm_critic_scores_each_sample_alone():
    from medgan.nets.encoder import ImageEncoder

    c = DCGANConfig(image_size=32, width=8, z_dim=12, d_norm="layer")
    encoder, generator, critic = ImageEncoder(c), DCGANGenerator(c), DCGANDiscriminator(c)
    x = torch.randn(4, 1, 32, 32)
    z = encoder(x)
    assert z.shape == (4, 12) and generator(z).shape == x.shape
    assert ImageEncoder(c, bounded=True)(x * 100).abs().max() <= 1
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in critic.modules())
    critic.train()  # the WGAN-GP penalty is per sample: no statistics across the batch, even in training mode
    assert torch.allclose(critic(x)[:1], critic(x[:1]), atol=1e-5)
    batch_norm = DCGANDiscriminator(DCGANConfig(image_size=32, width=8)).train()
    assert not torch.allclose(batch_norm(x)[:1], batch_norm(x[:1]), atol=1e-5)


def test_minibatch_std_is_the_spread_within_each_group_and_lets_d_see_look_alikes():
    from medgan.nets.dcgan import minibatch_std

    h = torch.tensor([1.0, 5.0, 3.0, 5.0]).view(4, 1, 1, 1).expand(4, 2, 3, 3).contiguous()
    # groups of 2 take every (B/2)-th image: {0, 2} (values 1, 3: std 1) and {1, 3} (5, 5: std 0)
    out = minibatch_std(h, 2)
    assert out.shape == (4, 1, 3, 3)
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([1.0, 0.0, 1.0, 0.0]), atol=1e-3)
    assert torch.allclose(minibatch_std(h, 3), torch.full((4, 1, 3, 3), 1e-4))  # gcd(4, 3) = 1: a group of one, no spread
    # D with the feature: a batch of copies scores otherwise than the same image among others
    torch.manual_seed(0)
    d = DCGANDiscriminator(DCGANConfig(image_size=32, width=8, d_norm="none", mbstd=4)).eval()
    x = torch.randn(8, 1, 32, 32)
    copies = x[:1].expand(8, -1, -1, -1)
    assert d(x).shape == (8,) and not torch.allclose(d(copies)[0], d(x)[0])
    assert d.fc.in_features == (DCGANConfig(image_size=32, width=8).channels_at(0) + 1) * 16
    with pytest.raises(ValueError, match="mbstd"):
        DCGANConfig(mbstd=-1)
