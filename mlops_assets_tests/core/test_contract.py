"""Contract -> pandera schema, Dagster column schema and raw-column coercion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.errors import SchemaErrors

from mlops_assets.core.contract import (
    ColumnSpec,
    coerce_column,
    coerce_frame,
    column_constraints,
    final_dtype,
    load_contract,
)
from mlops_assets.core.io import DataError
from mlops_assets_tests.core import fraud_contract, fraud_frame

SMALL_CONTRACT = """
name: small
id_column: id
timestamp_column: ts
label_column: y
columns:
  id: {type: string, unique: true}
  ts: {type: datetime}
  n_opt: {type: int, nullable: true, min: 0}
  n_req: {type: int, min: 0, max: 10}
  flag: {type: bool, nullable: true}
  kind: {type: category, categories: [a, b], strict: true}
  y: {type: int, min: 0, max: 1}
features:
  - {name: n_opt, transform: identity, source: n_opt}
"""


@pytest.fixture
def small(tmp_path: Path):
    p = tmp_path / "small.yaml"
    p.write_text(SMALL_CONTRACT)
    return load_contract(p)


def _fails(schema: pa.DataFrameSchema, df: pd.DataFrame) -> set[tuple[str, str]]:
    try:
        schema.validate(df, lazy=True)
    except SchemaErrors as e:
        return {(str(c), str(k)) for c, k in zip(e.failure_cases["column"],
                                                  e.failure_cases["check"], strict=True)}
    return set()


def test_pandera_schema_mirrors_the_contract():
    c = fraud_contract()
    schema = c.pandera_schema()
    assert isinstance(schema, pa.DataFrameSchema)
    assert list(schema.columns) == c.column_names
    cols = schema.columns
    assert str(cols["amount"].dtype) == "float64"
    assert str(cols["ts"].dtype) == "datetime64[ns]"
    assert str(cols["card_age_days"].dtype) == "Int64" and cols["card_age_days"].coerce
    assert cols["transaction_id"].unique and not cols["transaction_id"].nullable
    assert cols["distance_from_home_km"].nullable
    assert [ch.name for ch in cols["amount"].checks] == ["min", "max"]
    assert [ch.error for ch in cols["amount"].checks] == [">= 0", "<= 50000"]
    # strict category: an isin check; non-strict: no check (unknown values are warnings)
    assert [ch.name for ch in cols["channel"].checks] == ["category"]
    assert cols["merchant_category"].checks == []


def test_pandera_schema_validates_coerced_frames_and_finds_violations():
    c = fraud_contract()
    schema = c.pandera_schema()
    df = coerce_frame(fraud_frame(30), c)
    schema.validate(df, lazy=True)  # int64 (final dtype) passes the Int64 column via coerce
    bad = df.copy()
    bad.loc[2, "amount"] = -1.0
    bad.loc[3, "channel"] = "teleport"
    bad.loc[4, "transaction_id"] = bad.loc[5, "transaction_id"]
    fails = _fails(schema, bad)
    assert ("amount", ">= 0") in fails
    assert ("channel", "one of pos, online, atm") in fails
    assert ("transaction_id", "field_uniqueness") in fails


def test_int_columns_are_nullable_aware(small):
    schema = small.pandera_schema()
    df = pd.DataFrame({
        "id": ["a", "b", "c"], "ts": pd.to_datetime(["2025-01-01"] * 3),
        "n_opt": pd.array([1, None, 3], dtype="Int64"),  # nulls allowed here
        "n_req": pd.array([1, 2, None], dtype="Int64"),  # ...not here
        "flag": pd.array([True, None, False], dtype="boolean"),
        "kind": ["a", "b", "a"], "y": [0, 1, 0],
    })
    fails = _fails(schema, df)
    assert fails == {("n_req", "not_nullable")}
    # from CSV the same columns arrive as float64 with NaN: coerce_column keeps the nulls
    cc = coerce_column(pd.Series([1.0, np.nan, 3.0]), small.columns["n_opt"])
    assert str(cc.values.dtype) == "Int64" and cc.n_bad == 0 and not cc.retyped
    assert cc.values.isna().tolist() == [False, True, False]


def test_final_dtypes(small):
    assert final_dtype(small.columns["n_opt"]) == "Int64"
    assert final_dtype(small.columns["n_req"]) == "int64"
    assert final_dtype(small.columns["flag"]) == "boolean"
    assert final_dtype(small.columns["kind"]) == "object"
    assert final_dtype(small.columns["ts"]) == "datetime64[ns]"


def test_table_schema_columns():
    c = fraud_contract()
    cols = c.table_schema_columns()
    assert [n for n, _, _ in cols] == c.column_names
    by_name = {n: (t, d) for n, t, d in cols}
    assert by_name["amount"] == ("float", "Amount in EUR (>= 0; <= 50000)")
    assert by_name["channel"][0] == "category"
    assert "one of pos, online, atm" in by_name["channel"][1]
    assert "others allowed" in by_name["merchant_category"][1]
    assert "nullable" in by_name["distance_from_home_km"][1]
    assert "unique" in by_name["transaction_id"][1]


def test_column_constraints():
    c = fraud_contract()
    assert column_constraints(c.columns["amount"]) == [("min", ">= 0"), ("max", "<= 50000")]
    assert column_constraints(c.columns["country"]) == []


def test_coerce_frame_parses_csv_strings():
    c = fraud_contract()
    raw = fraud_frame(5).astype({"amount": str})
    raw["ts"] = ["2025-09-01T10:00:00", "2025-09-01 11:00:00", "2025-09-01T12:00:00+02:00",
                 "2025-09-01T13:00:00Z", "2025-09-02"]
    out = coerce_frame(raw, c)
    assert str(out["ts"].dtype) == "datetime64[ns]"
    assert out["ts"].tolist() == [pd.Timestamp("2025-09-01 10:00"),
                                  pd.Timestamp("2025-09-01 11:00"),
                                  pd.Timestamp("2025-09-01 10:00"),  # +02:00 -> UTC
                                  pd.Timestamp("2025-09-01 13:00"),
                                  pd.Timestamp("2025-09-02")]
    assert str(out["amount"].dtype) == "float64"
    assert str(out["card_age_days"].dtype) == "int64"
    assert out["channel"].map(type).eq(str).all()


def test_coerce_frame_names_column_and_rows():
    c = fraud_contract()
    raw = fraud_frame(6).astype({"amount": object})
    raw.loc[[1, 4], "amount"] = ["twelve", "n/a"]
    with pytest.raises(DataError) as e:
        coerce_frame(raw, c, source="batch.csv")
    msg = str(e.value)
    assert "amount" in msg and "batch.csv" in msg and "rows: 1, 4" in msg and "float" in msg
    out = coerce_frame(raw, c, errors="coerce")
    assert out["amount"].isna().tolist() == [False, True, False, False, True, False]


def test_tz_aware_timestamps_become_naive_utc():
    spec = ColumnSpec("ts", "datetime")
    s = pd.Series(pd.to_datetime(["2025-06-01 12:00"]).tz_localize("Europe/Berlin"))
    cc = coerce_column(s, spec, typed_source=True)
    assert cc.values.tolist() == [pd.Timestamp("2025-06-01 10:00")]
    assert not cc.retyped and cc.n_bad == 0


def test_retyped_depends_on_source_typing():
    spec = ColumnSpec("amount", "float")
    numeric_text = pd.Series(["1.5", "2"])
    assert not coerce_column(numeric_text, spec).retyped  # CSV: text is the only type
    cc = coerce_column(numeric_text, spec, typed_source=True)  # Parquet: a real type change
    assert cc.retyped and cc.n_bad == 0 and cc.family == "string"
    junk = coerce_column(pd.Series(["1.5", "abc", None]), spec)
    assert junk.retyped and junk.n_bad == 1 and junk.bad.tolist() == [False, True, False]
    # non-integral floats in an int column do not convert
    cc = coerce_column(pd.Series([1.0, 2.5]), ColumnSpec("n", "int"))
    assert cc.bad.tolist() == [False, True] and cc.retyped
    # epoch numbers are never guessed as timestamps
    assert coerce_column(pd.Series([1_700_000_000]), ColumnSpec("ts", "datetime")).n_bad == 1


def test_string_columns_accept_numeric_ids_from_csv():
    cc = coerce_column(pd.Series([12.0, np.nan, 7.0]), ColumnSpec("id", "string"))
    assert cc.values.tolist() == ["12", None, "7"] and not cc.retyped


def test_bool_coercion():
    spec = ColumnSpec("b", "bool", nullable=True)
    cc = coerce_column(pd.Series(["true", "False", "maybe", None]), spec)
    assert cc.values.tolist()[:2] == [True, False]
    assert cc.bad.tolist() == [False, False, True, False]
