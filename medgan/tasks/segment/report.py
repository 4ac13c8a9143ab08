"""The segmentation task's part of the run report."""

from __future__ import annotations

import html
import math
from pathlib import Path

from medgan.io.records import read_jsonl
from medgan.report.html import img_tag

__all__ = ["PICTURE", "SCORES", "segmentation_section"]

#: The best and worst held-out slices, drawn by :mod:`.evaluate` into the run folder.
PICTURE = "segmentation-best-worst.png"
#: The per-class scores of an evaluation record, in the order of the table's columns.
SCORES = ("dice", "iou", "hd95", "asd", "nsd")


def _cell(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.3f}"


def segmentation_section(run: Path) -> list[str]:
    """Per-class scores of the latest evaluation and the best / worst held-out slices."""
    records = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "evaluate" and r.get("task") == "segment"]
    parts: list[str] = []
    if records:
        r = records[-1]
        units = r.get("distance_units", "pixels")
        rows = "".join(f"<tr><td>{html.escape(c)}</td>" + "".join(f"<td>{_cell(r['metrics'].get(f'{s}_{c}'))}</td>" for s in SCORES) + "</tr>"
                       for c in r.get("class_names", []))
        parts.append(f"<h2>Segmentation per class</h2><table><tr><th>class</th><th>Dice</th><th>IoU</th><th>HD95 ({units})</th>"
                     f"<th>ASD ({units})</th><th>NSD at {r.get('settings', {}).get('nsd_tolerance', 2):g} {units}</th></tr>{rows}</table><p>{r['n_volumes']} held-out volumes, {r['n_test']} slices; "
                     "Dice / IoU per volume, distances 2D per slice pooled per volume; means over volumes.</p>")
    if (run / PICTURE).is_file():
        parts.append("<h2>Best and worst held-out slices</h2>" + f"<figure>{img_tag(run / PICTURE, 'best and worst slices')}"
                     "<figcaption>image | prediction | truth; the caption is the slice's mean foreground Dice</figcaption></figure>")
    return parts
