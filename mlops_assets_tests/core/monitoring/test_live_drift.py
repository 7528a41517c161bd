"""core.monitoring.live_drift: a consolidated day against the pinned reference profile of
the production model, without Dagster (a tmp project with a hand-written registry pointer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core import layout
from mlops_assets.core.drift import write_reference_profile
from mlops_assets.core.io import DataError, md5_file, write_json_atomic, write_parquet_atomic
from mlops_assets.core.monitoring import live_drift
from mlops_assets.core.monitoring import live_performance as lp
from mlops_assets.core.monitoring.files import consolidated_log_path
from mlops_assets.core.pinned_model import NoProductionModel
from mlops_assets_tests.core.monitoring.test_live_performance import contract, scored_week, trained

SETTINGS = lp.monitoring_settings({})
DAY = "2025-11-03"


def _reference(root: Path, week: int = 8) -> str:
    """The week's traffic written as the working tree's reference profile; its md5."""
    _, threshold = trained()
    log, _ = scored_week(week)
    write_reference_profile(log, contract(), log["score"].to_numpy(), threshold, {},
                            root / layout.REFERENCE_PROFILE, root / layout.REFERENCE_VALUES)
    return md5_file(root / layout.REFERENCE_PROFILE)


def _project(root: Path, version: str = "m1") -> pd.DataFrame:
    """A production pointer naming a record that pins the profile; one consolidated day."""
    record_rel = f"{layout.registry_model_dir(version)}/{layout.RECORD_FILE}"
    write_json_atomic(root / record_rel, {"model_md5": version,
                                          "reference_profile_md5": _reference(root),
                                          "train_window": ["2025-09-01", "2025-10-27"]})
    write_json_atomic(root / layout.PRODUCTION_POINTER, {
        "version": version, "model_path": f"{layout.registry_model_dir(version)}/model.skops",
        "record_path": record_rel})
    log, _ = scored_week(9, version)
    write_parquet_atomic(consolidated_log_path(root, SETTINGS, DAY), log)
    return log


def test_reference_profile_is_pinned_by_the_record_md5(tmp_path: Path) -> None:
    """The working tree's profile when its bytes match the record, else the DVC cache's copy;
    a missing one is a DataError naming the md5."""
    record = {"model_md5": "m1", "reference_profile_md5": _reference(tmp_path)}
    assert live_drift.pinned_reference_profile(tmp_path, record)["features"]
    # a newer training run replaced the working tree's profile: the cache has the pinned bytes
    for rel in (layout.REFERENCE_PROFILE, layout.REFERENCE_VALUES):
        md5 = md5_file(tmp_path / rel)
        cached = tmp_path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / rel, cached)
    _reference(tmp_path, week=9)
    pinned = live_drift.pinned_reference_profile(tmp_path, record)
    assert ".dvc" in str(pinned["_values"].path)
    with pytest.raises(DataError, match="neither in the working tree nor in the DVC cache"):
        live_drift.pinned_reference_profile(tmp_path, {"model_md5": "m2",
                                                       "reference_profile_md5": "0" * 32})
    with pytest.raises(DataError, match="names no reference profile"):
        live_drift.pinned_reference_profile(tmp_path, {"model_md5": "m3"})


def test_live_drift_writes_the_report_of_one_day(tmp_path: Path) -> None:
    log = _project(tmp_path)
    report, jpath, hpath = live_drift.live_drift(tmp_path, DAY, SETTINGS, {})
    assert jpath == tmp_path / layout.MONITORING / "drift" / f"date={DAY}.json"
    assert json.loads(jpath.read_text()) == json.loads(json.dumps(report, default=str))
    assert hpath.suffix == ".html" and hpath.read_text().strip()
    lineage = report["lineage"]
    src = consolidated_log_path(tmp_path, SETTINGS, DAY)
    assert lineage["inputs"] == {f"{layout.MONITORING}/inference_log/date={DAY}.parquet": md5_file(src)}
    assert lineage["model_version"] == "m1" and lineage["current_rows"] == len(log)
    assert lineage["current_batch"] == f"inference_log:{DAY}"
    assert lineage["reference_window"] == ["2025-09-01", "2025-10-27"]
    assert report["severity"] in ("none", "moderate", "significant")


def test_live_drift_needs_a_consolidated_day_and_a_production_model(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not consolidated yet"):
        live_drift.live_drift(tmp_path, DAY, SETTINGS, {})
    log, _ = scored_week(9)
    write_parquet_atomic(consolidated_log_path(tmp_path, SETTINGS, DAY), log)
    with pytest.raises(NoProductionModel, match="reference profile is the drift reference"):
        live_drift.live_drift(tmp_path, DAY, SETTINGS, {})


def test_current_traffic_is_the_answered_records_of_the_serving_model() -> None:
    log = pd.DataFrame({"served_by": ["production", "shadow", "canary", "production"],
                        "model_version": ["a", "a", "b", "a"], "score": [0.1, 0.2, 0.3, 0.4]})
    current, scores = live_drift.current_traffic(log, "a")
    assert current["score"].tolist() == [0.1, 0.4] and np.array_equal(scores, [0.1, 0.4])
    assert current.index.tolist() == [0, 1]
    # the production version answered nothing that day: all answered records, no scores
    current, scores = live_drift.current_traffic(log, "c")
    assert current["model_version"].tolist() == ["a", "b", "a"] and scores is None


def test_drifted_feature_names_accepts_names_and_entries() -> None:
    report = {"drifted_features": ["amount", {"name": "hour", "psi": 0.3}]}
    assert live_drift.drifted_feature_names(report) == ["amount", "hour"]
    assert live_drift.drifted_feature_names({"drifted_features": None}) == []
