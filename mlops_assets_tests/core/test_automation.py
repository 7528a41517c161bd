"""The automation policy without Dagster: every retrain decision, the landing scan (time
passed in), the landing plan, the retrain window and the calendar retrain. Milliseconds each;
the sensors that act on these decisions are tested against Dagster in defs/test_sensors.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlops_assets.core import automation as auto
from mlops_assets.core.automation import (
    DriftEvent,
    RetrainState,
    decide_retrain,
    drift_event_key,
    plan_landing,
    read_pinned_report,
    retrain_settings,
    retrain_window,
    scan_landing,
    weekly_retrain,
)
from mlops_assets.core.io import md5_bytes
from mlops_assets.core.layout import DRIFT_JSON, MODEL, MODEL_RECORD, REFERENCE_PROFILE, REFERENCE_VALUES
from mlops_assets.core.store import dvc_cache_object

SETTINGS = retrain_settings()
WINDOW = ["2025-11-24 00:00:00", "2025-11-30 23:59:00"]


def drift(batch: str = "week_2025-11-24", passed: bool = False,
          window: list[str] | None = WINDOW) -> DriftEvent:
    info = {"batch": batch, "batch_md5": "m" + batch, "window": window, "severity":
            "none" if passed else "significant", "drift_share": 0.5, "drifted_features": ["a"]}
    return DriftEvent(passed, f"key-{batch}", info, "reportmd5")


def decide(event: DriftEvent, state: RetrainState | None = None, running: str | None = None,
           awaiting: list[str] | None = None, requested: bool = False, **settings):
    return decide_retrain(event, state or RetrainState(), running=running,
                          awaiting=awaiting or [], settings={**SETTINGS, **settings},
                          requested_this_tick=requested)


# ------------------------------------------------------------------ decide_retrain


def test_drift_retrains_once_on_the_newest_window() -> None:
    d = decide(drift())
    assert d.action == "retrain" and d.run_key == "retrain:key-week_2025-11-24"
    # holdout_days (3) ending with the newest day of the drifted week; the rest trains
    assert d.run_config == {"ops": {"split": {"config": {
        "cutoff": "2025-11-28", "holdout_end": "2025-12-01"}}}}
    assert d.tags == {"mlops_assets/trigger": "drift", "mlops_assets/drift_event":
                      "key-week_2025-11-24", "mlops_assets/batch": "week_2025-11-24",
                      "mlops_assets/drift_report_md5": "reportmd5",
                      "mlops_assets/cutoff": "2025-11-28", "mlops_assets/holdout_end": "2025-12-01"}
    assert d.state.handled == {"key-week_2025-11-24": d.run_key}
    assert d.state.episode == {"key": "key-week_2025-11-24", "batch": "week_2025-11-24",
                               "run_key": d.run_key}
    assert d.audit["action"] == "retrain_requested" and d.audit["run_key"] == d.run_key
    assert d.audit["cutoff"] == "2025-11-28" and d.audit["batch"] == "week_2025-11-24"


def test_an_already_handled_event_does_nothing() -> None:
    first = decide(drift())
    again = decide(drift(), first.state)  # e.g. the report re-run inside the retrain itself
    assert again.action == "handled" and again.run_key is None and again.audit is None
    assert "already handled" in again.reason and again.state == first.state


def test_drift_while_a_retrain_runs_is_absorbed() -> None:
    d = decide(drift(), running="run-123")
    assert d.action == "absorbed" and d.run_key is None
    assert "absorbed" in d.reason and "run-123" in d.reason
    assert d.state.handled == {"key-week_2025-11-24": "absorbed:run-123"}
    assert d.audit["action"] == "retrain_absorbed" and d.audit["absorbed_by"] == "run-123"
    assert d.audit["reason"] == "a retrain is already in progress"
    # the absorbed event does not come back once the retrain finished
    assert decide(drift(), d.state).action == "handled"


def test_drift_while_a_candidate_awaits_approval_is_absorbed() -> None:
    d = decide(drift(), awaiting=["0123456789abcdef0123"])
    assert d.action == "absorbed" and "awaiting approval" in d.reason
    assert d.audit["absorbed_by"] == "candidate 0123456789ab (awaiting approval)"
    # unless params say not to wait for the person
    assert decide(drift(), awaiting=["x"], wait_for_pending_approval=False).action == "retrain"


def test_a_second_drift_in_the_same_tick_is_absorbed() -> None:
    d = decide(drift("week_b"), requested=True, per_drift_episode=False)
    assert d.action == "absorbed" and "requested in this tick" in d.reason


def test_drift_in_an_open_episode_is_absorbed() -> None:
    first = decide(drift("week_a"))
    d = decide(drift("week_b"), first.state)
    assert d.action == "absorbed" and "drift episode opened by week_a" in d.reason
    assert d.audit["reason"].startswith("drift persists")
    assert d.state.episode == first.state.episode  # still open
    # retrain.per_drift_episode false: every drifted batch is its own event
    assert decide(drift("week_b"), first.state, per_drift_episode=False).action == "retrain"


def test_a_normal_batch_closes_the_episode_and_new_drift_retrains() -> None:
    first = decide(drift("week_a"))
    same = decide(drift("week_a", passed=True), first.state)  # same batch: episode stays
    assert same.action == "ignore" and same.state.episode is not None
    closed = decide(drift("week_c", passed=True), first.state)
    assert closed.action == "ignore" and "passed" in closed.reason and closed.audit is None
    assert closed.state.episode is None and "closed by the normal batch week_c" in closed.log
    again = decide(drift("week_d"), closed.state)
    assert again.action == "retrain" and again.tags["mlops_assets/batch"] == "week_d"


def test_a_normal_batch_without_an_episode_is_ignored() -> None:
    d = decide(drift(passed=True))
    assert d.action == "ignore" and d.state == RetrainState() and d.run_key is None


def test_drift_without_a_window_is_ignored() -> None:
    d = decide(drift(window=None))
    assert d.action == "ignore" and "no time window" in d.reason and d.state == RetrainState()


def test_cursor_format_round_trips_and_is_bounded() -> None:
    state = decide(drift()).state
    cursor = json.loads(state.to_cursor(after=42))
    assert set(cursor) == {"after", "handled", "episode"} and cursor["after"] == 42
    assert RetrainState.from_cursor(cursor) == state
    many = RetrainState({f"k{i}": "x" for i in range(auto.HANDLED_KEEP + 10)})
    kept = json.loads(many.to_cursor(1))["handled"]
    assert len(kept) == auto.HANDLED_KEEP and "k0" not in kept


def test_drift_event_key_is_batch_and_content() -> None:
    report = {"lineage": {"current_batch": "week_a", "current_window": WINDOW},
              "severity": "significant", "drifted_features": [{"name": "amount"}, "hour"]}
    key, info = drift_event_key(report, {"week_a": "md5a"})
    assert key == drift_event_key(report, {"week_a": "md5a"})[0]  # re-run: same event
    assert key != drift_event_key(report, {"week_a": "md5b"})[0]  # new bytes: new event
    assert info["drifted_features"] == ["amount", "hour"] and info["batch_md5"] == "md5a"
    assert drift_event_key(report, {})[1]["batch_md5"] is None  # falls back on the window


def test_read_pinned_report_uses_the_configured_dvc_cache(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config").write_text(f"[cache]\n    dir = {tmp_path / 'elsewhere'}\n")
    pinned = json.dumps({"severity": "significant"}).encode()
    obj = dvc_cache_object(root, md5_bytes(pinned))
    assert str(obj).startswith(str(tmp_path / "elsewhere"))
    obj.parent.mkdir(parents=True)
    obj.write_bytes(pinned)
    live = root / DRIFT_JSON
    live.parent.mkdir(parents=True)
    live.write_text(json.dumps({"severity": "none"}))  # newer, not the pinned one
    assert read_pinned_report(root, md5_bytes(pinned)) == {"severity": "significant"}
    assert read_pinned_report(root, "0" * 32) is None
    assert read_pinned_report(root, None) == {"severity": "none"}


# ------------------------------------------------------------------ landing


def put(path: Path, data: bytes, age: float = 3600, now: float = 1e9) -> None:
    path.write_bytes(data)
    os.utime(path, (now - age, now - age))


NOW = 1e9


def scan(landing: Path, cursor: dict | None = None, now: float = NOW):
    return scan_landing(landing, cursor or {}, now, settle_seconds=10)


def test_settled_file_is_an_event_and_unsettled_waits(tmp_path: Path) -> None:
    put(tmp_path / "old.parquet", b"PAR1 old")
    put(tmp_path / "fresh.parquet", b"PAR1 fresh", age=1)  # written a second ago
    put(tmp_path / ".hidden.parquet.tmp", b"PAR1 tmp")
    put(tmp_path / "week.parquet.part", b"PAR1 part")
    put(tmp_path / "empty.parquet", b"")
    events, cursor, notes = scan(tmp_path)
    assert [(e["name"], e["key"], e["kind"]) for e in events] == [("old.parquet", "old", "new")]
    assert events[0]["md5"] == md5_bytes(b"PAR1 old")
    assert cursor["files"]["fresh.parquet"]["md5"] is None
    assert any("fresh.parquet: still being written" in n for n in notes)
    assert set(cursor["files"]) == {"old.parquet", "fresh.parquet", "empty.parquet"}
    # a second later, unchanged since the last tick: settled
    events, cursor, _ = scan(tmp_path, cursor, NOW + 1)
    assert [e["name"] for e in events] == ["fresh.parquet"]


def test_a_growing_file_waits_until_unchanged_across_two_ticks(tmp_path: Path) -> None:
    p = tmp_path / "week_b.parquet"
    put(p, b"PAR1 first half", age=0)
    events, cursor, _ = scan(tmp_path)
    assert events == []
    put(p, b"PAR1 first half, second half", age=0, now=NOW + 1)  # still growing
    events, cursor, _ = scan(tmp_path, cursor, NOW + 1)
    assert events == []
    events, cursor, _ = scan(tmp_path, cursor, NOW + 2)
    assert [(e["key"], e["kind"]) for e in events] == [("week_b", "new")]


def test_same_bytes_again_is_no_event_and_known_files_are_not_hashed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(tmp_path / "a.parquet", b"PAR1 a")
    _, cursor, _ = scan(tmp_path)
    monkeypatch.setattr(auto, "md5_file", lambda p: pytest.fail(f"hashed {p}"))
    assert scan(tmp_path, cursor)[0] == []  # unchanged: not even hashed
    monkeypatch.undo()
    put(tmp_path / "a.parquet", b"PAR1 a", age=1800)  # dropped again: new mtime, same bytes
    events, cursor2, _ = scan(tmp_path, cursor)
    assert events == [] and cursor2["files"]["a.parquet"]["md5"] == md5_bytes(b"PAR1 a")


def test_duplicate_bytes_under_another_name_are_skipped(tmp_path: Path) -> None:
    put(tmp_path / "week_a.parquet", b"PAR1 same")
    _, cursor, _ = scan(tmp_path)
    put(tmp_path / "week_a_copy.parquet", b"PAR1 same")
    events, _, notes = scan(tmp_path, cursor)
    assert events == [] and any("same bytes as week_a.parquet" in n and "duplicate" in n
                                for n in notes)


def test_changed_file_with_the_same_name_is_a_changed_event(tmp_path: Path) -> None:
    put(tmp_path / "week_a.parquet", b"PAR1 v1")
    _, cursor, _ = scan(tmp_path)
    put(tmp_path / "week_a.parquet", b"PAR1 version 2", age=1800)
    events, _, _ = scan(tmp_path, cursor)
    assert events == [{"name": "week_a.parquet", "key": "week_a", "md5": md5_bytes(b"PAR1 version 2"),
                       "kind": "changed", "previous": md5_bytes(b"PAR1 v1")}]


def test_plan_landing_skips_snapshotted_bytes_and_audits_changes() -> None:
    new = {"name": "a.parquet", "key": "a", "md5": "m1", "kind": "new", "previous": None}
    changed = {"name": "b.csv", "key": "b", "md5": "m3", "kind": "changed", "previous": "m2"}
    done = {"name": "c.parquet", "key": "c", "md5": "m4", "kind": "new", "previous": None}
    plan = plan_landing([new, changed, done], {"c": "m4", "b": "m2"}, ["b"])
    assert [r.run_key for r in plan.runs] == ["a:m1", "b:m3"]
    assert plan.new_partitions == ["a"]  # b is already a partition, c needs no run
    assert "already snapshotted" in plan.notes[0]
    a, b = plan.runs
    assert a.tags == {"mlops_assets/batch": "a", "mlops_assets/batch_md5": "m1",
                      "mlops_assets/landing_event": "new", "mlops_assets/trigger": "landing"}
    assert a.audit is None and a.warning is None
    assert b.partition_key == "b" and b.tags["mlops_assets/previous_md5"] == "m2"
    assert b.tags["mlops_assets/landing_event"] == "changed" and "CHANGED" in b.warning
    assert b.audit == {"kind": "landing", "action": "batch_changed", "batch": "b",
                       "file": "b.csv", "from_md5": "m2", "to_md5": "m3",
                       "by": "landing_sensor", "reason": "same file name, new content"}


def test_landing_runs_stop_before_drift_until_a_model_exists(tmp_path: Path) -> None:
    assert not auto.drift_inputs_ready(tmp_path)
    assert auto.landing_assets(False) == ["raw_snapshots", "validated_dataset", "feature_table"]
    for rel in (MODEL, MODEL_RECORD, REFERENCE_PROFILE, REFERENCE_VALUES):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert auto.drift_inputs_ready(tmp_path)
    assert auto.landing_assets(True) == auto.CHAIN_AFTER_LANDING


# ------------------------------------------------------------------ window and schedule


def test_retrain_window_respects_holdout_and_label_delay() -> None:
    assert retrain_window("2025-11-30 23:59:00") == {"cutoff": "2025-11-28",
                                                      "holdout_end": "2025-12-01"}
    assert retrain_window("2025-11-30 23:59:00", {"retrain": {"holdout_days": 3,
                                                              "label_delay_days": 2}}) == {
        "cutoff": "2025-11-26", "holdout_end": "2025-11-29"}


def test_weekly_retrain_is_off_by_default_and_waits_for_data_and_running_retrains() -> None:
    on = {"automation": {"weekly_retrain": True}}
    assert weekly_retrain({}, None, "2025-11-30", "2025-12-07") == (
        "automation.weekly_retrain is false in params.yaml", None)
    assert weekly_retrain(on, "run-1", "2025-11-30", None)[0].startswith("a retrain (run-1)")
    assert weekly_retrain(on, None, None, None) == (
        "no feature table yet: nothing to retrain on", None)
    key, run = weekly_retrain(on, None, "2025-11-30 10:00", "2025-12-07")
    assert key == "weekly:2025-12-07"
    assert run == {"run_config": {"ops": {"split": {"config": {
        "cutoff": "2025-11-28", "holdout_end": "2025-12-01"}}}},
        "tags": {"mlops_assets/trigger": "schedule", "mlops_assets/cutoff": "2025-11-28"}}
