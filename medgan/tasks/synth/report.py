"""The synthesis task's part of the run report: per-class realism (conditional runs) and the
memorisation audit."""

from __future__ import annotations

import json
from pathlib import Path

from medgan.report.html import img_tag, table

__all__ = ["audit_section", "class_rows", "class_section", "floor_summary"]

CLASS_HEADER = ("class", "training images", "generated", "KID", "MS-SSIM real", "MS-SSIM generated", "diversity")

#: The realism figures where lower is better, whose distance from the real floor is stated.
LOWER_IS_BETTER = ("kid_mean", "fid", "swd")


def floor_summary(record: dict) -> str | None:
    """One line on how far a synthesis record is from its real floor, e.g. ``KID 0.078 is
    3.1x the real floor 0.025 (held-out patients vs training)``; ``None`` without a floor."""
    floor, figures = record.get("floor") or {}, record.get("metrics") or {}
    key = next((k for k in LOWER_IS_BETTER if k in floor and k in figures and floor[k] > 0), None)
    if key is None:
        return None
    name = {"kid_mean": "KID", "fid": "FID", "swd": "SWD"}[key]
    return (f"{name} {figures[key]:.4g} is {figures[key] / floor[key]:.1f}x the real floor {floor[key]:.4g} "
            f"({record.get('n_floor')} held-out patients' images vs training, scored the same way)")


def class_rows(record: dict) -> list[tuple]:
    """Rows of the per-class table of an evaluation record (``[]`` for unconditional runs):
    class, training images, generated, KID, MS-SSIM of real and generated pairs, verdict."""
    rows = []
    for c in record.get("classes") or []:
        verdict = "" if c["collapsed"] is None else ("COLLAPSED" if c["collapsed"] else "ok")
        figures = ("" if c[k] is None else c[k] for k in ("kid_mean", "ms_ssim_real", "ms_ssim_generated"))
        rows.append((c["class"], c["n_real"], c["n_generated"], *figures, verdict))
    return rows


def class_section(run: Path) -> list[str]:
    """Per-class realism and diversity of the latest evaluation of a conditional run."""
    from medgan.io.records import read_jsonl

    records = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("kind") == "evaluate" and r.get("classes")]
    if not records:
        return []
    rows = class_rows(records[-1])
    parts = ["<h2>Per class</h2>", table([tuple(f'<span class="flag">{v}</span>' if v == "COLLAPSED" else v for v in row) for row in rows],
                                         header=CLASS_HEADER)]
    parts.append('<p class="note">KID of each class\'s generated images against its training images; MS-SSIM: mean over 200 random pairs '
                 'inside the class (higher: the images look more alike). COLLAPSED: the generated images\' diversity (1 - MS-SSIM) is '
                 'below half of the real images\'. Training images per class show any imbalance (see --balance-classes).</p>')
    return parts


def audit_section(run: Path) -> list[str]:
    """The memorisation audit's section of a synthesis run's report (from ``audit/``)."""
    parts: list[str] = []
    parts.append("<h2>Memorisation audit</h2>")
    audit_file = run / "audit" / "summary.json"
    if audit_file.is_file():
        audit = json.loads(audit_file.read_text())
        flagged = audit["fraction_flagged"]
        verdict = (f'<span class="flag">{flagged:.1%} of generated images are near-copies of training images</span>' if flagged > audit["quantile"]
                   else f'<span class="ok">{flagged:.1%} flagged: no more than real images from other patients ({audit["quantile"]:.0%} by construction)</span>')
        parts.append(f"<p>{verdict}</p>")
        rows = [(space, s["threshold"], s["fraction_flagged"], s["median_distance_generated"], s["median_distance_holdout"], s["min_distance_generated"])
                for space, s in audit.items() if isinstance(s, dict)]
        parts.append(table(rows, header=("space", "threshold", "flagged", "median NN distance (generated)", "median NN distance (held-out real)", "min NN distance (generated)")))
        parts.append('<p class="note">Threshold: the distance below which only the given quantile of held-out real images (other patients) '
                     'fall from their nearest training image. Pixel distances are RMS differences in [-1, 1].</p>')
        if (run / "audit" / "closest-pairs.png").is_file():
            parts.append(f'<figure>{img_tag(run / "audit" / "closest-pairs.png", "closest pairs")}'
                         '<figcaption>the closest generated (left) / training (right) pairs; "!" = flagged</figcaption></figure>')
    else:
        parts.append('<p class="note">not audited yet: run <code>medgan audit RUN</code>.</p>')
    return parts
