"""The task registry: one line per task, classes loaded on first use."""

import subprocess
import sys

import pytest

from medgan.errors import MedganError
from medgan.tasks import TASKS
from medgan.train import TrainConfig
from medgan.train.task import Task


def test_every_registered_task_is_a_task_with_its_own_evaluation_and_report():
    assert len(TASKS) and next(iter(TASKS)) == "synth"  # medgan train without a task trains synth
    for name in TASKS:
        task = TASKS[name]
        assert issubclass(task, Task) and task.name == name
        assert task.evaluate_run.__func__ is not Task.evaluate_run.__func__  # each evaluates its own runs
        assert TASKS.example(name) is not None  # and says how it runs in miniature (tests/tasks/test_task_contract.py)


def test_an_unknown_task_is_one_clear_error():
    with pytest.raises(MedganError, match="unknown task 'anomalies'.*synth, enhance"):
        TrainConfig(task="anomalies").resolve()


def test_importing_the_registry_imports_no_recipe():
    code = "import sys, medgan.tasks; print(any(m.endswith('.recipe') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
