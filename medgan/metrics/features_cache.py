"""A disk cache for feature arrays, keyed by everything that determines them.

Inception features of a real dataset cost minutes on a CPU and are the same for every run
that evaluates against that dataset, so they are computed once and stored as ``.npy``.
The key is the SHA-256 of a canonical JSON of ``key_parts`` - the caller lists what the
features depend on: data source, options, split, preprocessing, extractor name and
version, number of images. Anything left out of the key can silently serve stale
features, so err on the side of including it.

Files live in ``cache_dir`` (default ``$MEDGAN_CACHE_DIR/features``, else
``~/.cache/medgan/features``) as ``<key>.npy`` with a ``<key>.json`` beside it holding the
key parts for humans. Writes are atomic (a temporary file, then :func:`os.replace`), so
concurrent runs and interrupted runs never leave a half-written array; arrays are loaded
with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from medgan.errors import MedganError
from medgan.io.output import publish_mode

__all__ = ["CACHE_ENV", "cached_features", "default_cache_dir", "feature_cache_key"]

CACHE_ENV = "MEDGAN_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$MEDGAN_CACHE_DIR/features`` if the variable is set, else ``~/.cache/medgan/features``."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "medgan") / "features"


def _canonical_json(key_parts: dict[str, Any]) -> str:
    def encode(value: Any) -> Any:
        if isinstance(value, (PathLike, Path)):
            return os.fspath(value)
        if isinstance(value, (np.integer, np.floating, np.bool_)):
            return value.item()
        if isinstance(value, (tuple, set, frozenset)):
            return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
        raise TypeError(type(value).__name__)

    if not isinstance(key_parts, dict) or not key_parts:
        raise MedganError(f"feature cache key_parts must be a non-empty dict, got {key_parts!r}")
    try:
        return json.dumps(key_parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=encode)
    except (TypeError, ValueError) as error:
        raise MedganError(
            f"feature cache key_parts must be plain JSON values (str, number, bool, None, list, dict, path): {error}",
            hint="describe options by their values, e.g. str(...) of an object's settings",
        ) from None


def feature_cache_key(key_parts: dict[str, Any]) -> str:
    """SHA-256 hex digest of the canonical JSON (sorted keys, no whitespace) of ``key_parts``."""
    return hashlib.sha256(_canonical_json(key_parts).encode("ascii")).hexdigest()


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        publish_mode(handle.name)  # a shared cache: readable by the user's colleagues, as the umask says
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def cached_features(
    key_parts: dict[str, Any], compute: Callable[[], np.ndarray], cache_dir: str | PathLike | None = None
) -> np.ndarray:
    """Load the features for ``key_parts`` from the cache, or ``compute()`` and store them.

    Args:
        key_parts: what the features depend on, as plain JSON values, e.g.
            ``{"data": "/data/brats/train", "split": "train", "n": 5000, "size": 64,
            **extractor.cache_id}``.
        compute: returns the numeric array when it is not cached.
        cache_dir: where the ``.npy`` files go; default :func:`default_cache_dir`.

    Returns:
        The array (freshly computed or loaded).

    Raises:
        MedganError: unusable key parts, a non-numeric result, or an unwritable cache folder.
    """
    key = feature_cache_key(key_parts)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:  # damaged by hand or by a full disk
            warnings.warn(f"{path}: unreadable cached features ({error}); recomputing", stacklevel=2)

    features = np.asarray(compute())
    if features.dtype.kind not in "biuf":
        raise MedganError(f"feature computation returned a {features.dtype} array; the cache stores numeric arrays only")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: np.save(f, features, allow_pickle=False))
        _atomic_write(folder / f"{key}.json", lambda f: f.write((_canonical_json(key_parts) + "\n").encode("ascii")))
    except OSError as error:
        raise MedganError(
            f"cannot write the feature cache ({error.strerror or error})", path=folder,
            hint=f"pass a writable cache_dir or set {CACHE_ENV}",
        ) from None
    return features
