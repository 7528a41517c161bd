"""core.pinned_model: the production pointer read through the registry, and a model loaded
only when its bytes have the pinned md5 (the loader of the service and of monitoring)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlops_assets.core import layout
from mlops_assets.core.io import DataError, md5_file, write_json_atomic
from mlops_assets.core.pinned_model import (
    NoProductionModel,
    load_production_model,
    production_pointer,
    require_production,
    verify_pinned,
)
from mlops_assets.core.train import feature_matrix, save_model
from mlops_assets_tests.core.monitoring.test_live_performance import contract, scored_week, trained


def _registered(root: Path, threshold: float | None = 0.5) -> str:
    """The trained model as a registry version with its record and the pointer to it."""
    pipeline, _ = trained()
    tmp = save_model(pipeline, root / "model.skops")
    version = md5_file(tmp)
    folder = root / layout.registry_model_dir(version)
    folder.mkdir(parents=True)
    tmp.rename(folder / layout.MODEL_FILE)
    record = {"model_md5": version, "threshold": threshold,
              "contract": {"feature_definitions_hash": contract().feature_definitions_hash()}}
    write_json_atomic(folder / layout.RECORD_FILE, record)
    write_json_atomic(root / layout.PRODUCTION_POINTER, {
        "version": version, "model_path": f"{layout.registry_model_dir(version)}/model.skops",
        "record_path": f"{layout.registry_model_dir(version)}/{layout.RECORD_FILE}"})
    return version


def test_no_pointer_or_a_null_version_is_no_production_model(tmp_path: Path) -> None:
    assert production_pointer(tmp_path) is None
    write_json_atomic(tmp_path / layout.PRODUCTION_POINTER,
                      {"version": None, "model_path": None, "record_path": None})
    assert production_pointer(tmp_path) is None
    with pytest.raises(NoProductionModel, match="promote one"):
        require_production(tmp_path, "promote one")
    (tmp_path / layout.PRODUCTION_POINTER).write_text("{not json")
    with pytest.raises(DataError, match="cannot read the production pointer"):
        production_pointer(tmp_path)


def test_the_production_model_is_loaded_pinned_by_its_md5(tmp_path: Path) -> None:
    version = _registered(tmp_path)
    assert production_pointer(tmp_path)["version"] == version
    model = load_production_model(tmp_path, contract())
    assert model.version == version and model.threshold == 0.5
    log, _ = scored_week(8)
    pipeline, _ = trained()
    X = feature_matrix(log, contract())
    assert np.array_equal(model.pipeline.predict_proba(X), pipeline.predict_proba(X))


def test_other_bytes_a_foreign_record_or_no_threshold_are_refused(tmp_path: Path) -> None:
    version = _registered(tmp_path, threshold=None)
    info = production_pointer(tmp_path)
    with pytest.raises(DataError, match="no operating threshold"):
        verify_pinned(tmp_path, contract(), info["model_path"], version, info["record_path"])
    with pytest.raises(DataError, match="do not match the pinned version hash"):
        verify_pinned(tmp_path, contract(), info["model_path"], "0" * 32, info["record_path"])
    record = tmp_path / info["record_path"]
    record.write_text(json.dumps({"model_md5": "f" * 32, "threshold": 0.5}))
    with pytest.raises(DataError, match="model record names model md5"):
        verify_pinned(tmp_path, contract(), info["model_path"], version, info["record_path"])
    record.unlink()
    with pytest.raises(DataError, match="model record does not exist"):
        verify_pinned(tmp_path, contract(), info["model_path"], version, info["record_path"])
