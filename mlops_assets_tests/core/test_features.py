"""core.features: one transform for training, batch scoring and serving. Column order and
dtypes, every transform, parity between the batch and one-record paths, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.contract import Contract, load_contract
from mlops_assets.core.features import (
    MISSING_CATEGORY,
    build_features,
    feature_frame_metadata,
)
from mlops_assets.core.generate import FraudScenario, generate_week
from mlops_assets.core.io import DataError, canonical_json

REPO = Path(__file__).resolve().parents[2]
FRAUD = REPO / "mlops_assets" / "contracts" / "fraud.yaml"
SCENARIO = FraudScenario(rows_per_week=1500, weeks=16)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(FRAUD)


@pytest.fixture(scope="module")
def batch() -> pd.DataFrame:
    """A normal week and a holiday week (new categories, missing distances) with `_batch`."""
    frames = []
    for i in (3, 13):
        df = generate_week(SCENARIO, i)
        df["_batch"] = f"week_{SCENARIO.week_start(i).isoformat()}"
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _record(contract_columns: list[str], **values) -> pd.DataFrame:
    base = {"transaction_id": "t1", "ts": pd.Timestamp("2025-09-06 23:30"), "amount": 10.0,
            "merchant_category": "grocery", "country": "DE", "channel": "pos",
            "card_age_days": 100, "customer_tenure_days": 400, "txn_count_24h": 2,
            "avg_amount_30d": 20.0, "distance_from_home_km": 5.0, "is_fraud": 0}
    base.update(values)
    return pd.DataFrame({c: [base[c]] for c in contract_columns if c in base})


# ------------------------------------------------------------------ columns and dtypes


def test_output_columns_and_dtypes(contract: Contract, batch: pd.DataFrame) -> None:
    f = build_features(batch, contract)
    assert list(f.columns) == ["transaction_id", "ts", "_batch", "is_fraud",
                               *contract.feature_names]
    assert len(f) == len(batch) and f.index.equals(batch.index)
    assert f["ts"].dtype == "datetime64[ns]"
    for name in contract.numeric_features:
        assert f[name].dtype == "float64", name
    for name in contract.categorical_features:
        assert f[name].dtype == object and all(isinstance(v, str) for v in f[name]), name
    assert f["transaction_id"].equals(batch["transaction_id"])
    assert f["is_fraud"].equals(batch["is_fraud"])
    # no infinities anywhere (ratio with a zero denominator is NaN)
    assert np.isfinite(f[contract.numeric_features].to_numpy(dtype=float)[
        ~np.isnan(f[contract.numeric_features].to_numpy(dtype=float))]).all()


def test_label_and_batch_columns_are_optional(contract: Contract, batch: pd.DataFrame) -> None:
    f = build_features(batch.drop(columns=["is_fraud", "_batch"]), contract)
    assert list(f.columns) == ["transaction_id", "ts", *contract.feature_names]


def test_deterministic(contract: Contract, batch: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(build_features(batch, contract),
                                  build_features(batch.copy(), contract))


# ------------------------------------------------------------------ transforms


def test_fraud_contract_transform_values(contract: Contract) -> None:
    df = pd.concat([
        _record(contract.column_names, transaction_id="a", amount=-3.0, avg_amount_30d=0.0,
                distance_from_home_km=np.nan, merchant_category=None,
                ts=pd.Timestamp("2025-09-06 23:30")),            # a Saturday
        _record(contract.column_names, transaction_id="b", amount=99.0, avg_amount_30d=33.0,
                distance_from_home_km=0.0, merchant_category="gift_cards",
                ts=pd.Timestamp("2025-09-08 07:05")),            # a Monday
    ], ignore_index=True)
    f = build_features(df, contract)
    assert f["log_amount"].tolist() == [0.0, math.log1p(99.0)]     # clip(lower=0) first
    assert math.isnan(f["amount_vs_avg"][0]) and f["amount_vs_avg"][1] == 3.0   # b == 0 -> NaN
    assert f["hour"].tolist() == [23.0, 7.0]
    assert f["is_weekend"].tolist() == [1.0, 0.0]
    assert f["merchant_category"].tolist() == [MISSING_CATEGORY, "gift_cards"]
    assert math.isnan(f["log_distance"][0]) and f["log_distance"][1] == 0.0   # NaN stays NaN
    assert f["card_age_days"].tolist() == [100.0, 100.0]


def test_day_of_week_clip_and_datetime_variants(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("""
name: t
id_column: id
timestamp_column: ts
label_column: y
columns:
  id: {type: string}
  ts: {type: datetime}
  x: {type: float, nullable: true}
  n: {type: int}
  flag: {type: bool}
  y: {type: int}
features:
  - {name: dow, transform: day_of_week, source: ts}
  - {name: weekend, transform: is_weekend, source: ts}
  - {name: x_clipped, transform: clip, source: x, min: 0, max: 10}
  - {name: x_upper, transform: clip, source: x, max: 1}
  - {name: n_ratio, transform: ratio, source: [n, x]}
  - {name: flag, transform: identity, source: flag}
""")
    c = load_contract(path)
    df = pd.DataFrame({
        "id": ["a", "b", "c", "d"],
        "ts": pd.to_datetime(["2025-09-01 00:00", "2025-09-07 12:00", "2025-09-03 00:00", None]),
        "x": [-5.0, 50.0, np.nan, 0.5],
        "n": pd.array([1, 2, 3, None], dtype="Int64"),
        "flag": [True, False, True, False],
        "y": [0, 1, 0, 1],
    })
    f = build_features(df, c)
    assert f["dow"].tolist()[:3] == [0.0, 6.0, 2.0] and math.isnan(f["dow"][3])  # NaT -> NaN
    assert f["weekend"].tolist()[:3] == [0.0, 1.0, 0.0] and math.isnan(f["weekend"][3])
    assert f["x_clipped"].tolist()[:2] == [0.0, 10.0] and math.isnan(f["x_clipped"][2])
    assert f["x_upper"].tolist()[0] == -5.0 and f["x_upper"][1] == 1.0
    assert f["n_ratio"][0] == -0.2 and math.isnan(f["n_ratio"][2]) and math.isnan(f["n_ratio"][3])
    assert f["flag"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert all(f[n].dtype == "float64" for n in c.feature_names)

    # tz-aware timestamps are converted to naive UTC; ISO strings are parsed the same way
    aware = df.assign(ts=pd.to_datetime(["2025-09-01 02:00"] * 4).tz_localize("Europe/Berlin"))
    iso = df.assign(ts=["2025-09-01T00:00:00Z"] * 4)
    fa, fi = build_features(aware, c), build_features(iso, c)
    assert (fa["ts"] == pd.Timestamp("2025-09-01 00:00")).all() and fa["ts"].dtype == "M8[ns]"
    pd.testing.assert_frame_equal(fa, fi)


# ------------------------------------------------------------------ parity


def test_one_record_at_a_time_equals_the_batch(contract: Contract, batch: pd.DataFrame) -> None:
    full = build_features(batch, contract)
    rows = np.random.default_rng(0).choice(len(batch), 150, replace=False)
    # include a missing distance and a holiday category
    rows = np.unique(np.concatenate([rows, [batch["distance_from_home_km"].isna().idxmax()],
                                     [batch["merchant_category"].eq("gift_cards").idxmax()]]))
    one_by_one = pd.concat([build_features(batch.iloc[[i]], contract) for i in rows])
    pd.testing.assert_frame_equal(one_by_one, full.iloc[rows])


def test_serving_records_from_json_equal_the_batch(contract: Contract,
                                                   batch: pd.DataFrame) -> None:
    """A request body: JSON numbers/null and an ISO timestamp, one record per frame."""
    full = build_features(batch, contract).drop(columns=["_batch", "is_fraud"])
    idx = [int(batch["distance_from_home_km"].isna().idxmax()), 0, len(batch) - 1]
    for i in idx:
        rec = batch.drop(columns=["_batch", "is_fraud"]).iloc[i].to_dict()
        rec["ts"] = rec["ts"].isoformat()
        body = json.loads(json.dumps(
            {k: (None if isinstance(v, float) and math.isnan(v) else
                 v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()}))
        served = build_features(pd.DataFrame([body]), contract)
        expected = full.iloc[[i]].reset_index(drop=True)
        pd.testing.assert_frame_equal(served, expected, check_dtype=True)


def test_reordered_subset_and_other_batches_give_identical_values(
        contract: Contract, batch: pd.DataFrame) -> None:
    full = build_features(batch, contract).set_index("transaction_id")
    shuffled = batch.sample(frac=1.0, random_state=1)
    part = batch.iloc[100:900]
    week13 = batch[batch["_batch"].str.contains("2025-11-24|2025-12-01")]
    for sub in (shuffled, part, week13):
        f = build_features(sub, contract).set_index("transaction_id")
        pd.testing.assert_frame_equal(f, full.loc[f.index])
    # the same rows landed in two different batches give the same features
    same = batch.iloc[:50].assign(_batch="another_batch")
    a = build_features(same, contract).drop(columns="_batch")
    b = build_features(batch.iloc[:50], contract).drop(columns="_batch")
    pd.testing.assert_frame_equal(a, b)


def test_duplicate_index_is_kept(contract: Contract, batch: pd.DataFrame) -> None:
    dup = batch.iloc[:4].set_axis([7, 7, 8, 8])
    f = build_features(dup, contract)
    assert f.index.tolist() == [7, 7, 8, 8]
    assert f["transaction_id"].tolist() == dup["transaction_id"].tolist()


# ------------------------------------------------------------------ bad input


def test_missing_source_column_names_feature_and_column(contract: Contract,
                                                        batch: pd.DataFrame) -> None:
    with pytest.raises(DataError) as e:
        build_features(batch.drop(columns=["avg_amount_30d"]), contract)
    assert "'amount_vs_avg'" in str(e.value) and "'avg_amount_30d'" in str(e.value)
    assert e.value.column == "avg_amount_30d"


@pytest.mark.parametrize("column", ["transaction_id", "ts"])
def test_missing_id_or_timestamp_column(contract: Contract, batch: pd.DataFrame,
                                        column: str) -> None:
    with pytest.raises(DataError, match=f"'{column}'"):
        build_features(batch.drop(columns=[column]), contract)


def test_non_numeric_source_names_feature_column_and_row(contract: Contract,
                                                         batch: pd.DataFrame) -> None:
    bad = batch.iloc[:5].copy()
    bad["amount"] = bad["amount"].astype(object)
    bad.loc[bad.index[3], "amount"] = "12,50"
    with pytest.raises(DataError) as e:
        build_features(bad, contract)
    msg = str(e.value)
    assert "'log_amount'" in msg and "'amount'" in msg and "'12,50'" in msg
    assert e.value.rows == [3]

    dated = batch.iloc[:5].assign(card_age_days=pd.Timestamp("2025-01-01"))
    with pytest.raises(DataError, match="'card_age_days'.*datetime64"):
        build_features(dated, contract)

    strings = batch.iloc[:5].assign(txn_count_24h=lambda d: d["txn_count_24h"].astype("string"))
    with pytest.raises(DataError, match="'txn_count_24h'"):
        build_features(strings, contract)


def test_bad_timestamps(contract: Contract, batch: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="'ts'.*ISO 8601"):
        build_features(batch.iloc[:3].assign(ts=["2025-09-01", "yesterday", "x"]), contract)
    with pytest.raises(DataError, match="'ts'.*int64"):
        build_features(batch.iloc[:3].assign(ts=[1, 2, 3]), contract)
    with pytest.raises(DataError, match="DataFrame"):
        build_features([{"transaction_id": "x"}], contract)  # type: ignore[arg-type]


# ------------------------------------------------------------------ metadata


def test_feature_frame_metadata(contract: Contract) -> None:
    meta = feature_frame_metadata(contract)
    assert meta["feature_definitions_hash"] == contract.feature_definitions_hash()
    assert meta["feature_names"] == contract.feature_names
    assert meta["categorical_features"] == ["merchant_category", "country", "channel"]
    assert [f["kind"] for f in meta["features"]] == [
        "categorical" if n in meta["categorical_features"] else "numeric"
        for n in contract.feature_names]
    assert meta["features"][1] == {"name": "amount_vs_avg", "transform": "ratio",
                                   "source": ["amount", "avg_amount_30d"], "kind": "numeric",
                                   "dtype": "float64"}
    assert canonical_json(meta) == canonical_json(feature_frame_metadata(load_contract(FRAUD)))
    assert str(REPO) not in canonical_json(meta)   # no absolute paths in a DVC output
