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

This module is the driver (normal weeks, in-process holiday weeks); beside it:
demo/workspace.py builds the workspace (its `setup` must run before this module is
imported: the Dagster definitions read dvc.yaml and params.yaml of MLOPS_ASSETS_ROOT at
import), demo/runs.py holds the Dagster runs and approvals, demo/daemon_replay.py the
holiday weeks against the daemon, demo/timeline.py the FPR measurement and the table.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.core.generate import generate_week
from mlops_assets.core.ingest import batch_key
from mlops_assets.core.io import write_parquet_atomic
from mlops_assets.core.layout import EVALUATION, LANDING, MODEL_RECORD
from mlops_assets.core.registry import Registry
from mlops_assets.defs.sensors import (
    RETRAIN_ASSETS,
    drift_retrain_sensor,
    landing_sensor,
)
from mlops_assets.demo.daemon_replay import holiday_with_daemon
from mlops_assets.demo.orchestrate import materialize_chain
from mlops_assets.demo.runs import APPROVER, Approvals, approve, execute, run_failed, tick
from mlops_assets.demo.timeline import Row, chain_drift, finish_week, fpr, holiday_row
from mlops_assets.demo.workspace import Workspace, make_workspace

__all__ = ["make_workspace", "replay"]  # make_workspace: benchmarks build workspaces too


def replay(ws: Workspace, approve_after: int = 1, say: Any = print, in_process: bool = False,
           ui: bool = False, timeout: float = 900) -> list[Row]:
    """Play the incident in the workspace `demo.workspace.setup` built (and pointed this
    process at, before this module was imported); return the timeline. Default: against
    `dagster-daemon run` (and with `ui` the webserver) started on the workspace's
    DAGSTER_HOME; `in_process`: the sensors ticked here, deterministically."""
    root, full, normal, holiday = ws
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    for name in ("dagster", "dvc", "dvc.dvcfile"):  # the timeline is the output
        logging.getLogger(name).setLevel(logging.WARNING)
    with dg.DagsterInstance.get() as instance:
        t0 = time.perf_counter()
        timeline = _normal_weeks(root, instance, full, normal, say)
        if in_process:
            timeline += _holiday_in_process(root, instance, full, holiday, approve_after, say)
        else:
            timeline += holiday_with_daemon(root, instance, full, holiday, approve_after, say,
                                            ui=ui, timeout=timeout)
        last = timeline[-1]
        final = Registry(root).production()
        if final != last["production_version"]:  # what the approved model does on that week
            last["fpr_after_promotion"] = fpr(root, final, last["batch"])
        say(f"[incident] done in {time.perf_counter() - t0:.0f}s; UI: DAGSTER_HOME="
            f"{root / '.dagster_home'} MLOPS_ASSETS_ROOT={root} dagster-webserver -w "
            f"{root / 'workspace.yaml'}")
    return timeline


def _first_model(root: Path, instance: Any, normal: list[int], say: Any) -> str:
    """Run the chain over the normal weeks through Dagster and have a person approve (and
    so promote) its model; return that model's version."""
    t0 = time.perf_counter()
    say(f"[incident] workspace {root}")
    say(f"[incident] {len(normal)} normal weeks land; the chain runs through Dagster ...")
    summary = materialize_chain(root, progress=False, instance=instance)
    if not summary["success"]:
        raise SystemExit(f"the chain failed: {summary['failed_steps']} {summary['errors']}")
    first = json.loads((root / MODEL_RECORD).read_text())["model_md5"]
    ev = json.loads((root / EVALUATION).read_text())
    run = approve(instance, first, f"initial model; gate vs {ev['reference']['name']}: "
                                   f"PR AUC {ev['candidate']['pr_auc']:.3f}")
    if not run.success:
        raise SystemExit(f"initial promotion refused: {run_failed(run)}")
    say(f"[incident] model {first[:12]} approved by {APPROVER} and promoted "
        f"({time.perf_counter() - t0:.0f}s)")
    return first


def _normal_weeks(root: Path, instance: Any, full: Any, normal: list[int],
                  say: Any) -> list[Row]:
    """Land the normal weeks, run the chain through Dagster, approve the first model; one
    row per normal week (the last one carries the chain's drift result)."""
    first = _first_model(root, instance, normal, say)
    first_drift = chain_drift(root)
    timeline = []
    for i in normal:
        key = batch_key(Path(full.file_name(i)))
        actions = ["land"]
        if i == normal[-1]:
            actions += ["train", "evaluate", "approve", "promote"]
        row = {"week": full.week_start(i).isoformat(), "batch": key, "period": "normal",
               "rows": full.rows_per_week, "severity": None, "drift_share": None,
               "top_features": [], "production_version": first,
               "fpr": fpr(root, first, key), "actions": actions}
        if i == normal[-1]:
            row.update({k: first_drift[k] for k in ("severity", "drift_share", "top_features")})
        timeline.append(row)
    return timeline


def _land_in_process(root: Path, instance: Any, full: Any, i: int,
                     cursor: str | None) -> tuple[Any, str | None]:
    """Drop week `i` into landing and tick the landing sensor until it asks for a run
    (the file settles across two ticks); return the run request and the new cursor."""
    write_parquet_atomic(root / LANDING / full.file_name(i), generate_week(full, i))
    for _ in range(3):
        res = tick(landing_sensor, instance, cursor)
        for req in res.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        cursor = res.cursor
        if res.run_requests:
            return res.run_requests[0], cursor
    raise SystemExit(f"landing_sensor never picked up {full.file_name(i)}")


def _retrain_in_process(root: Path, instance: Any, res: Any, key: str, n: int, row: Row,
                        actions: list[str], approvals: Approvals) -> None:
    """Run the retrain the drift sensor asked for, if any; else say why not."""
    if not res.run_requests:
        if row["severity"] == "significant":
            mine = [m for m in (res.skip_message or "").split("; ") if key in m]
            actions += ["drift", "no retrain: " + (mine[-1].split(" absorbed by ")[-1]
                                                   if mine else "see the sensor log")]
        return
    req = res.run_requests[0]
    actions += ["drift", "retrain"]
    retrain = execute(instance, RETRAIN_ASSETS, req.tags, run_config=req.run_config)
    if not retrain.success:
        raise SystemExit(f"retrain failed: {run_failed(retrain)}")
    approvals.candidate(n, row, actions, req.run_config["ops"]["split"]["config"]["cutoff"])


def _holiday_in_process(root: Path, instance: Any, full: Any, holiday: list[int],
                        approve_after: int, say: Any) -> list[Row]:
    """The holiday weeks with the sensors ticked here, as the daemon would tick them (the
    same sensor code, deterministic, no subprocesses): for fast tests."""
    reg = Registry(root)
    approvals = Approvals(instance, root, approve_after)
    rows: list[Row] = []
    # the sensors' first ticks: the landed weeks are adopted, old drift is history
    landing_cursor = tick(landing_sensor, instance, None).cursor
    drift_cursor = tick(drift_retrain_sensor, instance, None).cursor
    for n, i in enumerate(holiday):
        key = batch_key(Path(full.file_name(i)))
        actions = ["land"]
        request, landing_cursor = _land_in_process(root, instance, full, i, landing_cursor)
        run = execute(instance, [k.to_user_string() for k in request.asset_selection],
                      request.tags, request.partition_key)
        if run_failed(run):
            raise SystemExit(f"landing run failed: {run_failed(run)}")
        drift = chain_drift(root)
        serving = reg.production()
        row = holiday_row(root, full, i, key, drift, serving, actions)
        res = tick(drift_retrain_sensor, instance, drift_cursor)
        drift_cursor = res.cursor
        _retrain_in_process(root, instance, res, key, n, row, actions, approvals)
        approvals.maybe_approve(n, key, row, actions)
        finish_week(rows, row, actions, serving, say)
    return rows
