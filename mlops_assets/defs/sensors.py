"""Automation that acts: new batches in, drift out, exactly one retrain per drift event.

landing_sensor
    Watches the landing area (params dataset.landing_dir). A batch file is taken only once
    it is *settled*: its name is not a temporary one (core.ingest ignores `*.tmp`, `*.part`,
    dot/underscore names, ...) AND its (size, mtime) are unchanged since the previous tick
    (or its mtime is older than automation.landing_settle_seconds), so a half-written file
    is never picked up. A settled file is hashed (md5, only when size/mtime changed since the
    cursor last saw it) and the run key is `<batch key>:<md5>`, so:
      * the same file dropped twice (or touched) is one partition and one run;
      * the same bytes under another name are reported as a duplicate and skipped;
      * a changed file with the same name is a new run of the same partition, tagged
        `mlops_assets/landing_event=changed` with the previous md5, logged as a warning and
        written to the audit log: never a silent overwrite (the snapshot store keeps both).
    A file whose bytes are already the batch's current snapshot (e.g. landed by the chain's
    own landing run) needs no run. New batch keys are added as dynamic partitions
    ("batches"); each run materialises the
    batch's snapshot, then validation, features and the drift report.
    Before the first model exists (a fresh clone whose landing area already holds the
    sample batches: no data/model/model.skops, no reference profile) there is nothing to
    compare against, so the runs stop at the feature table (RunRequest asset_selection
    without drift_report) instead of failing in the drift stage; the drift report joins
    the landing runs by itself once a model has been trained. The runs stay one per batch
    (run key `<batch>:<md5>`, the identity that dedupes across a lost cursor); they
    serialise on the repository lock, so N new batches never race each other.

drift_retrain_sensor  (a sensor rather than a declarative AutomationCondition, because the
    retrain re-materialises assets *upstream* of the drift report - split, train, evaluate -
    which a condition on those assets could only express through a dependency cycle, and
    because "one retrain per drift event" needs an identity for the event that survives
    re-runs of the report.)
    Reads new evaluations of the `drift_report:no_significant_drift` check. A failed one is
    a drift event identified by the drifted batch and its content md5 (read from the drift
    report pinned by the check's target materialisation: the dvc md5 that is its data
    version, looked up in the DVC cache). Then:
      * an event already handled (the cursor, and the run key `retrain:<event>`) -> nothing:
        re-running the report, e.g. inside the retrain itself, never retrains again;
      * a retrain run (job `retrain`) still queued or running, or a candidate from an
        earlier drift retrain still waiting for a person's approval (params
        retrain.wait_for_pending_approval, default true), or a drift *episode* that is still
        open (retrain.per_drift_episode, default true: consecutive drifted batches are one
        event, retrained once; a normal batch closes the episode) -> the event is absorbed
        (recorded in the cursor and the audit log, no new run): no retrain storm, and no
        pile of unreviewed candidates while drift persists;
      * otherwise exactly one run of `retrain`, whose run config moves the split window to
        the newest data (retrain.holdout_days of holdout ending at the newest labelled day,
        everything before the cutoff to train on), evaluates the candidate against
        production and registers it (model_candidate), where it waits for approval.
    A passing check (a normal batch) does nothing.

weekly_retrain_schedule
    The same `retrain` job on a cron (automation.weekly_retrain_cron, Sundays 06:00), off by
    default: on only when params automation.weekly_retrain is true (checked at load for
    its default status and again at every tick).
"""

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg

# dagster's record status enum has no public export; the check history is only readable here
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus as CheckStatus,
)

from mlops_assets.core.automation import (
    BATCH_MD5_TAG,
    BATCH_TAG,
    CHAIN_AFTER_LANDING,
    DRIFT_EVENT_TAG,
    LANDING_EVENT_TAG,
    RETRAIN_ASSETS,
    TRIGGER_TAG,
    DriftEvent,
    RetrainState,
    automation_settings,
    decide_retrain,
    drift_event_key,
    drift_inputs_ready,
    landing_assets,
    newest_timestamp,
    plan_landing,
    read_pinned_report,
    retrain_settings,
    scan_landing,
    snapshotted,
    weekly_retrain,
)
from mlops_assets.core.layout import DRIFT_JSON, LANDING
from mlops_assets.core.registry import Registry
from mlops_assets.pipeline import load_params, project_root
from mlops_assets.repo.dvc_bridge import record_audit

__all__ = [  # what other modules import from here (the pure policy lives in core.automation)
    "BATCH_MD5_TAG", "BATCH_TAG", "BATCHES_NAME", "CHAIN_AFTER_LANDING", "DRIFT_CHECK",
    "DRIFT_EVENT_TAG", "LANDING_EVENT_TAG", "RETRAIN_ASSETS", "TRIGGER_TAG",
    "drift_inputs_ready", "drift_retrain_sensor", "fresh_check_results", "landing_sensor",
    "retrain_in_progress", "retrain_job", "weekly_retrain_schedule", "_audit",
]

DRIFT_CHECK = dg.AssetCheckKey(dg.AssetKey("drift_report"), "no_significant_drift")
BATCHES_NAME = "batches"  # defs/assets.py BATCHES (not imported: it reads dvc.yaml at import)
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
               dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _params(root: Path | None = None) -> dict[str, Any]:
    try:
        return load_params(root or project_root())
    except OSError:
        return {}


def _audit(root: Path, event: dict[str, Any]) -> None:
    try:  # not re-pinned in DVC from a sensor tick: the next run or registry command does
        record_audit(root, event, track=False)
    except OSError:
        pass  # the audit log is best effort from a sensor; the run tags carry the facts


def fresh_check_results(instance: dg.DagsterInstance, key: dg.AssetCheckKey,
                        after: int) -> list[Any]:
    """Finished (passed or failed) evaluations of one check with a storage id past the
    cursor, oldest first: what a check-driven sensor has not seen yet."""
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
    return sorted((r for r in history if r.id > after
                   and r.status in (CheckStatus.SUCCEEDED, CheckStatus.FAILED)),
                  key=lambda r: r.id)


# ------------------------------------------------------------------------ landing


def landing_selection(root: Path) -> list[dg.AssetKey]:
    """The assets of a landing run (core.automation.landing_assets) as keys."""
    return [dg.AssetKey(k) for k in landing_assets(drift_inputs_ready(root))]


@dg.sensor(
    name="landing_sensor",
    asset_selection=dg.AssetSelection.assets(*CHAIN_AFTER_LANDING),
    minimum_interval_seconds=int(automation_settings(_params())["landing_sensor_interval_seconds"]),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New batch file in the landing area -> a new 'batches' partition and a run "
                "of its snapshot, validation, features and drift report. Keyed on the "
                "file's content hash; half-written files wait until size and mtime settle.",
)
def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    root = project_root()
    params = _params(root)
    landing = root / params.get("dataset", {}).get("landing_dir", LANDING)
    events, new_cursor, notes = scan_landing(
        landing, json.loads(context.cursor) if context.cursor else {},
        dt.datetime.now().timestamp(),
        float(automation_settings(params)["landing_settle_seconds"]))
    plan = plan_landing(events, snapshotted(root),
                        context.instance.get_dynamic_partitions(BATCHES_NAME))
    for n in notes + plan.notes:
        context.log.info(n)
    selection = landing_selection(root) if plan.runs else []
    if plan.runs and len(selection) < len(CHAIN_AFTER_LANDING):
        context.log.info("no trained model yet (no reference profile): landing runs stop at "
                         "the feature table; the drift report starts once a model exists")
    for run in plan.runs:
        if run.warning:
            context.log.warning(run.warning)
        if run.audit:
            _audit(root, run.audit)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=r.run_key, partition_key=r.partition_key,
                                    tags=r.tags, asset_selection=selection) for r in plan.runs],
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(
            partitions_def_name=BATCHES_NAME, partition_keys=plan.new_partitions)]
        if plan.new_partitions else [],
        cursor=json.dumps(new_cursor, sort_keys=True, separators=(",", ":")),
        skip_reason=None if plan.runs else ("; ".join(notes) or "no new or changed batch files"),
    )


# ------------------------------------------------------------------------ drift -> retrain

retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Retrain on the newest window (split config), evaluate the candidate against "
                "production, refresh the drift report and register the candidate.",
    tags={"mlops_assets/job": "retrain"},
)


def _target_report_md5(instance: dg.DagsterInstance, evaluation: Any,
                       run_id: str) -> str | None:
    """The dvc md5 of the drift.json the check evaluated: from the `dvc/outs` metadata of
    the check's target materialisation, or (when Dagster records no target, as for the
    partitioned landing runs) of the run's own drift_report materialisation."""
    target = getattr(evaluation, "target_materialization_data", None)
    if target is not None:
        recs = instance.fetch_materializations(dg.AssetRecordsFilter(
            asset_key=DRIFT_CHECK.asset_key, storage_ids=[target.storage_id]), limit=1).records
        mats = [r.asset_materialization for r in recs]
    else:
        recs = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, ascending=False).records
        mats = [m for m in (r.asset_materialization for r in recs)
                if m is not None and m.asset_key == DRIFT_CHECK.asset_key]
    if not mats:
        return None
    outs = mats[0].metadata.get("dvc/outs")
    return (getattr(outs, "value", None) or {}).get(DRIFT_JSON)


def retrain_in_progress(instance: dg.DagsterInstance) -> str | None:
    """The run id of a `retrain` run still queued or running, if any."""
    recs = instance.get_run_records(
        dg.RunsFilter(job_name=retrain_job.name, statuses=IN_PROGRESS), limit=1)
    return recs[0].dagster_run.run_id if recs else None


def _drift_events(context: dg.SensorEvaluationContext, root: Path,
                  fresh: list[Any]) -> list[DriftEvent]:
    """The check results as drift events, identified through the report they pinned."""
    snaps = snapshotted(root)
    out = []
    for r in fresh:  # oldest first: the order the batches were reported in
        evaluation = r.event.get_dagster_event().event_specific_data \
            if r.event and r.event.dagster_event else None
        dv = _target_report_md5(context.instance, evaluation, r.run_id)
        report = read_pinned_report(root, dv)
        if report is None:
            context.log.warning(f"drift report {dv} of run {r.run_id[:8]} not found; skipped")
            continue
        key, info = drift_event_key(report, snaps)
        out.append(DriftEvent(r.status == CheckStatus.SUCCEEDED, key, info, dv))
    return out


@dg.sensor(
    name="drift_retrain_sensor",
    job=retrain_job,
    minimum_interval_seconds=int(automation_settings(_params())["drift_sensor_interval_seconds"]),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed drift_report:no_significant_drift check -> exactly one retrain "
                "per drift event (batch + content md5); none while a retrain is in "
                "progress; nothing for a normal batch.",
)
def drift_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    root = project_root()
    settings = retrain_settings(_params(root))
    cursor = json.loads(context.cursor) if context.cursor else {}
    fresh = fresh_check_results(context.instance, DRIFT_CHECK, int(cursor.get("after", 0)))
    if not fresh:
        return dg.SensorResult(skip_reason="no new drift check results", cursor=context.cursor)
    state = RetrainState.from_cursor(cursor)
    events = _drift_events(context, root, fresh)
    new_drift = any(not e.passed and e.key not in state.handled for e in events)
    running = retrain_in_progress(context.instance) if new_drift else None
    awaiting = Registry(root).awaiting_approval(trigger="drift") \
        if new_drift and not running and settings["wait_for_pending_approval"] else []
    requests: list[dg.RunRequest] = []
    reasons: list[str] = []
    for event in events:
        d = decide_retrain(event, state, running=running, awaiting=awaiting,
                           settings=settings, requested_this_tick=bool(requests))
        state = d.state
        if d.log:
            context.log.info(d.log)
        if d.audit:
            _audit(root, d.audit)
        if d.action == "retrain":
            requests.append(dg.RunRequest(run_key=d.run_key, run_config=d.run_config,
                                          tags=d.tags))
        else:
            reasons.append(d.reason)
    return dg.SensorResult(run_requests=requests,
                           cursor=state.to_cursor(max(r.id for r in fresh)),
                           skip_reason=None if requests else
                           ("; ".join(reasons) or "drift checks passed: no retrain"))


# ------------------------------------------------------------------------ weekly schedule


def _weekly_status() -> dg.DefaultScheduleStatus:
    on = bool(automation_settings(_params())["weekly_retrain"])
    return dg.DefaultScheduleStatus.RUNNING if on else dg.DefaultScheduleStatus.STOPPED


@dg.schedule(
    name="weekly_retrain_schedule",
    job=retrain_job,
    cron_schedule=str(automation_settings(_params())["weekly_retrain_cron"]),
    execution_timezone="UTC",
    default_status=_weekly_status(),
    description="Calendar retrain (Sundays 06:00 UTC), off unless params "
                "automation.weekly_retrain is true. Drift, not the calendar, is the main "
                "trigger (drift_retrain_sensor).",
)
def weekly_retrain_schedule(context: dg.ScheduleEvaluationContext):
    root = project_root()
    params = _params(root)
    on = automation_settings(params)["weekly_retrain"]
    running = retrain_in_progress(context.instance) if on else None
    newest = newest_timestamp(root, params) if on and not running else None
    key, run = weekly_retrain(params, running, newest, None)
    if run is None:
        return dg.SkipReason(key)
    tick = context.scheduled_execution_time  # raises outside a scheduled tick: read it last
    if tick:
        key = f"weekly:{tick.date().isoformat()}"
    return dg.RunRequest(run_key=key, run_config=run["run_config"], tags=run["tags"])
