"""Checks the task tests share: ``--dry-run`` against the saved ``config.json``, and a bright
blob planted in a head phantom's brain with how often a trained anomaly model's map peaks on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from medgan.cli import main
from medgan.datasets.phantom import make_phantom
from medgan.tasks.anomaly.model import score_set

SEEDS = range(1000, 1008)


def dry_run_matches_the_saved_config(argv: list[str], run: Path, capsys) -> dict:
    """``medgan train ARGV --dry-run`` prints what ``config.json`` of the same run holds
    (but the step plan the engine writes as it lays the run out); the saved config is returned."""
    assert main([*argv, "--run-dir", str(run), "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert not run.exists()  # a dry run writes nothing
    assert main([*argv, "--run-dir", str(run)]) == 0
    saved = json.loads((run / "config.json").read_text())
    printed["loop"].pop("plan", None)
    saved["loop"].pop("plan", None)
    assert printed == saved
    return saved


def planted_lesion(seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(clean, planted, lesion mask)``: phantom ``seed`` and a copy with a disc of radius 2 px
    at +90 HU (bright in the brain window), centred 3 px or more inside the brain."""
    ph = make_phantom(size=size, seed=seed)
    brain = ph.tissue == ph.tissue_names.index("brain")
    inside = np.argwhere(ndimage.binary_erosion(brain, iterations=3))
    cy, cx = inside[np.random.default_rng(seed).integers(len(inside))]
    yy, xx = np.mgrid[:size, :size]
    lesion = ((yy - cy) ** 2 + (xx - cx) ** 2 <= 4) & brain
    return ph.clean, np.where(lesion, ph.clean + 90.0, ph.clean).astype(np.float32), lesion


def hits_at_peak(model, seeds=SEEDS) -> int:
    """Of the planted phantoms ``seeds``, how many have the map's peak on (or touching) the
    lesion and the planted copy scored above the clean one."""
    hits = 0
    for seed in seeds:
        clean, planted, lesion = planted_lesion(seed)
        scores, maps = score_set(model, np.stack([clean, planted]))
        peak = np.unravel_index(np.argmax(maps[1]), maps[1].shape)
        hits += bool(np.hypot(*(np.argwhere(lesion) - np.array(peak)).T).min() <= 1.5 and scores[1] > scores[0])
    return hits
