"""The motivating incident through the drift engine: holiday batches are significant drift,
normal weeks are not, using the real generator, features, training and reference profile."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_assets.core import drift
from mlops_assets.core.contract import load_contract
from mlops_assets.core.features import build_features
from mlops_assets.core.generate import FraudScenario, generate_week
from mlops_assets.core.train import TrainParams, score, train_model

REPO = Path(__file__).resolve().parents[3]
PARAMS = {"drift": {}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    contract = load_contract(REPO / "mlops_assets/contracts/fraud.yaml")
    scenario = FraudScenario(rows_per_week=4000)
    weeks = {i: build_features(generate_week(scenario, i).assign(_batch=f"w{i}"), contract)
             for i in range(scenario.weeks)}
    train = pd.concat([weeks[i] for i in range(10)], ignore_index=True)
    result = train_model(train, contract, TrainParams())
    out = tmp_path_factory.mktemp("profile")
    drift.write_reference_profile(train, contract, score(result.pipeline, train, contract),
                                  result.threshold, {}, out / "p.json", out / "p.parquet")
    return contract, scenario, weeks, result, out


def _report(trained, week: int) -> dict:
    contract, _, weeks, result, out = trained
    cur = weeks[week]
    return drift.drift_report_from_files(out / "p.json", out / "p.parquet", cur,
                                         score(result.pipeline, cur, contract), {}, None, contract)


def test_holiday_batch_is_significant_drift_with_new_categories(trained) -> None:
    scenario = trained[1]
    holiday = next(i for i in range(scenario.weeks) if scenario.is_holiday_week(i))
    rep = _report(trained, holiday)
    assert rep["severity"] == "significant"
    drifted = {f["name"] for f in rep["features"] if f["drifted"]}
    assert {"log_amount", "merchant_category", "channel"} <= drifted
    unseen = next(f for f in rep["features"] if f["name"] == "merchant_category")["unseen_categories"]
    assert {"gift_cards", "luxury_goods", "toys"} <= set(unseen)
    assert rep["multivariate"]["drifted"], rep["multivariate"]


@pytest.mark.parametrize("week", [10, 11])
def test_normal_weeks_after_cutoff_show_no_drift(trained, week: int) -> None:
    rep = _report(trained, week)
    assert rep["severity"] == "none", [f["name"] for f in rep["features"] if f["drifted"]]
    assert not rep["multivariate"]["drifted"], rep["multivariate"]
