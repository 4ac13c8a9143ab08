"""Mixed precision by default only where it was measured to pay: enhancement and synthesis
on a CPU with native bf16; the choice is written into the run's config."""

import json
from pathlib import Path

import pytest
import torch

from medgan.cli import main
from medgan.train import precision
from medgan.train.config import TrainConfig


@pytest.fixture
def bf16_cpu(monkeypatch):
    """Pretend (or deny) that the CPU computes bf16 natively, and that there is no CUDA."""

    def set_native(value: bool) -> None:
        monkeypatch.setattr(precision, "native_bf16", lambda: value)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    return set_native


@pytest.mark.parametrize("native, task, expected", [
    (True, "enhance", True),
    (True, "synth", True),  # measured better at equal minutes
    (True, "anomaly", False),
    (True, "segment", False),
    (False, "enhance", False),
])
def test_amp_default_follows_task_and_cpu(bf16_cpu, native, task, expected):
    bf16_cpu(native)
    config = TrainConfig.from_dict({"task": task}).resolve()
    assert config.loop.amp is expected
    assert config.to_dict()["loop"]["amp"] is expected  # config.json names the arithmetic used


def test_amp_given_is_kept_and_cuda_is_not_switched(bf16_cpu):
    bf16_cpu(True)
    assert TrainConfig.from_dict({"task": "enhance", "loop": {"amp": False}}).resolve().loop.amp is False
    assert TrainConfig.from_dict({"task": "synth", "loop": {"amp": True}}).resolve().loop.amp is True
    assert precision.resolve_amp(None, "cuda", True) is False  # fp16 on CUDA is asked for, never assumed
    assert precision.resolve_amp(None, "cpu", True) is True


def test_amp_flags_on_the_command_line(bf16_cpu, capsys):
    bf16_cpu(True)
    for argv, expected in ((["enhance"], True), (["enhance", "--no-amp"], False), (["segment", "--amp"], True), (["segment"], False)):
        assert main(["train", *argv, "--dry-run"]) == 0
        assert json.loads(capsys.readouterr().out)["loop"]["amp"] is expected, argv


def test_native_bf16_agrees_with_the_cpu_flags():
    info = Path("/proc/cpuinfo")
    native = precision.native_bf16()
    assert isinstance(native, bool)
    if info.is_file():  # Linux (CI): the flags the kernel reports
        assert native == bool({"avx512_bf16", "amx_bf16"} & set(info.read_text().split()))
