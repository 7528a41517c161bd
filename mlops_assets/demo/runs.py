"""Dagster runs and sensor ticks of the incident replay, and the person's approvals.

Shared by the in-process replay (demo/incident.py) and the one against a real daemon
(demo/daemon_replay.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.definitions import defs
from mlops_assets.demo.timeline import Row, candidate, fpr

APPROVER = "risk-officer (incident replay)"
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def execute(instance: Any, keys: list[str], tags: dict[str, str] | None = None,
            partition_key: str | None = None, run_config: dict | None = None) -> Any:
    """Materialise `keys` in this process (what a launched run would do), errors kept."""
    job = defs().resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(k) for k in keys})
    tags = dict(tags or {})
    if partition_key:
        tags["dagster/partition"] = partition_key
    return job.execute_in_process(instance=instance, tags=tags,
                                  run_config={**_QUIET, **(run_config or {})},
                                  raise_on_error=False)


def tick(sensor: Any, instance: Any, cursor: str | None) -> Any:
    """One sensor evaluation against the instance, as the daemon would tick it."""
    ctx = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                  cursor=cursor, definitions=defs())
    return sensor.evaluate_tick(ctx)


def run_failed(run: Any) -> list[str]:
    """The first line of each step failure of an in-process run."""
    return [str(ev.event_specific_data.error.message).splitlines()[0]
            for ev in run.all_events if ev.is_step_failure and ev.event_specific_data.error]


def runs(instance: Any, **filters: Any) -> list[Any]:
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(**filters))]


def approve(instance: Any, version: str, reason: str) -> Any:
    """A person's approval: a production_model run with the approval as run config."""
    approval = {"ops": {"production_model": {"config": {
        "approved_by": APPROVER, "version": version, "reason": reason}}}}
    return execute(instance, ["production_model"], run_config=approval,
                   tags={"mlops_assets/trigger": "approval"})


@dataclass
class Approvals:
    """The candidate that waits for a person's approval, and since which holiday week;
    approved once it has waited `approve_after` weeks."""

    instance: Any
    root: Path
    approve_after: int
    pending: str | None = None
    since: int = 0

    def candidate(self, n: int, row: Row, actions: list[str], cutoff: str | None) -> None:
        """Record the retrain's candidate in the row; an eligible one starts waiting."""
        row["candidate"], eligible = candidate(self.root, cutoff)
        if eligible:
            actions.append("candidate waits for approval")
            self.pending, self.since = row["candidate"]["version"], n
        else:
            actions.append("candidate failed the gate")

    def maybe_approve(self, n: int, key: str, row: Row, actions: list[str]) -> bool:
        """Approve the waiting candidate when its time has come; whether a run was made."""
        if not (self.pending and n - self.since >= self.approve_after):
            return False
        row["candidate_fpr_this_week"] = fpr(self.root, self.pending, key)
        run = approve(self.instance, self.pending,
                      "holiday retrain: beats production on the newest holdout")
        if run.success:
            actions += ["approve", "promote"]
            self.pending = None
        else:
            actions.append(f"promotion refused: {run_failed(run)}")
        return True
