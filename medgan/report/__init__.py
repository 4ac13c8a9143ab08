"""Pictures and reports drawn from images and run folders."""

from medgan.report.curves import plot_curves, read_jsonl
from medgan.report.grid import image_grid, save_grid

__all__ = ["image_grid", "plot_curves", "read_jsonl", "save_grid"]
