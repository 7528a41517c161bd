"""The dataset contract: one YAML file that names the columns, their types, ranges and
categories, the id/timestamp/label columns and the feature definitions. Everything that
needs to know the shape of the data (validation, features, Dagster metadata, serving)
reads it from here, so a new dataset needs a new contract and no code change."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mlops_assets.core.io import DataError, md5_bytes

COLUMN_TYPES = ("string", "int", "float", "bool", "datetime", "category")
TRANSFORMS = ("identity", "log1p", "ratio", "hour_of_day", "day_of_week", "is_weekend",
              "category", "clip")


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    nullable: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    strict: bool = True  # for categories: an unseen value is an error (True) or a warning
    description: str = ""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    transform: str
    source: tuple[str, ...]
    min: float | None = None
    max: float | None = None

    @property
    def is_categorical(self) -> bool:
        return self.transform == "category"


@dataclass(frozen=True)
class Contract:
    name: str
    id_column: str
    timestamp_column: str
    label_column: str | None
    columns: dict[str, ColumnSpec]
    features: tuple[FeatureSpec, ...]
    description: str = ""
    path: str = ""
    md5: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.is_categorical]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if not f.is_categorical]

    def feature_definitions_hash(self) -> str:
        """md5 of the canonical JSON of the feature definitions: pinned with every table and
        model."""
        payload = [asdict(f) for f in self.features]
        return md5_bytes(json.dumps(payload, sort_keys=True).encode())

    def schema_hash(self) -> str:
        """md5 of the canonical JSON of the column definitions (the schema part of the contract)."""
        payload = {n: asdict(c) for n, c in self.columns.items()}
        keys = [self.id_column, self.timestamp_column, self.label_column]
        return md5_bytes(json.dumps([payload, keys], sort_keys=True).encode())

    def pandera_schema(self) -> Any:
        """The contract as a pandera `DataFrameSchema` (pandera is imported on first use).

        It checks a frame whose contract columns are already in their checking or final
        dtypes (see `coerce_frame` / `coerce_column`; the CSV/Parquet readers give raw types):
          string, category -> object column (holding str: `coerce_column` makes sure;
            pandera's own `str` dtype tests each value in Python, slow on millions of rows);
          int -> `Int64` with coerce=True (int64 and nullable Int64 both pass, and a null is
            reported as a null rather than as a float column);
          float -> float64; bool -> `boolean` with coerce=True;
          datetime -> datetime64[ns] (naive UTC).
        `min`/`max` become `Check.ge`/`Check.le` named "min"/"max"; a `strict: true` category
        column gets `Check.isin` named "category" (`strict: false` columns accept any string:
        validation reports unknown values as warnings); `nullable` and `unique` map directly.
        Each check's `error` is the human expectation (e.g. ">= 0"). Extra columns pass."""
        import pandera.pandas as pa

        columns = {}
        for name, spec in self.columns.items():
            checks = [_schema_check(kind, spec, kind, expected)
                      for kind, expected in column_constraints(spec)]
            dtype = check_dtype(spec)
            columns[name] = pa.Column(
                dtype, checks=checks, nullable=spec.nullable, unique=spec.unique,
                coerce=spec.type in ("int", "bool"), required=True, description=spec.description
                or None, title=name)
        return pa.DataFrameSchema(columns, strict=False, ordered=False, name=self.name,
                                  report_duplicates="all")

    def table_schema_columns(self) -> list[tuple[str, str, str]]:
        """(name, type, description) per contract column, in contract order, for Dagster's
        TableSchema. The type is the contract type; the description is the contract's text
        followed by the constraints, e.g. "Amount in EUR (>= 0; <= 50000)"."""
        out = []
        for name, spec in self.columns.items():
            notes = [expected for _, expected in column_constraints(spec)]
            if spec.type == "category" and not spec.strict and spec.categories:
                notes.append("known: " + ", ".join(spec.categories) + "; others allowed")
            if spec.nullable:
                notes.append("nullable")
            if spec.unique:
                notes.append("unique")
            desc = spec.description
            if notes:
                desc = f"{desc} ({'; '.join(notes)})" if desc else "; ".join(notes)
            out.append((name, spec.type, desc))
        return out


def _read_raw(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The file's bytes (for its md5) and its YAML: a mapping holding every required key."""
    if not path.exists():
        raise DataError("contract file does not exist", path=path,
                        expected="a YAML dataset contract")
    raw_bytes = path.read_bytes()
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as e:
        raise DataError(f"contract is not valid YAML ({str(e).splitlines()[0]})",
                        path=path) from None
    if not isinstance(raw, dict):
        raise DataError("contract must be a mapping", path=path,
                        expected="keys name, columns, features")
    for key in ("name", "id_column", "timestamp_column", "columns", "features"):
        if key not in raw:
            raise DataError(f"contract is missing the key {key!r}", path=path)
    return raw_bytes, raw


def _parse_column(name: Any, spec: Any, path: Path) -> ColumnSpec:
    """One column's spec: a known type, categories for a category column, no unknown keys."""
    spec = dict(spec or {})
    ctype = spec.pop("type", None)
    if ctype not in COLUMN_TYPES:
        raise DataError(f"column type {ctype!r} is not supported", path=path, column=str(name),
                        expected=" | ".join(COLUMN_TYPES))
    cats = spec.pop("categories", None)
    if ctype == "category" and not cats:
        raise DataError("a category column needs a 'categories' list", path=path,
                        column=str(name))
    unknown = set(spec) - {"nullable", "unique", "min", "max", "strict", "description"}
    if unknown:
        raise DataError(f"unknown column keys {sorted(unknown)}", path=path, column=str(name))
    return ColumnSpec(name=str(name), type=ctype,
                      categories=tuple(str(c) for c in cats) if cats else None, **spec)


def _parse_columns(raw: dict[str, Any], path: Path) -> dict[str, ColumnSpec]:
    """The columns in contract order; the id/timestamp/label roles must name one of them."""
    columns: dict[str, ColumnSpec] = {}
    if not isinstance(raw["columns"], dict) or not raw["columns"]:
        raise DataError("contract 'columns' must be a non-empty mapping", path=path)
    for name, spec in raw["columns"].items():
        columns[str(name)] = _parse_column(name, spec, path)
    for role in ("id_column", "timestamp_column", "label_column"):
        col = raw.get(role)
        if col is not None and col not in columns:
            raise DataError(f"{role} {col!r} is not among the contract's columns", path=path)
    if columns[raw["timestamp_column"]].type != "datetime":
        raise DataError("the timestamp column must have type datetime", path=path,
                        column=raw["timestamp_column"])
    return columns


def _parse_feature(i: int, f: Any, columns: dict[str, ColumnSpec], path: Path) -> FeatureSpec:
    """One feature: a known transform reading contract columns (a ratio reads two)."""
    f = dict(f)
    name, transform, source = f.get("name"), f.get("transform"), f.get("source")
    if not name or transform not in TRANSFORMS:
        raise DataError(f"feature #{i} ({name!r}) has transform {transform!r}", path=path,
                        expected=" | ".join(TRANSFORMS))
    sources = tuple([source] if isinstance(source, str) else (source or []))
    missing = [s for s in sources if s not in columns]
    if not sources or missing:
        raise DataError(f"feature {name!r} reads columns not in the contract: "
                        f"{missing or 'none given'}", path=path)
    if transform == "ratio" and len(sources) != 2:
        raise DataError(f"feature {name!r}: ratio needs two source columns", path=path)
    return FeatureSpec(name=str(name), transform=transform, source=sources,
                       min=f.get("min"), max=f.get("max"))


def _parse_features(raw: dict[str, Any], columns: dict[str, ColumnSpec],
                    path: Path) -> tuple[FeatureSpec, ...]:
    """The feature definitions: known transforms over contract columns, unique names."""
    features = [_parse_feature(i, f, columns, path) for i, f in enumerate(raw["features"] or [])]
    if len({f.name for f in features}) != len(features):
        raise DataError("feature names must be unique", path=path)
    if not features:
        raise DataError("contract declares no features", path=path)
    return tuple(features)


def load_contract(path: str | Path) -> Contract:
    """Parse and check a contract file; every mistake is reported with the file and the key."""
    path = Path(path)
    raw_bytes, raw = _read_raw(path)
    columns = _parse_columns(raw, path)
    features = _parse_features(raw, columns, path)
    return Contract(
        name=str(raw["name"]), id_column=raw["id_column"], timestamp_column=raw["timestamp_column"],
        label_column=raw.get("label_column"), columns=columns, features=features,
        description=str(raw.get("description", "")), path=str(path), md5=md5_bytes(raw_bytes),
        raw=raw,
    )


# ------------------------------------------------------------------ typing and validation
#
# Two dtype sets matter:
#   * the *checking* dtypes, nullable-aware so that a null in a non-nullable int column is
#     reported as a null (and not as a float column): int -> Int64, bool -> boolean;
#   * the *final* dtypes of a clean frame: int -> int64 and bool -> bool when the column is
#     not nullable (no nulls can remain after validation), Int64 / boolean when it is.
# In both, float -> float64, datetime -> datetime64[ns] (tz-naive, UTC) and string/category
# -> object columns holding Python str (None for a missing value).

_CHECK_DTYPES = {"string": "object", "category": "object", "int": "Int64", "float": "float64",
                 "bool": "boolean", "datetime": "datetime64[ns]"}
# Families of raw columns each contract type accepts without calling it a retype. A CSV
# carries no types, so from CSV (or an untyped frame) any family whose values all convert
# is accepted too; from Parquet, a different family is schema drift even when it converts.
_NATIVE_FAMILIES = {"string": {"string"}, "category": {"string"}, "int": {"int", "float"},
                    "float": {"float", "int"}, "bool": {"bool"}, "datetime": {"datetime"}}
_BOOL_WORDS = {"true": True, "false": False, "t": True, "f": False, "yes": True, "no": False,
               "y": True, "n": False, "1": True, "0": False, "1.0": True, "0.0": False}


def check_dtype(spec: ColumnSpec) -> str:
    """The nullable-aware pandas dtype a column is checked in (see the comment above)."""
    return _CHECK_DTYPES[spec.type]


def final_dtype(spec: ColumnSpec) -> str:
    """The pandas dtype of the column in a validated frame."""
    if spec.type == "int" and not spec.nullable:
        return "int64"
    if spec.type == "bool" and not spec.nullable:
        return "bool"
    return _CHECK_DTYPES[spec.type]


def column_constraints(spec: ColumnSpec) -> list[tuple[str, str]]:
    """(check name, human expectation) for every value check of a column, in check order.

    The names are the ones `pandera_schema` gives its checks and validation reports use."""
    out: list[tuple[str, str]] = []
    if spec.type in ("int", "float"):
        if spec.min is not None:
            out.append(("min", f">= {_num(spec.min)}"))
        if spec.max is not None:
            out.append(("max", f"<= {_num(spec.max)}"))
    if spec.type == "category" and spec.strict and spec.categories:
        out.append(("category", "one of " + ", ".join(spec.categories)))
    return out


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def raw_family(s: pd.Series) -> str:
    """The type family of a raw column: string, int, float, bool, datetime, mixed or empty
    (all values missing)."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        s = s.astype(object)
        dtype = s.dtype
    if s.isna().all():
        return "empty"
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "string"
    inferred = pd.api.types.infer_dtype(s, skipna=True)
    return {"string": "string", "integer": "int", "floating": "float", "decimal": "float",
            "mixed-integer-float": "float", "boolean": "bool", "datetime": "datetime",
            "datetime64": "datetime", "date": "datetime", "empty": "empty"}.get(inferred, "mixed")


@dataclass(frozen=True)
class CoercedColumn:
    """A raw column converted to its checking dtype.

    `bad` marks values that were present but could not be converted (now missing in
    `values`); `family` is the raw column's type family; `retyped` says the raw family is not
    the contract's (schema drift), whether or not its values converted."""

    values: pd.Series
    bad: np.ndarray
    family: str
    retyped: bool

    @property
    def n_bad(self) -> int:
        return int(self.bad.sum())


def coerce_column(s: pd.Series, spec: ColumnSpec, *, typed_source: bool = False) -> CoercedColumn:
    """Convert one raw column to the checking dtype of `spec`, vectorised.

    `typed_source` is True for Parquet (its columns carry real types): a column of another
    family is then flagged `retyped` even when every value converts. From CSV every family
    whose values all convert is accepted (CSV timestamps are strings, ids may look numeric).
    Timestamps: ISO 8601 strings or datetime values; a zone offset is converted to UTC and
    dropped, a naive value is taken as UTC already. Numbers are never read as timestamps."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    family = raw_family(s)
    present = s.notna().to_numpy()
    t = spec.type
    if t in ("string", "category"):
        values = _to_str(s, family)
        bad = np.zeros(len(s), dtype=bool)
    elif t == "float":
        values, bad = _to_float(s, family, present)
    elif t == "int":
        values, bad = _to_int(s, family, present)
    elif t == "bool":
        values, bad = _to_bool(s, family, present)
    elif t == "datetime":
        values, bad = _to_datetime(s, family, present)
    else:  # pragma: no cover - load_contract rejects other types
        raise DataError(f"unsupported column type {t!r}", column=spec.name)
    native = family in _NATIVE_FAMILIES[t] or family == "empty"
    if t == "int" and family == "float":  # nullable ints arrive as floats: fine if whole
        native = not bad.any()
    retyped = not native and (typed_source or bool(bad.any()))
    if values is s:
        values = s.copy(deep=False)
    values.index = s.index
    return CoercedColumn(values=values, bad=bad, family=family, retyped=retyped)


def _to_str(s: pd.Series, family: str) -> pd.Series:
    nulls = s.isna().to_numpy()
    if family in ("string", "empty") and pd.api.types.is_object_dtype(s.dtype):
        out = s
    elif pd.api.types.is_float_dtype(s.dtype):
        # 12.0 -> "12" (a numeric-looking id or code written through a float column)
        f = s.to_numpy(dtype="float64", na_value=np.nan)
        whole = np.isfinite(f) & (np.floor(f) == f)
        text = s.astype(object).map(str, na_action="ignore")
        if whole.any():
            text[whole] = pd.Series(f[whole]).astype("int64").astype(str).to_numpy()
        out = text.astype(object)
    else:
        out = s.astype(object).map(str, na_action="ignore")
    return out.where(~nulls, None) if nulls.any() else out


def _numeric(s: pd.Series, family: str) -> pd.Series:
    if family == "int":
        return s
    if family in ("float", "bool"):
        return s.astype("float64")
    if family == "datetime":
        return pd.Series(np.full(len(s), np.nan), index=s.index)
    return pd.to_numeric(s.astype(object), errors="coerce")


def _to_float(s: pd.Series, family: str, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    num = _numeric(s, family).astype("float64")
    bad = present & num.isna().to_numpy()
    return num, bad


def _to_int(s: pd.Series, family: str, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    if family == "int":
        return s.astype("Int64"), np.zeros(len(s), dtype=bool)
    num = _numeric(s, family).astype("float64")
    f = num.to_numpy()
    ok = np.isfinite(f) & (np.floor(f) == f) & (np.abs(f) < 2.0 ** 63)
    bad = present & ~ok
    f = np.where(ok, f, np.nan)
    return pd.Series(f).astype("Int64"), bad


def _to_bool(s: pd.Series, family: str, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    if family == "bool":
        return s.astype("boolean"), np.zeros(len(s), dtype=bool)
    if family in ("int", "float"):
        f = s.to_numpy(dtype="float64", na_value=np.nan)
        ok = (f == 0) | (f == 1)
        vals = pd.array(np.where(ok, f == 1, False), dtype="boolean")
        vals[~ok] = pd.NA
        return pd.Series(vals), present & ~ok
    words = s.astype(object).map(lambda v: _BOOL_WORDS.get(str(v).strip().lower()) if not
                                 isinstance(v, bool) else v, na_action="ignore")
    ok = words.notna().to_numpy()
    out = pd.Series(pd.array(words.where(ok, None).tolist(), dtype="boolean"))
    return out, present & ~ok


def _to_datetime(s: pd.Series, family: str, present: np.ndarray) -> tuple[pd.Series, np.ndarray]:
    if family in ("int", "float", "bool"):
        # epoch numbers are ambiguous (s? ms? ns?): a retype, never guessed
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]"), present.copy()
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = s
        if getattr(s.dtype, "tz", None) is not None:
            out = s.dt.tz_convert("UTC").dt.tz_localize(None)
        try:
            return out.astype("datetime64[ns]"), np.zeros(len(s), dtype=bool)
        except (pd.errors.OutOfBoundsDatetime, OverflowError):
            years = out.dt.year.to_numpy()
            ok = ~present | ((years > 1677) & (years < 2262))
            return out.where(ok).astype("datetime64[ns]"), present & ~ok
    text = s.astype(object)
    if family == "string":
        parsed = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    else:  # Python datetime / Timestamp objects, possibly mixed with strings or zones
        parsed = pd.to_datetime(text.map(_iso_or_none, na_action="ignore"), errors="coerce",
                                utc=True, format="ISO8601")
    out = parsed.dt.tz_localize(None).astype("datetime64[ns]")
    return out, present & out.isna().to_numpy()


def _iso_or_none(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if hasattr(v, "isoformat") and not isinstance(v, (int, float)):
        return v.isoformat()
    return None


def coerce_frame(df: pd.DataFrame, contract: Contract, *, errors: str = "raise",
                 source: str | None = None) -> pd.DataFrame:
    """Convert the contract's columns of a raw frame (from CSV, Parquet or a request) to the
    final dtypes (see `final_dtype`): timestamp strings are parsed, numeric strings become
    numbers, and so on. Columns the contract does not know are kept unchanged; missing ones
    are not added. The frame's index and row order are kept.

    errors="raise": a value that does not convert raises DataError naming `source`, the column
    and the rows; errors="coerce": it becomes missing. A non-nullable int/bool column that
    ends up with missing values keeps its nullable dtype (Int64 / boolean)."""
    if errors not in ("raise", "coerce"):
        raise ValueError("errors must be 'raise' or 'coerce'")
    out = df.copy()
    for name, spec in contract.columns.items():
        if name not in out.columns:
            continue
        cc = coerce_column(out[name], spec)
        if errors == "raise" and cc.n_bad:
            rows = np.flatnonzero(cc.bad)
            raise DataError(f"{cc.n_bad} value(s) in column {name!r} are not {spec.type} "
                            f"(found {cc.family})", path=source, column=name,
                            rows=[int(r) for r in rows[:10]], expected=spec.type)
        values = cc.values
        target = final_dtype(spec)
        if target != check_dtype(spec) and not values.isna().any():
            values = values.astype(target)
        out[name] = values
    return out


def _schema_check(kind: str, spec: ColumnSpec, name: str, expected: str) -> Any:
    import pandera.pandas as pa

    if kind == "min":
        return pa.Check.ge(spec.min, name=name, error=expected)
    if kind == "max":
        return pa.Check.le(spec.max, name=name, error=expected)
    if kind == "category":
        return pa.Check.isin(list(spec.categories or ()), name=name, error=expected)
    raise ValueError(kind)  # pragma: no cover
