"""`mlops-assets incident` end to end: the holiday incident replayed against a real
`dagster-daemon` (the default mode), and the same story with the sensors ticked in process
(`--in-process`). The story is read back from the `--json` timeline, from the instance's
run history (who launched which run) and from the audit log."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets_tests.conftest import VENV_BIN, run, tool_env

pytestmark = pytest.mark.slow

ROWS = "2500"  # small weeks: the daemon replay finishes in a few minutes


def _replay(tmp_path: Path, *flags: str) -> tuple[Path, list[dict], str]:
    work, out = tmp_path / "w", tmp_path / "timeline.json"
    env = tool_env(tmp_path)
    env.pop("MLOPS_ASSETS_ROOT")
    env.pop("DAGSTER_HOME", None)
    proc = run([str(VENV_BIN / "mlops-assets"), "incident", "--workdir", str(work),
                "--rows-per-week", ROWS, "--json", str(out), "--timeout", "600", *flags],
               tmp_path, env, timeout=1800)
    assert "week" in proc.stdout and "FPR" in proc.stdout
    return work, json.loads(out.read_text()), proc.stdout


def _assert_story(work: Path, weeks: list[dict]) -> None:
    from mlops_assets.core.audit import read_events, verify_chain

    for w in weeks:
        assert {"week", "fpr", "severity", "production_version", "actions"} <= set(w)
    holiday = [w for w in weeks if w["period"] == "holiday"]
    normal = [w for w in weeks if w["period"] == "normal"]
    assert normal and holiday
    actions = [a for w in weeks for a in w["actions"]]
    assert actions.count("retrain") == 1  # one drift event, one retrain
    assert actions.count("promote") == 2 and actions.count("approve") == 2
    # normal weeks: the first model was trained and approved into production
    assert "promote" in normal[-1]["actions"]
    assert {w["production_version"] for w in normal} == {normal[-1]["production_version"]}
    # the holiday: drift detected on the first holiday week, FPR climbs
    assert holiday[0]["severity"] == "significant" and "retrain" in holiday[0]["actions"]
    assert "candidate waits for approval" in holiday[0]["actions"]
    assert holiday[0]["candidate"]["eligible"]  # it beats production on the newest holdout
    normal_fpr = max(w["fpr"] for w in normal)
    peak = max(w["fpr"] for w in holiday if w["production_version"] ==
               normal[-1]["production_version"])
    assert peak > 2 * normal_fpr  # the incident: FPR climbs
    # approved a week later; the promoted candidate serves and the FPR comes back down
    approved = next(n for n, w in enumerate(holiday) if "approve" in w["actions"])
    assert approved >= 1 and "retrain" not in holiday[approved]["actions"]
    final = holiday[-1]
    served = final.get("fpr_after_promotion", final["fpr"])
    assert final["production_version"] != normal[-1]["production_version"] or \
        "fpr_after_promotion" in final
    assert served < peak * 0.75, (served, peak)
    log = work / "registry" / "audit.log.jsonl"
    events = read_events(log)
    assert [e["action"] for e in events if e.get("action") in ("promote", "retrain_requested")
            ] == ["promote", "retrain_requested", "promote"]
    assert verify_chain(log) == []


def test_incident_replay_with_the_daemon(tmp_path: Path) -> None:
    work, weeks, stdout = _replay(tmp_path)
    _assert_story(work, weeks)
    # the daemon is gone once the command returned
    pid = int(re.search(r"dagster-daemon started \(pid (\d+)", stdout).group(1))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    holiday = [w for w in weeks if w["period"] == "holiday"]
    # the run history tells the same story, and says who launched what
    with dg.DagsterInstance.from_config(str(work / ".dagster_home")) as instance:
        def runs(**f) -> list[dg.DagsterRun]:
            return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(**f))]

        retrains = runs(job_name="retrain")
        assert len(retrains) == 1 and retrains[0].is_success
        assert retrains[0].tags["dagster/sensor_name"] == "drift_retrain_sensor"
        assert retrains[0].tags["mlops_assets/batch"] == holiday[0]["batch"]
        assert retrains[0].run_id == holiday[0]["retrain_run"]
        landing = runs(tags={"mlops_assets/trigger": "landing"})
        assert sorted(r.tags["mlops_assets/batch"] for r in landing) == \
            sorted(w["batch"] for w in holiday)
        assert all(r.is_success and r.tags["dagster/sensor_name"] == "landing_sensor"
                   for r in landing)
        promotions = runs(tags={"mlops_assets/trigger": "approval"})
        assert len(promotions) == 2 and all(r.is_success for r in promotions)
        promoted = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("production_model")), limit=10).records
        assert sorted(m.run_id for m in promoted) == sorted(r.run_id for r in promotions)


def test_incident_replay_in_process(tmp_path: Path) -> None:
    """The same story with the sensors ticked in this process (deterministic, no daemon)."""
    work, weeks, _ = _replay(tmp_path, "--in-process")
    _assert_story(work, weeks)
