"""Temporal train/holdout split of the feature table.

Training rows are strictly before the cutoff; holdout rows are at or after it (and before
`holdout_end` when given). Rows at or after `holdout_end` are in neither set: they are the
"future" the drift stage looks at. Both outputs are sorted by (timestamp, id) with a fresh
RangeIndex, so the same input gives the same bytes whatever its row order.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from mlops_assets.core.contract import Contract
from mlops_assets.core.io import DataError

TimeLike = str | dt.date | dt.datetime | pd.Timestamp


def temporal_split(
    features: pd.DataFrame,
    contract: Contract,
    cutoff: TimeLike,
    holdout_end: TimeLike | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split on the timestamp: train = ts < cutoff, holdout = cutoff <= ts < holdout_end
    (or ts >= cutoff when `holdout_end` is None).

    Raises DataError when a needed column is missing, a timestamp is missing, either side
    is empty, or the training rows do not hold both label classes."""
    ts_col, id_col, label = contract.timestamp_column, contract.id_column, contract.label_column
    for col in (ts_col, id_col):
        if col not in features.columns:
            raise DataError(f"the feature table lacks the column {col!r}", column=col)
    if label is None or label not in features.columns:
        raise DataError("the feature table lacks the label column, which training needs",
                        column=label, expected="a labelled feature table")
    cut = _timestamp("cutoff", cutoff)
    end = None if holdout_end is None else _timestamp("holdout_end", holdout_end)
    if end is not None and end <= cut:
        raise DataError(f"split.holdout_end ({end}) must be after split.cutoff ({cut})")
    ts = features[ts_col]
    if not pd.api.types.is_datetime64_dtype(ts):
        raise DataError(f"the timestamp column has dtype {ts.dtype}", column=ts_col,
                        expected="datetime64 (naive UTC)")
    if ts.isna().any():
        rows = [int(i) for i in (ts.isna().to_numpy().nonzero()[0])]
        raise DataError("timestamps are missing, so those rows belong to neither side",
                        column=ts_col, rows=rows, expected="a timestamp on every row")

    in_train = (ts < cut).to_numpy()
    in_holdout = (ts >= cut).to_numpy()
    if end is not None:
        in_holdout &= (ts < end).to_numpy()
    train = _sorted(features.loc[in_train], ts_col, id_col)
    holdout = _sorted(features.loc[in_holdout], ts_col, id_col)

    span = f"{ts.min()} .. {ts.max()}"
    if train.empty:
        raise DataError(f"no rows before the cutoff {cut} (data spans {span})", column=ts_col,
                        expected="training rows with ts < split.cutoff")
    if holdout.empty:
        window = f"[{cut}, {end})" if end is not None else f">= {cut}"
        raise DataError(f"no holdout rows in {window} (data spans {span})", column=ts_col,
                        expected="holdout rows at or after split.cutoff")
    classes = set(pd.unique(train[label].dropna()).tolist())
    if not {0, 1} <= classes:
        raise DataError(f"the training rows hold only the label classes {sorted(classes)}",
                        column=label, expected="both classes 0 and 1 before the cutoff")
    assert_no_leakage(train, contract, cut)
    return train, holdout


def leaking_rows(train: pd.DataFrame, contract: Contract, cutoff: TimeLike) -> list[int]:
    """Positions of the training rows at or after the cutoff (leakage); [] when none."""
    cut = _timestamp("cutoff", cutoff)
    ts_col = contract.timestamp_column
    if ts_col not in train.columns:
        raise DataError(f"the training table lacks the column {ts_col!r}", column=ts_col)
    return [int(i) for i in (train[ts_col] >= cut).to_numpy().nonzero()[0]]


def assert_no_leakage(train: pd.DataFrame, contract: Contract, cutoff: TimeLike) -> None:
    """Raise DataError if any training row is at or after the cutoff."""
    cut = _timestamp("cutoff", cutoff)
    ts_col = contract.timestamp_column
    rows = leaking_rows(train, contract, cut)
    if rows:
        raise DataError(f"leakage: {len(rows)} training rows are at or after the cutoff {cut}",
                        column=ts_col, rows=rows, expected=f"every training ts < {cut}")


def split_summary(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    contract: Contract,
    cutoff: TimeLike,
    holdout_end: TimeLike | None = None,
    n_input_rows: int | None = None,
) -> dict[str, Any]:
    """The facts of a split for split.json: deterministic, no wall-clock time."""
    summary: dict[str, Any] = {
        "cutoff": _timestamp("cutoff", cutoff).isoformat(),
        "holdout_end": None if holdout_end is None
        else _timestamp("holdout_end", holdout_end).isoformat(),
        "timestamp_column": contract.timestamp_column,
        "label_column": contract.label_column,
        "feature_definitions_hash": contract.feature_definitions_hash(),
        "train": _side(train, contract),
        "holdout": _side(holdout, contract),
    }
    if n_input_rows is not None:
        summary["input_rows"] = int(n_input_rows)
        summary["excluded_rows"] = int(n_input_rows) - len(train) - len(holdout)
    return summary


def _side(df: pd.DataFrame, contract: Contract) -> dict[str, Any]:
    ts = df[contract.timestamp_column]
    label = contract.label_column
    positives = int((df[label] == 1).sum()) if label and label in df.columns else None
    return {
        "rows": len(df),
        "positives": positives,
        "positive_rate": None if positives is None or not len(df)
        else round(positives / len(df), 6),
        "ts_min": None if ts.empty else ts.min().isoformat(),
        "ts_max": None if ts.empty else ts.max().isoformat(),
    }


def _sorted(df: pd.DataFrame, ts_col: str, id_col: str) -> pd.DataFrame:
    return df.sort_values([ts_col, id_col], kind="mergesort").reset_index(drop=True)


def _timestamp(name: str, value: TimeLike) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise DataError(f"split.{name} = {value!r} is not a date or timestamp",
                        expected="YYYY-MM-DD or an ISO 8601 timestamp") from None
    if ts is pd.NaT:
        raise DataError(f"split.{name} is empty", expected="YYYY-MM-DD")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts
