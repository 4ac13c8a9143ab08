"""Training checkpoints (resume state) and the exported generator (a model).

They are different things (STYLE habit 8):

- ``checkpoints/training-state-<step>.pt`` holds everything needed to continue exactly:
  G, D, the EMA copy, both optimisers, any loss scalers, the step, every RNG state and the
  resolved config. It is a ``torch.save`` of tensors and plain Python values only, loaded
  with ``weights_only=True`` (no arbitrary pickle), and written atomically.
- ``generator/`` holds ``config.json`` + ``model.safetensors``: the weights to sample from
  (the EMA copy when there is one) and what is needed to rebuild the network. Loading it
  runs no pickle at all.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from medgan import __version__
from medgan.errors import MedganError
from medgan.io.output import atomic_path

CHECKPOINT_GLOB = "training-state-*.pt"


def rng_state() -> dict[str, Any]:
    """Every RNG the loop draws from, as tensors and plain lists (safe to load)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(folder: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` atomically as ``training-state-<step>.pt``; keep the newest ``keep``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"training-state-{step:07d}.pt"
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(state, tmp)
    for old in sorted(folder.glob(CHECKPOINT_GLOB))[:-keep]:
        old.unlink()
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = sorted((run_dir / "checkpoints").glob(CHECKPOINT_GLOB))
    return found[-1] if found else None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training state (tensors and plain values only: ``weights_only=True``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated or foreign file
        raise MedganError(f"cannot read the checkpoint ({type(error).__name__})", path=path, hint="delete it to resume from the one before") from None


# ----------------------------------------------------------------------------- export


def export_generator(folder: Path, G: nn.Module, info: dict[str, Any]) -> Path:
    """Write ``config.json`` + ``model.safetensors`` for ``G`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    with atomic_path(folder / "model.safetensors", overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "medgan_version": __version__})
    with atomic_path(folder / "config.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps({**info, "medgan_version": __version__}, indent=2) + "\n")
    return folder


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild an exported generator from a run folder or its ``generator/`` folder.

    Returns:
        ``(G, info)``: the network in eval mode on ``device``, and its ``config.json``
        (model name, net config, intensity map, class names, ...).

    Raises:
        MedganError: no exported generator at ``path``.
    """
    from medgan.nets import build_pair

    folder = Path(path)
    if (folder / "generator").is_dir():
        folder = folder / "generator"
    config_file, weights = folder / "config.json", folder / "model.safetensors"
    if not config_file.is_file() or not weights.is_file():
        raise MedganError("no exported generator here (config.json + model.safetensors)", path=path, hint="give a run folder made by medgan train")
    info = json.loads(config_file.read_text())
    G, _ = build_pair(info["model"], info["net"])
    G.load_state_dict(load_file(str(weights)))
    return G.to(device).eval(), info
