"""`lineage production --verify` after every legitimate flow, each followed by `dvc repro`:
an honest promotion, rollback, retrain, Dagster run or new batch is never a mismatch.

One DVC-built project walks register/approve/promote -> a new batch -> a re-landed batch ->
a second model promoted and rolled back; one Dagster-built project is materialised like the
UI does, then retrained through the drift sensor and its job; one small project brings its
own data. Each flow ends with `dvc repro`, a commit, and a verify that must exit 0."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mlops_assets.core.generate import FraudScenario, generate_week
from mlops_assets.defs.sensors import drift_retrain_sensor, landing_sensor, retrain_job
from mlops_assets.repo.params_edit import update_params_section
from mlops_assets_tests.byod import use_breast_cancer_project
from mlops_assets_tests.conftest import in_project, make_project_copy, run, tool_env
from mlops_assets_tests.defs.test_sensors import apply_partitions, execute, tick, write_batch

pytestmark = pytest.mark.slow

ROWS = 2500


def sh(root: Path, *cmd: str) -> str:
    return run(list(cmd), root, tool_env(root, root / ".dagster_home")).stdout


def repro_and_commit(root: Path, message: str) -> None:
    sh(root, "dvc", "repro")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", message)


def verify(root: Path) -> dict:
    """`lineage production --verify` (text and --json): both exit 0 and the JSON says OK."""
    env = tool_env(root, root / ".dagster_home")
    text = run(["mlops-assets", "lineage", "production", "--verify"], root, env, check=False)
    assert text.returncode == 0, text.stdout[-4000:] + text.stderr[-2000:]
    proc = run(["mlops-assets", "lineage", "production", "--verify", "--json"], root, env,
               check=False)
    lin = json.loads(proc.stdout)
    bad = [c for c in lin["verification"]["checks"] if c["status"] in ("mismatched", "missing")]
    assert proc.returncode == 0 and lin["verification"]["ok"], bad
    return lin


def model_md5(root: Path) -> str:
    return json.loads((root / "data/model/model.json").read_text())["model_md5"]


def register_and_promote(root: Path, who: str = "bob") -> str:
    v = model_md5(root)
    sh(root, "mlops-assets", "registry", "register", "--by", "alice", "--reason", "candidate")
    sh(root, "mlops-assets", "registry", "approve", v, "--by", who, "--reason", "reviewed")
    sh(root, "mlops-assets", "registry", "promote", v, "--to", "production", "--by", who,
       "--reason", "go live")
    return v


def production(root: Path) -> str:
    return json.loads((root / "registry/production.json").read_text())["version"]


# ---------------------------------------------------------------- built with dvc repro


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project_copy(tmp_path_factory.mktemp("flows") / "project",
                             {"sample_data": {"rows_per_week": ROWS, "weeks": 12}},
                             with_lock=False)
    repro_and_commit(root, "chain built")
    return root


def _new_week(root: Path) -> tuple[Path, object]:
    """The week after the last landed one (past the split window: the model's training
    data is unchanged, its record lists one snapshot more)."""
    params = yaml.safe_load((root / "params.yaml").read_text())["sample_data"]
    scenario = FraudScenario.from_params(params)
    index = int(params["weeks"])
    return root / "data/landing" / scenario.file_name(index), generate_week(scenario, index)


def test_a_register_approve_promote(dvc_project: Path) -> None:
    root = dvc_project
    v = register_and_promote(root)
    repro_and_commit(root, "promoted; evaluate and drift re-ran against production")
    lin = verify(root)
    assert lin["version"] == v == production(root)
    registered = json.loads((root / "registry/registry.json").read_text())["versions"][v]
    # the evaluation it was approved on (vs the baseline) is not today's (vs production)
    assert registered["evaluation_md5"] != lin["evaluation"]["md5"]
    assert (root / registered["evaluation_path"]).is_file()


def test_e_a_valid_new_batch(dvc_project: Path) -> None:
    root = dvc_project
    before = production(root)
    path, week = _new_week(root)
    write_batch(path, week)
    repro_and_commit(root, "a new batch")
    assert model_md5(root) == before  # same model bytes, a new record (one snapshot more)
    record = json.loads((root / "data/model/model.json").read_text())
    assert path.name in {s.get("source_file") for s in record["snapshots"]}
    assert verify(root)["version"] == before


def test_f_a_relanded_batch_with_changed_bytes(dvc_project: Path) -> None:
    root = dvc_project
    path, week = _new_week(root)
    path.chmod(0o644)
    write_batch(path, week.iloc[: len(week) - 100])  # same name, fewer rows
    repro_and_commit(root, "the new batch re-landed")
    manifest = json.loads((root / "data/snapshots/manifest.json").read_text())
    entry = next(e for e in manifest["entries"] if e["source_file"] == path.name)
    assert len(entry["history"]) == 2
    verify(root)


def test_b_two_promotions_then_rollback(dvc_project: Path) -> None:
    root = dvc_project
    first = production(root)
    rate = yaml.safe_load((root / "params.yaml").read_text())["train"]["learning_rate"]
    update_params_section(root / "params.yaml", "train", {"learning_rate": rate / 2})
    repro_and_commit(root, "model B")
    second = register_and_promote(root, "carol")
    assert second != first
    repro_and_commit(root, "model B promoted")
    assert verify(root)["version"] == second
    sh(root, "mlops-assets", "registry", "rollback", "--by", "carol", "--reason", "back")
    repro_and_commit(root, "rolled back")
    lin = verify(root)
    assert lin["version"] == first == production(root)


# ---------------------------------------------------------------- built through Dagster


@pytest.fixture(scope="module")
def dagster_project(tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    """12 ordinary weeks materialised through Dagster (the UI's code path)."""
    from mlops_assets.demo.orchestrate import materialize_chain

    root = make_project_copy(tmp_path_factory.mktemp("flows_dagster") / "project",
                             {"sample_data": {"rows_per_week": ROWS, "weeks": 12}},
                             with_lock=False)
    with in_project(root), dg.DagsterInstance.get() as instance:
        summary = materialize_chain(root, progress=False, instance=instance)
        assert summary["success"], summary
        yield root, instance


def test_d_materialised_through_dagster(dagster_project: tuple[Path, dg.DagsterInstance]
                                        ) -> None:
    root, _ = dagster_project
    v = register_and_promote(root)
    repro_and_commit(root, "materialised through Dagster, promoted")
    lin = verify(root)
    assert lin["version"] == v
    assert any(c["kind"] == "dagster" and c["status"] == "verified"
               for c in lin["verification"]["checks"])


def test_c_drift_triggered_retrain(dagster_project: tuple[Path, dg.DagsterInstance]) -> None:
    root, instance = dagster_project
    first = production(root)
    landing_cursor = tick(landing_sensor, instance, None).cursor  # adopts the landed weeks
    drift_cursor = tick(drift_retrain_sensor, instance, None).cursor  # history so far
    params = yaml.safe_load((root / "params.yaml").read_text())["sample_data"]
    scenario = FraudScenario.from_params(params)
    write_batch(root / "data/landing" / scenario.file_name(12), generate_week(scenario, 12))
    landed = tick(landing_sensor, instance, landing_cursor)
    apply_partitions(instance, landed)
    for req in landed.run_requests:  # the drift check is non-blocking: no step may fail
        keys = [k.to_user_string() for k in req.asset_selection]
        landing_run = execute(instance, keys, req.tags, req.partition_key)
        assert not [e for e in landing_run.all_events if e.is_step_failure]
    drift = tick(drift_retrain_sensor, instance, drift_cursor)
    assert len(drift.run_requests) == 1, drift.skip_message
    req = drift.run_requests[0]
    from mlops_assets.definitions import defs  # reads the copy's dvc.yaml: import it here

    keys = [k.to_user_string() for k in retrain_job.selection.resolve(
        defs().resolve_asset_graph())]
    assert execute(instance, keys, req.tags, run_config=req.run_config).success
    retrained = register_and_promote(root, "dana")  # already registered by the job
    assert retrained != first
    repro_and_commit(root, "drift retrain promoted")
    assert verify(root)["version"] == retrained


# ---------------------------------------------------------------- bring your own data


def test_g_bring_your_own_data(tmp_path: Path) -> None:
    root = make_project_copy(tmp_path / "project", with_lock=False)
    use_breast_cancer_project(root)
    repro_and_commit(root, "own data")
    v = register_and_promote(root)
    repro_and_commit(root, "own data, promoted")
    lin = verify(root)
    assert lin["version"] == v
    assert lin["model"]["record"]["contract"]["name"] == "breast_cancer_byod"
