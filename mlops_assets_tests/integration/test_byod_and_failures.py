"""Bring your own data with no code change, and bad data stopped at the blocking check
with the previous validated version intact — through the real Dagster chain and DVC."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from mlops_assets.core.io import md5_file
from mlops_assets.repo.params_edit import update_params_section
from mlops_assets_tests.byod import use_breast_cancer_project
from mlops_assets_tests.conftest import run

pytestmark = pytest.mark.slow


def test_breast_cancer_dataset_runs_through_the_same_chain(small_project: Path) -> None:
    from mlops_assets.demo.orchestrate import materialize_chain

    root = small_project
    use_breast_cancer_project(root)
    with dg.DagsterInstance.get() as instance:
        summary = materialize_chain(root, progress=False, instance=instance)
    assert summary["success"], summary
    record = json.loads((root / "data/model/model.json").read_text())
    assert record["contract"]["name"] == "breast_cancer_byod"
    ev = json.loads((root / "data/reports/evaluation.json").read_text())
    assert ev["candidate"]["roc_auc"] > 0.9
    feats = pd.read_parquet(root / "data/features/features.parquet")
    assert {"log_mean_area", "radius_texture_ratio"} <= set(feats.columns)
    assert json.loads(run(["dvc", "status", "--json"], root).stdout) == {}


def test_bad_batch_fails_blocking_check_and_keeps_previous_version(small_project: Path) -> None:
    from mlops_assets.demo.orchestrate import materialize_chain

    root = small_project
    with dg.DagsterInstance.get() as instance:
        assert materialize_chain(root, progress=False, instance=instance)["success"]
        validated = root / "data/validated/dataset.parquet"
        before = {p: md5_file(root / p) for p in ("data/validated/dataset.parquet",
                                                  "data/model/model.skops",
                                                  "data/reports/drift.json")}
        # an upstream system lands a batch with a negative amount and an unknown channel
        bad = pd.read_parquet(sorted((root / "data/landing").glob("*.parquet"))[-1])
        bad["transaction_id"] = "late-" + bad["transaction_id"]
        bad["ts"] = bad["ts"] + pd.Timedelta(days=7)
        bad.loc[[3, 17], "amount"] = -5.0
        bad.loc[[4], "channel"] = "teleport"
        bad.to_parquet(root / "data/landing/week_2099-01-05.parquet", index=False)
        update_params_section(root / "params.yaml", "sample_data", {"generator": "none"})
        summary = materialize_chain(root, progress=False, instance=instance)
        assert not summary["success"]
        msg = " ".join(summary["errors"])
        assert "week_2099-01-05" in msg and "amount" in msg and "channel" in msg
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("validated_dataset"), "validation_passed")])
        evaluation = next(iter(check.values())).event.dagster_event.event_specific_data
        assert evaluation.passed is False
        counts = evaluation.metadata["failure_counts"].value
        assert sum(counts.values()) >= 3, counts
        # nothing downstream ran, and every previous artifact is byte-identical
        assert {p: md5_file(root / p) for p in before} == before
        assert validated.exists()
        failed = json.loads((root / "data/reports/validation_failed.json").read_text())
        assert failed["passed"] is False
        # the audit log has the failure (and the earlier, passing drift result), DVC-pinned
        from mlops_assets.core.audit import read_events

        events = read_events(root / "registry/audit.log.jsonl")
        fail = [e for e in events if e["action"] == "validation_failed"]
        assert len(fail) == 1 and "week_2099-01-05" in fail[0]["reason"]
        assert sum(fail[0]["failure_counts"].values()) == sum(counts.values())
        assert [e["severity"] for e in events if e["action"] == "drift_result"]
        pinned = yaml.safe_load((root / "registry/audit.log.jsonl.dvc").read_text())
        assert pinned["outs"][0]["md5"] == md5_file(root / "registry/audit.log.jsonl")
