import pytest

from medgan.data.sources import SourceOptions
from medgan.train import DataConfig, LoopConfig, ModelConfig, TrainConfig


@pytest.fixture
def tiny_config():
    """A DCGAN on 32 phantoms of 32x32 that trains a step in a few milliseconds."""

    def make(**loop) -> TrainConfig:
        values = dict(steps=6, batch_size=8, log_every=1, sample_every=100, checkpoint_every=3, n_samples=4,
                      ema=0.9, augment="translation,cutout,color")
        values.update(loop)
        return TrainConfig(
            data=DataConfig(source="phantom", options=SourceOptions(size=32, n=32), holdout=0.1),
            model=ModelConfig("dcgan", {"image_size": 32, "width": 8}),
            loop=LoopConfig(**values),
        )

    return make
