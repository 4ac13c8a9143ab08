"""A run's append-only JSONL records (``stats.jsonl``, ``metrics.jsonl``): read, append, time-stamp."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSONL file (a torn last line from an interrupted write is skipped;
    a missing file has none)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def append_jsonl(path: Path, record: dict) -> None:
    """Append one record as a line."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def utc_now() -> str:
    """The time now, ISO 8601 in UTC to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
