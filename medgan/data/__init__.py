"""Data pipeline: sources, intensity transforms, geometry, splits and the torch Dataset."""

from medgan.data.dataset import MedicalImageDataset
from medgan.data.geometry import fit_square, plane_axis, volume_to_slices
from medgan.data.imageset import ImageSet
from medgan.data.intensity import CT_WINDOWS, IntensityMap, apply_window, normalize_percentile, parse_window, percentile_range
from medgan.data.sources import SourceOptions, load_source
from medgan.data.splits import split_by_group
from medgan.data.summary import sample_indices, summarize
from medgan.data.training import DataConfig, load_training_data

__all__ = [
    "CT_WINDOWS", "DataConfig", "ImageSet", "IntensityMap", "MedicalImageDataset", "SourceOptions", "apply_window", "fit_square",
    "load_source", "load_training_data", "normalize_percentile", "parse_window", "percentile_range", "plane_axis", "sample_indices",
    "split_by_group", "summarize", "volume_to_slices",
]
