"""Adversarial and semi-supervised segmentation (the design document's third application)."""
