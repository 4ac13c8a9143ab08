"""Adversarial and semi-supervised segmentation (``docs/design.md`` §6, the third use)."""
