"""A run seen live in TensorBoard: every logged value as a scalar and every sample grid as an
image, in ``RUN/tensorboard/`` (``tensorboard --logdir runs/``).

Written only when the ``tensorboard`` package is installed (``pip install 'medgan[tensorboard]'``):
``stats.jsonl`` stays the record every report reads, and a run without TensorBoard loses
nothing. PyTorch's own ``SummaryWriter`` writes the event files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["EventLog"]


class EventLog:
    """TensorBoard event files for one run, or nothing (``writer`` is ``None``) when disabled
    or when ``tensorboard`` is not installed.

    Args:
        run_dir: the run folder; events go to ``run_dir / "tensorboard"``.
        enabled: write at all (the main process of a run only).
    """

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra is not installed
            return
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def scalars(self, record: dict, step: int) -> None:
        """Every number of a ``stats.jsonl`` row, under its own name (``loss_g``, ``kid`` ...)."""
        if self.writer is None:
            return
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        """An ``(H, W, 3)`` uint8 picture (a sample grid as it was saved)."""
        if self.writer is None:
            return
        self.writer.add_image(tag, picture, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
