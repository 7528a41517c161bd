"""Installed library versions, read once here: the model record pins them (its bytes are
a DVC output), lineage compares them with what is installed now, the drift CLI reports them.

Read from the installed distributions' metadata, so asking costs no import of the library
(`importlib.metadata.version` equals `module.__version__` for these; a test checks it)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version

# record key -> distribution: the libraries that decide a model's bytes and predictions
# (the model record's "libraries", in this order after "python").
MODEL_LIBRARIES: dict[str, str] = {
    "numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow",
    "scikit-learn": "scikit-learn", "scipy": "scipy", "skops": "skops"}


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def library_versions(libraries: Mapping[str, str] = MODEL_LIBRARIES, *,
                     python: bool = True) -> dict[str, str | None]:
    """{"python": "3.x"?, key: installed version or None}, in the order given."""
    out: dict[str, str | None] = {"python": python_version()} if python else {}
    for key, dist in libraries.items():
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = None
    return out
