"""The command-line entry points a user is told about: `dg check defs`, `dg launch`, and
`dagster` loading workspace.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_assets_tests.conftest import run, tool_env

pytestmark = pytest.mark.slow


def test_dg_check_defs_and_workspace_load(small_project: Path) -> None:
    env = tool_env(small_project, small_project / ".dagster_home")
    out = run(["dg", "check", "defs"], small_project, env)
    assert "success" in (out.stdout + out.stderr).lower()
    listed = run(["dg", "list", "defs", "--json"], small_project, env)
    for key in ("landing_batches", "raw_snapshots", "model", "drift_report"):
        assert key in listed.stdout
    ws = run(["dagster", "definitions", "validate", "-w", "workspace.yaml"], small_project, env)
    assert "validated successfully" in (ws.stdout + ws.stderr).lower() or ws.returncode == 0


def test_dg_launch_whole_chain_then_dvc_is_clean(small_project: Path) -> None:
    """`dg launch` refuses a selection holding a partitioned asset without a partition, so
    the CLI route is three launches: land (registers the batch partitions), snapshot every
    batch in one run (single-run backfill policy), then everything downstream."""
    env = tool_env(small_project, small_project / ".dagster_home")
    run(["dg", "launch", "--assets", "landing_batches"], small_project, env)
    batches = sorted(p.stem for p in (small_project / "data/landing").glob("*.parquet"))
    run(["dg", "launch", "--assets", "raw_snapshots", "--partition-range",
         f"{batches[0]}...{batches[-1]}"], small_project, env)
    chain = "validated_dataset,feature_table,training_set,holdout_set,model,evaluation,drift_report"
    run(["dg", "launch", "--assets", chain], small_project, env)
    for rel in ("data/model/model.skops", "data/reports/drift.html", "data/reports/evaluation.json"):
        assert (small_project / rel).exists(), rel
    assert len(list((small_project / "data/snapshots").glob("week_*"))) == len(batches)
    assert json.loads(run(["dvc", "status", "--json"], small_project, env).stdout) == {}
