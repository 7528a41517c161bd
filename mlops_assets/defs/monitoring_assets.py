"""Monitoring in Dagster: the service's traffic as assets, live drift, delayed labels, live
quality, and offline batch scoring (issue 6). Thin: the logic is core.monitoring
(inference_log, live_drift, live_performance, batch_scoring) and core.pinned_model; this
module holds the asset, check and sensor definitions, reads params and sensor state, and
shapes metadata.

None of these is a DVC stage (the inference log grows while the service runs; labels land
whenever the card scheme sends them), so all carry `mlops_assets/dvc_mirrored: false` and
the dvc.yaml/graph agreement test leaves them out. Data versions are content hashes (md5 of
the file each asset writes under monitoring.output_dir, default data/monitoring/).

inference_log (partitions "inference_days": one per request date found in the log)
    A day's segments (data/inference_log/date=D/seg-*.parquet) consolidated into one
    Parquet, sorted by request time, request id and record index: same segments -> same
    bytes. Dynamic rather than daily partitions: the dates exist only once the service has
    answered on them (a replay or a backfill may log any date, a quiet day has no traffic),
    and a DailyPartitionsDefinition would need a fixed start date and would offer a
    partition, and a failing run, for every day without a log. `monitoring_sensor` adds a
    date as a partition when its first segment appears.
live_drift_report (same partitions)
    The drift engine (core.drift) on that day's answered traffic against the reference
    profile of the production model, pinned by the md5 its record names; the check
    `no_significant_drift` is the drift_report asset's, built by the same code
    (defs/metadata.py check_results).
labels / live_performance
    Label files (id, label, label time) from monitoring.labels_dir, joined to every
    consolidated day: per day, model version and route, precision, recall, FPR at the
    operating threshold and alert volume, plus a CBPE estimate (marked estimated) for records
    still without labels. Check `live_quality_within_bounds` (ERROR) compares the newest
    window with the holdout numbers; `live_quality_retrain_sensor` requests one retrain per
    failed evaluation, keyed on the live_performance data version.
batch_predictions (partitions "batches")
    A snapshot scored by the production model (pinned by its version hash, loaded by
    core.pinned_model like the service's) with the inference log's columns.
"""

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from mlops_assets.core.automation import newest_timestamp, retrain_run_config, retrain_window
from mlops_assets.core.contract import Contract, load_contract
from mlops_assets.core.io import DataError, md5_file
from mlops_assets.core.monitoring import batch_scoring, live_drift
from mlops_assets.core.monitoring import live_performance as lp
from mlops_assets.core.monitoring.files import label_files, labels_signature, rel
from mlops_assets.core.monitoring.inference_log import consolidate_day, scan_log_days, settled_changes
from mlops_assets.core.registry import production_pointer
from mlops_assets.defs.metadata import CHECKS, asset_metadata, check_results
from mlops_assets.defs.registry_assets import NOT_MIRRORED, OWNERS, REGISTRY_TAGS
from mlops_assets.defs.sensors import (
    BATCHES_NAME,
    TRIGGER_TAG,
    _audit,
    fresh_check_results,
    retrain_in_progress,
    retrain_job,
)
from mlops_assets.pipeline import load_params, project_root
from mlops_assets.stages import StageResult

LOG_DAYS = dg.DynamicPartitionsDefinition(name="inference_days")
BATCHES = dg.DynamicPartitionsDefinition(name=BATCHES_NAME)  # == defs/assets.py BATCHES
GROUP = "live_monitoring"  # not "monitoring": drift_report (a DVC stage) is in that group
LIVE_ASSET: dict[str, Any] = {  # what every live-monitoring asset shares
    "group_name": GROUP, "owners": OWNERS, "tags": REGISTRY_TAGS, "metadata": NOT_MIRRORED}
QUALITY_CHECK = "live_quality_within_bounds"
QUALITY_CHECK_KEY = dg.AssetCheckKey(dg.AssetKey("live_performance"), QUALITY_CHECK)
DRIFT_CHECK_NAME, _, DRIFT_CHECK_DESC = CHECKS["drift_report"][0]
LOG_ASSETS = ["inference_log", "live_drift_report"]
PERFORMANCE_ASSETS = ["labels", "live_performance"]
LIVE_QUALITY_EVENT_TAG = "mlops_assets/live_quality_event"


def _setup(root: Path) -> tuple[dict[str, Any], dict[str, Any], Contract]:
    """(params, monitoring settings, contract) of the project."""
    params = load_params(root)
    return params, lp.monitoring_settings(params), load_contract(root / params["dataset"]["contract"])


def _schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in df.dtypes.items()])


def _counts(df: pd.DataFrame, column: str) -> dg.JsonMetadataValue:
    return dg.MetadataValue.json({str(k): int(v)
                                  for k, v in df.groupby(column).size().sort_index().items()})


# ------------------------------------------------------------------------ inference_log


@dg.asset(
    key="inference_log",
    **LIVE_ASSET,
    partitions_def=LOG_DAYS,
    kinds={"parquet"},
    description="One day of the service's inference log (every scored record: features, "
                "score, decision, model version, request time), its append-only segments "
                "consolidated into one Parquet. Data version: md5 of that file.",
)
def inference_log(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    root = project_root()
    _, s, _ = _setup(root)
    day = context.partition_key
    df, files, dest = consolidate_day(root, s, day)
    md5 = md5_file(dest)
    context.log.info(f"{day}: {len(df)} records from {len(files)} segments -> {rel(root, dest)}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(md5),
        metadata={
            "dagster/row_count": len(df),
            "dagster/column_schema": _schema(df),
            "segments": len(files),
            "model_versions": _counts(df, "model_version"),
            "served_by": _counts(df, "served_by"),
            "request_time_range": f"{df['request_time'].min()} .. {df['request_time'].max()}",
            "alerts": int(df["decision"].sum()),
            "md5": md5,
            "path": dg.MetadataValue.path(str(dest)),
        })


# ------------------------------------------------------------------------ live drift


def _rekey(result: dg.AssetCheckResult, key: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=result.check_name, asset_key=key, passed=result.passed,
                               severity=result.severity, metadata=result.metadata,
                               description=result.description)


@dg.asset(
    key="live_drift_report",
    **LIVE_ASSET,
    partitions_def=LOG_DAYS,
    deps=["inference_log", "production_model"],
    kinds={"scipy"},
    check_specs=[dg.AssetCheckSpec(DRIFT_CHECK_NAME, asset="live_drift_report", blocking=False,
                                   description=DRIFT_CHECK_DESC.replace(
                                       "The newest batch", "This day's live traffic"))],
    description="Drift of one day of live traffic (the inference log as the current data) "
                "against the production model's training reference, by the same engine and "
                "check as drift_report.",
)
def live_drift_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    root = project_root()
    day = context.partition_key
    params, s, _ = _setup(root)
    report, jpath, hpath = live_drift.live_drift(root, day, s, params.get("drift", {}))
    result = StageResult("live_drift", [rel(root, jpath), rel(root, hpath)], {"report": report})
    meta = asset_metadata("drift_report", result, root)
    meta.update({"html_report": dg.MetadataValue.url(hpath.resolve().as_uri()),
                 "json_report": dg.MetadataValue.path(str(jpath)),
                 "model_version": str(report["lineage"]["model_version"]),
                 "dagster/row_count": int(report["lineage"]["current_rows"])})
    md5 = md5_file(jpath)
    drifted = live_drift.drifted_feature_names(report)
    _audit(root, {"kind": "live_drift", "action": "live_drift_result", "by": "dagster",
                  "run_id": context.run.run_id, "severity": report.get("severity"),
                  "drift_share": report.get("drift_share"), "drifted_features": drifted[:20],
                  "batch": f"inference_log:{day}", "report_md5": md5,
                  "model_version": report["lineage"]["model_version"],
                  "reason": f"live drift report: severity {report.get('severity')}"})
    checks = [_rekey(c, "live_drift_report") for c in check_results("drift_report", result, root)]
    return dg.MaterializeResult(data_version=dg.DataVersion(md5), metadata=meta,
                                check_results=checks)


# ------------------------------------------------------------------------ labels


@dg.asset(
    key="labels",
    **LIVE_ASSET,
    kinds={"parquet"},
    description="The delayed fraud labels (record id, label, label time) landed in "
                "monitoring.labels_dir, validated and merged (a later label time corrects an "
                "earlier label). Data version: md5 of the merged table.",
)
def labels(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    root = project_root()
    _, s, contract = _setup(root)
    dest, summary, files = lp.merge_labels(root, s, contract)
    md5 = md5_file(dest)
    context.log.info(f"{summary['ids']} labelled records from {len(files)} files")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(md5),
        metadata={"dagster/row_count": summary["ids"], "files": len(files),
                  "label_rows": summary["rows"], "corrections": summary["corrections"],
                  "positives": summary["positives"],
                  "label_time_range": " .. ".join(summary.get("label_time_range", [])),
                  "sources": dg.MetadataValue.json(summary["files"]),
                  "md5": md5, "path": dg.MetadataValue.path(str(dest))})


# ------------------------------------------------------------------------ live performance


@dg.asset(
    key="live_performance",
    **LIVE_ASSET,
    deps=["inference_log", "labels"],
    kinds={"pandas"},
    check_specs=[dg.AssetCheckSpec(
        QUALITY_CHECK, asset="live_performance", blocking=False,
        description="Live FPR and recall (labelled records, newest monitoring.window_periods "
                    "days) stay within monitoring.max_fpr_increase / max_recall_drop of the "
                    "holdout evaluation. Fails (ERROR) so the retrain automation can react.")],
    description="Live quality as labels arrive: per day, model version and route, precision, "
                "recall, FPR at the operating threshold and alert volume from the labelled "
                "records, and a CBPE estimate (estimated: true) for the records not labelled "
                "yet.",
)
def live_performance(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    root = project_root()
    _, s, contract = _setup(root)
    report, dest = lp.compute_live_performance(root, s, contract)
    md5 = md5_file(dest)
    version, head = lp.headline(report, (production_pointer(root) or {}).get("version"))
    totals = report["versions"].get(version, {}) if version else {}
    check = report["check"]
    meta: dict[str, Any] = {
        "table": dg.MetadataValue.md(lp.markdown_table(report)),
        "json_report": dg.MetadataValue.path(str(dest)),
        "log_records": report["n_log_records"], "labelled_records": report["n_labelled"],
        "model_version": str(version), "window": ", ".join(check["window"]),
        "md5": md5,
    }
    for k in ("fpr", "recall", "baseline_fpr", "baseline_recall"):
        if head.get(k) is not None:
            meta[k] = float(head[k])
    if totals:
        if totals["measured"]["precision"] is not None:
            meta["precision"] = float(totals["measured"]["precision"])
        meta["alert_volume"] = int(totals["alerts"])
        meta["alert_rate"] = float(totals["alert_rate"])
        est = totals["estimated"]
        for k in ("fpr", "recall", "precision"):
            if est.get(k) is not None:
                meta[f"estimated_{k} (CBPE, estimate)"] = float(est[k])
    if not check["passed"]:
        context.log.error("; ".join(check["reasons"]))
    result = dg.AssetCheckResult(
        check_name=QUALITY_CHECK, passed=bool(check["passed"]),
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(check["reasons"])[:2000] or None,
        metadata={"data_version": md5, "window": ", ".join(check["window"]),
                  "reasons": dg.MetadataValue.json(check["reasons"]),
                  "versions": dg.MetadataValue.json(check["versions"]),
                  "thresholds": dg.MetadataValue.json(check["thresholds"])})
    return dg.MaterializeResult(data_version=dg.DataVersion(md5), metadata=meta,
                                check_results=[result])


# ------------------------------------------------------------------------ batch predictions


@dg.asset(
    key="batch_predictions",
    **LIVE_ASSET,
    partitions_def=BATCHES,
    deps=["raw_snapshots", "production_model"],
    kinds={"scikitlearn", "parquet"},
    description="A whole snapshot scored by the production model (pinned by its registry "
                "version hash) with the service's output columns (the inference log's), "
                "for offline backfills.",
)
def batch_predictions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    root = project_root()
    _, s, contract = _setup(root)
    scored, dest, entry, model = batch_scoring.score_snapshot(root, s, contract,
                                                              context.partition_key)
    md5 = md5_file(dest)
    facts = batch_scoring.summary(scored)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(md5),
        metadata={"dagster/row_count": facts["rows"], "dagster/column_schema": _schema(scored),
                  "model_version": model.version, "threshold": float(model.threshold),
                  "snapshot_md5": entry.md5, "alerts": facts["alerts"],
                  **{k: float(v) for k, v in facts.items()
                     if (k.startswith("score_") or k == "alert_rate") and v is not None},
                  "md5": md5, "path": dg.MetadataValue.path(str(dest))})


# ------------------------------------------------------------------------ sensors


def _params_or_empty(root: Path) -> dict[str, Any]:
    try:
        return load_params(root)
    except OSError:
        return {}


def _interval() -> int:
    """The sensors' tick interval, read at load time; a bad monitoring section must not stop
    the code location from loading (the assets report it when they run)."""
    try:
        return int(lp.monitoring_settings(_params_or_empty(project_root()))["sensor_interval_seconds"])
    except (DataError, TypeError, ValueError):
        return int(lp.MONITORING_DEFAULTS["sensor_interval_seconds"])


@dg.sensor(
    name="monitoring_sensor",
    asset_selection=dg.AssetSelection.assets(*LOG_ASSETS, *PERFORMANCE_ASSETS),
    minimum_interval_seconds=_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New inference-log dates -> 'inference_days' partitions; a day whose segments "
                "changed and settled -> its consolidation and live drift report; new label "
                "files or a new consolidated day -> labels and live_performance. Nothing "
                "while the service has logged nothing.",
)
def monitoring_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    root = project_root()
    s = lp.monitoring_settings(_params_or_empty(root))
    cursor = json.loads(context.cursor) if context.cursor else {}
    seen: dict[str, str] = dict(cursor.get("days", {}))
    days = scan_log_days(root / s["inference_log_dir"])
    if not days:
        return dg.SkipReason(f"no inference log under {s['inference_log_dir']} yet")
    existing = set(context.instance.get_dynamic_partitions(LOG_DAYS.name))
    new_keys = [d for d in days if d not in existing]
    ready, waiting = settled_changes(days, seen, dt.datetime.now().timestamp(),
                                     float(s["log_settle_seconds"]))
    requests: list[dg.RunRequest] = []
    for day in ready:
        seen[day] = days[day]["sig"]
        requests.append(dg.RunRequest(run_key=f"inference_log:{day}:{days[day]['sig']}",
                                      partition_key=day,
                                      asset_selection=[dg.AssetKey(k) for k in LOG_ASSETS],
                                      tags={TRIGGER_TAG: "inference_log"}))
    perf = cursor.get("perf")
    if not requests:  # after this tick's consolidations, never racing them
        latest = context.instance.fetch_materializations(
            dg.AssetKey("inference_log"), limit=1).records
        if latest:
            key = hashlib.md5(f"{labels_signature(label_files(root, s))}:{latest[0].storage_id}"
                              .encode()).hexdigest()[:16]
            if key != perf:
                perf = key
                requests.append(dg.RunRequest(
                    run_key=f"live_performance:{key}",
                    asset_selection=[dg.AssetKey(k) for k in PERFORMANCE_ASSETS],
                    tags={TRIGGER_TAG: "labels_or_log"}))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(
            partitions_def_name=LOG_DAYS.name, partition_keys=new_keys)] if new_keys else [],
        cursor=json.dumps({"days": seen, "perf": perf}, sort_keys=True),
        skip_reason=None if requests else (
            f"waiting for {waiting} to settle (no new segment for "
            f"{s['log_settle_seconds']}s)" if waiting else "inference log and labels unchanged"))


@dg.sensor(
    name="live_quality_retrain_sensor",
    job=retrain_job,
    minimum_interval_seconds=_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed live_performance:live_quality_within_bounds check -> exactly one "
                "retrain per failed evaluation, keyed on the live_performance data version; "
                "none while a retrain is in progress.",
)
def live_quality_retrain_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus as Status,
    )

    root = project_root()
    params = _params_or_empty(root)
    cursor = json.loads(context.cursor) if context.cursor else {}
    after = int(cursor.get("after", 0))
    handled: list[str] = list(cursor.get("handled", []))
    fresh = fresh_check_results(context.instance, QUALITY_CHECK_KEY, after)
    if not fresh:
        return dg.SensorResult(skip_reason="no new live-quality check results",
                               cursor=context.cursor)
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    for r in fresh:
        if r.status == Status.SUCCEEDED:
            notes.append("live quality within bounds: no retrain")
            continue
        evaluation = r.event.get_dagster_event().event_specific_data \
            if r.event and r.event.dagster_event else None
        meta = getattr(evaluation, "metadata", {}) or {}
        dv = getattr(meta.get("data_version"), "value", None)
        if not dv:
            notes.append(f"failed evaluation {r.id} without a data version: skipped")
            continue
        if dv in handled:
            notes.append(f"live-quality event {dv} already handled")
            continue
        handled.append(dv)
        busy = retrain_in_progress(context.instance)
        if busy or requests:
            why = f"retrain {busy} in progress" if busy else "a retrain was just requested"
            notes.append(f"live-quality event {dv} absorbed: {why}")
            _audit(root, {"kind": "live_quality", "action": "retrain_absorbed", "event": dv,
                          "by": "live_quality_retrain_sensor", "reason": why})
            continue
        newest = newest_timestamp(root, params) if params else None
        if newest is None:
            notes.append(f"live-quality event {dv}: no feature table to retrain on")
            continue
        window = retrain_window(newest, params)
        run_key = f"live_quality:{dv}"
        reasons = getattr(meta.get("reasons"), "value", None) or []
        requests.append(dg.RunRequest(
            run_key=run_key, run_config=retrain_run_config(window),
            tags={TRIGGER_TAG: "live_quality", LIVE_QUALITY_EVENT_TAG: dv,
                  "mlops_assets/cutoff": window["cutoff"],
                  "mlops_assets/holdout_end": window["holdout_end"]}))
        context.log.info(f"live quality out of bounds ({'; '.join(reasons)}): retrain with "
                         f"cutoff {window['cutoff']}")
        _audit(root, {"kind": "live_quality", "action": "retrain_requested", "event": dv,
                      "run_key": run_key, "by": "live_quality_retrain_sensor", **window,
                      "reason": "; ".join(reasons)[:500] or "live_quality_within_bounds failed"})
    new_cursor = json.dumps({"after": max(r.id for r in fresh), "handled": handled[-500:]},
                            sort_keys=True)
    return dg.SensorResult(run_requests=requests, cursor=new_cursor,
                           skip_reason=None if requests else ("; ".join(notes) or "nothing to do"))
