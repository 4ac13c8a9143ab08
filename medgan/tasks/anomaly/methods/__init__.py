"""The anomaly methods, one class each, found by the name ``--method`` takes.

A method owns its networks (built in its order, which seeds their weights), its optimisers,
phases and objectives, its training sample grid and how it scores an image
(:class:`~medgan.tasks.anomaly.methods.base.AnomalyMethod`). Adding a method is one module
holding its subclass and one line in :data:`METHODS`; ``--method`` takes its choices from
here. Locations are imported on first use, so the command line's parser imports no torch.
"""

from __future__ import annotations

from medgan.errors import MedganError
from medgan.lazy import load

__all__ = ["METHODS", "method_class"]

#: ``--method`` name -> where its class lives, in the order ``--help`` lists them (the
#: default is :class:`~medgan.tasks.anomaly.config.AnomalyConfig`'s).
METHODS = {
    "fanogan": "medgan.tasks.anomaly.methods.fanogan:FAnoGAN",
    "ganomaly": "medgan.tasks.anomaly.methods.ganomaly:GANomaly",
    "ae": "medgan.tasks.anomaly.methods.ae:Autoencoder",
    "restore": "medgan.tasks.anomaly.methods.restore:Restorer",
    "zscore": "medgan.tasks.anomaly.methods.zscore:ZScore",
    "knn": "medgan.tasks.anomaly.methods.knn:NearestPatch",
}


def method_class(name: str) -> type:
    """The :class:`~medgan.tasks.anomaly.methods.base.AnomalyMethod` subclass named ``name``.

    Raises:
        MedganError: a name no method has (e.g. in the ``config.json`` of another medgan).
    """
    if name not in METHODS:
        raise MedganError(f"no anomaly method is named {name!r}", hint=f"use one of {', '.join(METHODS)}")
    return load(METHODS[name])
