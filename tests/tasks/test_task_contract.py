"""The contract every registered task keeps, checked for each entry of ``TASKS`` (and each
method of a task with several): its help holds its own flags alone; ``--dry-run`` prints the
``config.json`` a short run then saves; the run exports what the task says; ``load_model``
returns the task's typed record from its ``model.py``; ``medgan evaluate`` and ``medgan
report`` work on it; its inference command runs on a folder of images. A task says how it is
run in miniature in its commands module (``EXAMPLE``, :meth:`TaskRegistry.example`), so
adding a task or a method adds no edit here.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pytest

from medgan.cli import main
from medgan.options import add_flags
from medgan.tasks import TASKS, load_model
from medgan.train.checkpoint import exported_folders

from checks import dry_run_matches_the_saved_config

#: Engine flags of the short run, the same for every task.
TINY = ["--size", "32", "--steps", "2", "--batch-size", "4", "--holdout", "0.25", "--log-every", "1", "--sample-every", "2",
        "--checkpoint-every", "2", "--n-samples", "4", "--seed", "0", "--no-progress"]


def _methods(task: str) -> list[tuple[str, str] | None]:
    """``(flag, choice)`` of each method of a task with several (its options' ``method_field``
    names the option that picks one), else ``[None]``."""
    import dataclasses

    from medgan.options import flag_of

    options = TASKS.options(task)
    name = getattr(options, "method_field", None)
    if name is None:
        return [None]
    field = next(f for f in dataclasses.fields(options) if f.name == name)
    return [(flag_of(options, name), choice) for choice in field.metadata["option"]["choices"]]


CASES = [(task, method) for task in TASKS for method in _methods(task)]
IDS = [task if method is None else f"{task}-{method[1]}" for task, method in CASES]


def own_flags(task: str) -> set[str]:
    parser = argparse.ArgumentParser()
    options = TASKS.options(task)
    return set(add_flags(parser, options, f"{task}.")) if options else set()


def help_flags(task: str, capsys) -> set[str]:
    with pytest.raises(SystemExit):
        main(["train", task, "--help"])
    return set(re.findall(r"^\s+(--[a-z0-9-]+)", capsys.readouterr().out, re.M))


def inputs(folder: Path) -> Path:
    """A folder of two grey PNG images, phantoms at 0..255."""
    from medgan.datasets.phantom import phantom_set
    from medgan.io import write_png

    folder.mkdir()
    for i, image in enumerate(phantom_set(n=2, size=32, seed=5).images):
        write_png(folder / f"image{i}.png", np.asarray(image, np.float32), value_range=(float(image.min()), float(image.max())))
    return folder


@pytest.mark.parametrize("task, method", CASES, ids=IDS)
def test_a_task_keeps_the_contract_from_help_to_inference(task, method, tmp_path, capsys):
    check_contract(task, method, tmp_path, capsys)


def check_contract(task: str, method: tuple[str, str] | None, tmp_path: Path, capsys) -> None:
    """The contract of the registered ``task`` (with the method ``(flag, choice)``, if any)."""
    example = TASKS.example(task)
    assert example is not None and example["train"], f"task {task!r} says nowhere how it runs (EXAMPLE in its commands module)"

    # Help: the task's own flags, none of another task's.
    shown = help_flags(task, capsys)
    assert own_flags(task) <= shown
    others = set().union(*(own_flags(t) for t in TASKS if t != task)) - own_flags(task)
    assert not shown & others, sorted(shown & others)

    # One resolution: --dry-run prints what config.json holds (the engine adds the budget plan alone).
    run = tmp_path / "run"
    dry_run_matches_the_saved_config(["train", task, *example["train"], *(method or []), *TINY], run, capsys)

    # The export and the typed model of the task's model module.
    folders = exported_folders(run)
    assert folders and set(TASKS[task].exported) <= set(folders)  # (a method may choose its exports: anomaly)
    model = load_model(run)
    assert type(model).__module__.rsplit(".", 1)[-1] == "model", type(model).__module__

    # Evaluation through the registry, the report, and --metrics refused in one line when unknown.
    capsys.readouterr()
    assert main(["evaluate", str(run), *example.get("evaluate", []), "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["task"] == task and record["metrics"]
    assert main(["evaluate", str(run), "--metrics", "no_such_metric"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["report", str(run)]) == 0 and (run / "report.html").is_file()

    # The task's inference command on a folder of images.
    out = tmp_path / "out"
    fill = {"run": str(run), "input": str(inputs(tmp_path / "in")), "out": str(out)}
    assert main([arg.format(**fill) for arg in example["infer"]]) == 0
    assert out.exists() and any(out.iterdir())
