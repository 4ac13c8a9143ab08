"""The enhancement task's part of the run report."""

from __future__ import annotations

from pathlib import Path

from medgan.report.html import img_tag

__all__ = ["comparison_section"]


def comparison_section(run: Path) -> list[str]:
    """The side-by-side picture of an enhancement run's report (``comparison.png``)."""
    parts: list[str] = []
    if (run / "comparison.png").is_file():
        parts.append("<h2>Side by side</h2>" + f'<figure>{img_tag(run / "comparison.png", "comparison")}'
                     "<figcaption>held-out images: degraded input | classical baseline | L1 only | GAN | clean</figcaption></figure>")
    return parts
