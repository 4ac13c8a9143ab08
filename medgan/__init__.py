"""medgan: generative adversarial networks for medical imaging."""

__version__ = "0.1.0"
