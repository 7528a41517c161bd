"""Nothing writes to files a person owns: the demo chain, a sensor-driven drift retrain and
an approval + promotion leave every git-tracked file as committed, except dvc.lock, DVC's own
pins (*.dvc) and the registry's machine-written production pointer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mlops_assets.cli.main import main as cli
from mlops_assets.core.layout import PRODUCTION_POINTER, RUN_PARAMS
from mlops_assets.core.lineage.build import build_lineage
from mlops_assets.core.lineage.verify import verify_lineage
from mlops_assets.defs.sensors import landing_sensor, retrain_job
from mlops_assets_tests.conftest import VENV_BIN, make_project_copy, run
from mlops_assets_tests.defs.test_sensors import (
    Scenario,
    _defs,
    _errors,
    assert_window_is_run_scoped,
    execute,
    tick,
)

ALLOWED = {"dvc.lock", PRODUCTION_POINTER}


def _changed_tracked(root: Path) -> list[str]:
    """Tracked files that differ from the commit (untracked files are not a person's)."""
    out = run(["git", "status", "--porcelain", "--untracked-files=no"], root).stdout
    return [line[3:] for line in out.splitlines() if line.strip()]


def _drift_retrain(s: Scenario) -> dict[str, str]:
    """A normal week, then the first holiday week: drift, one retrain run, executed."""
    s.land_week(11)
    s.drift_tick()
    s.land_week(12)
    res = s.drift_tick()
    assert len(res.run_requests) == 1, res.skip_message
    req = res.run_requests[0]
    keys = [k.to_user_string() for k in retrain_job.selection.resolve(_defs().resolve_asset_graph())]
    result = execute(s.instance, keys, req.tags, run_config=req.run_config)
    assert result.success, _errors(result)
    return req.run_config["ops"]["split"]["config"]


@pytest.mark.slow
def test_chain_retrain_and_promotion_leave_tracked_files_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_assets.demo.orchestrate import materialize_chain

    root = make_project_copy(tmp_path / "project",
                             {"sample_data": {"rows_per_week": 2500, "weeks": 11}})
    committed_params = (root / "params.yaml").read_bytes()
    monkeypatch.setenv("MLOPS_ASSETS_ROOT", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster_home"))
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.chdir(root)
    with dg.DagsterInstance.get() as instance:
        assert materialize_chain(root, progress=False, instance=instance)["success"]
        s = Scenario(root, instance)
        s.landing_cursor = tick(landing_sensor, instance, None).cursor
        s.drift_cursor = s.drift_tick().cursor
        window = _drift_retrain(s)
    assert_window_is_run_scoped(root, window)
    version = json.loads((root / "data/model/model.json").read_text())["model_md5"]
    lineage, chain = build_lineage(root, version)
    assert lineage["provenance"]["params"]["split"]["split"] == window  # lineage shows it
    checks = verify_lineage(lineage, chain)["checks"]
    params_checks = [c for c in checks if c["kind"] == "params"]
    assert params_checks and all(c["status"] == "verified" for c in params_checks), params_checks
    base = ["registry", "--root", str(root)]
    assert cli([*base, "approve", version, "--by", "ana", "--reason", "holiday retrain"]) == 0
    assert cli([*base, "promote", version, "--to", "production", "--by", "ana"]) == 0
    assert json.loads((root / PRODUCTION_POINTER).read_text())["version"] == version
    changed = _changed_tracked(root)
    assert [p for p in changed if p not in ALLOWED and not p.endswith(".dvc")] == [], changed
    assert (root / "params.yaml").read_bytes() == committed_params
    assert yaml.safe_load((root / RUN_PARAMS).read_text())["split"] == window
