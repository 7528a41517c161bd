"""core.versions: one reader of library versions for the model record, lineage and drift."""

from __future__ import annotations

import importlib
import sys

from mlops_assets.core.drift import library_versions as drift_library_versions
from mlops_assets.core.versions import MODEL_LIBRARIES, library_versions

MODULES = {"numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow",
           "scikit-learn": "sklearn", "scipy": "scipy", "skops": "skops"}


def test_the_model_record_keys_and_values_are_the_imported_modules() -> None:
    """The record's bytes are a DVC output: same keys, same order, `__version__` values."""
    got = library_versions()
    assert list(got) == ["python", *MODEL_LIBRARIES]
    assert got["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    for key, module in MODULES.items():
        assert got[key] == importlib.import_module(module).__version__


def test_the_drift_header_keeps_its_keys() -> None:
    got = drift_library_versions()
    assert list(got) == ["numpy", "scipy", "pandas", "pyarrow", "mlops_assets"]
    assert got["mlops_assets"] == "0.1.0"
