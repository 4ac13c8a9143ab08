"""Flags generated from config fields (medgan.options)."""

import argparse
from dataclasses import dataclass

import pytest

from medgan.options import add_flags, flag_of, given_values, option


@dataclass
class Example:
    steps: int = option(10, "steps")
    flip: bool = option(True, "do not flip")
    amp: bool | None = option(None, "mixed precision")
    adversarial: bool | None = option(None, "train against an adversary", flag=("--adversary", "--l1-only"), shown="by model")


def parse(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    add_flags(parser, Example, "example.")
    return given_values(parser.parse_args(list(argv)), "example.")


@pytest.mark.parametrize("argv, expected", [
    ((), {}),  # absent flags never override a config file
    (("--steps", "3", "--no-flip"), {"steps": 3, "flip": False}),
    (("--amp",), {"amp": True}),
    (("--no-amp",), {"amp": False}),
    (("--adversary",), {"adversarial": True}),  # a decided-later switch with its own pair of flags
    (("--l1-only",), {"adversarial": False}),
])
def test_flags_set_only_what_was_given(argv, expected):
    assert parse(*argv) == expected


def test_a_flag_pair_is_named_by_both_flags_and_has_no_generated_name():
    assert flag_of(Example, "adversarial") == "--adversary/--l1-only"
    with pytest.raises(SystemExit):
        parse("--adversarial")
