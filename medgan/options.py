"""Command-line flags generated from config dataclasses: one source of truth per option.

A config field declares its flag beside its default::

    steps: int = option(4000, "generator updates")
    adversarial: bool = option(True, "train without the adversary (the baseline)", flag="--l1-only")

:func:`add_flags` turns every field of a dataclass tree that has an :func:`option` into an
``argparse`` flag (type from the annotation, default and help from the field, shown with
the real default), and :func:`given_values` reads back only the flags the user gave, as a
nested dict ready to merge over a config file. Fields without an option have no flag.
Booleans: a field defaulting to ``False`` gets ``--name`` (sets ``True``); one defaulting to
``True`` gets ``--no-name`` or its own ``flag`` (sets ``False``); one defaulting to ``None``
(decided later, e.g. by task and machine) gets both ``--name`` and ``--no-name``, or the
two flags of its ``flag=("--on", "--off")`` pair.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, field, fields, is_dataclass
from typing import Any

__all__ = ["add_flags", "given_values", "option"]

_SEP = "__"  # dotted config path -> argparse dest ("loop.steps" -> "loop__steps")


def option(default: Any = MISSING, help: str = "", *, flag: str | tuple[str, str] | None = None, parse: Callable[[str], Any] | None = None,
           choices: tuple | list | None = None, metavar: str | None = None, shown: str | None = None,
           default_factory: Any = MISSING) -> Any:
    """A dataclass field with a command-line flag (see the module docstring).

    Args:
        default / default_factory: as for :func:`dataclasses.field`.
        help: the flag's help text (the default is appended).
        flag: the flag's name (default ``--field-name``; for a ``True`` boolean, the flag
            that turns it off; for a boolean decided later, ``None`` by default, a pair
            ``("--on", "--off")`` of the flags that set it).
        parse: converts the flag's text (default: the field's type).
        choices: allowed values.
        metavar: the value's name in the help (default: the field's name in capitals).
        shown: the default as the help states it, where the field's own default is resolved
            later (e.g. ``"by task"``).
    """
    metadata = {"help": help, "flag": flag, "parse": parse, "choices": choices, "metavar": metavar, "shown": shown}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, metadata={"option": metadata})
    return field(default=default, metadata={"option": metadata})


def _base_type(hint: Any) -> Any:
    """``int`` for ``int``, ``int | None`` and ``Optional[int]``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _walk(cls: type, prefix: str, nested: bool = True):
    """``(dotted path, field, type hint)`` of every option in a dataclass (tree, if ``nested``)."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        hint = hints[f.name]
        path = f"{prefix}{f.name}"
        if "option" in f.metadata:
            yield path, f, hint
        elif nested and is_dataclass(hint):
            yield from _walk(hint, path + ".")


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None


def flag_of(cls: type, name: str) -> str:
    """The command-line flag of the option field ``name`` of the dataclass ``cls``."""
    f = next(f for f in fields(cls) if f.name == name)
    meta = f.metadata.get("option", {})
    if isinstance(meta.get("flag"), tuple):
        return "/".join(meta["flag"])
    if meta.get("flag"):
        return meta["flag"]
    if _base_type(typing.get_type_hints(cls)[name]) is bool and _default(f):
        return f"--no-{name.replace('_', '-')}"
    return f"--{name.replace('_', '-')}"


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, prefix: str = "",
              title: str | None = None, nested: bool = True, only: Callable[[str], str | None] | None = None) -> list[str]:
    """Add a flag for every :func:`option` field of the dataclass ``cls`` (and of its
    dataclass fields, recursively, if ``nested``); ``prefix`` is the dotted path of ``cls``
    in the config.
    Absent flags are absent from the parsed namespace (they never override a config file).

    Args:
        only: ``dotted path -> help``: ``None`` leaves the field's flag out, ``""`` keeps its
            own help, any other text replaces the help (default included) for this parser.

    Returns:
        the flags added.
    """
    target = parser.add_argument_group(title) if title and isinstance(parser, argparse.ArgumentParser) else parser
    added = []
    for path, f, hint in _walk(cls, prefix, nested):
        meta, default = f.metadata["option"], _default(f)
        kind = _base_type(hint)
        help_text, whole = meta["help"], False
        if only is not None:
            own = only(path)
            if own is None:
                continue
            if own:  # the whole help, its default included
                help_text, whole = own, True
        kwargs: dict[str, Any] = {"dest": path.replace(".", _SEP), "default": argparse.SUPPRESS}
        if kind is bool and default is None and isinstance(meta["flag"], tuple):  # decided later: its own two flags
            on, off = meta["flag"]
            target.add_argument(on, action="store_const", const=True, **kwargs,
                                help=help_text if whole else f"{help_text} (default {meta['shown'] or 'auto'}; {off} turns it off)")
            target.add_argument(off, action="store_const", const=False, **kwargs, help=f"turn off what {on} turns on")
            added += [on, off]
            continue
        if kind is bool and default is None:  # decided later (e.g. by task and machine): both flags
            name = meta["flag"] or f"--{f.name.replace('_', '-')}"
            kwargs.update(action=argparse.BooleanOptionalAction, help=help_text if whole else f"{help_text} (default {meta['shown'] or 'auto'})")
        elif kind is bool:
            name = meta["flag"] or (f"--no-{f.name.replace('_', '-')}" if default else f"--{f.name.replace('_', '-')}")
            kwargs.update(action="store_false" if default else "store_true", help=help_text)
        else:
            name = meta["flag"] or f"--{f.name.replace('_', '-')}"
            shown = meta["shown"] or (f"{default!r}" if isinstance(default, str) else f"{default}")
            said = whole or "default" in help_text or (default in (None, "") and not meta["shown"])  # a help that says its default, or none to say
            kwargs.update(type=meta["parse"] or kind, help=help_text if said else f"{help_text} (default {shown})" if help_text else f"default {shown}")
            if meta["choices"]:
                kwargs["choices"] = list(meta["choices"])
            else:
                kwargs["metavar"] = meta["metavar"] or {int: "N", float: "X"}.get(kind) or f.name.upper()
        target.add_argument(name, **kwargs)
        added.append(name)
    return added


def given_values(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """The generated flags the user gave (under ``prefix``), as a nested dict of config values."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        path = dest.replace(_SEP, ".")
        if _SEP not in dest or not path.startswith(prefix):
            continue
        node = out
        *parents, leaf = path[len(prefix):].split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return out
