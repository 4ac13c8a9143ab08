"""Anomaly detection: models of normal images, scores calibrated on held-out normals (``docs/design.md`` §6, the fourth use)."""
