"""The whole chain with the real tools: Dagster in a temporary instance, then DVC; DVC
alone in a temporary git repository; and a fresh clone reproducing the committed lock."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from mlops_assets.core.io import md5_file
from mlops_assets.pipeline import STAGE_ASSETS, asset_outs
from mlops_assets_tests.conftest import make_project_copy, run, tool_env

pytestmark = pytest.mark.slow


def _lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def _file_md5s(root: Path) -> dict[str, str]:
    """md5 of every file under data/ that a stage wrote (an independent computation)."""
    return {str(p.relative_to(root)): md5_file(p) for p in sorted((root / "data").rglob("*"))
            if p.is_file() and "runs" not in p.parts}


def test_dagster_then_dvc_agree(small_project: Path) -> None:
    from mlops_assets.demo.orchestrate import materialize_chain

    root = small_project
    with dg.DagsterInstance.get() as instance:
        summary = materialize_chain(root, progress=False, instance=instance)
        assert summary["success"], summary
        lock = _lock(root)
        assert set(lock) == set(STAGE_ASSETS)
        owned = asset_outs(root)
        for stage, assets in STAGE_ASSETS.items():
            outs = {o["path"]: o["md5"] for o in lock[stage]["outs"]}
            for key in assets:
                if stage == "snapshot":
                    continue  # partitioned: checked per partition below
                ev = instance.get_latest_materialization_event(dg.AssetKey(key))
                assert ev is not None, key
                mat = ev.asset_materialization
                assert mat.tags["dagster/data_version"] == outs[owned[key][0]], key
                assert mat.metadata["dvc/md5"].value == outs[owned[key][0]]
        snaps = instance.get_dynamic_partitions("batches")
        assert len(snaps) == 16
        recorded = instance.get_materialized_partitions(dg.AssetKey("raw_snapshots"))
        assert recorded == set(snaps)
    # single files: the md5 in dvc.lock is the md5 of the bytes on disk
    for stage in lock.values():
        for out in stage["outs"]:
            if not out["md5"].endswith(".dir"):
                assert md5_file(root / out["path"]) == out["md5"], out["path"]
    status = run(["dvc", "status", "--json"], root)
    assert json.loads(status.stdout) == {}, status.stdout
    before = (root / "dvc.lock").read_bytes()
    again = run(["dvc", "repro"], root)
    assert "up to date" in again.stdout.lower() or "didn't change" in again.stdout, again.stdout
    assert (root / "dvc.lock").read_bytes() == before


def test_dvc_alone_rerun_is_noop_and_forced_rerun_is_identical(tmp_path: Path) -> None:
    root = make_project_copy(tmp_path / "p", {"sample_data": {"rows_per_week": 2000}},
                             with_lock=False)
    env = tool_env(root)
    run(["dvc", "repro"], root, env)
    lock1 = (root / "dvc.lock").read_bytes()
    files1 = _file_md5s(root)
    second = run(["dvc", "repro"], root, env)
    assert "Data and pipelines are up to date" in second.stdout, second.stdout
    run(["dvc", "repro", "--force"], root, env)
    assert (root / "dvc.lock").read_bytes() == lock1
    assert _file_md5s(root) == files1
    assert json.loads(run(["dvc", "status", "--json"], root, env).stdout) == {}


def test_fresh_clone_reproduces_committed_lock(tmp_path: Path) -> None:
    """The committed dvc.lock is what `dvc repro` gives on a fresh clone, byte for byte."""
    root = make_project_copy(tmp_path / "clone", with_lock=True)
    if not (root / "dvc.lock").exists():
        pytest.fail("dvc.lock is not committed")
    env = tool_env(root)
    run(["dvc", "repro"], root, env)
    diff = run(["git", "diff", "--exit-code", "--", "dvc.lock"], root, env, check=False)
    assert diff.returncode == 0, diff.stdout[-4000:]
