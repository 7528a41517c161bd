"""The feature transform: THE one function used for training, batch scoring and serving.

`build_features(df, contract)` turns rows shaped like the contract's columns into the
feature table the model reads. It is vectorised and row-independent: a row's features
depend on that row alone, never on the rest of the frame, so one record scored on its own,
a shuffled frame, a subset or the full batch all give identical values for the same row.

Output columns, in this order:
  contract.id_column, contract.timestamp_column, ``_batch`` (only if present in the input),
  contract.label_column (only if present in the input), then every feature in the order the
  contract declares them.

Output dtypes:
  * id column: as given (not transformed).
  * timestamp column: ``datetime64[ns]``, naive UTC (tz-aware input is converted to UTC; ISO
    8601 strings are parsed).
  * numeric features (every transform except ``category``): ``float64``; a missing value is
    NaN (the model's gradient boosting handles NaN natively).
  * categorical features (``category``): Python ``str`` values in an ``object`` column; a
    missing value becomes the string ``"__missing__"`` (so it is a category of its own and
    one-hot encodes like any other). Non-string values are converted with ``str``.

Transforms (``source`` names contract columns):
  identity     float64 copy of a numeric column.
  log1p        log1p(clip(x, lower=0)); NaN stays NaN.
  ratio        a / b; NaN when b == 0 or either side is missing (never +/-inf).
  hour_of_day  0..23 of the timestamp.
  day_of_week  0 (Monday) .. 6 (Sunday).
  is_weekend   1.0 on Saturday/Sunday else 0.0 (float64 like every numeric feature).
  category     see above.
  clip         clip(x, min, max) with the feature's ``min``/``max`` (either may be absent).
Datetime transforms give NaN for a missing timestamp.

Bad input (a missing source column, a non-numeric column fed to a numeric transform, a value
that is not a timestamp) raises `DataError` naming the feature and the column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.contract import Contract, FeatureSpec
from mlops_assets.core.io import DataError

BATCH_COLUMN = "_batch"
MISSING_CATEGORY = "__missing__"
NUMERIC_DTYPE = "float64"
_DATETIME_TRANSFORMS = ("hour_of_day", "day_of_week", "is_weekend")


def build_features(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """Build the feature table for `df` (see the module docstring for columns and dtypes).

    The result keeps the input's index and row order."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"build_features needs a pandas DataFrame, got {type(df).__name__}")
    for role, col in (("id", contract.id_column), ("timestamp", contract.timestamp_column)):
        if col not in df.columns:
            raise DataError(f"input lacks the {role} column {col!r}", column=col,
                            expected=f"the contract's {role} column")
    ts = _as_datetime(df[contract.timestamp_column], feature=None,
                      column=contract.timestamp_column)
    out: dict[str, Any] = {
        contract.id_column: df[contract.id_column],
        contract.timestamp_column: ts,
    }
    if BATCH_COLUMN in df.columns:
        out[BATCH_COLUMN] = df[BATCH_COLUMN]
    label = contract.label_column
    if label is not None and label in df.columns:
        out[label] = df[label]
    reserved = set(out)
    for spec in contract.features:
        if spec.name in reserved:
            raise DataError(f"feature {spec.name!r} has the name of a reserved output column",
                            column=spec.name, expected="a feature name other than id/ts/label/_batch")
        out[spec.name] = _transform(df, spec, ts if _reads_timestamp(spec, contract) else None)
    # .array: no index alignment, so a duplicated input index is kept as it is.
    return pd.DataFrame({k: v.array for k, v in out.items()}, index=df.index)


def feature_frame_metadata(contract: Contract) -> dict[str, Any]:
    """What a feature table holds, for feature_meta.json and model metadata (deterministic)."""
    features = [
        {
            "name": f.name,
            "transform": f.transform,
            "source": list(f.source),
            "kind": "categorical" if f.is_categorical else "numeric",
            "dtype": "object" if f.is_categorical else NUMERIC_DTYPE,
            **({"min": f.min} if f.min is not None else {}),
            **({"max": f.max} if f.max is not None else {}),
        }
        for f in contract.features
    ]
    return {
        "contract": contract.name,
        "feature_definitions_hash": contract.feature_definitions_hash(),
        "id_column": contract.id_column,
        "timestamp_column": contract.timestamp_column,
        "label_column": contract.label_column,
        "batch_column": BATCH_COLUMN,
        "feature_names": contract.feature_names,
        "categorical_features": contract.categorical_features,
        "numeric_features": contract.numeric_features,
        "missing_category": MISSING_CATEGORY,
        "features": features,
    }


# --------------------------------------------------------------------------- transforms


def _reads_timestamp(spec: FeatureSpec, contract: Contract) -> bool:
    return spec.transform in _DATETIME_TRANSFORMS and spec.source[0] == contract.timestamp_column


def _transform(df: pd.DataFrame, spec: FeatureSpec, ts: pd.Series | None) -> pd.Series:
    missing = [s for s in spec.source if s not in df.columns]
    if missing:
        raise DataError(f"feature {spec.name!r} needs the column {missing[0]!r}, which the input "
                        "lacks", column=missing[0], expected=f"column(s) {list(spec.source)}")
    t = spec.transform
    if t in _DATETIME_TRANSFORMS:
        dt = ts if ts is not None else _as_datetime(df[spec.source[0]], spec.name, spec.source[0])
        if t == "hour_of_day":
            values = dt.dt.hour
        elif t == "day_of_week":
            values = dt.dt.dayofweek
        else:
            values = (dt.dt.dayofweek >= 5).astype("float64").where(dt.notna())
        return values.astype(NUMERIC_DTYPE)
    if t == "category":
        return _as_category(df[spec.source[0]])
    x = _as_float(df[spec.source[0]], spec.name, spec.source[0])
    if t == "identity":
        return x
    if t == "log1p":
        return np.log1p(x.clip(lower=0.0))
    if t == "ratio":
        b = _as_float(df[spec.source[1]], spec.name, spec.source[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            r = x / b.where(b != 0)
        return r.where(np.isfinite(r)).astype(NUMERIC_DTYPE)
    if t == "clip":
        return x.clip(lower=spec.min, upper=spec.max)
    raise DataError(f"feature {spec.name!r} has the unknown transform {t!r}", column=spec.name)


def _as_float(s: pd.Series, feature: str, column: str) -> pd.Series:
    """A numeric (or boolean) column as float64; anything else is a DataError."""
    if pd.api.types.is_bool_dtype(s) or (
        pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_complex_dtype(s)
    ):
        return s.astype(NUMERIC_DTYPE)
    if s.dtype == object:
        # JSON records (serving) give object columns of numbers and None: accept those only.
        bad = [i for i, v in enumerate(s.array) if not _is_number_or_missing(v)]
        if not bad:
            return pd.Series(
                np.array([np.nan if _is_missing(v) else float(v) for v in s.array], dtype=float),
                index=s.index, name=s.name)
        raise DataError(
            f"feature {feature!r} needs a numeric column but {column!r} holds "
            f"{s.array[bad[0]]!r}", column=column, rows=bad, expected="numbers")
    raise DataError(f"feature {feature!r} needs a numeric column but {column!r} has dtype "
                    f"{s.dtype}", column=column, expected="an int or float column")


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v))


def _is_number_or_missing(v: Any) -> bool:
    if _is_missing(v):
        return True
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _as_datetime(s: pd.Series, feature: str | None, column: str) -> pd.Series:
    """A timestamp column as naive-UTC datetime64[ns]; ISO strings are parsed."""
    what = f"feature {feature!r}" if feature else "the feature table"
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_dtype(s):
        return s.astype("datetime64[ns]")
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        try:
            parsed = pd.to_datetime(s, format="ISO8601", utc=True)
        except (ValueError, TypeError) as e:
            raise DataError(f"{what} needs timestamps but {column!r} holds values that are not "
                            f"ISO 8601 ({str(e).splitlines()[0][:120]})", column=column,
                            expected="datetime values or ISO 8601 strings") from None
        return parsed.dt.tz_localize(None).astype("datetime64[ns]")
    raise DataError(f"{what} needs timestamps but {column!r} has dtype {s.dtype}", column=column,
                    expected="a datetime column")


def _as_category(s: pd.Series) -> pd.Series:
    values = s.astype("string").fillna(MISSING_CATEGORY).astype(object)
    return values.rename(s.name)
