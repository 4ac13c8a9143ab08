"""Model names -> (config class, generator class, discriminator class).

Adding an architecture is one new module plus one line here.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from torch import nn

from medgan.nets.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator
from medgan.nets.dncnn import DnCNNConfig, DnCNNGenerator
from medgan.nets.fastgan import FastGANConfig, FastGANDiscriminator, FastGANGenerator
from medgan.nets.mlp import MLPConfig, MLPDiscriminator, MLPGenerator
from medgan.nets.patchgan import PatchGANDiscriminator
from medgan.nets.srresnet import SRConfig, SRResNetGenerator
from medgan.nets.unet import UNetConfig, UNetGenerator

MODELS: dict[str, tuple[type, type[nn.Module], type[nn.Module]]] = {
    "mlp": (MLPConfig, MLPGenerator, MLPDiscriminator),
    "dcgan": (DCGANConfig, DCGANGenerator, DCGANDiscriminator),
    "fastgan": (FastGANConfig, FastGANGenerator, FastGANDiscriminator),  # 64-256 px, SLE, self-supervised D
    # Paired enhancement: G maps an image to an image; D(condition, image) builds itself
    # from the generator's config (its d_* fields) through ``patchgan_config()``.
    "pix2pix": (UNetConfig, UNetGenerator, PatchGANDiscriminator),
    "srgan": (SRConfig, SRResNetGenerator, PatchGANDiscriminator),
    "dncnn": (DnCNNConfig, DnCNNGenerator, PatchGANDiscriminator),  # plain residual CNN denoiser
}


def config_from_dict(model: str, values: dict[str, Any]):
    """Build the config dataclass of ``model`` from a dict, ignoring keys it does not have."""
    if model not in MODELS:
        raise KeyError(f"unknown model {model!r}; available: {', '.join(MODELS)}")
    cls = MODELS[model][0]
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})


def build_pair(model: str, config) -> tuple[nn.Module, nn.Module]:
    """``(G, D)`` of ``model`` for a config (dataclass or dict)."""
    if isinstance(config, dict):
        config = config_from_dict(model, config)
    _, gen, disc = MODELS[model]
    return gen(config), disc(config)


def build_network(model: str, config, role: str) -> nn.Module:
    """Only the ``"generator"`` or the ``"discriminator"`` of ``model`` (for loading an export)."""
    if isinstance(config, dict):
        config = config_from_dict(model, config)
    _, gen, disc = MODELS[model]
    return {"generator": gen, "discriminator": disc}[role](config)


def config_to_dict(config) -> dict[str, Any]:
    return asdict(config)
