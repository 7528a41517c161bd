"""Monitoring in Dagster: the service's traffic as assets, live drift, delayed labels, live
quality, and offline batch scoring (issue 6). Thin: the logic is core.live_performance,
core.batch_scoring, core.drift and the service's own log reader and model loader.

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
    A snapshot scored by the production model (pinned by its version hash, loaded by the
    service's loader) with the inference log's columns.
"""

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from mlops_assets.core.automation import newest_timestamp as _newest_timestamp
from mlops_assets.core.automation import retrain_run_config, retrain_window
from mlops_assets.core.io import DataError, md5_file, read_table, write_json_atomic
from mlops_assets.core.monitoring import live_performance as lp
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


def _setup(root: Path) -> tuple[dict[str, Any], dict[str, Any], Any]:
    from mlops_assets.core.contract import load_contract

    params = load_params(root)
    return params, lp.monitoring_settings(params), load_contract(root / params["dataset"]["contract"])


def _out(root: Path, settings: dict[str, Any], *parts: str) -> Path:
    return root / settings["output_dir"] / Path(*parts)


def _rel(root: Path, p: Path) -> str:
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)


def _schema(df: pd.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in df.dtypes.items()])


def consolidated_log_path(root: Path, settings: dict[str, Any], day: str) -> Path:
    return _out(root, settings, "inference_log", f"date={day}.parquet")


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
    from mlops_assets.core.io import write_parquet_atomic
    from mlops_assets.core.monitoring.inference_log import read_inference_log, segment_files

    root = project_root()
    _, s, _ = _setup(root)
    day = context.partition_key
    log_dir = root / s["inference_log_dir"]
    files = segment_files(log_dir, [day])
    if not files:
        raise DataError(f"the inference log has no segments for {day}",
                        path=log_dir / f"date={day}", expected="seg-*.parquet written by the service")
    df = read_inference_log(log_dir, [day])
    df = df.sort_values(["request_time", "request_id", "record_index", "served_by"],
                        kind="stable").reset_index(drop=True)
    dest = write_parquet_atomic(consolidated_log_path(root, s, day), df)
    md5 = md5_file(dest)
    versions = df.groupby("model_version").size().sort_index()
    routes = df.groupby("served_by").size().sort_index()
    context.log.info(f"{day}: {len(df)} records from {len(files)} segments -> {_rel(root, dest)}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(md5),
        metadata={
            "dagster/row_count": len(df),
            "dagster/column_schema": _schema(df),
            "segments": len(files),
            "model_versions": dg.MetadataValue.json({str(k): int(v) for k, v in versions.items()}),
            "served_by": dg.MetadataValue.json({str(k): int(v) for k, v in routes.items()}),
            "request_time_range": f"{df['request_time'].min()} .. {df['request_time'].max()}",
            "alerts": int(df["decision"].sum()),
            "md5": md5,
            "path": dg.MetadataValue.path(str(dest)),
        })


# ------------------------------------------------------------------------ live drift


def live_drift(root: Path, day: str) -> tuple[dict[str, Any], Path, Path]:
    """The drift report of one consolidated day against the production model's pinned
    reference profile; written as JSON + HTML. Returns (report, json path, html path)."""
    from mlops_assets.core import drift
    from mlops_assets.core.io import write_text_atomic
    from mlops_assets.serve.model_holder import NoProductionModel, read_pointer

    params, s, _ = _setup(root)
    src = consolidated_log_path(root, s, day)
    if not src.is_file():
        raise DataError(f"the inference log of {day} is not consolidated yet", path=src,
                        expected="a materialised inference_log partition")
    pointer = read_pointer(root)
    if pointer is None:
        raise NoProductionModel("no production model: its reference profile is the drift "
                                "reference", path=root / "registry/production.json")
    record = json.loads((root / pointer["record_path"]).read_text())
    version = pointer["version"]
    profile = lp.pinned_reference_profile(root, record)
    log = read_table(src)
    answered = log[log["served_by"] != "shadow"]
    mine = answered[answered["model_version"] == version]
    current, scores = (mine, mine["score"].to_numpy()) if len(mine) else (answered, None)
    current = current.reset_index(drop=True)
    lineage = {
        "inputs": {_rel(root, src): md5_file(src)},
        "model_version": version,
        "current_batch": f"inference_log:{day}",
        "current_window": [str(current["request_time"].min()), str(current["request_time"].max())],
        "current_rows": len(current),
        "current_model_versions": sorted(set(current["model_version"])),
        "reference_window": record.get("train_window"),
        "reference_rows": record.get("n_rows"),
        "params": params.get("drift", {}),
    }
    report = drift.drift_report(profile, current, scores, params.get("drift", {}), lineage,
                                record.get("feature_importance") or None)
    jpath = _out(root, s, "drift", f"date={day}.json")
    hpath = jpath.with_suffix(".html")
    write_json_atomic(jpath, report)
    write_text_atomic(hpath, drift.render_html(report, None, record.get("feature_importance")))
    return report, jpath, hpath


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
    from mlops_assets.stages import StageResult

    root = project_root()
    day = context.partition_key
    report, jpath, hpath = live_drift(root, day)
    result = StageResult("live_drift", [_rel(root, jpath), _rel(root, hpath)], {"report": report})
    meta = asset_metadata("drift_report", result, root)
    meta.update({"html_report": dg.MetadataValue.url(hpath.resolve().as_uri()),
                 "json_report": dg.MetadataValue.path(str(jpath)),
                 "model_version": str(report["lineage"]["model_version"]),
                 "dagster/row_count": int(report["lineage"]["current_rows"])})
    md5 = md5_file(jpath)
    drifted = [f if isinstance(f, str) else f.get("name")
               for f in (report.get("drifted_features") or [])]
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


def label_files(root: Path, settings: dict[str, Any]) -> list[Path]:
    from mlops_assets.core.ingest import list_landing_batches

    return list_landing_batches(root / settings["labels_dir"])


@dg.asset(
    key="labels",
    **LIVE_ASSET,
    kinds={"parquet"},
    description="The delayed fraud labels (record id, label, label time) landed in "
                "monitoring.labels_dir, validated and merged (a later label time corrects an "
                "earlier label). Data version: md5 of the merged table.",
)
def labels(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from mlops_assets.core.io import write_parquet_atomic

    root = project_root()
    _, s, contract = _setup(root)
    files = label_files(root, s)
    table, summary = lp.read_labels(files, contract)
    dest = write_parquet_atomic(_out(root, s, "labels.parquet"),
                                table.drop(columns=["_file"]))
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


def compute_live_performance(root: Path) -> tuple[dict[str, Any], Path]:
    """Every consolidated day joined to the merged labels; report (with the check) written
    as JSON. Returns (report, path)."""
    _, s, contract = _setup(root)
    days = sorted(_out(root, s, "inference_log").glob("date=*.parquet"))[-int(s["history_days"]):]
    if not days:
        raise DataError("no consolidated inference-log day yet",
                        path=_out(root, s, "inference_log"),
                        expected="materialised inference_log partitions")
    log = pd.concat([read_table(p) for p in days], ignore_index=True)
    lab_path = _out(root, s, "labels.parquet")
    labels_df = read_table(lab_path) if lab_path.is_file() else \
        lp.read_labels([], contract)[0]
    report = lp.live_performance(log, labels_df, contract, s["period"])
    baselines = {v: lp.baseline_for(root, v) for v in report["versions"]}
    report["check"] = lp.quality_check(report, baselines, s)
    report["inputs"] = {_rel(root, p): md5_file(p) for p in [*days, lab_path] if p.is_file()}
    dest = write_json_atomic(_out(root, s, "live_performance.json"), report)
    return report, dest


def _headline(report: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The production model's (else the busiest version's) window numbers."""
    from mlops_assets.serve.model_holder import read_pointer

    versions = report["check"]["versions"]
    pointer = read_pointer(project_root())
    v = pointer["version"] if pointer and pointer["version"] in report["versions"] else None
    if v is None and report["versions"]:
        v = max(report["versions"], key=lambda k: report["versions"][k]["n"])
    return v, versions.get(v, {}) if v else {}


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
    report, dest = compute_live_performance(root)
    md5 = md5_file(dest)
    version, head = _headline(report)
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
    from mlops_assets.core.ingest import manifest_entries, read_snapshot
    from mlops_assets.core.io import write_parquet_atomic
    from mlops_assets.core.layout import SNAPSHOTS
    from mlops_assets.core.monitoring import batch_scoring
    from mlops_assets.serve.model_holder import load_production

    root = project_root()
    _, s, contract = _setup(root)
    key = context.partition_key
    entry = next((e for e in manifest_entries(root / SNAPSHOTS) if e.batch == key), None)
    if entry is None:
        raise DataError(f"batch {key!r} has no snapshot", path=root / SNAPSHOTS / "manifest.json",
                        expected="a materialised raw_snapshots partition")
    raw = read_snapshot(root / SNAPSHOTS, entry)
    model = load_production(root, contract)  # the service's loader: md5-pinned, warmed up
    scored = batch_scoring.score_frame(raw, contract, model.pipeline, model.version,
                                       model.threshold, f"batch:{key}:{entry.md5}",
                                       source=entry.snapshot_file)
    dest = write_parquet_atomic(_out(root, s, "batch_predictions", f"{key}.parquet"), scored)
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


def scan_log_days(log_dir: Path) -> dict[str, dict[str, Any]]:
    """day -> {sig: md5 of its segment names (segments are immutable), newest: mtime}."""
    from mlops_assets.core.monitoring.inference_log import segment_files

    out: dict[str, dict[str, Any]] = {}
    for p in segment_files(log_dir):
        day = p.parent.name.removeprefix("date=")
        d = out.setdefault(day, {"names": [], "newest": 0.0})
        d["names"].append(p.name)
        try:
            d["newest"] = max(d["newest"], p.stat().st_mtime)
        except FileNotFoundError:
            continue
    return {day: {"sig": hashlib.md5("\n".join(d["names"]).encode()).hexdigest()[:16],
                  "newest": d["newest"], "segments": len(d["names"])}
            for day, d in sorted(out.items())}


def _labels_signature(files: list[Path]) -> str:
    h = hashlib.md5()
    for p in files:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


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
    now = dt.datetime.now().timestamp()
    requests: list[dg.RunRequest] = []
    waiting: list[str] = []
    for day, info in days.items():
        if seen.get(day) == info["sig"]:
            continue
        if now - info["newest"] < float(s["log_settle_seconds"]):
            waiting.append(day)
            continue
        seen[day] = info["sig"]
        requests.append(dg.RunRequest(run_key=f"inference_log:{day}:{info['sig']}",
                                      partition_key=day,
                                      asset_selection=[dg.AssetKey(k) for k in LOG_ASSETS],
                                      tags={TRIGGER_TAG: "inference_log"}))
    perf = cursor.get("perf")
    if not requests:  # after this tick's consolidations, never racing them
        latest = context.instance.fetch_materializations(
            dg.AssetKey("inference_log"), limit=1).records
        if latest:
            key = hashlib.md5(f"{_labels_signature(label_files(root, s))}:{latest[0].storage_id}"
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
        newest = _newest_timestamp(root, params) if params else None
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
