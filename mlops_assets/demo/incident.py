"""`mlops-assets incident`: the holiday incident replayed end to end, in the order it happened.

In a fresh copy of the project (a git repo of its own, with its own DVC cache, registry and
Dagster instance under `<workdir>/.dagster_home`):

1. the normal weeks land; the chain is materialised through Dagster; the model is
   registered and, with a person's approval given as run config, promoted to production;
2. a real `dagster-daemon run` is started on that instance (`--ui` adds the webserver),
   with the sensor intervals shortened in the workdir's params (automation.*: 3 s ticks,
   2 s settle) so the replay takes minutes; the holiday weeks are dropped into landing one
   at a time and the daemon's `landing_sensor` launches snapshot -> validation ->
   features -> drift for each;
3. the daemon's `drift_retrain_sensor` sees the failed `no_significant_drift` check and
   launches one retrain; the candidate is evaluated against production and waits;
4. after `--approve-after` weeks a person approves it (a `production_model` run with the
   approval as run config) and the false-positive rate of what serves comes back down.

Here we only drop files, wait (bounded by --timeout, a progress line on a TTY) for the
daemon's runs, read their results and give the approvals; the daemon is stopped at the
end, on errors and on Ctrl-C/SIGTERM. `--in-process` ticks the same sensors in this
process instead (deterministic, no subprocesses; for fast tests). Every run stays in the
instance's run history (open the UI on the workdir to see it) and every registry / drift
decision in registry/audit.log.jsonl.

The timeline (stdout, and `--json FILE`) has one row per week: rows, drift severity, top
drifted features, production version, the FPR of the serving model at its operating
threshold on that week's labels, and the actions taken.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

APPROVER = "risk-officer (incident replay)"


# ---------------------------------------------------------------------- workspace


def _project_files(src: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=src, capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if p and (src / p).is_file()]


def make_workspace(src: Path, dest: Path, overrides: dict[str, dict[str, Any]]) -> Path:
    """A copy of the project's source files as a fresh git repo, without data, lock or
    registry state (the pointer starts empty)."""
    from mlops_assets.repo.params_edit import update_params_section

    for rel in _project_files(src):
        if rel == "dvc.lock" or (rel.startswith("registry/") and rel != "registry/production.json"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    (dest / "registry").mkdir(exist_ok=True)
    (dest / "registry/production.json").write_text(
        json.dumps({"model_path": None, "record_path": None, "version": None}, indent=2,
                   sort_keys=True) + "\n")
    for section, values in overrides.items():
        update_params_section(dest / "params.yaml", section, values)
    env = {**os.environ, "GIT_AUTHOR_NAME": "incident", "GIT_COMMITTER_NAME": "incident",
           "GIT_AUTHOR_EMAIL": "incident@example.invalid",
           "GIT_COMMITTER_EMAIL": "incident@example.invalid"}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "incident replay workspace"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    (dest / ".dagster_home").mkdir(exist_ok=True)
    return dest


# ---------------------------------------------------------------------- helpers


def _execute(instance: Any, keys: list[str], tags: dict[str, str] | None = None,
             partition_key: str | None = None, run_config: dict | None = None) -> Any:
    import dagster as dg

    from mlops_assets.definitions import defs

    job = defs().resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(k) for k in keys})
    tags = dict(tags or {})
    if partition_key:
        tags["dagster/partition"] = partition_key
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    return job.execute_in_process(instance=instance, tags=tags,
                                  run_config={**quiet, **(run_config or {})},
                                  raise_on_error=False)


def _tick(sensor: Any, instance: Any, cursor: str | None) -> Any:
    import dagster as dg

    from mlops_assets.definitions import defs

    ctx = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                  cursor=cursor, definitions=defs())
    return sensor.evaluate_tick(ctx)


def _run_failed(run: Any) -> list[str]:
    return [str(ev.event_specific_data.error.message).splitlines()[0]
            for ev in run.all_events if ev.is_step_failure and ev.event_specific_data.error]


def _fpr(root: Path, version: str | None, batch: str) -> float | None:
    """FPR at the operating threshold of registry version `version` on one batch's labels."""
    from mlops_assets.core.contract import load_contract
    from mlops_assets.core.evaluate import classification_metrics
    from mlops_assets.core.io import read_table
    from mlops_assets.core.layout import FEATURES
    from mlops_assets.core.registry import Registry
    from mlops_assets.core.train import load_model, score
    from mlops_assets.pipeline import load_params

    if not version:
        return None
    info = Registry(root).get(version)
    record = json.loads((root / info["record_path"]).read_text())
    contract = load_contract(root / load_params(root)["dataset"]["contract"])
    feats = read_table(root / FEATURES)
    week = feats[feats["_batch"] == batch].reset_index(drop=True)
    if week.empty:
        return None
    scores = score(load_model(root / info["model_path"]), week, contract)
    m = classification_metrics(week[contract.label_column].to_numpy(), scores,
                               float(record["threshold"]))
    return None if m.get("fpr") is None else float(m["fpr"])


def _drift(root: Path) -> dict[str, Any]:
    from mlops_assets.core.layout import DRIFT_JSON

    rep = json.loads((root / DRIFT_JSON).read_text())
    return {"severity": rep.get("severity"), "drift_share": rep.get("drift_share"),
            "top_features": list(rep.get("drifted_features") or [])[:3],
            "batch": rep.get("lineage", {}).get("current_batch")}


# ---------------------------------------------------------------------- the story


FAST_AUTOMATION = {"landing_sensor_interval_seconds": 3, "drift_sensor_interval_seconds": 3,
                   "landing_settle_seconds": 2}


class Waiter:
    """Bounded waits with a one-line progress display on a TTY (silent otherwise)."""

    def __init__(self, timeout: float, services: list[Any], tty: bool | None = None) -> None:
        self.timeout = timeout
        self.services = services
        self.tty = sys.stdout.isatty() if tty is None else tty

    def until(self, pred: Any, what: str, timeout: float | None = None) -> Any:
        start = time.monotonic()
        limit = timeout or self.timeout
        try:
            while True:
                _guard_sigterm()
                for s in self.services:
                    if not s.alive():
                        raise SystemExit(f"{s.name} exited while waiting for {what}\n"
                                         f"{s.describe(6000)}")
                value = pred()
                if value:
                    return value
                waited = time.monotonic() - start
                if waited > limit:
                    logs = "\n".join(s.describe(6000) for s in self.services)
                    raise SystemExit(f"timed out after {limit:.0f}s waiting for {what}\n{logs}")
                if self.tty:
                    sys.stdout.write(f"\r  ... waiting for {what} ({waited:.0f}s)\033[K")
                    sys.stdout.flush()
                time.sleep(1)
        finally:
            if self.tty:
                sys.stdout.write("\r\033[K")
                sys.stdout.flush()


def _runs(instance: Any, **filters: Any) -> list[Any]:
    import dagster as dg

    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(**filters))]


def _sensor_cursor(instance: Any, name: str) -> dict[str, Any] | None:
    for state in instance.all_instigator_state():
        if state.name == name and state.instigator_data is not None:
            cursor = getattr(state.instigator_data, "cursor", None)
            return json.loads(cursor) if cursor else None
    return None


def _landing_report(root: Path, instance: Any, run_id: str) -> dict[str, Any]:
    """The drift report the landing run `run_id` materialised (pinned by its dvc md5: the
    retrain that may follow rewrites data/reports/drift.json)."""
    import dagster as dg

    from mlops_assets.core.automation import read_pinned_report
    from mlops_assets.core.layout import DRIFT_JSON

    recs = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("drift_report")), limit=20).records
    for rec in recs:
        if rec.run_id == run_id:
            outs = rec.asset_materialization.metadata.get("dvc/outs")
            md5 = (getattr(outs, "value", None) or {}).get(DRIFT_JSON)
            report = read_pinned_report(root, md5)
            if report is not None:
                return report
    raise SystemExit(f"landing run {run_id[:8]} left no drift report")


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {"severity": report.get("severity"), "drift_share": report.get("drift_share"),
            "top_features": [f if isinstance(f, str) else f.get("name")
                             for f in (report.get("drifted_features") or [])][:3]}


def _candidate(root: Path, cutoff: str | None) -> tuple[dict[str, Any], bool]:
    cand = json.loads((root / "data/model/model.json").read_text())["model_md5"]
    ev = json.loads((root / "data/reports/evaluation.json").read_text())
    return ({"version": cand, "cutoff": cutoff, "eligible": ev["gate"]["eligible"],
             "compared_with": ev["reference"]["name"],
             "candidate_pr_auc": ev["candidate"]["pr_auc"],
             "production_pr_auc": ev["reference"]["pr_auc"],
             "candidate_fpr_holdout": ev["candidate"]["fpr"],
             "production_fpr_holdout": ev["reference"]["fpr"]}, bool(ev["gate"]["eligible"]))


def _approve(instance: Any, version: str, reason: str) -> Any:
    """A person's approval: a production_model run with the approval as run config."""
    approval = {"ops": {"production_model": {"config": {
        "approved_by": APPROVER, "version": version, "reason": reason}}}}
    return _execute(instance, ["production_model"], run_config=approval,
                    tags={"mlops_assets/trigger": "approval"})


def _setup(workdir: Path, rows_per_week: int | None, daemon: bool) -> tuple[Path, Any, list, list]:
    src = Path(__file__).resolve().parent.parent
    import yaml

    params = yaml.safe_load((src / "params.yaml").read_text())
    sample = dict(params["sample_data"])
    if rows_per_week:
        sample["rows_per_week"] = rows_per_week
    from mlops_assets.core.generate import FraudScenario

    full = FraudScenario.from_params(sample)
    normal = [i for i in range(full.weeks) if not full.is_holiday_week(i)]
    holiday = [i for i in range(full.weeks) if full.is_holiday_week(i)]
    if not normal or not holiday:
        raise SystemExit("the sample scenario needs normal weeks before holiday weeks")
    overrides: dict[str, dict[str, Any]] = {"sample_data": {
        "weeks": len(normal), **({"rows_per_week": rows_per_week} if rows_per_week else {})}}
    if daemon:  # read at definition load: the daemon ticks every few seconds, not every 30
        overrides["automation"] = dict(FAST_AUTOMATION)
    root = make_workspace(src, workdir, overrides)
    os.environ["MLOPS_ASSETS_ROOT"] = str(root)
    os.environ["DAGSTER_HOME"] = str(root / ".dagster_home")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.chdir(root)

    import logging
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    for name in ("dagster", "dvc", "dvc.dvcfile"):  # the timeline is the output
        logging.getLogger(name).setLevel(logging.WARNING)
    return root, full, normal, holiday


def _normal_weeks(root: Path, instance: Any, full: Any, normal: list[int],
                  say: Any) -> tuple[list[dict[str, Any]], str]:
    """Land the normal weeks, run the chain through Dagster, approve the first model."""
    from mlops_assets.core.ingest import batch_key
    from mlops_assets.demo.orchestrate import materialize_chain

    t0 = time.perf_counter()
    say(f"[incident] workspace {root}")
    say(f"[incident] {len(normal)} normal weeks land; the chain runs through Dagster ...")
    summary = materialize_chain(root, progress=False, instance=instance)
    if not summary["success"]:
        raise SystemExit(f"the chain failed: {summary['failed_steps']} {summary['errors']}")
    first = json.loads((root / "data/model/model.json").read_text())["model_md5"]
    ev = json.loads((root / "data/reports/evaluation.json").read_text())
    run = _approve(instance, first, f"initial model; gate vs {ev['reference']['name']}: "
                                    f"PR AUC {ev['candidate']['pr_auc']:.3f}")
    if not run.success:
        raise SystemExit(f"initial promotion refused: {_run_failed(run)}")
    say(f"[incident] model {first[:12]} approved by {APPROVER} and promoted "
        f"({time.perf_counter() - t0:.0f}s)")
    first_drift = _drift(root)
    timeline = []
    for i in normal:
        key = batch_key(Path(full.file_name(i)))
        actions = ["land"]
        if i == normal[-1]:
            actions += ["train", "evaluate", "approve", "promote"]
        row = {"week": full.week_start(i).isoformat(), "batch": key, "period": "normal",
               "rows": full.rows_per_week, "severity": None, "drift_share": None,
               "top_features": [], "production_version": first,
               "fpr": _fpr(root, first, key), "actions": actions}
        if i == normal[-1]:
            row.update({k: first_drift[k] for k in ("severity", "drift_share", "top_features")})
        timeline.append(row)
    return timeline, first


def replay(workdir: Path, rows_per_week: int | None = None, approve_after: int = 1,
           say: Any = print, in_process: bool = False, ui: bool = False,
           timeout: float = 900) -> list[dict[str, Any]]:
    """Play the incident in `workdir` (created from this checkout); return the timeline.
    Default: against `dagster-daemon run` (and with `ui` the webserver) started on the
    workdir's DAGSTER_HOME; `in_process`: the sensors ticked here, deterministically."""
    root, full, normal, holiday = _setup(workdir, rows_per_week, daemon=not in_process)
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        t0 = time.perf_counter()
        timeline, _ = _normal_weeks(root, instance, full, normal, say)
        if in_process:
            timeline += _holiday_in_process(root, instance, full, holiday, approve_after, say)
        else:
            timeline += _holiday_with_daemon(root, instance, full, holiday, approve_after, say,
                                             ui=ui, timeout=timeout)
        from mlops_assets.core.registry import Registry

        last = timeline[-1]
        final = Registry(root).production()
        if final != last["production_version"]:  # what the approved model does on that week
            last["fpr_after_promotion"] = _fpr(root, final, last["batch"])
        say(f"[incident] done in {time.perf_counter() - t0:.0f}s; UI: DAGSTER_HOME="
            f"{root / '.dagster_home'} MLOPS_ASSETS_ROOT={root} dagster-webserver -w "
            f"{root / 'workspace.yaml'}")
    return timeline


def _holiday_with_daemon(root: Path, instance: Any, full: Any, holiday: list[int],
                         approve_after: int, say: Any, ui: bool,
                         timeout: float) -> list[dict[str, Any]]:
    """The holiday weeks dropped into landing one at a time while a real `dagster-daemon`
    runs the sensors: it launches the landing runs, the drift check fails, the drift sensor
    launches the retrain; here we only wait (bounded) and give the approval."""
    import signal
    from contextlib import ExitStack

    from mlops_assets.core.audit import read_events
    from mlops_assets.core.generate import generate_week
    from mlops_assets.core.ingest import batch_key
    from mlops_assets.core.io import write_parquet_atomic
    from mlops_assets.core.registry import AUDIT_LOG, REGISTRY_DIR, Registry
    from mlops_assets.defs.sensors import BATCH_TAG, DRIFT_CHECK, TRIGGER_TAG
    from mlops_assets.demo.processes import start_daemon, start_webserver, wait_daemon_heartbeats

    home = root / ".dagster_home"
    reg = Registry(root)
    rows: list[dict[str, Any]] = []
    previous = signal.getsignal(signal.SIGTERM)
    _guard_sigterm()  # stop the daemon on SIGTERM too, not only on Ctrl-C
    try:
        with ExitStack() as stack:
            started = time.time()
            daemon = stack.enter_context(start_daemon(root, home, log_path=home / "daemon.log"))
            services = [daemon]
            if ui:
                web = stack.enter_context(start_webserver(root, home,
                                                          log_path=home / "webserver.log"))
                services.append(web)
                say(f"[incident] UI: {web.url}")
            wait = Waiter(timeout, services)
            say(f"[incident] dagster-daemon started (pid {daemon.proc.pid}, log {daemon.log_path})")
            wait_daemon_heartbeats(instance, ("SENSOR",), since=started, timeout=timeout,
                                   services=services)
            # both sensors' first ticks: the landed weeks are adopted (already snapshotted),
            # the chain's own drift result becomes history
            wait.until(lambda: _sensor_cursor(instance, "landing_sensor") is not None
                       and _sensor_cursor(instance, "drift_retrain_sensor") is not None,
                       "the sensors' first ticks")
            if _runs(instance, job_name="retrain"):
                raise SystemExit("the daemon retrained before any holiday week landed")
            pending: str | None = None
            pending_since = 0
            for n, i in enumerate(holiday):
                key = batch_key(Path(full.file_name(i)))
                write_parquet_atomic(root / "data/landing" / full.file_name(i),
                                     generate_week(full, i))
                actions = ["land"]
                landing_tags = {BATCH_TAG: key, TRIGGER_TAG: "landing"}
                wait.until(lambda t=landing_tags: (lambda rs: bool(rs) and all(
                    r.is_finished for r in rs))(_runs(instance, tags=t)),
                    f"the daemon's landing run of {key}")
                landed = _runs(instance, tags=landing_tags)
                if len(landed) != 1 or not landed[0].is_success:
                    raise SystemExit(f"landing runs of {key}: "
                                     f"{[(r.run_id[:8], r.status.value) for r in landed]}\n"
                                     f"{daemon.describe(6000)}")
                landing_run = landed[0].run_id
                report = _landing_report(root, instance, landing_run)
                serving = reg.production()
                row = {"week": full.week_start(i).isoformat(), "batch": key, "period": "holiday",
                       "rows": full.rows_per_week, **_summary(report),
                       "production_version": serving, "fpr": _fpr(root, serving, key),
                       "actions": actions, "landing_run": landing_run}
                check = [r for r in instance.event_log_storage.get_asset_check_execution_history(
                    DRIFT_CHECK, limit=20) if r.run_id == landing_run]
                if check:  # the drift sensor has judged this batch's check
                    wait.until(lambda c=check[0].id: int((_sensor_cursor(
                        instance, "drift_retrain_sensor") or {}).get("after", 0)) >= c,
                        f"the drift sensor's verdict on {key}")
                retrains = _runs(instance, job_name="retrain", tags={BATCH_TAG: key})
                if retrains:
                    actions += ["drift", "retrain"]
                    wait.until(lambda k=key: all(r.is_finished for r in _runs(
                        instance, job_name="retrain", tags={BATCH_TAG: k})),
                        f"the retrain run of {key}")
                    retrain = _runs(instance, job_name="retrain", tags={BATCH_TAG: key})[0]
                    if not retrain.is_success:
                        raise SystemExit(f"retrain run {retrain.run_id[:8]} failed\n"
                                         f"{daemon.describe(6000)}")
                    row["retrain_run"] = retrain.run_id
                    row["candidate"], eligible = _candidate(
                        root, retrain.tags.get("mlops_assets/cutoff"))
                    if eligible:
                        actions.append("candidate waits for approval")
                        pending, pending_since = row["candidate"]["version"], n
                    else:
                        actions.append("candidate failed the gate")
                elif row["severity"] == "significant":
                    absorbed = [e for e in read_events(root / REGISTRY_DIR / AUDIT_LOG)
                                if e.get("action") == "retrain_absorbed" and e.get("batch") == key]
                    actions += ["drift", "no retrain: " + (str(absorbed[-1]["absorbed_by"])
                                                           if absorbed else "see the sensor log")]
                if pending and n - pending_since >= approve_after:
                    pending = _approve_pending(instance, root, pending, key, row, actions)
                    _guard_sigterm()
                _finish_week(rows, row, actions, serving, say)
            say("[incident] stopping dagster-daemon ...")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return rows


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _guard_sigterm() -> None:
    """SIGTERM -> KeyboardInterrupt, so the daemon is stopped on the way out. Re-armed at
    every wait: Dagster's in-process execution (the approval runs) maps SIGTERM to its own
    SIGINT handling and restores it to whatever SIGINT was, which may not raise."""
    import signal

    if signal.getsignal(signal.SIGTERM) is not _raise_interrupt:
        signal.signal(signal.SIGTERM, _raise_interrupt)


def _holiday_in_process(root: Path, instance: Any, full: Any, holiday: list[int],
                        approve_after: int, say: Any) -> list[dict[str, Any]]:
    """The holiday weeks with the sensors ticked here, as the daemon would tick them (the
    same sensor code, deterministic, no subprocesses): for fast tests."""
    from mlops_assets.core.generate import generate_week
    from mlops_assets.core.ingest import batch_key
    from mlops_assets.core.io import write_parquet_atomic
    from mlops_assets.core.registry import Registry
    from mlops_assets.defs.sensors import (
        RETRAIN_ASSETS,
        drift_retrain_sensor,
        landing_sensor,
    )

    reg = Registry(root)
    rows: list[dict[str, Any]] = []
    # the sensors' first ticks: the landed weeks are adopted, old drift is history
    landing_cursor = _tick(landing_sensor, instance, None).cursor
    drift_cursor = _tick(drift_retrain_sensor, instance, None).cursor
    pending: str | None = None
    pending_since = 0
    for n, i in enumerate(holiday):
        key = batch_key(Path(full.file_name(i)))
        write_parquet_atomic(root / "data/landing" / full.file_name(i), generate_week(full, i))
        actions = ["land"]
        request = None
        for _ in range(3):  # the file settles across two ticks
            res = _tick(landing_sensor, instance, landing_cursor)
            for req in res.dynamic_partitions_requests or []:
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            landing_cursor = res.cursor
            if res.run_requests:
                request = res.run_requests[0]
                break
        if request is None:
            raise SystemExit(f"landing_sensor never picked up {full.file_name(i)}")
        run = _execute(instance, [k.to_user_string() for k in request.asset_selection],
                       request.tags, request.partition_key)
        if _run_failed(run):
            raise SystemExit(f"landing run failed: {_run_failed(run)}")
        drift = _drift(root)
        serving = reg.production()
        row = {"week": full.week_start(i).isoformat(), "batch": key, "period": "holiday",
               "rows": full.rows_per_week, **{k: drift[k] for k in
                                              ("severity", "drift_share", "top_features")},
               "production_version": serving, "fpr": _fpr(root, serving, key),
               "actions": actions}
        res = _tick(drift_retrain_sensor, instance, drift_cursor)
        drift_cursor = res.cursor
        if res.run_requests:
            req = res.run_requests[0]
            actions += ["drift", "retrain"]
            retrain = _execute(instance, RETRAIN_ASSETS, req.tags, run_config=req.run_config)
            if not retrain.success:
                raise SystemExit(f"retrain failed: {_run_failed(retrain)}")
            row["candidate"], eligible = _candidate(
                root, req.run_config["ops"]["split"]["config"]["cutoff"])
            if eligible:
                actions.append("candidate waits for approval")
                pending, pending_since = row["candidate"]["version"], n
            else:
                actions.append("candidate failed the gate")
        elif drift["severity"] == "significant":
            mine = [m for m in (res.skip_message or "").split("; ") if key in m]
            actions += ["drift", "no retrain: " + (mine[-1].split(" absorbed by ")[-1]
                                                   if mine else "see the sensor log")]
        if pending and n - pending_since >= approve_after:
            pending = _approve_pending(instance, root, pending, key, row, actions)
        _finish_week(rows, row, actions, serving, say)
    return rows


def _approve_pending(instance: Any, root: Path, pending: str, key: str, row: dict[str, Any],
                     actions: list[str]) -> str | None:
    """A person approves the waiting candidate (a production_model run with run config);
    returns what is still pending afterwards."""
    row["candidate_fpr_this_week"] = _fpr(root, pending, key)
    run = _approve(instance, pending, "holiday retrain: beats production on the newest holdout")
    if run.success:
        actions += ["approve", "promote"]
        return None
    actions.append(f"promotion refused: {_run_failed(run)}")
    return pending


def _finish_week(rows: list[dict[str, Any]], row: dict[str, Any], actions: list[str],
                 serving: Any, say: Any) -> None:
    rows.append(row)
    say(f"[incident] {row['week']}: severity {row['severity']}, FPR "
        f"{_pct(row['fpr'])} ({str(serving)[:8]}), {', '.join(actions)}")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"


def render(timeline: list[dict[str, Any]]) -> str:
    head = (f"{'week':<11} {'period':<8} {'rows':>6} {'severity':<12} {'drift':>6} "
            f"{'top drifted features':<40} {'production':<12} {'FPR':>7}  actions")
    lines = [head, "-" * len(head)]
    for r in timeline:
        lines.append(
            f"{r['week']:<11} {r['period']:<8} {r['rows']:>6} {str(r['severity'] or '-'):<12} "
            f"{'-' if r['drift_share'] is None else format(r['drift_share'], '.2f'):>6} "
            f"{', '.join(r['top_features'])[:40]:<40} {str(r['production_version'])[:12]:<12} "
            f"{_pct(r['fpr']):>7}  {'; '.join(r['actions'])}")
        if r.get("candidate"):
            c = r["candidate"]
            lines.append(f"{'':<11} candidate {c['version'][:12]} (cutoff {c['cutoff']}): "
                         f"PR AUC {c['candidate_pr_auc']:.3f} vs production "
                         f"{c['production_pr_auc']:.3f}, holdout FPR "
                         f"{_pct(c['candidate_fpr_holdout'])} vs {_pct(c['production_fpr_holdout'])}"
                         f", gate {'passed' if c['eligible'] else 'FAILED'}")
        if r.get("candidate_fpr_this_week") is not None:
            lines.append(f"{'':<11} the approved candidate's FPR on this week: "
                         f"{_pct(r['candidate_fpr_this_week'])}")
        if r.get("fpr_after_promotion") is not None:
            lines.append(f"{'':<11} FPR on this week with the promoted model: "
                         f"{_pct(r['fpr_after_promotion'])}")
    return "\n".join(lines)


def run_incident(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="incident-"))
    if workdir.exists() and any(workdir.iterdir()):
        print(f"incident: {workdir} is not empty; give an empty or new --workdir", file=sys.stderr)
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    timeline = replay(workdir.resolve(), rows_per_week=args.rows_per_week,
                      approve_after=args.approve_after, in_process=args.in_process,
                      ui=args.ui, timeout=args.timeout)
    print()
    print(render(timeline))
    if args.json:
        Path(args.json).write_text(json.dumps(timeline, indent=2, default=str) + "\n")
        print(f"\ntimeline written to {args.json}")
    print(f"audit log: {workdir / 'registry/audit.log.jsonl'}")
    return 0


def add_incident_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("incident", help="replay the holiday incident end to end in a fresh "
                                        "workspace and print the week-by-week timeline")
    p.add_argument("--json", help="also write the timeline as JSON to this file")
    p.add_argument("--workdir", help="where to build the workspace (default: a new temp dir)")
    p.add_argument("--rows-per-week", type=int, default=None,
                   help="override sample_data.rows_per_week (smaller is faster)")
    p.add_argument("--approve-after", type=int, default=1,
                   help="weeks the candidate waits for approval (default 1)")
    p.add_argument("--in-process", action="store_true",
                   help="tick the sensors in this process instead of running dagster-daemon "
                        "(deterministic and faster; for tests)")
    p.add_argument("--ui", action="store_true",
                   help="also start dagster-webserver on the workdir while the daemon runs")
    p.add_argument("--timeout", type=float, default=900,
                   help="seconds to wait for each daemon run before giving up (default 900)")
    p.set_defaults(func=run_incident)
    return p
