"""The template task's part of the run report."""

from __future__ import annotations

from pathlib import Path

from medgan.report.html import img_tag


def reconstruction_section(run: Path) -> list[str]:
    if not (run / "reconstructions.png").is_file():
        return ['<h2>Reconstructions</h2><p class="note">not evaluated yet: run <code>medgan evaluate RUN</code>.</p>']
    return ["<h2>Reconstructions</h2>" + f'<figure>{img_tag(run / "reconstructions.png", "reconstructions")}'
            "<figcaption>held-out image | G(E(image)), in pairs</figcaption></figure>"]
