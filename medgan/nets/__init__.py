"""Networks only: no losses, no optimisers.

Every network is built from a plain dataclass config (``MLPConfig``, ``DCGANConfig``), so
a saved config JSON plus safetensors weights rebuild it with no pickle. New architectures
register themselves in :data:`MODELS` under a model name.
"""

from medgan.nets.dcgan import DCGANConfig, DCGANDiscriminator, DCGANGenerator
from medgan.nets.fastgan import FastGANConfig, FastGANDiscriminator, FastGANGenerator
from medgan.nets.mlp import MLPConfig, MLPDiscriminator, MLPGenerator
from medgan.nets.patchgan import PatchGANConfig, PatchGANDiscriminator
from medgan.nets.registry import MODELS, build_network, build_pair, config_from_dict
from medgan.nets.srresnet import SRConfig, SRResNetGenerator
from medgan.nets.unet import UNetConfig, UNetGenerator

__all__ = [
    "DCGANConfig", "DCGANDiscriminator", "DCGANGenerator", "FastGANConfig", "FastGANDiscriminator", "FastGANGenerator",
    "MLPConfig", "MLPDiscriminator", "MLPGenerator",
    "MODELS", "build_network", "build_pair", "config_from_dict",
    "PatchGANConfig", "PatchGANDiscriminator", "SRConfig", "SRResNetGenerator", "UNetConfig", "UNetGenerator",
]
