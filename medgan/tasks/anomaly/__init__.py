"""Anomaly detection: models of normal images, scores calibrated on held-out normals (the design document's fourth application)."""
