"""The sensors and the schedule against a real Dagster instance: one tick-level test per
sensor (state read, policy called, RunRequests/partitions/audit acted on), and, marked slow,
the chain run for real on a small project copy (drift -> exactly one retrain -> candidate ->
promotion). Every policy branch is a unit test in core/test_automation.py."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from mlops_assets.core.audit import read_events
from mlops_assets.core.automation import drift_inputs_ready
from mlops_assets.core.generate import FraudScenario, generate_week
from mlops_assets.core.io import write_parquet_atomic
from mlops_assets.core.layout import AUDIT_LOG, RUN_PARAMS
from mlops_assets.core.lineage.history import params_of
from mlops_assets.defs.sensors import (
    CHAIN_AFTER_LANDING,
    drift_retrain_sensor,
    landing_sensor,
    retrain_in_progress,
    retrain_job,
    weekly_retrain_schedule,
)
from mlops_assets.repo.params_edit import update_params_section
from mlops_assets_tests.conftest import in_project, make_project_copy
from mlops_assets_tests.conftest import run as run_cmd

# ------------------------------------------------------------------ helpers


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance,
         cursor: str | None) -> dg.SensorExecutionData:
    ctx = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                  cursor=cursor, definitions=_defs())
    return sensor.evaluate_tick(ctx)


def apply_partitions(instance: dg.DagsterInstance, result: dg.SensorExecutionData) -> None:
    """What the daemon does with the tick's dynamic-partition requests."""
    for req in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))


def execute(instance: dg.DagsterInstance, keys: list[str], tags: dict[str, str] | None = None,
            partition_key: str | None = None, run_config: dict | None = None
            ) -> dg.ExecuteInProcessResult:
    from mlops_assets.definitions import defs

    d = defs()
    job = d.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(k) for k in keys})
    tags = dict(tags or {})
    if partition_key:
        tags["dagster/partition"] = partition_key
    return job.execute_in_process(instance=instance, tags=tags, run_config=run_config,
                                  raise_on_error=False)


def write_batch(path: Path, df) -> None:
    write_parquet_atomic(path, df)
    old = time.time() - 3600  # as if landed an hour ago: settled at first sight
    os.utime(path, (old, old))


# ------------------------------------------------------------------ landing (no chain)


@pytest.fixture
def landing_root(small_project: Path) -> Iterator[Path]:
    """A project copy with an empty landing area (MLOPS_ASSETS_ROOT points at it)."""
    (small_project / "data" / "landing").mkdir(parents=True, exist_ok=True)
    yield small_project


def _frame(seed: int = 0):
    import pandas as pd

    return pd.DataFrame({"transaction_id": [f"t{seed}-{i}" for i in range(5)],
                         "amount": [1.0 * i + seed for i in range(5)]})


def test_landing_sensor_ticks(landing_root: Path) -> None:
    """New file -> partition + run; same bytes again, or under another name -> nothing; same
    name with new content -> a 'changed' run of the same partition, audited; a lost cursor
    -> the same run key (it rests on the content hash)."""
    landing = landing_root / "data" / "landing"
    with dg.instance_for_test() as instance:
        write_batch(landing / "week_a.parquet", _frame(0))
        r1 = tick(landing_sensor, instance, None)
        apply_partitions(instance, r1)
        assert [rr.partition_key for rr in r1.run_requests] == ["week_a"]
        first = r1.run_requests[0]
        assert first.tags["mlops_assets/landing_event"] == "new"
        assert instance.get_dynamic_partitions("batches") == ["week_a"]
        write_batch(landing / "week_a.parquet", _frame(0))  # dropped again: same bytes
        r2 = tick(landing_sensor, instance, r1.cursor)
        assert r2.run_requests == [] and not r2.dynamic_partitions_requests
        write_batch(landing / "week_a_copy.parquet", _frame(0))  # same bytes, other name
        r3 = tick(landing_sensor, instance, r2.cursor)
        assert r3.run_requests == [] and "duplicate" in (r3.skip_message or "")
        write_batch(landing / "week_a.parquet", _frame(1))  # same name, new content
        r4 = tick(landing_sensor, instance, r3.cursor)
        apply_partitions(instance, r4)
        assert len(r4.run_requests) == 1
        changed = r4.run_requests[0]
        assert changed.partition_key == "week_a" and changed.run_key != first.run_key
        assert changed.tags["mlops_assets/landing_event"] == "changed"
        assert changed.tags["mlops_assets/previous_md5"] == first.tags["mlops_assets/batch_md5"]
        assert instance.get_dynamic_partitions("batches") == ["week_a"]
        events = [e for e in read_events(landing_root / AUDIT_LOG)
                  if e.get("action") == "batch_changed"]
        assert len(events) == 1 and events[0]["from_md5"] == first.tags["mlops_assets/batch_md5"]
        r5 = tick(landing_sensor, instance, None)  # cursor lost
        assert changed.run_key in {rr.run_key for rr in r5.run_requests}
        assert instance.get_dynamic_partitions("batches") == ["week_a"]


@pytest.mark.slow
def test_fresh_project_landing_runs_stop_before_drift_and_succeed(small_project: Path) -> None:
    """A fresh clone: the sample weeks are in landing, but no snapshot and no model. The
    sensor's runs must not select drift_report (it would fail without a reference), and
    the runs it asks for must succeed."""
    import yaml

    root = small_project
    assert not drift_inputs_ready(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    scenario = FraudScenario.from_params({**params["sample_data"], "weeks": 2})
    for i in range(2):
        write_batch(root / "data" / "landing" / scenario.file_name(i),
                    generate_week(scenario, i))
    with dg.instance_for_test() as instance:
        res = tick(landing_sensor, instance, None)
        apply_partitions(instance, res)
        assert len(res.run_requests) == 2, res.skip_message
        for req in res.run_requests:
            keys = [k.to_user_string() for k in req.asset_selection]
            assert keys == ["raw_snapshots", "validated_dataset", "feature_table"]
            run = execute(instance, keys, req.tags, req.partition_key)
            assert run.success, _errors(run)
        assert (root / "data" / "features" / "features.parquet").exists()
        assert not (root / "data" / "reports" / "drift.json").exists()


# ------------------------------------------------------------------ drift -> retrain


class Scenario:
    """One project copy whose chain ran through Dagster on 11 normal weeks; the tests then
    land batches one at a time and tick the sensors as the daemon would."""

    def __init__(self, root: Path, instance: dg.DagsterInstance) -> None:
        self.root = root
        self.instance = instance
        self.landing_cursor: str | None = None
        self.drift_cursor: str | None = None
        params = __import__("yaml").safe_load((root / "params.yaml").read_text())
        self.scenario = FraudScenario.from_params(params["sample_data"])

    def land_week(self, index: int) -> list[dg.ExecuteInProcessResult]:
        path = self.root / "data" / "landing" / self.scenario.file_name(index)
        write_batch(path, generate_week(self.scenario, index))
        res = tick(landing_sensor, self.instance, self.landing_cursor)
        apply_partitions(self.instance, res)
        self.landing_cursor = res.cursor
        assert len(res.run_requests) == 1, res.skip_message
        req = res.run_requests[0]
        # a model exists: the landing run goes all the way to the drift report
        assert [k.to_user_string() for k in req.asset_selection] == CHAIN_AFTER_LANDING
        run = execute(self.instance, CHAIN_AFTER_LANDING, req.tags, req.partition_key)
        assert run.success or _only_drift_failed(run), _errors(run)
        return [run]

    def drift_tick(self) -> dg.SensorExecutionData:
        res = tick(drift_retrain_sensor, self.instance, self.drift_cursor)
        self.drift_cursor = res.cursor
        return res

    def severity(self) -> str:
        return json.loads((self.root / "data/reports/drift.json").read_text())["severity"]


def _errors(run: dg.ExecuteInProcessResult) -> list[str]:
    return [str(ev.event_specific_data.error.message)[:400] for ev in run.all_events
            if ev.is_step_failure and ev.event_specific_data.error]


def _only_drift_failed(run: dg.ExecuteInProcessResult) -> bool:
    # the drift check is non-blocking: a significant drift does not fail the run
    return not _errors(run)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    from mlops_assets.demo.orchestrate import materialize_chain

    root = make_project_copy(tmp_path_factory.mktemp("sensors") / "project",
                             {"sample_data": {"rows_per_week": 2500, "weeks": 11}},
                             with_lock=False)
    with in_project(root), dg.DagsterInstance.get() as instance:
        summary = materialize_chain(root, progress=False, instance=instance)
        assert summary["success"], summary
        s = Scenario(root, instance)
        # the landing sensor's first tick adopts the 11 landed weeks (already partitions)
        first = tick(landing_sensor, instance, None)
        s.landing_cursor = first.cursor
        assert not first.dynamic_partitions_requests
        assert first.run_requests == []  # their bytes are already snapshotted
        s.drift_cursor = s.drift_tick().cursor  # the chain's own drift result is history
        yield s


def test_retrain_in_progress_sees_only_unfinished_retrain_runs() -> None:
    """What absorbs drift while a retrain runs: a queued/started `retrain` run, not a
    finished one, nor a run of another job."""
    with dg.instance_for_test() as instance:
        create_run_for_test(instance, job_name="other", status=dg.DagsterRunStatus.STARTED)
        assert retrain_in_progress(instance) is None
        running = create_run_for_test(instance, job_name=retrain_job.name,
                                      status=dg.DagsterRunStatus.STARTED,
                                      tags={"mlops_assets/trigger": "drift"})
        assert retrain_in_progress(instance) == running.run_id
        instance.report_run_failed(running)
        assert retrain_in_progress(instance) is None


@pytest.mark.slow
def test_drifted_batch_gives_exactly_one_retrain(scenario: Scenario) -> None:
    scenario.land_week(11)  # 2025-11-17: an ordinary week
    assert scenario.severity() != "significant"
    res = scenario.drift_tick()
    assert res.run_requests == [] and "passed" in (res.skip_message or "")
    scenario.land_week(12)  # 2025-11-24: the first holiday week
    assert scenario.severity() == "significant"
    res = scenario.drift_tick()
    assert len(res.run_requests) == 1
    req = res.run_requests[0]
    assert req.run_key.startswith("retrain:")
    assert req.tags["mlops_assets/trigger"] == "drift"
    assert req.tags["mlops_assets/batch"] == "week_2025-11-24"
    assert req.tags["mlops_assets/drift_report_md5"]  # the pinned report was found
    # the newest window: the last retrain.holdout_days (3) of the drifted week are the
    # holdout, everything before them (its first four days included) trains
    assert req.run_config == {"ops": {"split": {"config": {
        "cutoff": "2025-11-28", "holdout_end": "2025-12-01"}}}}
    # the next ticks: nothing more for the same drift
    assert scenario.drift_tick().run_requests == []
    # the drift report re-run for the same batch (as the retrain itself does): still one
    execute(scenario.instance, ["drift_report"])
    again = scenario.drift_tick()
    assert again.run_requests == [] and "already handled" in (again.skip_message or "")
    scenario.retrain_request = req  # type: ignore[attr-defined]


@pytest.mark.slow
def test_retrain_run_trains_on_the_new_window_and_registers_a_candidate(
        scenario: Scenario) -> None:
    from mlops_assets.core.registry import Registry

    req = scenario.retrain_request  # type: ignore[attr-defined]
    run = execute(scenario.instance, [k.to_user_string() for k in
                                      retrain_job.selection.resolve(
                                          _defs().resolve_asset_graph())],
                  req.tags, run_config=req.run_config)
    assert run.success, _errors(run)
    record = json.loads((scenario.root / "data/model/model.json").read_text())
    assert record["cutoff"] == "2025-11-28"
    assert_window_is_run_scoped(scenario.root, {"cutoff": "2025-11-28",
                                                "holdout_end": "2025-12-01"})
    meta = scenario.instance.get_latest_materialization_event(
        dg.AssetKey("training_set")).asset_materialization.metadata
    assert meta["run_params/source"].value == "this run's config"
    assert meta["run_params/overrides"].value == {"split.cutoff": "2025-11-28",
                                                  "split.holdout_end": "2025-12-01"}
    split = json.loads((scenario.root / "data/split/split.json").read_text())
    assert "2025-11-24" < str(split["train"]["ts_max"]) < "2025-11-28"
    reg = Registry(scenario.root)
    info = reg.get(record["model_md5"])
    assert info["stage"] == "candidate" and info["evaluation"] is not None
    # the retrain re-ran the drift report for the same batch: no second retrain
    assert scenario.drift_tick().run_requests == []
    # while that candidate waits for a person, new drift does not pile up more candidates
    assert reg.awaiting_approval(trigger="drift") == [record["model_md5"]]
    scenario.land_week(13)  # 2025-12-01: a second holiday week, a new drift event
    assert scenario.severity() == "significant"
    res = scenario.drift_tick()
    assert res.run_requests == [] and "awaiting approval" in (res.skip_message or "")
    actions = [e.get("action") for e in read_events(scenario.root / AUDIT_LOG)
               if e.get("kind") == "drift" and e.get("action") != "drift_result"]
    assert actions == ["retrain_requested", "retrain_absorbed"]


def assert_window_is_run_scoped(root: Path, window: dict[str, str]) -> None:
    """The retrain's window is in the run params file and pinned by dvc.lock; the person's
    params.yaml is byte for byte the committed one."""
    import yaml

    assert yaml.safe_load((root / RUN_PARAMS).read_text())["split"] == window
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["split"]["params"]
    assert lock[RUN_PARAMS] == {"split": window}
    assert params_of({"params": lock})["split"] == window
    committed = run_cmd(["git", "show", "HEAD:params.yaml"], root).stdout
    assert (root / "params.yaml").read_text() == committed
    assert run_cmd(["git", "status", "--porcelain", "--", "params.yaml"], root).stdout == ""


def _check(run: dg.ExecuteInProcessResult, name: str):
    evs = [ev.event_specific_data for ev in run.all_events
           if ev.event_type_value == "ASSET_CHECK_EVALUATION"
           and ev.event_specific_data.check_name == name]
    assert len(evs) == 1, evs
    return evs[0]


@pytest.mark.slow
def test_production_model_needs_approval_and_a_passing_gate(scenario: Scenario) -> None:
    """Promotion is a materialisation of production_model with the approval as run config;
    its blocking check refuses it without approval and when the evaluation gate failed."""
    from mlops_assets.core.registry import Registry

    reg = Registry(scenario.root)
    candidate = json.loads((scenario.root / "data/model/model.json").read_text())["model_md5"]
    assert reg.production() is None
    # no approval in run config: refused, nothing materialised, serving unchanged
    run = execute(scenario.instance, ["production_model"])
    assert not run.success
    check = _check(run, "promotion_allowed")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "approval is required" in check.description
    assert reg.pointer()["version"] is None
    assert scenario.instance.get_latest_materialization_event(
        dg.AssetKey("production_model")) is None
    # approved in run config: promoted, serving points at it
    approval = {"ops": {"production_model": {"config": {
        "approved_by": "ana", "reason": "holiday retrain reviewed"}}}}
    run = execute(scenario.instance, ["production_model"], run_config=approval)
    assert run.success
    assert _check(run, "promotion_allowed").passed
    assert reg.production() == candidate == reg.pointer()["version"]
    mat = scenario.instance.get_latest_materialization_event(dg.AssetKey("production_model"))
    assert mat.asset_materialization.tags["dagster/data_version"] == candidate
    promote = [e for e in reg.events() if e["action"] == "promote"][-1]
    assert (promote["by"], promote["to_version"]) == ("ana", candidate)
    # a deliberately weak model: its gate fails against production, so it is refused
    weak = {"ops": {"train": {"config": {"max_iter": 2, "learning_rate": 0.01,
                                         "max_leaf_nodes": 2}}}}
    run = execute(scenario.instance, ["training_set", "holdout_set", "model", "evaluation"],
                  run_config=weak)
    assert run.success, _errors(run)
    ev = json.loads((scenario.root / "data/reports/evaluation.json").read_text())
    assert ev["reference"]["name"] == f"production:{candidate}"
    assert ev["gate"]["eligible"] is False, ev["gate"]
    run = execute(scenario.instance, ["production_model"], run_config=approval)
    assert not run.success
    check = _check(run, "promotion_allowed")
    assert "evaluation gate failed" in check.description
    assert reg.production() == candidate  # serving unchanged
    # drift is measured against what serves (production, its profile stored beside it in
    # the registry), never against the weak model the chain trained last
    weak_md5 = json.loads((scenario.root / "data/model/model.json").read_text())["model_md5"]
    assert weak_md5 != candidate
    assert (scenario.root / f"registry/models/{candidate}/reference_profile.parquet").is_file()
    run = execute(scenario.instance, ["drift_report"])
    assert run.success, _errors(run)
    lineage = json.loads((scenario.root / "data/reports/drift.json").read_text())["lineage"]
    assert lineage["model_version"] == candidate
    assert lineage["reference_source"] == f"production:{candidate}"


def _defs() -> dg.Definitions:
    from mlops_assets.definitions import defs

    return defs()


# ------------------------------------------------------------------ schedule


def test_weekly_schedule_is_off_by_default_and_on_with_the_flag(
        landing_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert weekly_retrain_schedule.cron_schedule == "0 6 * * 0"
    # contexts used with `with`: an unclosed one leaves its instance set as dagster's current
    # defs-state storage, and a later definitions load fails on the dead instance
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(instance=instance) as ctx:
            out = weekly_retrain_schedule.evaluate_tick(ctx)
        assert not out.run_requests and "weekly_retrain is false" in (out.skip_message or "")
        update_params_section(landing_root / "params.yaml", "automation", {"weekly_retrain": True})
        with dg.build_schedule_context(instance=instance) as ctx:
            out = weekly_retrain_schedule.evaluate_tick(ctx)
        assert "no feature table" in (out.skip_message or "")
