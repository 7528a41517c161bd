"""The automation policy, without Dagster: what the landing sensor, the drift -> retrain
sensor and the weekly schedule (defs/sensors.py, whose docstring is the spec) decide.

The sensors read state (instance, cursor, files), call these functions and act on the
answer (RunRequest, SensorResult, audit log). Everything here takes plain values (time,
cursor dicts, lists of candidates) so each decision is a millisecond unit test."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_assets.core.contract import load_contract
from mlops_assets.core.ingest import batch_key, list_landing_batches, load_manifest
from mlops_assets.core.io import DataError, md5_file
from mlops_assets.core.layout import (
    DRIFT_JSON,
    FEATURES,
    MODEL,
    MODEL_RECORD,
    REFERENCE_PROFILE,
    REFERENCE_VALUES,
    SNAPSHOTS,
)
from mlops_assets.core.store import dvc_cache_object

LANDING_EVENT_TAG = "mlops_assets/landing_event"
BATCH_TAG = "mlops_assets/batch"
BATCH_MD5_TAG = "mlops_assets/batch_md5"
PREVIOUS_MD5_TAG = "mlops_assets/previous_md5"
TRIGGER_TAG = "mlops_assets/trigger"
DRIFT_EVENT_TAG = "mlops_assets/drift_event"
DRIFT_REPORT_MD5_TAG = "mlops_assets/drift_report_md5"
CUTOFF_TAG = "mlops_assets/cutoff"
HOLDOUT_END_TAG = "mlops_assets/holdout_end"

CHAIN_AFTER_LANDING = ["raw_snapshots", "validated_dataset", "feature_table", "drift_report"]
RETRAIN_ASSETS = ["training_set", "holdout_set", "model", "evaluation", "drift_report",
                  "model_candidate"]
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


def automation_settings(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """params `automation` over the defaults (a missing params.yaml still loads the defs)."""
    return {**AUTOMATION_DEFAULTS, **((params or {}).get("automation") or {})}


def retrain_settings(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """params `retrain` over the defaults."""
    return {**RETRAIN_DEFAULTS, **((params or {}).get("retrain") or {})}


def retrain_window(newest_ts: Any, params: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The split window of a retrain: a holdout of retrain.holdout_days ending with the
    newest labelled day (labels arrive retrain.label_delay_days late), and everything before
    its start (the cutoff) to train on. Dates as YYYY-MM-DD; holdout_end is exclusive."""
    s = retrain_settings(params)
    newest = pd.Timestamp(newest_ts).normalize() - pd.Timedelta(days=int(s["label_delay_days"]))
    end = newest + pd.Timedelta(days=1)
    cutoff = end - pd.Timedelta(days=int(s["holdout_days"]))
    return {"cutoff": cutoff.date().isoformat(), "holdout_end": end.date().isoformat()}


def retrain_run_config(window: Mapping[str, str]) -> dict[str, Any]:
    """Run config of the `retrain` job: the split op gets the window."""
    return {"ops": {"split": {"config": dict(window)}}}


def newest_timestamp(root: Path, params: Mapping[str, Any]) -> Any:
    """The newest event time in the feature table (what a calendar retrain ends on), or
    None before the first feature table."""
    path = root / FEATURES
    if not path.exists():
        return None
    ts = load_contract(root / params["dataset"]["contract"]).timestamp_column
    newest = pd.read_parquet(path, columns=[ts])[ts].max()
    return None if pd.isna(newest) else newest


# ------------------------------------------------------------------------ landing


def scan_landing(landing: Path, cursor: Mapping[str, Any], now: float,
                 settle_seconds: float) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """One tick's view of the landing area. Returns (settled events, new cursor, notes).

    Settled: (size, mtime) unchanged since the previous tick, or mtime older than
    `settle_seconds` before `now`. Cursor: {"files": {name: {"size", "mtime_ns", "md5" |
    None}}}; md5 None means "seen, not settled yet". Events: {"name", "key", "md5",
    "kind": new | changed, "previous"}."""
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
        before = (prev or {}).get("md5") or (prev or {}).get("last_md5")
        stable = (prev is not None and prev["size"] == size and prev["mtime_ns"] == mtime) \
            or (now - st.st_mtime) >= settle_seconds
        if not stable or size == 0:
            files[p.name] = {"size": size, "mtime_ns": mtime, "md5": None, "last_md5": before}
            notes.append(f"{p.name}: still being written (size/mtime not yet stable)")
            continue
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
    return all((root / p).is_file() for p in (MODEL, MODEL_RECORD, REFERENCE_PROFILE,
                                              REFERENCE_VALUES))


def snapshotted(root: Path) -> dict[str, str]:
    """batch key -> md5 of its current snapshot (the manifest), {} if there is none."""
    try:
        return {e["batch"]: e["md5"] for e in load_manifest(root / SNAPSHOTS)["entries"]}
    except DataError:
        return {}


@dataclass(frozen=True)
class LandingRun:
    """One landing run to request (run key `<batch>:<md5>`), and its audit event if any."""

    run_key: str
    partition_key: str
    tags: dict[str, str]
    audit: dict[str, Any] | None = None
    warning: str | None = None


@dataclass(frozen=True)
class LandingPlan:
    runs: list[LandingRun]
    new_partitions: list[str]
    notes: list[str]


def plan_landing(events: Iterable[Mapping[str, Any]], snapshot_md5: Mapping[str, str],
                 partitions: Iterable[str]) -> LandingPlan:
    """Settled landing events -> runs: none for bytes that already are the batch's snapshot
    (the chain's own landing run, a reset cursor); a changed file is a new, audited run of
    the same partition; new batch keys become partitions."""
    runs: list[LandingRun] = []
    notes: list[str] = []
    for e in events:
        if snapshot_md5.get(e["key"]) == e["md5"]:
            notes.append(f"{e['name']}: md5 {e['md5']} is already snapshotted; no run")
            continue
        tags = {BATCH_TAG: e["key"], BATCH_MD5_TAG: e["md5"], LANDING_EVENT_TAG: e["kind"],
                TRIGGER_TAG: "landing"}
        audit = warning = None
        if e["kind"] == "changed":
            tags[PREVIOUS_MD5_TAG] = e["previous"]
            warning = (f"{e['name']} CHANGED: md5 {e['previous']} -> {e['md5']}; snapshotting "
                       f"the new content as a new version of batch {e['key']} (the old "
                       "snapshot is kept)")
            audit = {"kind": "landing", "action": "batch_changed", "batch": e["key"],
                     "file": e["name"], "from_md5": e["previous"], "to_md5": e["md5"],
                     "by": "landing_sensor", "reason": "same file name, new content"}
        runs.append(LandingRun(f"{e['key']}:{e['md5']}", e["key"], tags, audit, warning))
    new = sorted({r.partition_key for r in runs} - set(partitions))
    return LandingPlan(runs, new, notes)


def landing_assets(drift_ready: bool) -> list[str]:
    """What a landing run materialises: the whole chain after landing, or, with no trained
    model yet, everything but the drift report (which would fail without a reference)."""
    return list(CHAIN_AFTER_LANDING) if drift_ready else \
        [k for k in CHAIN_AFTER_LANDING if k != "drift_report"]


# ------------------------------------------------------------------------ drift -> retrain


def read_pinned_report(root: Path, data_version: str | None) -> dict[str, Any] | None:
    """The drift.json whose dvc md5 is `data_version`: from the DVC cache (wherever
    cache.dir puts it), or the working tree if it still has those bytes (the pinned
    version, never "whatever is newest")."""
    candidates = [dvc_cache_object(root, data_version)] if data_version else []
    candidates.append(root / DRIFT_JSON)
    for p in candidates:
        if p.is_file() and (not data_version or md5_file(p) == data_version):
            return json.loads(p.read_text())
    return None


def drift_event_key(report: Mapping[str, Any],
                    snapshot_md5: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """The identity of a drift event: the drifted batch and its content md5 (from
    `snapshotted`), so re-running the report for the same bytes is the same event."""
    lineage = report.get("lineage", {})
    batch = str(lineage.get("current_batch"))
    md5 = snapshot_md5.get(batch)
    ident = f"{batch}:{md5 or lineage.get('current_window')}"
    info = {"batch": batch, "batch_md5": md5, "window": lineage.get("current_window"),
            "severity": report.get("severity"), "drift_share": report.get("drift_share"),
            "drifted_features": [f if isinstance(f, str) else f.get("name")
                                 for f in (report.get("drifted_features") or [])][:10]}
    return hashlib.md5(ident.encode()).hexdigest()[:16], info


@dataclass(frozen=True)
class DriftEvent:
    """One evaluation of the drift check: passed (a normal batch) or failed (drift)."""

    passed: bool
    key: str
    info: dict[str, Any]
    report_md5: str | None = None


@dataclass(frozen=True)
class RetrainState:
    """The drift sensor's memory: handled event -> run key or `absorbed:<by>`, and the
    open drift episode ({"key", "batch", "run_key"}) or None."""

    handled: dict[str, str] = field(default_factory=dict)
    episode: dict[str, str] | None = None

    @classmethod
    def from_cursor(cls, cursor: Mapping[str, Any]) -> RetrainState:
        return cls(dict(cursor.get("handled", {})), cursor.get("episode"))

    def to_cursor(self, after: int) -> str:
        """The cursor JSON (format unchanged: after, handled, episode); keeps the newest
        HANDLED_KEEP events."""
        handled = dict(list(self.handled.items())[-HANDLED_KEEP:])
        return json.dumps({"after": after, "handled": handled, "episode": self.episode},
                          sort_keys=True)


@dataclass(frozen=True)
class RetrainDecision:
    """What to do with one drift check result. action: retrain | absorbed | handled | ignore."""

    action: str
    reason: str
    state: RetrainState
    audit: dict[str, Any] | None = None
    run_key: str | None = None
    run_config: dict[str, Any] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    log: str | None = None


def decide_retrain(event: DriftEvent, state: RetrainState, *, running: str | None,
                   awaiting: list[str], settings: Mapping[str, Any],
                   requested_this_tick: bool = False) -> RetrainDecision:
    """The retrain policy for one drift check result (see defs/sensors.py): exactly one
    retrain per drift event; absorbed while a retrain runs, a drift candidate awaits
    approval, a retrain was just requested, or the drift episode is still open."""
    info, key, episode = event.info, event.key, state.episode
    if event.passed:
        reason = f"drift check passed on {info['batch']}: no retrain"
        if episode and info["batch"] != episode["batch"] and key not in state.handled:
            return RetrainDecision("ignore", reason, replace(state, episode=None),
                                   log=f"drift episode opened by {episode['batch']} closed "
                                       f"by the normal batch {info['batch']}")
        return RetrainDecision("ignore", reason, state)
    if key in state.handled:
        return RetrainDecision("handled", f"drift on {info['batch']} already handled by "
                                          f"{state.handled[key]}", state)
    busy, why = _absorbed_by(state, running, awaiting, settings, requested_this_tick)
    if busy:
        audit = {"kind": "drift", "action": "retrain_absorbed", "event": key,
                 "absorbed_by": busy, "by": "drift_retrain_sensor", **info, "reason": why}
        return RetrainDecision("absorbed", f"drift on {info['batch']} absorbed by {busy}",
                               replace(state, handled={**state.handled, key: f"absorbed:{busy}"}),
                               audit=audit)
    if not info.get("window"):
        return RetrainDecision("ignore", f"drift on {info['batch']}: no time window in the "
                                         "report", state)
    return _retrain(event, state, settings)


def _absorbed_by(state: RetrainState, running: str | None, awaiting: list[str],
                 settings: Mapping[str, Any], requested_this_tick: bool
                 ) -> tuple[str | None, str]:
    """What absorbs a new drift event, and why; (None, "") when nothing does."""
    if running:
        return running, "a retrain is already in progress"
    if settings["wait_for_pending_approval"] and awaiting:
        return (f"candidate {awaiting[-1][:12]} (awaiting approval)",
                "a candidate from an earlier drift retrain awaits approval")
    if requested_this_tick:
        return "the retrain requested in this tick", "a retrain was just requested"
    ep = state.episode
    if ep and settings["per_drift_episode"]:
        return (f"the drift episode opened by {ep['batch']} ({ep['run_key']})",
                "drift persists since the last retrain (no normal batch in between)")
    return None, ""


def _retrain(event: DriftEvent, state: RetrainState,
             settings: Mapping[str, Any]) -> RetrainDecision:
    info, key = event.info, event.key
    window = retrain_window(info["window"][1], {"retrain": dict(settings)})
    run_key = f"retrain:{key}"
    tags = {TRIGGER_TAG: "drift", DRIFT_EVENT_TAG: key, BATCH_TAG: info["batch"],
            DRIFT_REPORT_MD5_TAG: event.report_md5 or "", CUTOFF_TAG: window["cutoff"],
            HOLDOUT_END_TAG: window["holdout_end"]}
    audit = {"kind": "drift", "action": "retrain_requested", "event": key, "run_key": run_key,
             "by": "drift_retrain_sensor", **info, **window,
             "reason": "no_significant_drift check failed"}
    new = RetrainState({**state.handled, key: run_key},
                       {"key": key, "batch": info["batch"], "run_key": run_key})
    return RetrainDecision(
        "retrain", f"drift on {info['batch']}: retrain with cutoff {window['cutoff']}", new,
        audit=audit, run_key=run_key, run_config=retrain_run_config(window), tags=tags,
        log=f"significant drift on {info['batch']} ({info['drifted_features']}): retrain "
            f"with cutoff {window['cutoff']}")


# ------------------------------------------------------------------------ weekly schedule


def weekly_retrain(params: Mapping[str, Any], running: str | None, newest: Any,
                   tick_date: str | None) -> tuple[str, dict[str, Any] | None]:
    """The calendar retrain: (skip reason, None) or (run key, {"run_config", "tags"})."""
    if not automation_settings(params)["weekly_retrain"]:
        return "automation.weekly_retrain is false in params.yaml", None
    if running:
        return f"a retrain ({running}) is still in progress", None
    if newest is None:
        return "no feature table yet: nothing to retrain on", None
    window = retrain_window(newest, params)
    return f"weekly:{tick_date or window['cutoff']}", {
        "run_config": retrain_run_config(window),
        "tags": {TRIGGER_TAG: "schedule", CUTOFF_TAG: window["cutoff"]}}
