"""How to read a data source: :class:`SourceOptions`, the flags of every command that reads
data. Kept apart from the readers (:mod:`medgan.data.sources`) so the command line can build
its parser without importing pydicom, nibabel or torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from medgan.errors import MedganError
from medgan.options import option

__all__ = ["SourceOptions"]


@dataclass
class SourceOptions:
    """How to read a source. Every field with an :func:`~medgan.options.option` is a flag of
    every command that reads data (``medgan data show``, ``train``, ``evaluate``).

    Attributes:
        size: resize every image to ``size`` x ``size`` (``None``: keep sizes, which must agree).
        resize_mode: ``"pad"``, ``"crop"`` or ``"stretch"`` (see :func:`fit_square`).
        axis: slice axis for volumes: ``"axial"``/``"coronal"``/``"sagittal"`` (slices shown
            the radiological way), a raw array axis 0, 1, 2 (storage order), or ``"auto"``
            (axial when the volume's orientation is known, else axis 0).
        volume: which volume of a 4D NIfTI to read.
        grey: convert colour images to grey.
        window: CT window preset or ``"center,width"`` in HU; clips the data to it.
        normalize: ``"auto"`` (MR volumes: per-volume percentiles to 0..1; others as read),
            ``"percentile"`` (every volume/image), or ``"none"``.
        min_foreground: slices with a smaller fraction of non-background pixels are skipped.
        labels_csv: CSV with ``file,label`` columns giving each file's class.
        masks: folder of masks paired with the images by file name.
        partial_masks: with ``masks``, an image without a mask file, or a volume slice whose
            mask is empty, is unlabelled rather than an error (a partly labelled scan: the
            images keep an all-zero mask and ``ImageSet.annotated`` says which are labelled).
        series: read only the DICOM series with this SeriesNumber, SeriesDescription (any
            case) or SeriesInstanceUID (in every study of the folder); other files are read.
        split: which split of a MedMNIST npz to read (``train``, ``val``, ``test``).
        n: number of images drawn from a generator source (``phantom``).
        seed: seed of a generator source.
        kind: phantom anatomy, ``"head"`` or ``"torso"``.
        lesion_fraction: fraction of phantoms with lesions.
    """

    size: int | None = option(None, "resize every image to N x N", shown="64 for training, else the images' own")
    resize_mode: str = option("pad", "keep the aspect ratio by padding or cropping, or stretch", choices=("pad", "crop", "stretch"))
    axis: int | str = option("auto", "slice volumes along axial, coronal, sagittal or a raw axis 0, 1, 2 (default auto: "
                             "axial when the orientation is known)", metavar="AXIS", parse=lambda text: int(text) if text.lstrip("-").isdigit() else text)
    volume: int | None = option(None, "volume index of a 4D NIfTI")
    grey: bool = option(True, "keep colour images in colour (default: convert to grey)", flag="--rgb")
    window: str | None = option(None, "CT window: brain, subdural, stroke, lung, mediastinum, abdomen, liver, bone or CENTER,WIDTH")
    normalize: str = option("auto", "intensity normalisation (auto: per-volume percentiles for MRI)", choices=("auto", "percentile", "none"))
    min_foreground: float = 0.05
    labels_csv: str | None = option(None, "CSV with columns file,label", metavar="CSV")
    masks: str | None = option(None, "folder of masks paired with the images by file name", metavar="FOLDER")
    partial_masks: bool = option(False, "images without a mask file, and slices with an empty mask, are unlabelled "
                                 "(a partly labelled scan)")
    series: str | None = option(None, "read only the DICOM series with this number, description or UID")
    split: str = option("train", "split of a MedMNIST npz", choices=("train", "val", "test"))
    n: int = option(256, "phantoms to draw (phantom source)", flag="--n-images")
    seed: int = option(0, "seed of generated sources (phantom)", flag="--data-seed")
    kind: str = option("head", "phantom anatomy", choices=("head", "torso"))
    lesion_fraction: float = option(0.0, "fraction of phantoms with lesions")
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.size is not None and not 8 <= self.size <= 4096:
            raise MedganError(f"--size {self.size} is out of range", hint="give a size between 8 and 4096 pixels")
        if not 0.0 <= self.lesion_fraction <= 1.0:
            raise MedganError(f"--lesion-fraction {self.lesion_fraction} is not a fraction", hint="give a number between 0 and 1")
        if self.n < 1:
            raise MedganError(f"--n-images {self.n} must be at least 1")
