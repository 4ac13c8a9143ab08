"""Each objective against its formula on hand-computed numbers, and in behaviour."""

import math

import pytest
import torch

from medgan import losses


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_seed_losses_match_the_formulas():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 3.0])
    # L_D = -E[log D(x)] - E[log(1 - D(G(z)))]
    expected_d = -(math.log(sig(2)) + math.log(sig(0))) / 2 - (math.log(1 - sig(-1)) + math.log(1 - sig(3))) / 2
    assert losses.d_loss_bce(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    # L_G = -E[log D(G(z))]
    expected_g = -(math.log(sig(-1)) + math.log(sig(3))) / 2
    assert losses.g_loss_nonsaturating(fake).item() == pytest.approx(expected_g, rel=1e-6)
    # minimax G: E[log(1 - D(G(z)))]
    expected_mm = (math.log(1 - sig(-1)) + math.log(1 - sig(3))) / 2
    assert losses.g_loss_minimax(fake).item() == pytest.approx(expected_mm, rel=1e-6)


def test_bce_is_stable_for_huge_logits():
    big = torch.tensor([1e4])
    assert torch.isfinite(losses.d_loss_bce(big, -big))
    assert losses.d_loss_bce(big, -big).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.g_loss_nonsaturating(-big).item() == pytest.approx(1e4)


def test_hinge_lsgan_wasserstein_by_hand():
    real, fake = torch.tensor([0.5, 2.0]), torch.tensor([-2.0, 0.0])
    assert losses.d_loss_hinge(real, fake).item() == pytest.approx(((1 - 0.5) + 0) / 2 + (0 + 1) / 2)
    assert losses.g_loss_hinge(fake).item() == pytest.approx(1.0)
    assert losses.d_loss_lsgan(real, fake).item() == pytest.approx(0.5 * (0.25 + 1) / 2 + 0.5 * (4 + 0) / 2)
    assert losses.g_loss_lsgan(fake).item() == pytest.approx(0.5 * (9 + 1) / 2)
    assert losses.d_loss_wasserstein(real, fake).item() == pytest.approx(-1.0 - 1.25)


@pytest.mark.parametrize("name", sorted(losses.ADVERSARIAL))
def test_a_right_discriminator_has_lower_loss_than_a_wrong_one(name):
    d_loss, g_loss = losses.ADVERSARIAL[name]
    confident_real, confident_fake = torch.full((8,), 3.0), torch.full((8,), -3.0)
    right = d_loss(confident_real, confident_fake)
    wrong = d_loss(confident_fake, confident_real)
    assert right < wrong
    # and G's loss is lower when it fools D
    assert g_loss(confident_real) < g_loss(confident_fake)


def test_gradient_penalty_is_zero_for_a_unit_slope_critic_and_positive_otherwise():
    w = torch.zeros(1, 1, 2, 2)
    w.view(-1)[0] = 1.0  # D(x) = x[0,0]: gradient norm exactly 1
    unit = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    steep = lambda x: 3 * (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(4, 1, 2, 2), torch.randn(4, 1, 2, 2)
    assert losses.gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    assert losses.gradient_penalty(steep, real, fake).item() == pytest.approx(4.0)  # (3 - 1)^2


def test_r1_penalty_is_squared_input_gradient_norm():
    D = lambda x: 2 * x.flatten(1).sum(1)  # noqa: E731  ∇ = 2 everywhere
    x = torch.randn(3, 1, 4, 4)
    assert losses.r1_penalty(D, x).item() == pytest.approx(4 * 16)
