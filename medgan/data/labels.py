"""Label maps: the classes a set of masks holds, their values as class indices and one-hot
maps, and a few labelled images chosen from many. Shared by segmentation and by synthesis of
image-label pairs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medgan.errors import MedganError

__all__ = ["evenly_chosen", "label_classes", "one_hot", "parse_class_names", "to_indices"]


def parse_class_names(path: str) -> dict[int, str]:
    """Label value -> class name from a JSON file: ``{"0": "background", "1": "lesion"}`` or
    a list (values 0, 1, ...). One clear error for anything else."""
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise MedganError(f"cannot read the class names ({exc.__class__.__name__})", path=file, hint="give a JSON file") from None
    except json.JSONDecodeError as exc:
        raise MedganError(f"not valid JSON: {exc.msg} at line {exc.lineno}", path=file,
                          hint='write e.g. {"0": "background", "1": "lesion"}') from None
    if isinstance(data, list):
        data = dict(enumerate(data))
    if not isinstance(data, dict) or not data:
        raise MedganError("class names must be a JSON object of label value -> name, or a list", path=file,
                          hint='write e.g. {"0": "background", "1": "lesion"}')
    out: dict[int, str] = {}
    for key, name in data.items():
        try:
            value = int(key)
        except (TypeError, ValueError):
            raise MedganError(f"label value {key!r} is not an integer", path=file, hint='keys are label values, e.g. "0", "1", "255"') from None
        if not 0 <= value <= 65535 or not isinstance(name, str) or not name:
            raise MedganError(f"label {key!r}: {name!r} is not a value in 0..65535 with a name", path=file,
                              hint='write e.g. {"0": "background", "1": "lesion"}')
        out[value] = name
    if 0 not in out:
        raise MedganError("the class names do not name label 0 (the background)", path=file, hint='add "0": "background"')
    return dict(sorted(out.items()))


def label_classes(masks: np.ndarray, names: dict[int, str] | None, data_names: list[str] | None,
                  where: str) -> tuple[list[int], list[str]]:
    """The run's ``(label_values, class_names)``: those of ``names`` (then every mask value
    must be one of them), else the values in ``masks`` (with 0), named by the data."""
    present = sorted(set(np.unique(masks).tolist()) | {0})
    if names is not None:
        unknown = [v for v in present if v not in names]
        if unknown:
            raise MedganError(f"the masks hold label value {unknown[0]}, which the class names do not name", path=where,
                              hint=f"add it to the --class-names JSON (named now: {', '.join(map(str, names))})")
        return list(names), list(names.values())
    if len(present) < 2:
        raise MedganError("every training mask is empty (only label 0)", path=where, hint="give masks with at least one foreground label")
    if data_names and present[-1] < len(data_names):
        values = list(range(len(data_names)))
        return values, list(data_names)
    return present, ["background" if v == 0 else f"label{v}" for v in present]


def evenly_chosen(n: int, k: int) -> np.ndarray:
    """``k`` of ``n`` indices spread evenly (every ``n/k``-th; all when ``k`` is 0 or >= n)."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def one_hot(labels: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, H, W)`` class indices -> ``(B, K, H, W)`` float one-hot maps."""
    return F.one_hot(labels, k).permute(0, 3, 1, 2).to(torch.float32)


def to_indices(masks: np.ndarray, label_values: list[int], where: str) -> np.ndarray:
    """Label maps -> class indices (``uint8``); a value the run does not know is an error."""
    lut = np.full(max(int(masks.max()), max(label_values)) + 1, 255, np.uint8)
    lut[label_values] = np.arange(len(label_values), dtype=np.uint8)
    out = lut[masks.astype(np.int64)]
    if (out == 255).any():
        value = int(masks.astype(np.int64)[out == 255][0])
        raise MedganError(f"a mask holds label value {value}, not one of the run's labels {label_values}", path=where,
                          hint="name it with --class-names, or fix the mask")
    return out


def label_channels(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Class indices ``(B, H, W)`` -> ``(B, K-1, H, W)`` foreground channels in [-1, 1]: +1
    where the pixel is of that class, -1 elsewhere. The background has no channel of its own:
    a pixel with no channel above 0 is background, so a generator that draws a label map
    beside its image (and a zero-padded shift of the pair) needs no extra channel for it."""
    return one_hot(labels, k)[:, 1:] * 2 - 1


def decode_label_channels(channels: torch.Tensor) -> torch.Tensor:
    """``(B, K-1, H, W)`` foreground channels (as :func:`label_channels` makes them, or as a
    generator draws them) -> class indices ``(B, H, W)``: the highest channel where it is
    above 0, else 0 (background)."""
    top, index = channels.max(dim=1)
    return torch.where(top > 0, index + 1, torch.zeros_like(index))
