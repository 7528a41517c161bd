"""End to end with the real services: dagster-daemon and the webserver against a temporary
DAGSTER_HOME. A drifted batch dropped into landing must give, without anyone clicking:
a landing run (snapshot -> validation -> features -> drift report), then exactly one
retrain run, and a registered candidate waiting for approval. (The whole incident replayed
with the daemon: test_incident.py.)"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mlops_assets_tests.conftest import VENV_BIN, make_project_copy
from mlops_assets_tests.integration.servers import (
    graphql,
    start_daemon,
    start_webserver,
    wait_daemon_healthy,
)

pytestmark = pytest.mark.slow

FAST_TICKS = {"landing_sensor_interval_seconds": 3, "drift_sensor_interval_seconds": 3,
              "landing_settle_seconds": 2}
SENSOR_STATES = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  sensors { name sensorState { status } } schedules { name scheduleState { status } } } } } }"""


def _runs(instance: dg.DagsterInstance, job: str) -> list[dg.DagsterRun]:
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name=job))]


def _wait(pred, timeout: float, what: str, services=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in services:
            assert s.alive(), s.describe()
        if pred():
            return
        time.sleep(1)
    logs = "\n".join(s.describe(6000) for s in services)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def test_drifted_batch_gives_exactly_one_retrain_with_the_daemon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_assets.core.generate import FraudScenario, generate_week
    from mlops_assets.core.io import write_parquet_atomic
    from mlops_assets.core.registry import Registry
    from mlops_assets.demo.orchestrate import materialize_chain

    root = make_project_copy(tmp_path / "project",
                             {"sample_data": {"rows_per_week": 2500, "weeks": 11},
                              "automation": FAST_TICKS}, with_lock=False)
    home = root / ".dagster_home"
    assert (home / "dagster.yaml").exists()  # the committed instance config came along
    monkeypatch.setenv("MLOPS_ASSETS_ROOT", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(root)

    with dg.DagsterInstance.get() as instance:
        # the normal weeks and a first model, as the demo makes them
        summary = materialize_chain(root, progress=False, instance=instance)
        assert summary["success"], summary
        with start_webserver(root, home) as web, start_daemon(root, home) as daemon:
            wait_daemon_healthy(web.url, ("SENSOR", "SCHEDULER"), timeout=180,
                                services=[web, daemon])
            states = graphql(web.url, SENSOR_STATES)["repositoriesOrError"]["nodes"][0]
            sensors = {s["name"]: s["sensorState"]["status"] for s in states["sensors"]}
            schedules = {s["name"]: s["scheduleState"]["status"] for s in states["schedules"]}
            assert sensors["landing_sensor"] == sensors["drift_retrain_sensor"] == "RUNNING"
            assert schedules["weekly_retrain_schedule"] == "STOPPED"  # off by default

            # a few ticks with nothing new: no runs at all
            time.sleep(8)
            assert instance.get_run_records(dg.RunsFilter(job_name="retrain")) == []
            n_before = len(instance.get_run_records())

            # drop the first holiday week into landing
            scenario = FraudScenario.from_params(
                yaml.safe_load((root / "params.yaml").read_text())["sample_data"])
            landed = root / "data" / "landing" / scenario.file_name(12)
            write_parquet_atomic(landed, generate_week(scenario, 12))
            t_landed = time.monotonic()

            def landing_run_done() -> bool:
                runs = [r.dagster_run for r in instance.get_run_records(
                    dg.RunsFilter(tags={"mlops_assets/batch": "week_2025-11-24",
                                        "mlops_assets/trigger": "landing"}))]
                return bool(runs) and all(r.is_finished for r in runs)

            _wait(landing_run_done, 300, "the landing run", [web, daemon])
            landing_runs = [r.dagster_run for r in instance.get_run_records(
                dg.RunsFilter(tags={"mlops_assets/trigger": "landing"}))]
            assert len(landing_runs) == 1 and landing_runs[0].is_success, landing_runs
            drift = json.loads((root / "data/reports/drift.json").read_text())
            assert drift["severity"] == "significant"
            assert drift["lineage"]["current_batch"] == "week_2025-11-24"

            def retrain_done() -> bool:
                runs = _runs(instance, "retrain")
                return bool(runs) and all(r.is_finished for r in runs)

            _wait(retrain_done, 420, "the retrain run", [web, daemon])
            took = time.monotonic() - t_landed
            # several more sensor ticks: still exactly one retrain (no storm, no duplicate)
            time.sleep(12)
            retrains = _runs(instance, "retrain")
            assert len(retrains) == 1, [r.run_id for r in retrains]
            run = retrains[0]
            assert run.is_success, daemon.describe(8000)
            assert run.tags["mlops_assets/trigger"] == "drift"
            assert run.tags["mlops_assets/batch"] == "week_2025-11-24"
            assert len(instance.get_run_records()) == n_before + 2  # landing + retrain only

            # the candidate appeared in the registry, waiting for a person
            record = json.loads((root / "data/model/model.json").read_text())
            assert record["cutoff"] == "2025-11-28"
            reg = Registry(root)
            assert reg.get(record["model_md5"])["stage"] == "candidate"
            assert reg.awaiting_approval(trigger="drift") == [record["model_md5"]]
            assert reg.production() is None
            actions = [e["action"] for e in reg.events()]
            assert "register" in actions
        assert not web.alive() and not daemon.alive()
    print(f"landing -> retrain finished in {took:.0f}s")
