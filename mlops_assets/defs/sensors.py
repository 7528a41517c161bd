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

from mlops_assets.pipeline import load_params, project_root

LANDING_EVENT_TAG = "mlops_assets/landing_event"
BATCH_TAG = "mlops_assets/batch"
BATCH_MD5_TAG = "mlops_assets/batch_md5"
TRIGGER_TAG = "mlops_assets/trigger"
DRIFT_EVENT_TAG = "mlops_assets/drift_event"
DRIFT_CHECK = dg.AssetCheckKey(dg.AssetKey("drift_report"), "no_significant_drift")

CHAIN_AFTER_LANDING = ["raw_snapshots", "validated_dataset", "feature_table", "drift_report"]
RETRAIN_ASSETS = ["training_set", "holdout_set", "model", "evaluation", "drift_report",
                  "model_candidate"]
BATCHES_NAME = "batches"  # defs/assets.py BATCHES (not imported: it reads dvc.yaml at import)
HANDLED_KEEP = 500  # drift events remembered in the cursor (run keys dedupe beyond that)

AUTOMATION_DEFAULTS: dict[str, Any] = {
    "landing_sensor_interval_seconds": 30,
    "landing_settle_seconds": 10,
    "drift_sensor_interval_seconds": 30,
    "weekly_retrain": False,
    "weekly_retrain_cron": "0 6 * * 0",
}
RETRAIN_DEFAULTS: dict[str, Any] = {"holdout_days": 3, "label_delay_days": 0,
                                    "wait_for_pending_approval": True,
                                    "per_drift_episode": True}


def _params(root: Path | None = None) -> dict[str, Any]:
    try:
        return load_params(root or project_root())
    except OSError:
        return {}


def automation_settings(params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**AUTOMATION_DEFAULTS, **((params or {}).get("automation") or {})}


def retrain_settings(params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**RETRAIN_DEFAULTS, **((params or {}).get("retrain") or {})}


def retrain_window(newest_ts: Any, params: dict[str, Any] | None = None) -> dict[str, str]:
    """The split window of a retrain: a holdout of retrain.holdout_days ending with the
    newest labelled day (labels arrive retrain.label_delay_days late), and everything before
    its start (the cutoff) to train on. Dates as YYYY-MM-DD; holdout_end is exclusive."""
    import pandas as pd

    s = retrain_settings(params)
    newest = pd.Timestamp(newest_ts).normalize() - pd.Timedelta(days=int(s["label_delay_days"]))
    end = newest + pd.Timedelta(days=1)
    cutoff = end - pd.Timedelta(days=int(s["holdout_days"]))
    return {"cutoff": cutoff.date().isoformat(), "holdout_end": end.date().isoformat()}


def retrain_run_config(window: dict[str, str]) -> dict[str, Any]:
    return {"ops": {"split": {"config": dict(window)}}}


def _audit(root: Path, event: dict[str, Any]) -> None:
    from mlops_assets.repo.dvc_bridge import record_audit

    try:  # not re-pinned in DVC from a sensor tick: the next run or registry command does
        record_audit(root, event, track=False)
    except OSError:
        pass  # the audit log is best effort from a sensor; the run tags carry the facts


def fresh_check_results(instance: dg.DagsterInstance, key: dg.AssetCheckKey,
                        after: int) -> list[Any]:
    """Finished (passed or failed) evaluations of one check with a storage id past the
    cursor, oldest first: what a check-driven sensor has not seen yet."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
    return sorted((r for r in history if r.id > after
                   and r.status in (Status.SUCCEEDED, Status.FAILED)), key=lambda r: r.id)


# ------------------------------------------------------------------------ landing


def scan_landing(landing: Path, cursor: dict[str, Any], now: float,
                 settle_seconds: float) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """One tick's view of the landing area. Returns (settled events, new cursor, notes).

    Cursor: {"files": {name: {"size", "mtime_ns", "md5" | None}}}; md5 None means "seen,
    not settled yet". Events: {"name", "key", "md5", "kind": new | changed, "previous"}."""
    from mlops_assets.core.ingest import batch_key, list_landing_batches
    from mlops_assets.core.io import md5_file

    old: dict[str, dict[str, Any]] = cursor.get("files", {})
    known_md5 = {v["md5"]: n for n, v in old.items() if v.get("md5")}
    files: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    notes: list[str] = []
    for p in list_landing_batches(landing):
        try:
            st = p.stat()
        except FileNotFoundError:  # removed between listing and stat
            continue
        size, mtime = st.st_size, st.st_mtime_ns
        prev = old.get(p.name)
        if prev and prev["size"] == size and prev["mtime_ns"] == mtime and prev.get("md5"):
            files[p.name] = prev  # unchanged and already taken: no hashing
            continue
        stable = (prev is not None and prev["size"] == size and prev["mtime_ns"] == mtime) \
            or (now - st.st_mtime) >= settle_seconds
        if not stable or size == 0:
            files[p.name] = {"size": size, "mtime_ns": mtime, "md5": None,
                             "last_md5": (prev or {}).get("md5") or (prev or {}).get("last_md5")}
            notes.append(f"{p.name}: still being written (size/mtime not yet stable)")
            continue
        before = (prev or {}).get("md5") or (prev or {}).get("last_md5")
        md5 = md5_file(p)
        if _changed_since(p, size, mtime):
            files[p.name] = {"size": -1, "mtime_ns": -1, "md5": None, "last_md5": before}
            notes.append(f"{p.name}: changed while being hashed")
            continue
        files[p.name] = {"size": size, "mtime_ns": mtime, "md5": md5}
        if before == md5:
            continue  # touched or re-dropped with the same bytes: one partition, no run
        other = known_md5.get(md5)
        if other is not None and other != p.name and before is None:
            notes.append(f"{p.name}: same bytes as {other} (md5 {md5}); skipped as a duplicate")
            continue
        events.append({"name": p.name, "key": batch_key(p), "md5": md5,
                       "kind": "changed" if before else "new", "previous": before})
        known_md5[md5] = p.name
    return events, {"files": files}, notes


def _changed_since(p: Path, size: int, mtime_ns: int) -> bool:
    try:
        st = p.stat()
    except FileNotFoundError:
        return True
    return st.st_size != size or st.st_mtime_ns != mtime_ns


def drift_inputs_ready(root: Path) -> bool:
    """Whether the drift stage can run: the trained model, its record and the reference
    profile it measures against (written by training) all exist."""
    from mlops_assets.core.layout import MODEL, MODEL_RECORD, REFERENCE_PROFILE, REFERENCE_VALUES

    return all((root / p).is_file() for p in (MODEL, MODEL_RECORD, REFERENCE_PROFILE,
                                              REFERENCE_VALUES))


def landing_selection(root: Path) -> list[dg.AssetKey]:
    """What a landing run materialises: the whole chain after landing, or, with no trained
    model yet, everything but the drift report (which would fail without a reference)."""
    keys = CHAIN_AFTER_LANDING if drift_inputs_ready(root) else \
        [k for k in CHAIN_AFTER_LANDING if k != "drift_report"]
    return [dg.AssetKey(k) for k in keys]


def _snapshotted(root: Path) -> dict[str, str]:
    """batch key -> md5 of its current snapshot (the manifest), {} if there is none."""
    from mlops_assets.core.ingest import load_manifest
    from mlops_assets.core.io import DataError
    from mlops_assets.core.layout import SNAPSHOTS

    try:
        return {e["batch"]: e["md5"] for e in load_manifest(root / SNAPSHOTS)["entries"]}
    except DataError:
        return {}


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
    settings = automation_settings(params)
    landing = root / params.get("dataset", {}).get("landing_dir", "data/landing")
    cursor = json.loads(context.cursor) if context.cursor else {}
    events, new_cursor, notes = scan_landing(landing, cursor, dt.datetime.now().timestamp(),
                                             float(settings["landing_settle_seconds"]))
    for n in notes:
        context.log.info(n)
    existing = set(context.instance.get_dynamic_partitions(BATCHES_NAME))
    snapped = _snapshotted(root)
    taken = [e for e in events if snapped.get(e["key"]) == e["md5"]]
    for e in taken:  # e.g. the chain's own landing run, or a sensor cursor that was reset
        context.log.info(f"{e['name']}: md5 {e['md5']} is already snapshotted; no run")
    events = [e for e in events if snapped.get(e["key"]) != e["md5"]]
    new_keys = sorted({e["key"] for e in events} - existing)
    requests = []
    selection = landing_selection(root) if events else []
    if events and len(selection) < len(CHAIN_AFTER_LANDING):
        context.log.info("no trained model yet (no reference profile): landing runs stop at "
                         "the feature table; the drift report starts once a model exists")
    for e in events:
        tags = {BATCH_TAG: e["key"], BATCH_MD5_TAG: e["md5"], LANDING_EVENT_TAG: e["kind"],
                TRIGGER_TAG: "landing"}
        if e["kind"] == "changed":
            tags["mlops_assets/previous_md5"] = e["previous"]
            context.log.warning(f"{e['name']} CHANGED: md5 {e['previous']} -> {e['md5']}; "
                                "snapshotting the new content as a new version of batch "
                                f"{e['key']} (the old snapshot is kept)")
            _audit(root, {"kind": "landing", "action": "batch_changed", "batch": e["key"],
                          "file": e["name"], "from_md5": e["previous"], "to_md5": e["md5"],
                          "by": "landing_sensor", "reason": "same file name, new content"})
        requests.append(dg.RunRequest(run_key=f"{e['key']}:{e['md5']}", partition_key=e["key"],
                                      tags=tags, asset_selection=selection))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(
            partitions_def_name=BATCHES_NAME, partition_keys=new_keys)] if new_keys else [],
        cursor=json.dumps(new_cursor, sort_keys=True, separators=(",", ":")),
        skip_reason=None if requests else ("; ".join(notes) or "no new or changed batch files"),
    )


# ------------------------------------------------------------------------ drift -> retrain

retrain_job = dg.define_asset_job(
    "retrain",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Retrain on the newest window (split config), evaluate the candidate against "
                "production, refresh the drift report and register the candidate.",
    tags={"mlops_assets/job": "retrain"},
)

IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
               dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def read_pinned_report(root: Path, data_version: str | None) -> dict[str, Any] | None:
    """The drift.json whose dvc md5 is `data_version`: from the DVC cache, or the working
    tree if it still has those bytes (the pinned version, never "whatever is newest")."""
    from mlops_assets.core.io import md5_file
    from mlops_assets.core.layout import DRIFT_JSON

    live = root / DRIFT_JSON
    candidates = []
    if data_version:
        candidates.append(root / ".dvc" / "cache" / "files" / "md5" / data_version[:2]
                          / data_version[2:])
    candidates.append(live)
    for p in candidates:
        if p.is_file() and (not data_version or md5_file(p) == data_version):
            return json.loads(p.read_text())
    return None


def drift_event_key(report: dict[str, Any], root: Path) -> tuple[str, dict[str, Any]]:
    """The identity of a drift event: the drifted batch and its content md5."""
    import hashlib

    from mlops_assets.core.ingest import load_manifest
    from mlops_assets.core.layout import SNAPSHOTS

    lineage = report.get("lineage", {})
    batch = str(lineage.get("current_batch"))
    md5 = next((e["md5"] for e in load_manifest(root / SNAPSHOTS)["entries"]
                if e["batch"] == batch), None)
    ident = f"{batch}:{md5 or lineage.get('current_window')}"
    info = {"batch": batch, "batch_md5": md5, "window": lineage.get("current_window"),
            "severity": report.get("severity"), "drift_share": report.get("drift_share"),
            "drifted_features": [f if isinstance(f, str) else f.get("name")
                                 for f in (report.get("drifted_features") or [])][:10]}
    return hashlib.md5(ident.encode()).hexdigest()[:16], info


def _target_report_md5(instance: dg.DagsterInstance, evaluation: Any) -> str | None:
    """The dvc md5 of the drift.json the failed check evaluated: from the `dvc/outs` metadata
    of the check's target materialisation (its data version is the first out, the HTML)."""
    from mlops_assets.core.layout import DRIFT_JSON

    target = getattr(evaluation, "target_materialization_data", None)
    if target is None:
        return None
    recs = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DRIFT_CHECK.asset_key, storage_ids=[target.storage_id]),
        limit=1).records
    if not recs:
        return None
    outs = recs[0].asset_materialization.metadata.get("dvc/outs")
    value = getattr(outs, "value", None) or {}
    return value.get(DRIFT_JSON)


def retrain_in_progress(instance: dg.DagsterInstance) -> str | None:
    recs = instance.get_run_records(
        dg.RunsFilter(job_name=retrain_job.name, statuses=IN_PROGRESS), limit=1)
    return recs[0].dagster_run.run_id if recs else None


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
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    root = project_root()
    params = _params(root)
    settings = retrain_settings(params)
    cursor = json.loads(context.cursor) if context.cursor else {}
    after = int(cursor.get("after", 0))
    handled: dict[str, str] = dict(cursor.get("handled", {}))
    episode: dict[str, str] | None = cursor.get("episode")

    fresh = fresh_check_results(context.instance, DRIFT_CHECK, after)
    if not fresh:
        return dg.SensorResult(skip_reason="no new drift check results", cursor=context.cursor)
    requests: list[dg.RunRequest] = []
    reasons: list[str] = []
    for r in fresh:  # oldest first: the order the batches were reported in
        evaluation = r.event.get_dagster_event().event_specific_data \
            if r.event and r.event.dagster_event else None
        dv = _target_report_md5(context.instance, evaluation) if evaluation else None
        report = read_pinned_report(root, dv)
        if report is None:
            context.log.warning(f"drift report {dv} of run {r.run_id[:8]} not found; skipped")
            continue
        key, info = drift_event_key(report, root)
        if r.status == Status.SUCCEEDED:
            reasons.append(f"drift check passed on {info['batch']}: no retrain")
            if episode and info["batch"] != episode["batch"] and key not in handled:
                context.log.info(f"drift episode opened by {episode['batch']} closed by the "
                                 f"normal batch {info['batch']}")
                episode = None
            continue
        if key in handled:
            reasons.append(f"drift on {info['batch']} already handled by {handled[key]}")
            continue
        busy = retrain_in_progress(context.instance)
        why = "a retrain is already in progress"
        if not busy and settings["wait_for_pending_approval"]:
            from mlops_assets.core.registry import Registry

            pending = Registry(root).awaiting_approval(trigger="drift")
            busy = f"candidate {pending[-1][:12]} (awaiting approval)" if pending else None
            why = "a candidate from an earlier drift retrain awaits approval"
        if not busy and requests:
            busy, why = "the retrain requested in this tick", "a retrain was just requested"
        if not busy and episode and settings["per_drift_episode"]:
            busy = f"the drift episode opened by {episode['batch']} ({episode['run_key']})"
            why = "drift persists since the last retrain (no normal batch in between)"
        if busy:
            handled[key] = f"absorbed:{busy}"
            reasons.append(f"drift on {info['batch']} absorbed by {busy}")
            _audit(root, {"kind": "drift", "action": "retrain_absorbed", "event": key,
                          "absorbed_by": busy, "by": "drift_retrain_sensor", **info,
                          "reason": why})
            continue
        if not info.get("window"):
            reasons.append(f"drift on {info['batch']}: no time window in the report")
            continue
        window = retrain_window(info["window"][1], params)
        run_key = f"retrain:{key}"
        handled[key] = run_key
        episode = {"key": key, "batch": info["batch"], "run_key": run_key}
        requests.append(dg.RunRequest(
            run_key=run_key, run_config=retrain_run_config(window),
            tags={TRIGGER_TAG: "drift", DRIFT_EVENT_TAG: key, BATCH_TAG: info["batch"],
                  "mlops_assets/drift_report_md5": dv or "",
                  "mlops_assets/cutoff": window["cutoff"],
                  "mlops_assets/holdout_end": window["holdout_end"]}))
        context.log.info(f"significant drift on {info['batch']} ({info['drifted_features']}): "
                         f"retrain with cutoff {window['cutoff']}")
        _audit(root, {"kind": "drift", "action": "retrain_requested", "event": key,
                      "run_key": run_key, "by": "drift_retrain_sensor", **info, **window,
                      "reason": "no_significant_drift check failed"})
    if len(handled) > HANDLED_KEEP:
        handled = dict(list(handled.items())[-HANDLED_KEEP:])
    new_cursor = json.dumps({"after": max(r.id for r in fresh), "handled": handled,
                             "episode": episode}, sort_keys=True)
    return dg.SensorResult(run_requests=requests, cursor=new_cursor,
                           skip_reason=None if requests else
                           ("; ".join(reasons) or "drift checks passed: no retrain"))


# ------------------------------------------------------------------------ weekly schedule


def _newest_timestamp(root: Path, params: dict[str, Any]) -> Any:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mlops_assets.core.contract import load_contract
    from mlops_assets.core.layout import FEATURES

    path = root / FEATURES
    if not path.exists():
        return None
    ts = load_contract(root / params["dataset"]["contract"]).timestamp_column
    col = pq.read_table(path, columns=[ts]).column(0)
    return pc.max(col).as_py()


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
    if not automation_settings(params)["weekly_retrain"]:
        return dg.SkipReason("automation.weekly_retrain is false in params.yaml")
    busy = retrain_in_progress(context.instance)
    if busy:
        return dg.SkipReason(f"a retrain ({busy}) is still in progress")
    newest = _newest_timestamp(root, params)
    if newest is None:
        return dg.SkipReason("no feature table yet: nothing to retrain on")
    window = retrain_window(newest, params)
    tick = context.scheduled_execution_time
    return dg.RunRequest(run_key=f"weekly:{tick.date().isoformat() if tick else window['cutoff']}",
                         run_config=retrain_run_config(window),
                         tags={TRIGGER_TAG: "schedule", "mlops_assets/cutoff": window["cutoff"]})


