"""A missing test dependency skips on a workstation and fails under CI=true (never a silent pass)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")


@pytest.mark.parametrize("ci, outcome", [("true", "1 failed"), ("", "1 skipped")])
def test_a_missing_reference_library_fails_under_ci(tmp_path, ci, outcome):
    (tmp_path / "conftest.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('shared_conftest', {str(CONFTEST)!r})\n"
        "shared = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(shared)\n"
        "require = shared.require\n"
    )
    (tmp_path / "test_needs.py").write_text(
        "def test_needs_a_library(require):\n"
        "    require('a_reference_library_that_does_not_exist')\n"
    )
    env = {**os.environ, "CI": ci}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert outcome in result.stdout, result.stdout[-2000:]
    assert "a_reference_library_that_does_not_exist" in result.stdout
