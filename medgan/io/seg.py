"""DICOM Segmentation objects (SEG) from label maps, through highdicom.

One writer for every SEG medgan makes: a segmentor's label maps of a patient's series
(``medgan segment``) and the label maps of generated image-label pairs, beside the synthetic
images they annotate (``medgan generate`` of a ``--pairs`` run).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from medgan.errors import MedganError

__all__ = ["write_seg"]


def write_seg(path: Path, index: np.ndarray, sources: list, class_names: list[str], *, algorithm: str, parameters: dict[str, str],
              model_name: str, content_description: str, series_description: str) -> None:
    """Write a binary DICOM Segmentation of class indices ``index`` ``(F, H, W)`` (0 is the
    background; one segment per other class, named ``class_names[k]``), whose frames are the
    ``sources`` datasets (one per frame, in order; or one multi-frame source).

    The SEG belongs to the sources' patient and study (a new series) and names the algorithm
    (``algorithm``, medgan's version, ``parameters``) in each segment's identification.

    Raises:
        MedganError: highdicom refuses the source headers (e.g. a CT without
            FrameOfReferenceUID), naming the source file.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medgan import __version__
    from medgan.io.output import atomic_path

    identification = hd.AlgorithmIdentificationSequence(name=algorithm, version=str(__version__),
                                                        family=codes.cid7162.ArtificialIntelligence, parameters=parameters)
    tissue = hd.sr.CodedConcept(value="85756007", scheme_designator="SCT", meaning="Tissue")
    descriptions = [hd.seg.SegmentDescription(segment_number=k, segment_label=name[:64], segmented_property_category=tissue,
                                              segmented_property_type=tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                                              algorithm_identification=identification)
                    for k, name in enumerate(class_names[1:], start=1)]
    ref = sources[0]
    try:
        seg = hd.seg.Segmentation(
            source_images=sources, pixel_array=index, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=int(ref.get("SeriesNumber", 0) or 0) + 2000,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="medgan", manufacturer_model_name=model_name[:64],
            software_versions=str(__version__), device_serial_number="none", content_description=content_description[:64],
            content_label="MEDGAN", omit_empty_frames=False)
    except (ValueError, TypeError, AttributeError) as exc:  # highdicom's checks of the source headers
        raise MedganError(f"cannot write a DICOM SEG for this series: {exc}", path=getattr(ref, "filename", None) or path,
                          hint="the source images must be valid for their IOD (e.g. CT with a FrameOfReferenceUID)") from None
    seg.SeriesDescription = series_description[:64]
    buffer = io.BytesIO()
    seg.save_as(buffer)
    with atomic_path(path, False) as tmp:
        Path(tmp).write_bytes(buffer.getvalue())
