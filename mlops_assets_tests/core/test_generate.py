"""core.generate: contract-shaped rows, per-week seeding, byte-identical landing files, and
the holiday incident (a pre-holiday model's false-positive rate rises several-fold)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets.core.contract import Contract, load_contract
from mlops_assets.core.generate import (
    COLUMNS,
    FraudScenario,
    generate_week,
    land_batches,
    parquet_bytes,
)
from mlops_assets.core.io import DataError, md5_file
from mlops_assets_tests.conftest import committed_text

REPO = Path(__file__).resolve().parents[2]
FRAUD = REPO / "mlops_assets" / "contracts" / "fraud.yaml"
PARAMS = yaml.safe_load(committed_text("params.yaml"))
SMALL = FraudScenario(rows_per_week=2000, weeks=16)
DTYPES = {"string": "object", "category": "object", "datetime": "datetime64[ns]",
          "float": "float64", "int": "int64"}


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(FRAUD)


@pytest.fixture(scope="module")
def all_weeks() -> list[pd.DataFrame]:
    return [generate_week(SMALL, i) for i in range(SMALL.weeks)]


# ------------------------------------------------------------------ shape and contract


def test_columns_and_dtypes_match_the_contract(contract: Contract,
                                               all_weeks: list[pd.DataFrame]) -> None:
    assert list(COLUMNS) == contract.column_names
    for df in all_weeks:
        assert list(df.columns) == contract.column_names
        assert isinstance(df.index, pd.RangeIndex)
        for name, spec in contract.columns.items():
            assert str(df[name].dtype) == DTYPES[spec.type], name


def test_values_respect_ranges_categories_and_nullability(contract: Contract,
                                                          all_weeks: list[pd.DataFrame]) -> None:
    df = pd.concat(all_weeks, ignore_index=True)
    for name, spec in contract.columns.items():
        col = df[name]
        if not spec.nullable:
            assert col.notna().all(), name
        if spec.min is not None:
            assert (col.dropna() >= spec.min).all(), name
        if spec.max is not None:
            assert (col.dropna() <= spec.max).all(), name
        if spec.type == "category":
            unknown = set(col.unique()) - set(spec.categories)
            if spec.strict:
                assert not unknown, name
            elif name == "merchant_category":
                assert unknown <= set(SMALL.holiday_new_categories)
            else:
                assert not unknown, name
        if spec.type in ("string", "category"):
            assert all(isinstance(v, str) for v in col), name
    assert df["transaction_id"].is_unique
    assert set(df["is_fraud"].unique()) == {0, 1}
    assert 0.01 <= df["is_fraud"].mean() <= 0.02
    assert 0.02 <= df["distance_from_home_km"].isna().mean() <= 0.04


def test_generated_batches_pass_the_real_validator(contract: Contract,
                                                   all_weeks: list[pd.DataFrame]) -> None:
    from mlops_assets.core.validate import validate_frame

    normal, holiday = all_weeks[0], all_weeks[-1]
    _, report = validate_frame(normal, contract, "week_normal.parquet")
    assert report.passed and not report.errors
    _, report = validate_frame(holiday, contract, "week_holiday.parquet")
    assert report.passed and not report.errors
    # the new holiday categories are warnings (strict: false), not failures
    assert any(w["column"] == "merchant_category" for w in report.warnings)


def test_rows_sorted_by_ts_then_id_within_their_week(all_weeks: list[pd.DataFrame]) -> None:
    for i, df in enumerate(all_weeks):
        start = pd.Timestamp(SMALL.week_start(i))
        assert df["ts"].min() >= start
        assert df["ts"].max() < start + pd.Timedelta(days=7)
        ordered = df.sort_values(["ts", "transaction_id"], kind="mergesort")
        assert ordered.index.equals(df.index)
        assert df["transaction_id"].iloc[0] == f"tx-{start.date().isoformat()}-000001"


def test_wide_ids_when_a_week_has_more_than_a_million_rows() -> None:
    s = FraudScenario(rows_per_week=1_000_001, weeks=1, holiday_start=None)
    df = generate_week(s, 0)
    assert df["transaction_id"].iloc[-1] == "tx-2025-09-01-1000001"
    assert df["transaction_id"].iloc[0] == "tx-2025-09-01-0000001"
    assert df["transaction_id"].is_monotonic_increasing


# ------------------------------------------------------------------ determinism


def test_same_scenario_same_rows_and_weeks_are_independent() -> None:
    a = generate_week(SMALL, 5)
    pd.testing.assert_frame_equal(a, generate_week(SMALL, 5))
    # a week does not depend on how many weeks the scenario has
    pd.testing.assert_frame_equal(a, generate_week(replace(SMALL, weeks=6), 5))
    assert not generate_week(replace(SMALL, seed=7), 5)["amount"].equals(a["amount"])
    assert not generate_week(SMALL, 4)["amount"].equals(a["amount"])


def test_same_params_same_bytes_in_two_separate_processes(tmp_path: Path) -> None:
    scenario = FraudScenario(rows_per_week=500, weeks=3)
    expected = [md5_file(p) for p in land_batches(scenario, tmp_path / "here")]
    code = (
        "import sys; from mlops_assets.core.generate import FraudScenario, land_batches;"
        "from mlops_assets.core.io import md5_file;"
        "s = FraudScenario(rows_per_week=500, weeks=3);"
        "print(' '.join(md5_file(p) for p in land_batches(s, sys.argv[1])))"
    )
    outs = []
    for i, hash_seed in enumerate(("0", "12345")):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(REPO))
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"proc{i}")],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                              check=True)
        outs.append(proc.stdout.split())
    assert outs[0] == outs[1] == expected


# ------------------------------------------------------------------ landing


def test_land_batches_names_files_by_week_and_is_idempotent(tmp_path: Path) -> None:
    scenario = FraudScenario(rows_per_week=300, weeks=4)
    landing = tmp_path / "landing"
    paths = land_batches(scenario, landing)
    assert [p.name for p in paths] == ["week_2025-09-01.parquet", "week_2025-09-08.parquet",
                                       "week_2025-09-15.parquet", "week_2025-09-22.parquet"]
    assert sorted(p.name for p in landing.iterdir()) == [p.name for p in paths]  # no temp files
    pd.testing.assert_frame_equal(pd.read_parquet(paths[2]), generate_week(scenario, 2))
    assert paths[0].read_bytes() == parquet_bytes(generate_week(scenario, 0))

    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in paths}
    os.utime(paths[1], ns=(1_000_000_000, 1_000_000_000))
    before[paths[1]] = (paths[1].stat().st_ino, 1_000_000_000, paths[1].read_bytes())
    assert land_batches(scenario, landing) == paths
    for p in paths:   # identical bytes: not rewritten (same inode, same mtime)
        assert (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) == before[p]


def test_land_batches_repairs_changed_files_and_leaves_others_alone(tmp_path: Path) -> None:
    scenario = FraudScenario(rows_per_week=300, weeks=2)
    landing = tmp_path / "landing"
    paths = land_batches(scenario, landing)
    good = paths[1].read_bytes()
    paths[1].write_bytes(b"corrupted")
    own = landing / "my_upload.csv"
    own.write_text("transaction_id\nx\n")
    land_batches(scenario, landing)
    assert paths[1].read_bytes() == good
    assert own.read_text() == "transaction_id\nx\n"


# ------------------------------------------------------------------ params


def test_from_params_reads_the_sample_data_section() -> None:
    s = FraudScenario.from_params(PARAMS)
    assert s == FraudScenario.from_params(PARAMS["sample_data"])
    sd = PARAMS["sample_data"]
    assert s.seed == sd["seed"] and s.weeks == sd["weeks"]
    assert s.rows_per_week == sd["rows_per_week"] and s.fraud_rate == sd["fraud_rate"]
    assert s.start == dt.date.fromisoformat(str(sd["start"]))
    assert s.holiday_start == dt.date.fromisoformat(str(sd["holiday_start"]))
    assert s.holiday_amount_shift == sd["holiday_amount_shift"]


def test_from_params_accepts_yaml_dates_lists_and_no_holiday() -> None:
    s = FraudScenario.from_params(yaml.safe_load(
        "sample_data: {generator: fraud, start: 2025-01-06, holiday_start: null, weeks: 2,\n"
        "  holiday_new_categories: [gift_cards], holiday_fraud_pattern: none}"))
    assert s.start == dt.date(2025, 1, 6) and s.holiday_start is None
    assert s.holiday_new_categories == ("gift_cards",) and s.holiday_fraud_pattern == "none"
    assert not any(s.is_holiday_week(i) for i in range(s.weeks))
    one = FraudScenario.from_params({"holiday_new_categories": "toys"})
    assert one.holiday_new_categories == ("toys",)


@pytest.mark.parametrize("section, words", [
    ({"sede": 1}, "unknown sample_data keys ['sede']"),
    ({"start": "next monday"}, "sample_data.start"),
    ({"weeks": 0}, "sample_data.weeks"),
    ({"weeks": "4"}, "sample_data.weeks"),
    ({"fraud_rate": 0.9}, "sample_data.fraud_rate"),
    ({"holiday_online_share": 1.5}, "sample_data.holiday_online_share"),
    ({"holiday_fraud_pattern": "teleport"}, "sample_data.holiday_fraud_pattern"),
    ({"holiday_new_categories": ["grocery"]}, "sample_data.holiday_new_categories"),
])
def test_bad_params_raise_data_error(section: dict, words: str) -> None:
    with pytest.raises(DataError, match=words.replace("[", r"\[").replace("]", r"\]")):
        FraudScenario.from_params({"sample_data": section})


# ------------------------------------------------------------------ the holiday scenario


def test_holiday_weeks_shift_amounts_channels_and_categories(all_weeks) -> None:
    holiday_idx = [i for i in range(SMALL.weeks) if SMALL.is_holiday_week(i)]
    assert holiday_idx == [12, 13, 14, 15]   # 2025-11-24 onwards
    normal = pd.concat(all_weeks[:12], ignore_index=True)
    holiday = pd.concat(all_weeks[12:], ignore_index=True)
    new = set(SMALL.holiday_new_categories)
    assert not normal["merchant_category"].isin(new).any()
    assert set(holiday["merchant_category"]) >= new
    legit_n, legit_h = normal[normal.is_fraud == 0], holiday[holiday.is_fraud == 0]
    assert legit_h["amount"].median() > 1.4 * legit_n["amount"].median()
    assert (legit_h["channel"] == "online").mean() > (legit_n["channel"] == "online").mean() + 0.1
    assert (legit_h["card_age_days"] < 21).mean() > 2 * (legit_n["card_age_days"] < 21).mean()
    # the new fraud pattern: tiny amounts at the new merchants, only in holiday weeks
    def card_testing(d: pd.DataFrame) -> pd.Series:
        return (d.is_fraud == 1) & (d.amount < 5) & d.merchant_category.isin(new)

    assert card_testing(holiday).sum() >= 0.3 * holiday.is_fraud.sum()
    assert card_testing(normal).sum() == 0


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("holiday_fpr",
                                                  REPO / "benchmarks" / "holiday_fpr.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pre_holiday_model_false_positive_rate_rises_several_fold(contract: Contract) -> None:
    bench = _load_benchmark()
    scenario = replace(FraudScenario.from_params(PARAMS), rows_per_week=3000)
    result = bench.measure(scenario, contract, PARAMS["split"]["cutoff"])  # timed: budget_bench.py
    weeks = result["weeks"]
    held_out = [w for w in weeks if w["period"] == "normal"]
    holiday = [w for w in weeks if w["period"] == "holiday"]
    assert len(held_out) == 2 and len(holiday) == 4
    assert result["normal_fpr"] < 0.04
    assert result["ratio"] >= 3 and result["ratio_vs_holdout"] >= 3
    assert all(w["fpr"] >= 0.06 for w in holiday)
    # learnable but noisy before the holidays; much worse during them
    auc_normal = np.mean([w["roc_auc"] for w in held_out])
    assert 0.85 <= auc_normal <= 0.98
    assert np.mean([w["roc_auc"] for w in holiday]) < auc_normal - 0.1


def test_default_scenario_generates_every_row() -> None:
    """Its speed is measured by benchmarks/budget_bench.py (no timing in tests)."""
    scenario = FraudScenario.from_params(PARAMS)
    total = sum(len(generate_week(scenario, i)) for i in range(scenario.weeks))
    assert total == scenario.weeks * scenario.rows_per_week
