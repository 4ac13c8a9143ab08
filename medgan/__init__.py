"""medgan: generative adversarial networks for medical imaging.

The names below are imported on first use, so ``import medgan`` stays light.
"""

from medgan.lazy import lazy_exports

__version__ = "0.1.0"

_LOCATIONS = {
    "SyntheticDataset": "medgan.tasks.synth.dataset", "mix_synthetic": "medgan.tasks.synth.dataset",
    "load_model": "medgan.tasks",
}
__all__ = sorted(_LOCATIONS)

__getattr__, __dir__ = lazy_exports(__name__, _LOCATIONS)
