"""Every asset check of the chain can fail: each is made to fail here on crafted inputs
(no chain run), and passes on the matching good input."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from mlops_assets.core.layout import TRAIN
from mlops_assets.core.validate import validate_frame
from mlops_assets.defs.metadata import (
    CHECKS,
    check_results,
    drift_check,
    gate_check,
    leakage_check,
    validation_check,
    validation_failure_check,
)
from mlops_assets.pipeline import load_params
from mlops_assets.stages import StageResult
from mlops_assets_tests.conftest import committed_text
from mlops_assets_tests.core import fraud_contract, fraud_frame, write_parquet

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for rel in ("mlops_assets/contracts/fraud.yaml",):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, tmp_path / rel)
    (tmp_path / "params.yaml").write_text(committed_text("params.yaml"))
    return tmp_path


def _train_file(root: Path, last_ts: str) -> None:
    df = fraud_frame(30)
    df.loc[df.index[-1], "ts"] = pd.Timestamp(last_ts)
    write_parquet(root / TRAIN, df)


def _leaky(root: Path) -> dg.AssetCheckResult:
    _train_file(root, str(load_params(root)["split"]["cutoff"]))  # exactly at the cutoff
    return check_results("training_set", StageResult("split", [TRAIN], {"summary": {}}), root)[0]


def _invalid(root: Path) -> dg.AssetCheckResult:
    frame = fraud_frame(20)
    frame.loc[::4, "amount"] = -1.0
    _, report = validate_frame(frame, fraud_contract(), raise_on_failure=False)
    return validation_check(report.to_dict(), len(frame))


def _worse_than_production(root: Path) -> dg.AssetCheckResult:
    return gate_check({"gate": {"eligible": False, "reasons": ["pr_auc 0.41 < 0.50 - 0.01"]},
                       "reference": {"name": "production:abc"}})


def _drifted(root: Path) -> dg.AssetCheckResult:
    return drift_check({"severity": "significant", "drift_share": 0.6})


FAILING: dict[str, Callable[[Path], dg.AssetCheckResult]] = {
    "validation_passed": _invalid,
    "no_rows_at_or_after_cutoff": _leaky,
    "promotion_gate": _worse_than_production,
    "no_significant_drift": _drifted,
}


def test_every_check_has_a_failing_case() -> None:
    assert {name for checks in CHECKS.values() for name, _, _ in checks} == set(FAILING)


@pytest.mark.parametrize("name", sorted(FAILING))
def test_each_check_fails_on_its_bad_input(root: Path, name: str) -> None:
    result = FAILING[name](root)
    assert result.check_name == name
    assert result.passed is False


def test_blocking_checks_fail_with_error_severity(root: Path) -> None:
    blocking = {n for checks in CHECKS.values() for n, b, _ in checks if b}
    assert blocking == {"validation_passed", "no_rows_at_or_after_cutoff"}
    for name in blocking:
        assert FAILING[name](root).severity == dg.AssetCheckSeverity.ERROR


def test_leakage_check_reads_the_written_file_not_the_stage_summary(root: Path) -> None:
    _train_file(root, "2025-11-09 23:59:59")  # just before the cutoff: passes
    ok = leakage_check(root)
    assert ok.passed and ok.metadata["rows_at_or_after_cutoff"].value == 0
    # the stage's summary claims nothing late; the file says otherwise: the file wins
    bad = _leaky(root)
    assert not bad.passed and bad.metadata["rows_at_or_after_cutoff"].value == 1


def test_checks_pass_on_good_input(root: Path) -> None:
    _, report = validate_frame(fraud_frame(20), fraud_contract(), raise_on_failure=False)
    assert validation_check(report.to_dict(), 20).passed
    assert gate_check({"gate": {"eligible": True}, "reference": {"name": "rule_baseline"}}).passed
    assert drift_check({"severity": "moderate", "drift_share": 0.2}).passed


def test_a_raised_validation_is_a_failed_blocking_check() -> None:
    frame = fraud_frame(20)
    frame.loc[0, "amount"] = -1.0
    _, report = validate_frame(frame, fraud_contract(), raise_on_failure=False)
    result = validation_failure_check(report, "validation failed")
    assert result.check_name == "validation_passed" and result.passed is False
    assert result.severity == dg.AssetCheckSeverity.ERROR
