"""core.split: the temporal split never leaks a row at/after the cutoff into training, is
order-independent, and fails with a DataError on unusable inputs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops_assets.core.contract import Contract, load_contract
from mlops_assets.core.features import build_features
from mlops_assets.core.generate import FraudScenario, generate_week
from mlops_assets.core.io import DataError, canonical_json
from mlops_assets.core.split import assert_no_leakage, split_summary, temporal_split
from mlops_assets_tests.conftest import committed_text

REPO = Path(__file__).resolve().parents[2]
FRAUD = REPO / "mlops_assets" / "contracts" / "fraud.yaml"
PARAMS = yaml.safe_load(committed_text("params.yaml"))
CUTOFF = PARAMS["split"]["cutoff"]
HOLDOUT_END = PARAMS["split"]["holdout_end"]


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(FRAUD)


@pytest.fixture(scope="module")
def features(contract: Contract) -> pd.DataFrame:
    scenario = replace(FraudScenario.from_params(PARAMS), rows_per_week=800)
    frames = []
    for i in range(scenario.weeks):
        df = generate_week(scenario, i)
        df["_batch"] = f"week_{scenario.week_start(i).isoformat()}"
        frames.append(df)
    return build_features(pd.concat(frames, ignore_index=True), contract)


def test_no_training_row_at_or_after_the_cutoff(contract: Contract,
                                                features: pd.DataFrame) -> None:
    train, holdout = temporal_split(features, contract, CUTOFF, HOLDOUT_END)
    cut, end = pd.Timestamp(CUTOFF), pd.Timestamp(HOLDOUT_END)
    assert (train["ts"] < cut).all()
    assert train["ts"].max() < cut <= holdout["ts"].min()
    assert (holdout["ts"] < end).all()
    # nothing before the cutoff is lost, and the holdout is the whole window
    assert len(train) == (features["ts"] < cut).sum()
    assert len(holdout) == ((features["ts"] >= cut) & (features["ts"] < end)).sum()
    assert set(train["transaction_id"]).isdisjoint(holdout["transaction_id"])
    assert_no_leakage(train, contract, CUTOFF)
    assert list(train.columns) == list(features.columns)


def test_outputs_are_sorted_and_independent_of_input_order(contract: Contract,
                                                           features: pd.DataFrame) -> None:
    train, holdout = temporal_split(features, contract, CUTOFF, HOLDOUT_END)
    for part in (train, holdout):
        assert isinstance(part.index, pd.RangeIndex) and part.index.start == 0
        ordered = part.sort_values(["ts", "transaction_id"], kind="mergesort")
        assert ordered.index.equals(part.index)
    shuffled = features.sample(frac=1.0, random_state=3)
    train2, holdout2 = temporal_split(shuffled, contract, CUTOFF, HOLDOUT_END)
    pd.testing.assert_frame_equal(train, train2)
    pd.testing.assert_frame_equal(holdout, holdout2)


def test_without_holdout_end_the_holdout_is_everything_after(contract: Contract,
                                                             features: pd.DataFrame) -> None:
    train, holdout = temporal_split(features, contract, CUTOFF)
    assert len(train) + len(holdout) == len(features)
    assert holdout["ts"].max() == features["ts"].max()


def test_a_row_exactly_at_the_cutoff_is_holdout(contract: Contract,
                                                features: pd.DataFrame) -> None:
    df = features.copy()
    df.loc[0, "ts"] = pd.Timestamp(CUTOFF)
    df.loc[1, "ts"] = pd.Timestamp(CUTOFF) - pd.Timedelta(nanoseconds=1)
    train, holdout = temporal_split(df, contract, CUTOFF, HOLDOUT_END)
    assert df.loc[0, "transaction_id"] in set(holdout["transaction_id"])
    assert df.loc[1, "transaction_id"] in set(train["transaction_id"])


def test_assert_no_leakage_raises_on_a_late_row(contract: Contract,
                                                features: pd.DataFrame) -> None:
    train, holdout = temporal_split(features, contract, CUTOFF, HOLDOUT_END)
    leaky = pd.concat([train, holdout.iloc[:2]], ignore_index=True)
    with pytest.raises(DataError, match="leakage: 2 training rows") as e:
        assert_no_leakage(leaky, contract, CUTOFF)
    assert e.value.rows == [len(train), len(train) + 1]
    at_cutoff = train.assign(ts=pd.Timestamp(CUTOFF))
    with pytest.raises(DataError, match="leakage"):
        assert_no_leakage(at_cutoff, contract, pd.Timestamp(CUTOFF))


@pytest.mark.parametrize("cutoff, end, words", [
    ("2020-01-01", None, "no rows before the cutoff"),
    ("2030-01-01", None, "no holdout rows"),
    ("2025-11-10", "2025-11-10", "must be after"),
    ("2025-11-10", "2025-11-10 00:00:01", "no holdout rows"),
    ("not a date", None, "split.cutoff"),
])
def test_unusable_splits_raise_data_error(contract: Contract, features: pd.DataFrame,
                                          cutoff: str, end: str | None, words: str) -> None:
    df = features if "00:00:01" not in str(end) else features[features["ts"] != CUTOFF]
    with pytest.raises(DataError, match=words):
        temporal_split(df, contract, cutoff, end)


def test_training_rows_need_both_classes(contract: Contract, features: pd.DataFrame) -> None:
    one_class = features[(features["is_fraud"] == 0) | (features["ts"] >= CUTOFF)]
    with pytest.raises(DataError, match=r"only the label classes \[0\]"):
        temporal_split(one_class, contract, CUTOFF, HOLDOUT_END)


def test_missing_columns_and_timestamps(contract: Contract, features: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="label column"):
        temporal_split(features.drop(columns=["is_fraud"]), contract, CUTOFF)
    with pytest.raises(DataError, match="'ts'"):
        temporal_split(features.drop(columns=["ts"]), contract, CUTOFF)
    with_nat = features.copy()
    with_nat.loc[5, "ts"] = pd.NaT
    with pytest.raises(DataError, match="timestamps are missing") as e:
        temporal_split(with_nat, contract, CUTOFF)
    assert e.value.rows == [5]


def test_split_summary_is_deterministic(contract: Contract, features: pd.DataFrame) -> None:
    train, holdout = temporal_split(features, contract, CUTOFF, HOLDOUT_END)
    s = split_summary(train, holdout, contract, CUTOFF, HOLDOUT_END, n_input_rows=len(features))
    assert s["cutoff"] == "2025-11-10T00:00:00" and s["holdout_end"] == "2025-11-24T00:00:00"
    assert s["train"]["rows"] == len(train)
    assert s["train"]["positives"] == int(train["is_fraud"].sum()) > 0
    assert s["holdout"]["ts_min"] >= s["cutoff"] > s["train"]["ts_max"]
    assert s["excluded_rows"] == (features["ts"] >= HOLDOUT_END).sum()
    assert s["feature_definitions_hash"] == contract.feature_definitions_hash()
    text = canonical_json(s)
    shuffled = features.sample(frac=1.0, random_state=9)
    t2, h2 = temporal_split(shuffled, contract, CUTOFF, HOLDOUT_END)
    assert canonical_json(split_summary(t2, h2, contract, CUTOFF, HOLDOUT_END,
                                        n_input_rows=len(features))) == text
    assert str(REPO) not in text
