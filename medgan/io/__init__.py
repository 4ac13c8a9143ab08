"""Reading and writing medical images: DICOM, NIfTI, PNG/JPEG/TIFF and NumPy arrays.

Every reader returns an :class:`Image` (float32 pixels in the layout described in
:mod:`medgan.io.base`, plus :class:`ImageMeta`); :func:`read_image` picks the reader from
the file's content. Every writer writes atomically and refuses to overwrite unless asked.
Problems with the user's files are raised as :class:`medgan.errors.MedganError`.
"""

from medgan.io.arrays import read_array, read_npz_collection, rgb_to_grey, write_npz
from medgan.io.base import RASTER_FORMATS, Image, ImageMeta, finite_range
from medgan.io.detect import FORMATS, detect_format, find_image_files, read_image
from medgan.io.dicom import ANONYMIZED_KEYWORDS, describe_series, read_dicom, read_dicom_series, series_matches, series_name, write_dicom
from medgan.io.nifti import read_nifti, write_nifti
from medgan.io.output import atomic_dir, atomic_path, check_output_file
from medgan.io.raster import read_raster, write_png

__all__ = [
    "ANONYMIZED_KEYWORDS",
    "FORMATS",
    "RASTER_FORMATS",
    "Image",
    "ImageMeta",
    "atomic_dir",
    "atomic_path",
    "check_output_file",
    "describe_series",
    "detect_format",
    "find_image_files",
    "finite_range",
    "read_array",
    "read_dicom",
    "read_dicom_series",
    "read_image",
    "read_nifti",
    "read_npz_collection",
    "read_raster",
    "rgb_to_grey",
    "series_matches",
    "series_name",
    "write_dicom",
    "write_nifti",
    "write_npz",
    "write_png",
]
