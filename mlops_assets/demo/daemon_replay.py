"""The holiday weeks of the incident against a real `dagster-daemon run`: the weeks are
dropped into landing one at a time; the daemon's sensors launch the landing runs and the
retrain; here we only wait (bounded, a progress line on a TTY) and give the approvals.
The daemon (and `--ui`'s webserver) is stopped at the end, on errors and on Ctrl-C/SIGTERM."""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.core.audit import read_events
from mlops_assets.core.automation import BATCH_TAG, TRIGGER_TAG, read_pinned_report
from mlops_assets.core.generate import generate_week
from mlops_assets.core.ingest import batch_key
from mlops_assets.core.io import write_parquet_atomic
from mlops_assets.core.layout import AUDIT_LOG, DRIFT_JSON, LANDING
from mlops_assets.core.registry import Registry
from mlops_assets.defs.sensors import DRIFT_CHECK
from mlops_assets.demo.processes import (
    Service,
    start_daemon,
    start_webserver,
    wait_daemon_heartbeats,
)
from mlops_assets.demo.runs import Approvals, runs
from mlops_assets.demo.timeline import Row, finish_week, holiday_row, report_summary


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def guard_sigterm() -> None:
    """SIGTERM -> KeyboardInterrupt, so the daemon is stopped on the way out. Re-armed at
    every wait: Dagster's in-process execution (the approval runs) maps SIGTERM to its own
    SIGINT handling and restores it to whatever SIGINT was, which may not raise."""
    if signal.getsignal(signal.SIGTERM) is not _raise_interrupt:
        signal.signal(signal.SIGTERM, _raise_interrupt)


class Waiter:
    """Bounded waits with a one-line progress display on a TTY (silent otherwise)."""

    def __init__(self, timeout: float, services: list[Any], tty: bool | None = None) -> None:
        self.timeout = timeout
        self.services = services
        self.tty = sys.stdout.isatty() if tty is None else tty

    def until(self, pred: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        """Poll `pred` every second until truthy; SystemExit (with the services' logs) when
        a service dies or the time is up."""
        start = time.monotonic()
        limit = timeout or self.timeout
        try:
            while True:
                guard_sigterm()
                self._check_alive(what)
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

    def _check_alive(self, what: str) -> None:
        for s in self.services:
            if not s.alive():
                raise SystemExit(f"{s.name} exited while waiting for {what}\n{s.describe(6000)}")


def sensor_cursor(instance: Any, name: str) -> dict[str, Any] | None:
    """The JSON cursor the daemon stored for sensor `name` (None before its first tick)."""
    for state in instance.all_instigator_state():
        if state.name == name and state.instigator_data is not None:
            cursor = getattr(state.instigator_data, "cursor", None)
            return json.loads(cursor) if cursor else None
    return None


def _landing_report(root: Path, instance: Any, run_id: str) -> dict[str, Any]:
    """The drift report the landing run `run_id` materialised (pinned by its dvc md5: the
    retrain that may follow rewrites data/reports/drift.json)."""
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


def _start_services(stack: ExitStack, root: Path, instance: Any, ui: bool, say: Any,
                    timeout: float) -> tuple[Service, Waiter]:
    """Start the daemon (and webserver) and wait until both sensors have ticked once: the
    landed weeks are adopted (already snapshotted), the chain's drift result is history."""
    home = root / ".dagster_home"
    started = time.time()
    daemon = stack.enter_context(start_daemon(root, home, log_path=home / "daemon.log"))
    services = [daemon]
    if ui:
        web = stack.enter_context(start_webserver(root, home, log_path=home / "webserver.log"))
        services.append(web)
        say(f"[incident] UI: {web.url}")
    wait = Waiter(timeout, services)
    say(f"[incident] dagster-daemon started (pid {daemon.proc.pid}, log {daemon.log_path})")
    wait_daemon_heartbeats(instance, ("SENSOR",), since=started, timeout=timeout,
                           services=services)
    wait.until(lambda: sensor_cursor(instance, "landing_sensor") is not None
               and sensor_cursor(instance, "drift_retrain_sensor") is not None,
               "the sensors' first ticks")
    if runs(instance, job_name="retrain"):
        raise SystemExit("the daemon retrained before any holiday week landed")
    return daemon, wait


def _land(root: Path, instance: Any, full: Any, i: int, key: str, wait: Waiter,
          daemon: Service) -> str:
    """Drop week `i` into landing; wait for the daemon's landing run; return its id."""
    write_parquet_atomic(root / LANDING / full.file_name(i), generate_week(full, i))
    landing_tags = {BATCH_TAG: key, TRIGGER_TAG: "landing"}
    wait.until(lambda: (lambda rs: bool(rs) and all(r.is_finished for r in rs))(
        runs(instance, tags=landing_tags)), f"the daemon's landing run of {key}")
    landed = runs(instance, tags=landing_tags)
    if len(landed) != 1 or not landed[0].is_success:
        raise SystemExit(f"landing runs of {key}: "
                         f"{[(r.run_id[:8], r.status.value) for r in landed]}\n"
                         f"{daemon.describe(6000)}")
    return landed[0].run_id


def _await_verdict(instance: Any, wait: Waiter, landing_run: str, key: str) -> None:
    """Once the landing run's drift check exists, wait for the drift sensor to judge it."""
    check = [r for r in instance.event_log_storage.get_asset_check_execution_history(
        DRIFT_CHECK, limit=20) if r.run_id == landing_run]
    if check:
        wait.until(lambda c=check[0].id: int((sensor_cursor(
            instance, "drift_retrain_sensor") or {}).get("after", 0)) >= c,
            f"the drift sensor's verdict on {key}")


def _follow_retrain(root: Path, instance: Any, wait: Waiter, daemon: Service, key: str,
                    n: int, row: Row, actions: list[str], approvals: Approvals) -> None:
    """The daemon's retrain of this batch, if it launched one; else why not."""
    if not runs(instance, job_name="retrain", tags={BATCH_TAG: key}):
        if row["severity"] == "significant":
            absorbed = [e for e in read_events(root / AUDIT_LOG)
                        if e.get("action") == "retrain_absorbed" and e.get("batch") == key]
            actions += ["drift", "no retrain: " + (str(absorbed[-1]["absorbed_by"])
                                                   if absorbed else "see the sensor log")]
        return
    actions += ["drift", "retrain"]
    wait.until(lambda: all(r.is_finished for r in runs(
        instance, job_name="retrain", tags={BATCH_TAG: key})), f"the retrain run of {key}")
    retrain = runs(instance, job_name="retrain", tags={BATCH_TAG: key})[0]
    if not retrain.is_success:
        raise SystemExit(f"retrain run {retrain.run_id[:8]} failed\n{daemon.describe(6000)}")
    row["retrain_run"] = retrain.run_id
    approvals.candidate(n, row, actions, retrain.tags.get("mlops_assets/cutoff"))


def holiday_with_daemon(root: Path, instance: Any, full: Any, holiday: list[int],
                        approve_after: int, say: Any, ui: bool,
                        timeout: float) -> list[Row]:
    """The holiday weeks dropped into landing one at a time while a real `dagster-daemon`
    runs the sensors: it launches the landing runs, the drift check fails, the drift sensor
    launches the retrain; here we only wait (bounded) and give the approval."""
    reg = Registry(root)
    approvals = Approvals(instance, root, approve_after)
    rows: list[Row] = []
    previous = signal.getsignal(signal.SIGTERM)
    guard_sigterm()  # stop the daemon on SIGTERM too, not only on Ctrl-C
    try:
        with ExitStack() as stack:
            daemon, wait = _start_services(stack, root, instance, ui, say, timeout)
            for n, i in enumerate(holiday):
                key = batch_key(Path(full.file_name(i)))
                actions = ["land"]
                landing_run = _land(root, instance, full, i, key, wait, daemon)
                report = report_summary(_landing_report(root, instance, landing_run))
                serving = reg.production()
                row = holiday_row(root, full, i, key, report, serving, actions)
                row["landing_run"] = landing_run
                _await_verdict(instance, wait, landing_run, key)
                _follow_retrain(root, instance, wait, daemon, key, n, row, actions, approvals)
                if approvals.maybe_approve(n, key, row, actions):
                    guard_sigterm()
                finish_week(rows, row, actions, serving, say)
            say("[incident] stopping dagster-daemon ...")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return rows
