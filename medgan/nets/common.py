"""Small building blocks shared by the networks."""

from __future__ import annotations

from torch import nn


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module`` in spectral normalisation (Miyato et al. 2018) when ``enabled``.

    Uses ``torch.nn.utils.parametrizations.spectral_norm``: the weight is divided by its
    largest singular value, estimated by one power iteration per training forward pass.
    """
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al. 2016): conv/linear weights ~ N(0, 0.02),
    batch-norm scales ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        weight = module.parametrizations.weight.original if hasattr(module, "parametrizations") else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
