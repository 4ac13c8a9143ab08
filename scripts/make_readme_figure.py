"""Write docs/demo.png: training slices (left) beside a run's latest samples (right).

    python scripts/make_readme_figure.py runs/00000-demo-dcgan-brain-mri
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from medgan.report.grid import image_grid
from medgan.train import TrainConfig
from medgan.data.training import load_training_data


def main(run: Path, out: Path = Path("docs/demo.png")) -> None:
    config = TrainConfig.from_dict(__import__("json").loads((run / "config.json").read_text()))
    dataset, _ = load_training_data(config.data)  # exactly the images the run trained on
    data = dataset.data
    pick = np.random.default_rng(1).choice(len(data), 64, replace=False)
    real = image_grid(data.images[pick], value_range=data.value_range)
    fake = PILImage.open(sorted((run / "samples").glob("step-*.png"))[-1]).convert("RGB")
    canvas = PILImage.new("RGB", (real.width + fake.width + 16, max(real.height, fake.height)), (255, 255, 255))
    canvas.paste(real, (0, 0))
    canvas.paste(fake, (real.width + 16, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    print(out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
