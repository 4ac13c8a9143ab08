"""What a shared artefact may say about the data a model was trained on.

A run folder is the user's own: its ``config.json``, logs and report name the training data
(``--data``) as given, so the run can be understood and resumed. What leaves the run to be
shared — an exported model (``<run>/<network>/config.json``), synthetic images and their
``manifest.json`` — must not: folder names of PACS exports routinely hold patient names,
IDs and study dates (``Doe_John_MRN4471123/CT_HEAD_2026-01-02``). Those carry the data's
public name when it has one (an embedded set, a MedMNIST set) and ``"user data"`` otherwise.
"""

from __future__ import annotations

__all__ = ["USER_DATA", "shareable_source"]

#: What a shared artefact says of training data that is not a public set.
USER_DATA = "user data"


def shareable_source(source: object) -> str:
    """The name of a training source that may travel with a shared artefact.

    Args:
        source: the run's ``data.source`` (a path, an embedded set's name, a MedMNIST name,
            a list of files, or ``None``).

    Returns:
        The embedded set's or MedMNIST set's name, unchanged; ``"user data"`` for anything
        else (paths, file lists), whose names may identify a patient.
    """
    from medgan.data.sources import EMBEDDED_SOURCES  # the data layer, imported when asked
    from medgan.datasets.medmnist import is_medmnist_name

    text = str(source or "")
    if text in EMBEDDED_SOURCES or (text and "/" not in text and "\\" not in text and is_medmnist_name(text)):
        return text
    return USER_DATA
