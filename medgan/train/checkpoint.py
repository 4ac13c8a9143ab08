"""Training checkpoints (resume state) and exported networks (a model).

They are different things (STYLE habit 8):

- ``checkpoints/training-state-<step>.pt`` holds everything needed to continue exactly:
  every named network, the EMA copies, every optimiser and loss scaler, the step, every RNG
  state and the resolved config. It is a ``torch.save`` of tensors and plain Python values only, loaded
  with ``weights_only=True`` (no arbitrary pickle), and written atomically.
- ``<network>/`` (``generator/``, ``encoder/`` ...) holds ``config.json`` +
  ``model.safetensors`` for each network the task uses at inference: the weights (the EMA
  copy when there is one) and what is needed to rebuild and use it. Loading runs no pickle;
  :func:`medgan.tasks.load_model` turns the folders into the task's typed model.
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
from medgan.errors import MedganError, one_line
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


def upgrade_state(state: dict[str, Any]) -> dict[str, Any]:
    """A training state in the named-networks layout; states written before it (``G``, ``D``,
    ``G_ema``, ``opt_g`` ...) are mapped onto the generator/discriminator names."""
    if "networks" in state:
        return state
    pairs = {"generator": ("G", "G_ema", "opt_g", "scaler_g"), "discriminator": ("D", None, "opt_d", "scaler_d")}
    out = {k: v for k, v in state.items() if k not in {"G", "D", "G_ema", "opt_g", "opt_d", "scaler_g", "scaler_d"}}
    out.update(networks={}, ema={}, optimizers={}, scalers={})
    for name, (net, ema, opt, scaler) in pairs.items():
        if state.get(net) is not None:
            out["networks"][name], out["optimizers"][name], out["scalers"][name] = state[net], state[opt], state[scaler]
        if ema and state.get(ema) is not None:
            out["ema"][name] = state[ema]
    return out


# ----------------------------------------------------------------------------- export


def export_network(folder: Path, net: nn.Module, info: dict[str, Any]) -> Path:
    """Write ``config.json`` (``info``) + ``model.safetensors`` (the weights) into ``folder``.

    An export is made to be shared: its ``source`` names the training data only by a public
    set's name (:func:`medgan.privacy.shareable_source`); the path stays in the run's own
    ``config.json``.
    """
    from medgan.privacy import shareable_source

    if "source" in info:
        info = {**info, "source": shareable_source(info["source"])}
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(folder / "model.safetensors", overwrite=True) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "medgan_version": __version__})
    with atomic_path(folder / "config.json", overwrite=True) as tmp:
        tmp.write_text(json.dumps({**info, "medgan_version": __version__}, indent=2) + "\n")
    return folder


def is_export(folder: Path) -> bool:
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


def exported_folders(path: str | Path) -> dict[str, Path]:
    """The exported networks of a run folder (``RUN/<name>/``), or of one network's own folder,
    by network name (an export from before names were written is the ``generator``)."""
    path = Path(path)
    folders = [path] if is_export(path) else sorted(p for p in path.iterdir() if p.is_dir() and is_export(p)) if path.is_dir() else []
    return {json.loads((f / "config.json").read_text()).get("network", f.name if f != path else "generator"): f for f in folders}


def load_network(folder: Path, build, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild one exported network: ``build(info)`` makes it from its ``config.json``, the
    safetensors weights fill it (no pickle). Returns ``(network in eval mode, info)``."""
    info = json.loads((folder / "config.json").read_text())
    net = build(info)
    try:
        net.load_state_dict(load_file(str(folder / "model.safetensors")))
    except (RuntimeError, OSError) as error:  # a truncated file, or weights of another network
        raise MedganError(f"the weights do not fit the network its config describes ({one_line(str(error))[:160]})", path=folder,
                          hint="export the run again (medgan train --resume RUN), or give the folder the weights came with") from None
    return net.to(device).eval(), info
