"""Adversarial objectives and penalties.

Every discriminator here returns logits ``l`` with ``D(x) = σ(l)``; the losses of
``docs/design.md`` §4 are
written with ``log σ(l) = -softplus(-l)`` and ``log(1 - σ(l)) = -softplus(l)``, the same
functions without overflow for large ``|l|``.

docs/design.md §4.2, §4.3:
    L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
    L_G = -E_z[log D(G(z))]                       (non-saturating, "bce")
    L_G =  E_z[log(1 - D(G(z)))]                  (minimax, "minimax")
Others: hinge (Lim & Ye 2017), least squares (Mao et al. 2017), Wasserstein with
gradient penalty (Gulrajani et al. 2017), R1 (Mescheder et al. 2018).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LossPair = tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def d_loss_bce(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """docs/design.md §4.2: -E[log D(x)] - E[log(1 - D(G(z)))] from logits."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_loss_nonsaturating(fake: torch.Tensor) -> torch.Tensor:
    """docs/design.md §4.3: -E[log D(G(z))]."""
    return F.softplus(-fake).mean()


def g_loss_minimax(fake: torch.Tensor) -> torch.Tensor:
    """The minimax generator loss E[log(1 - D(G(z)))] (saturates when D wins; for study)."""
    return -F.softplus(fake).mean()


def d_loss_hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[max(0, 1 - l_real)] + E[max(0, 1 + l_fake)]."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def g_loss_hinge(fake: torch.Tensor) -> torch.Tensor:
    """-E[l_fake]."""
    return -fake.mean()


def d_loss_lsgan(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """½E[(l_real - 1)²] + ½E[l_fake²] (targets 1 for real, 0 for fake)."""
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def g_loss_lsgan(fake: torch.Tensor) -> torch.Tensor:
    """½E[(l_fake - 1)²]."""
    return 0.5 * ((fake - 1.0) ** 2).mean()


def d_loss_wasserstein(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """E[l_fake] - E[l_real] (the critic's estimate of -W1; add a gradient penalty)."""
    return fake.mean() - real.mean()


ADVERSARIAL: dict[str, LossPair] = {
    "bce": (d_loss_bce, g_loss_nonsaturating),
    "minimax": (d_loss_bce, g_loss_minimax),
    "hinge": (d_loss_hinge, g_loss_hinge),
    "lsgan": (d_loss_lsgan, g_loss_lsgan),
    "wgan-gp": (d_loss_wasserstein, g_loss_hinge),  # G: -E[critic(fake)], same formula as hinge's
}


def _input_gradient(D: Callable, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """d(sum D(x)) / dx, kept in the graph so the penalty can be minimised."""
    x = x.detach().requires_grad_(True)
    out = D(x, **kwargs)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return grad.flatten(1)  # (B, C*H*W)


def gradient_penalty(D: Callable, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
    """WGAN-GP: E[(||∇D(x̂)||₂ - 1)²] at x̂ = εx + (1-ε)x̃, ε ~ U(0, 1) per sample."""
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype, generator=generator)
    mixed = eps * real.detach() + (1.0 - eps) * fake.detach()
    grad = _input_gradient(D, mixed, **kwargs)
    return ((grad.norm(2, dim=1) - 1.0) ** 2).mean()


def r1_penalty(D: Callable, real: torch.Tensor, **kwargs) -> torch.Tensor:
    """R1: E[||∇D(x)||²] on real data (multiply by γ/2 in the objective)."""
    grad = _input_gradient(D, real, **kwargs)
    return grad.pow(2).sum(dim=1).mean()
