"""The file-level monitoring functions the Dagster assets call (no Dagster here): a day's
segments consolidated, the sensor's scan, merged labels and the live performance report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.core import layout
from mlops_assets.core.io import DataError, md5_file, read_table, write_parquet_atomic
from mlops_assets.core.monitoring import live_performance as lp
from mlops_assets.core.monitoring.files import consolidated_days, label_files, labels_signature
from mlops_assets.core.monitoring.inference_log import (
    InferenceLog,
    consolidate_day,
    scan_log_days,
    settled_changes,
)
from mlops_assets_tests.core.monitoring.test_live_performance import _log, contract

SETTINGS = lp.monitoring_settings({})


def _segments(root: Path, frames: list[pd.DataFrame]) -> None:
    """Each frame as its own segment (a flush per frame), as the service writes them."""
    log = InferenceLog(root / layout.INFERENCE_LOG)
    for f in frames:
        log.append(f)
        log.flush()


def test_defaults_come_from_the_layout() -> None:
    assert (SETTINGS["labels_dir"], SETTINGS["inference_log_dir"], SETTINGS["output_dir"]) == \
        (layout.LABELS, layout.INFERENCE_LOG, layout.MONITORING)


def test_consolidation_is_sorted_and_gives_the_same_bytes_again(tmp_path: Path) -> None:
    day = _log([("b", "2025-12-01", 0.2, False, "v"), ("a", "2025-12-01", 0.9, True, "v")])
    late = day.assign(request_time=day["request_time"] - pd.Timedelta(hours=1),
                      request_id=["z0", "z1"])
    _segments(tmp_path, [day, late])
    df, files, dest = consolidate_day(tmp_path, SETTINGS, "2025-12-01")
    assert len(files) == 2 and len(df) == 4
    assert dest == tmp_path / layout.MONITORING / "inference_log" / "date=2025-12-01.parquet"
    assert df["request_time"].is_monotonic_increasing
    assert df["request_id"].tolist() == ["z0", "z1", "r0", "r1"]
    first = md5_file(dest)
    consolidate_day(tmp_path, SETTINGS, "2025-12-01")
    assert md5_file(dest) == first
    assert consolidated_days(tmp_path, SETTINGS) == [dest]
    with pytest.raises(DataError, match="no segments for 2025-12-02"):
        consolidate_day(tmp_path, SETTINGS, "2025-12-02")


def test_scan_signature_changes_with_a_new_segment(tmp_path: Path) -> None:
    assert scan_log_days(tmp_path / layout.INFERENCE_LOG) == {}
    rec = _log([("a", "2025-12-01", 0.2, False, "v")])
    _segments(tmp_path, [rec])
    before = scan_log_days(tmp_path / layout.INFERENCE_LOG)
    assert list(before) == ["2025-12-01"] and before["2025-12-01"]["segments"] == 1
    _segments(tmp_path, [rec.assign(request_time=rec["request_time"] + pd.Timedelta(hours=1))])
    after = scan_log_days(tmp_path / layout.INFERENCE_LOG)["2025-12-01"]
    assert after["segments"] == 2 and after["sig"] != before["2025-12-01"]["sig"]


def test_only_changed_and_settled_days_are_ready() -> None:
    days = {"d1": {"sig": "a", "newest": 100.0}, "d2": {"sig": "b", "newest": 195.0},
            "d3": {"sig": "c", "newest": 100.0}}
    assert settled_changes(days, {"d1": "a"}, now=200.0, settle_seconds=30) == (["d3"], ["d2"])
    assert settled_changes(days, {"d1": "old"}, now=300.0, settle_seconds=30) == \
        (["d1", "d2", "d3"], [])


def test_labels_signature_follows_the_files(tmp_path: Path) -> None:
    path = tmp_path / "labels_a.csv"
    path.write_text("id,label,label_time\na,1,2025-12-20T00:00:00Z\n")
    sig = labels_signature([path])
    assert labels_signature([path]) == sig
    os.utime(path, ns=(0, 10 ** 9))
    assert labels_signature([path]) != sig


def test_merged_labels_and_the_live_performance_report(tmp_path: Path) -> None:
    rows = [("a", "2025-12-01", 0.9, True, "v"), ("b", "2025-12-01", 0.8, True, "v"),
            ("c", "2025-12-01", 0.1, False, "v"), ("d", "2025-12-02", 0.2, False, "v")]
    for day in ("2025-12-01", "2025-12-02"):
        log = _log([r for r in rows if r[1] == day])
        write_parquet_atomic(tmp_path / layout.MONITORING / "inference_log" / f"date={day}.parquet",
                             log)
    (tmp_path / layout.LABELS).mkdir(parents=True)
    (tmp_path / layout.LABELS / "labels_a.csv").write_text(
        "id,label,label_time\na,1,2025-12-20T00:00:00Z\nb,0,2025-12-20T00:00:00Z\n"
        "c,0,2025-12-20T00:00:00Z\n")
    assert [p.name for p in label_files(tmp_path, SETTINGS)] == ["labels_a.csv"]
    dest, summary, files = lp.merge_labels(tmp_path, SETTINGS, contract())
    assert summary["ids"] == 3 and len(files) == 1
    assert sorted(read_table(dest)["id"]) == ["a", "b", "c"]
    report, path = lp.compute_live_performance(tmp_path, SETTINGS, contract())
    assert json.loads(path.read_text())["n_labelled"] == report["n_labelled"] == 3
    assert report["n_log_records"] == 4
    assert set(report["inputs"]) == {f"{layout.MONITORING}/labels.parquet",
                                     *(f"{layout.MONITORING}/inference_log/date={d}.parquet"
                                       for d in ("2025-12-01", "2025-12-02"))}
    measured = report["versions"]["v"]["measured"]
    assert (measured["tp"], measured["fp"], measured["tn"]) == (1, 1, 1)
    assert report["check"]["passed"]  # no baseline: nothing is judged
    assert lp.headline(report, "v")[0] == "v"
    assert lp.headline(report, "not-serving")[0] == "v"  # the busiest version instead


def test_live_performance_needs_a_consolidated_day(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no consolidated inference-log day yet"):
        lp.compute_live_performance(tmp_path, SETTINGS, contract())


def test_baseline_reads_the_registry_copy_of_the_evaluation(tmp_path: Path) -> None:
    assert lp.baseline_for(tmp_path, "v1") == {"fpr": None, "recall": None, "source": None}
    (tmp_path / layout.REGISTRY_DIR).mkdir()
    (tmp_path / layout.REGISTRY_INDEX).write_text(json.dumps({"versions": {"v1": {
        "stage": "production", "evaluation": {"metrics": {"fpr": 0.01, "recall": 0.8}}}}}))
    assert lp.baseline_for(tmp_path, "v1") == {"fpr": 0.01, "recall": 0.8,
                                               "source": layout.REGISTRY_INDEX}
    record = tmp_path / layout.registry_model_dir("v2") / layout.RECORD_FILE
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"operating_fpr": 0.02}))
    base = lp.baseline_for(tmp_path, "v2")
    assert base["fpr"] == 0.02 and base["recall"] is None
    assert base["source"] == f"{layout.registry_model_dir('v2')}/{layout.RECORD_FILE} operating_fpr"
