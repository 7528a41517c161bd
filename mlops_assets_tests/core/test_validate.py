"""Validation of snapshots against the contract: clear errors, drift, warnings, the validated
frame format, determinism, and the previous outputs surviving a failure."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.contract import load_contract
from mlops_assets.core.ingest import snapshot_batches
from mlops_assets.core.io import DataError, canonical_json, md5_bytes
from mlops_assets.core.validate import (
    ValidationFailed,
    ValidationReport,
    validate_frame,
    validate_snapshots,
    write_validation_outputs,
)
from mlops_assets_tests.byod import write_breast_cancer_landing
from mlops_assets_tests.core import (
    FRAUD_CONTRACT,
    fraud_contract,
    fraud_frame,
    write_csv,
    write_parquet,
)


@pytest.fixture
def contract():
    return fraud_contract()


def _store(root: Path, files: dict[str, bytes | pd.DataFrame]) -> Path:
    """A snapshot store holding exactly `files` (name -> bytes or a frame, written as CSV or
    Parquet by suffix), with a matching manifest. It bypasses `snapshot_batches` (which
    refuses unreadable files) so validation's own handling of bad files is tested."""
    store = root / "snapshots"
    store.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, content in sorted(files.items()):
        path = store / name
        if isinstance(content, pd.DataFrame):
            (write_csv if name.endswith(".csv") else write_parquet)(path, content)
        else:
            path.write_bytes(content)
        data = path.read_bytes()
        md5 = md5_bytes(data)
        entries.append({"batch": Path(name).stem, "source_file": name, "snapshot_file": name,
                        "md5": md5, "size": len(data), "rows": 0, "columns": [],
                        "history": [md5]})
    (store / "manifest.json").write_text(canonical_json({"entries": entries, "format": 1}))
    return store


def _fail(store: Path, contract) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as e:
        validate_snapshots(store, contract)
    assert isinstance(e.value, DataError)
    return e.value


def _good_store(root: Path, weeks: int = 3, n: int = 30) -> Path:
    landing = root / "landing"
    for w in range(weeks):
        frame = fraud_frame(n, week=w, start_id=1000 * w)
        if w % 2:
            write_csv(landing / f"week_{w}.csv", frame)
        else:
            write_parquet(landing / f"week_{w}.parquet", frame)
    snapshot_batches(landing, root / "snapshots")
    return root / "snapshots"


# ------------------------------------------------------------------------ passing data


def test_good_snapshots_validate_into_the_canonical_frame(tmp_path, contract):
    store = _good_store(tmp_path)
    df, report = validate_snapshots(store, contract)
    assert report.passed and report.n_rows == 90 and report.n_batches == 3
    assert report.errors == [] and report.failure_counts == {}
    assert list(df.columns) == contract.column_names + ["_batch"]
    dtypes = {c: str(t) for c, t in df.dtypes.items()}
    assert dtypes["ts"] == "datetime64[ns]" and dtypes["amount"] == "float64"
    assert dtypes["card_age_days"] == "int64" and dtypes["is_fraud"] == "int64"
    assert dtypes["channel"] == "object" and dtypes["transaction_id"] == "object"
    assert df["channel"].map(type).eq(str).all()
    assert isinstance(df.index, pd.RangeIndex) and df.index[0] == 0
    expected = df.sort_values(["ts", "transaction_id"], kind="mergesort")
    assert df["transaction_id"].tolist() == expected["transaction_id"].tolist()
    assert set(df["_batch"]) == {"week_0", "week_1", "week_2"}
    assert report.schema_drift == {b: {"new": [], "missing": [], "retyped": []}
                                   for b in ("week_0", "week_1", "week_2")}
    d = report.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["columns"][0] == ["transaction_id", "object"]
    assert report.summary().startswith("validation passed: 90 rows in 3 batch(es)")


def test_csv_and_parquet_give_the_same_values(tmp_path, contract):
    frame = fraud_frame(25)
    a = _store(tmp_path / "a", {"w.csv": frame})
    b = _store(tmp_path / "b", {"w.parquet": frame})
    da, _ = validate_snapshots(a, contract)
    db, _ = validate_snapshots(b, contract)
    pd.testing.assert_frame_equal(da, db)


def test_validated_output_is_byte_identical_across_runs(tmp_path, contract):
    outs = []
    for run in ("one", "two"):
        store = _good_store(tmp_path / run)
        df, report = validate_snapshots(store, contract)
        out = tmp_path / run / "out"
        write_validation_outputs(df, report, out / "dataset.parquet", out / "validation.json")
        outs.append(((out / "dataset.parquet").read_bytes(),
                     (out / "validation.json").read_bytes()))
    assert outs[0] == outs[1]
    assert str(tmp_path).encode() not in outs[0][1]


def test_int_column_with_nulls_where_nullable_is_allowed(tmp_path):
    text = FRAUD_CONTRACT.read_text().replace("txn_count_24h: {type: int, nullable: false",
                        "txn_count_24h: {type: int, nullable: true")
    p = tmp_path / "c.yaml"
    p.write_text(text)
    c = load_contract(p)
    frame = fraud_frame(10).astype({"txn_count_24h": "float64"})
    frame.loc[[2, 5], "txn_count_24h"] = np.nan
    df, report = validate_snapshots(_store(tmp_path, {"w.csv": frame}), c)
    assert report.passed and str(df["txn_count_24h"].dtype) == "Int64"
    assert df["txn_count_24h"].isna().sum() == 2


def test_timestamps_with_zone_offsets_become_naive_utc(tmp_path, contract):
    frame = fraud_frame(3)
    text = frame.assign(ts=["2025-09-01T10:00:00+02:00", "2025-09-01T09:00:00Z",
                            "2025-09-01T07:30:00"])
    store = _store(tmp_path, {"w.csv": text})
    df, _ = validate_snapshots(store, contract)
    assert df["ts"].tolist() == [pd.Timestamp("2025-09-01 07:30"),
                                 pd.Timestamp("2025-09-01 08:00"),
                                 pd.Timestamp("2025-09-01 09:00")]


# ------------------------------------------------------------------------ bad input


def test_range_violation_message_names_file_column_rows_and_expectation(tmp_path, contract):
    frame = fraud_frame(30)
    frame.loc[[3, 17], "amount"] = [-5.0, -1.0]
    store = _store(tmp_path, {"week_x.parquet": frame})
    err = _fail(store, contract)
    assert str(err) == (f"validation failed for {store / 'week_x.parquet'}: column 'amount' rows "
                        "3, 17: expected >= 0, found -5.0, -1.0 (2 violations)")
    rep = err.report
    assert rep.failure_counts == {"amount/min": 2}
    (e,) = rep.errors
    assert e["examples"] == [
        {"file": "week_x.parquet", "row": 3, "column": "amount", "value": -5.0,
         "expected": ">= 0"},
        {"file": "week_x.parquet", "row": 17, "column": "amount", "value": -1.0,
         "expected": ">= 0"}]
    assert err.column == "amount" and err.rows == [3, 17]
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.report.to_dict() == rep.to_dict()


def test_missing_column(tmp_path, contract):
    store = _store(tmp_path, {"week_m.parquet": fraud_frame(12).drop(columns=["amount"])})
    err = _fail(store, contract)
    msg = str(err)
    assert "week_m.parquet" in msg and "column 'amount' is missing" in msg
    assert "float" in msg and "12 rows" in msg
    assert err.report.schema_drift["week_m"]["missing"] == ["amount"]
    assert err.report.failure_counts == {"amount/missing_column": 12}


def test_strings_in_amount(tmp_path, contract):
    frame = fraud_frame(20).astype({"amount": object})
    frame.loc[[4, 11], "amount"] = ["12,50 EUR", "unknown"]
    store = _store(tmp_path, {"week_s.csv": frame})
    err = _fail(store, contract)
    msg = str(err)
    assert "week_s.csv" in msg and "column 'amount' rows 4, 11" in msg
    assert "expected float" in msg and "'12,50 EUR'" in msg and "'unknown'" in msg
    assert err.report.schema_drift["week_s"]["retyped"] == [
        {"column": "amount", "expected": "float", "found": "string", "count": 2}]
    assert err.report.failure_counts == {"amount/dtype": 2}


def test_strings_in_amount_do_not_hide_real_nulls(tmp_path, contract):
    frame = fraud_frame(10).astype({"amount": object})
    frame.loc[2, "amount"] = "abc"
    frame.loc[6, "amount"] = None
    err = _fail(_store(tmp_path, {"w.csv": frame}), contract)
    assert err.report.failure_counts == {"amount/dtype": 1, "amount/not_null": 1}
    assert "column 'amount' row 6: expected no missing values" in str(err)


def test_nulls_where_none_allowed(tmp_path, contract):
    frame = fraud_frame(15).astype({"card_age_days": "float64"})
    frame.loc[[0, 9], "card_age_days"] = np.nan
    frame.loc[5, "channel"] = None
    err = _fail(_store(tmp_path, {"week_n.csv": frame}), contract)
    msg = str(err)
    assert "week_n.csv" in msg
    assert "column 'card_age_days' rows 0, 9: expected no missing values" in msg
    assert "column 'channel' row 5: expected no missing values" in msg
    assert err.report.failure_counts == {"card_age_days/not_null": 2, "channel/not_null": 1}
    assert err.report.schema_drift["week_n"]["retyped"] == []


def test_empty_file(tmp_path, contract):
    err = _fail(_store(tmp_path, {"week_e.parquet": b""}), contract)
    assert "week_e.parquet" in str(err) and "empty (0 bytes)" in str(err)
    assert err.report.failure_counts == {"*/read": 1}


def test_header_only_csv(tmp_path, contract):
    header = ",".join(contract.column_names) + "\n"
    err = _fail(_store(tmp_path, {"week_h.csv": header.encode()}), contract)
    assert "week_h.csv" in str(err) and "no rows" in str(err)


def test_corrupt_parquet(tmp_path, contract):
    junk = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    err = _fail(_store(tmp_path, {"week_c.parquet": junk}), contract)
    assert "week_c.parquet" in str(err) and "cannot read Parquet" in str(err)


def test_non_utf8_csv(tmp_path, contract):
    frame = fraud_frame(4)
    text = frame.to_csv(index=False).replace("DE", "D\u00c9").replace("FR", "F\u00c9")
    err = _fail(_store(tmp_path, {"week_l.csv": text.encode("latin-1")}), contract)
    msg = str(err)
    assert "week_l.csv" in msg and "not valid UTF-8" in msg and "row" in msg


def test_unknown_category_in_a_strict_column_is_an_error(tmp_path, contract):
    frame = fraud_frame(10)
    frame.loc[7, "channel"] = "teleport"
    err = _fail(_store(tmp_path, {"week_t.parquet": frame}), contract)
    assert str(err).endswith("week_t.parquet: column 'channel' row 7: expected one of pos, "
                             "online, atm, found 'teleport' (1 violation)")
    assert err.report.failure_counts == {"channel/category": 1}


def test_unknown_category_in_a_non_strict_column_is_a_warning(tmp_path, contract):
    frame = fraud_frame(10)
    frame.loc[[1, 8], "merchant_category"] = "crypto_exchange"
    frame.loc[3, "country"] = "JP"
    df, report = validate_snapshots(_store(tmp_path, {"w.parquet": frame}), contract)
    assert report.passed
    assert report.warning_counts == {"country/unknown_category": 1,
                                     "merchant_category/unknown_category": 2}
    w = next(w for w in report.warnings if w["column"] == "merchant_category")
    assert w["values"] == {"crypto_exchange": 2} and w["rows"] == [1, 8]
    assert (df["merchant_category"] == "crypto_exchange").sum() == 2
    assert "crypto_exchange" in report.summary()


def test_new_columns_are_drift_warnings_and_are_dropped(tmp_path, contract):
    frame = fraud_frame(5).assign(loyalty_tier="gold")
    df, report = validate_snapshots(_store(tmp_path, {"w.parquet": frame}), contract)
    assert report.passed and "loyalty_tier" not in df.columns
    assert report.schema_drift["w"]["new"] == ["loyalty_tier"]
    assert report.warning_counts == {"loyalty_tier/new_column": 5}


def test_parquet_column_of_another_type_that_converts_is_a_warning(tmp_path, contract):
    frame = fraud_frame(5).astype({"amount": str})
    df, report = validate_snapshots(_store(tmp_path, {"w.parquet": frame}), contract)
    assert report.passed and str(df["amount"].dtype) == "float64"
    assert report.schema_drift["w"]["retyped"] == [
        {"column": "amount", "expected": "float", "found": "string", "count": 0}]
    assert report.warning_counts == {"amount/retyped": 5}


def test_duplicate_ids_within_and_across_batches(tmp_path, contract):
    a = fraud_frame(10, start_id=0)
    b = fraud_frame(10, week=1, start_id=100)
    b.loc[4, "transaction_id"] = a.loc[2, "transaction_id"]
    c = fraud_frame(10, week=2, start_id=200)
    c.loc[8, "transaction_id"] = c.loc[1, "transaction_id"]
    store = _store(tmp_path, {"a.parquet": a, "b.parquet": b, "c.parquet": c})
    err = _fail(store, contract)
    counts = err.report.failure_counts
    assert counts == {"transaction_id/unique": 2, "transaction_id/unique_across_batches": 1}
    msg = str(err)
    assert "b.parquet: column 'transaction_id' row 4: expected unique values (already in " \
           "a.parquet), found 't0000002'" in msg
    assert "c.parquet: column 'transaction_id' rows 1, 8: expected unique values" in msg


def test_every_batch_is_checked_and_the_summary_lists_each_file(tmp_path, contract):
    a = fraud_frame(10)
    a.loc[1, "amount"] = 60000.0
    b = fraud_frame(10, week=1, start_id=100)
    b.loc[2, "channel"] = "teleport"
    store = _store(tmp_path, {"a.parquet": a, "b.parquet": b, "c.parquet": b"junk"})
    err = _fail(store, contract)
    lines = str(err).splitlines()
    assert lines[0] == "validation failed: 3 problems in 3 of 3 batch files"
    assert any("a.parquet: column 'amount' row 1: expected <= 50000" in ln for ln in lines)
    assert any("b.parquet: column 'channel' row 2" in ln for ln in lines)
    assert any("c.parquet: cannot read Parquet" in ln for ln in lines)
    assert err.report.n_batches == 3 and err.report.n_rows == 20


def test_report_to_dict_is_deterministic_and_json(tmp_path, contract):
    frame = fraud_frame(10)
    frame.loc[[1, 2], "amount"] = -1.0
    frame.loc[3, "merchant_category"] = "new_cat"
    store = _store(tmp_path, {"w.parquet": frame})
    a = _fail(store, contract).report.to_dict()
    b = _fail(store, contract).report.to_dict()
    assert canonical_json(a) == canonical_json(b)
    assert set(a) >= {"passed", "n_rows", "n_batches", "errors", "warnings", "schema_drift",
                      "failure_counts"}
    assert a["passed"] is False and str(tmp_path) not in canonical_json(a)


def test_empty_store_is_a_data_error(tmp_path, contract):
    with pytest.raises(DataError, match="no batches"):
        validate_snapshots(tmp_path, contract)


# ------------------------------------------------------------------------ outputs


def test_failure_leaves_the_previous_outputs_intact(tmp_path, contract):
    out_parquet = tmp_path / "data/validated/dataset.parquet"
    out_report = tmp_path / "data/reports/validation.json"
    failed_report = tmp_path / "data/reports/validation_failed.json"
    df, report = validate_snapshots(_good_store(tmp_path / "good"), contract)
    assert write_validation_outputs(df, report, out_parquet, out_report) == [out_parquet,
                                                                               out_report]
    before = (out_parquet.read_bytes(), out_report.read_bytes())
    stat_before = (out_parquet.stat().st_ino, out_parquet.stat().st_mtime_ns)

    bad = fraud_frame(10)
    bad.loc[7, "channel"] = "teleport"
    err = _fail(_store(tmp_path / "bad", {"w.parquet": bad}), contract)
    written = write_validation_outputs(None, err.report, out_parquet, out_report)
    assert written == [failed_report]
    assert (out_parquet.read_bytes(), out_report.read_bytes()) == before
    assert (out_parquet.stat().st_ino, out_parquet.stat().st_mtime_ns) == stat_before
    failed = json.loads(failed_report.read_text())
    assert failed["passed"] is False and failed["failure_counts"] == {"channel/category": 1}
    # no temp files left behind
    assert sorted(p.name for p in out_report.parent.iterdir()) == ["validation.json",
                                                                   "validation_failed.json"]
    # the next good run replaces the outputs and clears the stale failure report
    write_validation_outputs(df, report, out_parquet, out_report)
    assert not failed_report.exists()
    back = pd.read_parquet(out_parquet)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)


def test_validated_parquet_round_trips_with_dtypes(tmp_path, contract):
    df, report = validate_snapshots(_good_store(tmp_path), contract)
    write_validation_outputs(df, report, tmp_path / "d.parquet", tmp_path / "r.json")
    back = pd.read_parquet(tmp_path / "d.parquet")
    assert list(back.columns) == list(df.columns)
    assert str(back["card_age_days"].dtype) == "int64"
    assert pd.api.types.is_datetime64_any_dtype(back["ts"])
    assert json.loads((tmp_path / "r.json").read_text())["passed"] is True


# ------------------------------------------------------------------------ validate_frame


def test_validate_frame_for_scoring_without_label(contract):
    frame = fraud_frame(8).drop(columns=["is_fraud"])
    df, report = validate_frame(frame, contract, source="request", require_label=False,
                                sort=False)
    assert report.passed and "is_fraud" not in df.columns
    assert df["transaction_id"].tolist() == frame["transaction_id"].tolist()
    assert df["_batch"].unique().tolist() == ["request"]


def test_validate_frame_reports_without_raising(contract):
    frame = fraud_frame(8)
    frame.loc[5, "amount"] = -3.0
    df, report = validate_frame(frame, contract, source="x.csv", raise_on_failure=False)
    assert df is None and not report.passed
    assert isinstance(report, ValidationReport)
    assert report.summary() == ("validation failed for x.csv: column 'amount' row 5: expected "
                                ">= 0, found -3.0 (1 violation)")
    with pytest.raises(ValidationFailed):
        validate_frame(frame, contract, source="x.csv")
    assert frame.loc[5, "amount"] == -3.0  # the caller's frame is untouched


def test_validate_frame_keeps_an_existing_batch_column(contract):
    frame = pd.concat([fraud_frame(5).assign(_batch="b1"),
                       fraud_frame(5, week=1, start_id=50).assign(_batch="b2")])
    df, report = validate_frame(frame, contract)
    assert report.passed and sorted(df["_batch"].unique()) == ["b1", "b2"]
    assert report.warnings == []


# ------------------------------------------------------------------------ your own data


def test_breast_cancer_byod_validates_cleanly(tmp_path):
    contract_path = write_breast_cancer_landing(tmp_path / "landing", n_batches=4)
    c = load_contract(contract_path)
    assert len(c.features) == 6
    entries = snapshot_batches(tmp_path / "landing", tmp_path / "snapshots")
    assert len(entries) == 4 and all(e.snapshot_file.endswith(".csv") for e in entries)
    df, report = validate_snapshots(tmp_path / "snapshots", c)
    assert report.passed and report.warnings == []
    assert report.n_rows == 569 and report.n_batches == 4
    assert list(df.columns) == c.column_names + ["_batch"]
    assert df["malignant"].sum() == 212  # sklearn: 212 malignant, 357 benign
    assert df["ts"].is_monotonic_increasing
    # deterministic: a second landing gives the same bytes
    write_breast_cancer_landing(tmp_path / "again", n_batches=4)
    for p in (tmp_path / "landing").iterdir():
        assert (tmp_path / "again" / p.name).read_bytes() == p.read_bytes()


def test_the_validation_of_a_large_frame_is_vectorised(contract):
    n = 200_000
    frame = pd.concat([fraud_frame(n // 4, week=w, start_id=w * n) for w in range(4)],
                      ignore_index=True)
    frame.loc[::10, "amount"] = -1.0
    _, report = validate_frame(frame, contract, raise_on_failure=False)
    assert report.failure_counts == {"amount/min": n // 10}
    assert len(report.errors[0]["examples"]) == 5
    # its speed against a per-row loop: benchmarks/budget_bench.py (no timing in tests)
