"""Shared inference: running a network over images of any size (:mod:`.tiles`), and over
files and folders of any medical format (:mod:`.files`).

Tasks build their inference on it (``medgan enhance``, ``medgan segment``, ``medgan
detect``), so tiling, padding, blending, walking inputs, reading DICOM series with their
geometry, atomic output and progress are written and tested once.
"""

from medgan.infer.files import (FileJob, Input, InputJob, apply_to_files, check_units, input_format, optional_output, per_slice,
                                prepare_like_training, progress_bar, same_format_name)
from medgan.infer.tiles import tiled_apply

__all__ = ["FileJob", "Input", "InputJob", "apply_to_files", "check_units", "input_format", "optional_output", "per_slice",
           "prepare_like_training", "progress_bar", "same_format_name", "tiled_apply"]
