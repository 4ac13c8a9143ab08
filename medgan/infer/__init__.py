"""Shared inference: running a network over images of any size (:mod:`.tiles`).

Tasks build their inference on it (``medgan enhance`` now; segmentation and anomaly
detection next), so tiling, padding and blending are written and tested once.
"""

from medgan.infer.tiles import tiled_apply

__all__ = ["tiled_apply"]
