"""Data pipeline: sources, intensity transforms, geometry, splits and the torch Dataset.

The names below are imported on first use (PEP 562): the command line reads
:class:`SourceOptions` and :class:`DataConfig` without importing torch.
"""

from medgan.lazy import lazy_exports

_LOCATIONS = {
    "MedicalImageDataset": "medgan.data.dataset",
    "fit_square": "medgan.data.geometry", "plane_axis": "medgan.data.geometry", "volume_to_slices": "medgan.data.geometry",
    "ImageSet": "medgan.data.imageset",
    "CT_WINDOWS": "medgan.data.intensity", "IntensityMap": "medgan.data.intensity", "apply_window": "medgan.data.intensity",
    "normalize_percentile": "medgan.data.intensity", "parse_window": "medgan.data.intensity",
    "percentile_range": "medgan.data.intensity",
    "SourceOptions": "medgan.data.source_options", "load_source": "medgan.data.sources",
    "split_by_group": "medgan.data.splits",
    "sample_indices": "medgan.data.summary", "summarize": "medgan.data.summary",
    "DataConfig": "medgan.data.training", "load_training_data": "medgan.data.training",
}
__all__ = sorted(_LOCATIONS)

__getattr__, __dir__ = lazy_exports(__name__, _LOCATIONS)
