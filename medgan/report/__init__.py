"""Pictures and reports drawn from images and run folders."""

from medgan.report.grid import image_grid, save_grid

__all__ = ["image_grid", "save_grid"]
