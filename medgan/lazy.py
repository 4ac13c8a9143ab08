"""Import on first use: ``"package.module:name"`` locations and PEP 562 package exports.

The registries (tasks, embedded sources) name what they hold by location so that nothing
is imported until it is used, and the packages whose members pull in torch (``medgan.data``,
``medgan.train``) export them lazily, so the command line starts without importing torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_exports", "load"]


def load(location: str) -> Any:
    """The object at ``"package.module:name"``, importing its module."""
    module, _, name = location.partition(":")
    return getattr(importlib.import_module(module), name)


def lazy_exports(package: str, locations: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package exporting ``name -> module`` on first use."""

    def __getattr__(name: str) -> Any:
        if name not in locations:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(locations[name]), name)

    def __dir__() -> list[str]:
        return sorted(locations)

    return __getattr__, __dir__
