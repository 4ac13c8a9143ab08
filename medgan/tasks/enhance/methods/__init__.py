"""The enhancement methods, one class each, found by the name ``--supervision`` takes: what
the generator learns from.

A method owns its networks (built in its order, which seeds their weights), its optimisers,
phases and objectives, and its training sample grid
(:class:`~medgan.tasks.enhance.methods.base.EnhanceMethod`). Every method exports the same
kind of generator, so ``medgan enhance`` and the evaluation treat their models alike. Adding
a method is one module holding its subclass and one line in :data:`METHODS`;
``--supervision`` takes its choices from here. Locations are imported on first use, so the
command line's parser imports no torch.
"""

from __future__ import annotations

from medgan.errors import MedganError
from medgan.lazy import load

__all__ = ["METHODS", "method_class"]

#: ``--supervision`` name -> where its class lives.
METHODS = {
    "paired": "medgan.tasks.enhance.methods.paired:Paired",
    "self": "medgan.tasks.enhance.methods.selfsup:SelfSupervised",
    "unpaired": "medgan.tasks.enhance.methods.unpaired:Unpaired",
}


def method_class(name: str) -> type:
    """The :class:`~medgan.tasks.enhance.methods.base.EnhanceMethod` subclass named ``name``.

    Raises:
        MedganError: a name no method has.
    """
    if name not in METHODS:
        raise MedganError(f"unknown supervision {name!r}", hint=f"use one of {', '.join(METHODS)}")
    return load(METHODS[name])
