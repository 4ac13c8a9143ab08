"""Every command the README and the docs pages show is one medgan accepts: each ``medgan ...``
line of a fenced shell block parses with today's flags and choices (a renamed flag or a
dropped choice fails here, not in a reader's terminal), and every benchmark script named
exists. What the commands do is tested end to end by each task's own tests on tiny data."""

import re
import shlex
from pathlib import Path

import pytest

from medgan.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shell_lines(page: Path) -> list[str]:
    """The command lines of a page's fenced ``bash`` blocks, comments stripped, continuations joined."""
    lines = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", page.read_text(), flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def medgan_commands() -> list[tuple[str, list[str]]]:
    out = []
    for page in PAGES:
        for line in shell_lines(page):
            for part in re.split(r"\s*&&\s*", line):
                words = shlex.split(part)
                if "medgan" in words and words[0] in ("medgan", "torchrun", "python"):
                    start = words.index("medgan") + 1
                    if words[0] == "python" and words[1:3] != ["-m", "medgan"]:
                        continue
                    out.append((f"{page.name}: {part}", words[start:]))
    return out


COMMANDS = medgan_commands()


def test_the_docs_show_commands_of_every_task():
    shown = {argv[0] + (" " + argv[1] if argv[0] == "train" and len(argv) > 1 and not argv[1].startswith("-") else "")
             for _, argv in COMMANDS if argv}
    for command in ("demo", "train synth", "train enhance", "train segment", "train anomaly", "generate", "enhance",
                    "segment", "detect", "augment-eval", "export", "evaluate", "data"):
        assert command in shown, command


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[w[:90] for w, _ in COMMANDS])
def test_every_command_in_the_docs_parses(where, argv):
    parser = build_parser(argv)
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as stop:
        if stop.code == 0 and "--help" in argv:  # a --help line: printed and left, as it should
            return
        pytest.fail(f"argparse refused {where}")
    assert not unknown, f"{where}: unknown flags {unknown}"
    assert hasattr(args, "func"), where


def test_every_benchmark_the_docs_name_exists():
    named = {m for page in PAGES for m in re.findall(r"benchmarks/([a-z_0-9]+\.py)", page.read_text())}
    assert named and all((ROOT / "benchmarks" / name).is_file() for name in named), sorted(
        n for n in named if not (ROOT / "benchmarks" / n).is_file())
