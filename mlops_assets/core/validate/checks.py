"""The per-batch checks, one function each, in the order the package docstring gives: schema
drift (new/missing columns), conversion to the contract types, pandera's lazy schema check,
unknown categories; then uniqueness across batches. Each returns its issues in the order it
finds them, and `check_batch` keeps that order (the first error names `ValidationFailed`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.contract import Contract, check_dtype, coerce_column
from mlops_assets.core.ingest import BATCH_COLUMN
from mlops_assets.core.validate.issues import N_EXAMPLES, fmt_rows, issue, type_words

_BUILTIN_CHECKS = {
    "not_nullable": ("not_null", "no missing values"),
    "field_uniqueness": ("unique", "unique values"),
}


@dataclass
class BatchResult:
    """One batch's findings, and its coerced frame for the cross-batch checks and the result."""

    frame: pd.DataFrame | None  # coerced contract columns (checking dtypes), RangeIndex
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    drift: dict[str, list[Any]]
    bad: dict[str, np.ndarray]  # per column: values that did not convert


@dataclass
class _Coerced:
    """What converting the present columns to their contract types found."""

    values: dict[str, pd.Series]
    bad: dict[str, np.ndarray]
    relax: dict[str, dict[str, Any]]  # pandera column updates (unconvertible -> nullable)
    retyped: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]


def _normalised(raw: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy with a RangeIndex and string column names (the caller's frame is kept)."""
    raw = raw.copy(deep=False)
    if not raw.index.equals(pd.RangeIndex(len(raw))):
        raw.index = pd.RangeIndex(len(raw))
    raw.columns = [str(c) for c in raw.columns]
    return raw


def _new_column_warnings(new: list[str], *, batch: str, file: str,
                         n: int) -> list[dict[str, Any]]:
    """Columns the contract does not know: a warning each (they are dropped, not rejected)."""
    return [issue(batch=batch, file=file, column=c, check="new_column",
                  expected="only the contract's columns", count=n,
                  message=f"column {c!r} is not in the contract (ignored; not in the validated "
                          f"data)")
            for c in new]


def _missing_column_errors(missing: list[str], contract: Contract, *, batch: str, file: str,
                           n: int) -> list[dict[str, Any]]:
    """Contract columns the batch lacks: an error each, naming the type expected."""
    out = []
    for c in missing:
        spec = contract.columns[c]
        out.append(issue(
            batch=batch, file=file, column=c, check="missing_column",
            expected=f"a {spec.type} column", count=n,
            message=f"column {c!r} is missing: expected a {spec.type} column "
                    f"({'nullable' if spec.nullable else 'required'}; all {n} rows lack it)"))
    return out


def _coerce_present(raw: pd.DataFrame, present: list[str], contract: Contract, *, typed: bool,
                    batch: str, file: str) -> _Coerced:
    """Convert each present column to its contract type: values that do not convert are dtype
    errors (and, in a non-nullable column, its real nulls are checked here instead of by
    pandera, which would count the unconvertible values as nulls too)."""
    n = len(raw)
    out = _Coerced(values={}, bad={}, relax={}, retyped=[], errors=[], warnings=[])
    for c in present:
        spec = contract.columns[c]
        cc = coerce_column(raw[c], spec, typed_source=typed)
        out.values[c] = cc.values
        if cc.retyped:
            out.retyped.append({"column": c, "expected": spec.type, "found": cc.family,
                                "count": cc.n_bad})
            if not cc.n_bad:
                out.warnings.append(issue(
                    batch=batch, file=file, column=c, check="retyped",
                    expected=spec.type, count=n,
                    message=f"column {c!r} is stored as {cc.family}, expected {spec.type} "
                            f"(all {n} values converted)"))
        if cc.n_bad:
            out.bad[c] = cc.bad
            idx = np.flatnonzero(cc.bad)
            out.errors.append(issue(
                batch=batch, file=file, column=c, check="dtype",
                expected=f"{spec.type} ({type_words(spec)})", count=cc.n_bad,
                rows=idx[:N_EXAMPLES].tolist(),
                values=raw[c].iloc[idx[:N_EXAMPLES]].tolist()))
            if not spec.nullable:
                # the unconvertible values are now missing: check real nulls here instead
                out.relax[c] = {"nullable": True}
                nulls = raw[c].isna().to_numpy()
                if nulls.any():
                    ni = np.flatnonzero(nulls)
                    out.errors.append(issue(
                        batch=batch, file=file, column=c, check="not_null",
                        expected="no missing values", count=len(ni),
                        rows=ni[:N_EXAMPLES].tolist(), values=[None] * min(len(ni), N_EXAMPLES)))
    return out


def _schema_errors(frame: pd.DataFrame, schema: Any, relax: dict[str, dict[str, Any]],
                   contract: Contract, *, batch: str, file: str) -> list[dict[str, Any]]:
    """pandera's lazy check of the coerced frame, on the columns it has."""
    from pandera.errors import SchemaError, SchemaErrors

    batch_schema = schema
    absent = [c for c in schema.columns if c not in frame.columns]
    if absent:
        batch_schema = batch_schema.remove_columns(absent)
    if relax:
        batch_schema = batch_schema.update_columns(relax)
    try:
        batch_schema.validate(frame, lazy=True)
    except SchemaErrors as e:
        return _pandera_issues(e.failure_cases, batch_schema, contract, batch=batch, file=file)
    except SchemaError as e:  # pragma: no cover - lazy=True collects, but be safe
        return [issue(batch=batch, file=file, column=None, check="schema",
                      expected="a frame matching the contract", count=len(frame),
                      message=f"schema check failed: {e}")]
    return []


def _unknown_category_warnings(frame: pd.DataFrame, present: list[str], contract: Contract, *,
                               batch: str, file: str) -> list[dict[str, Any]]:
    """Values outside a `strict: false` column's categories: counted and listed, not errors."""
    warnings = []
    for c in present:
        spec = contract.columns[c]
        if spec.type != "category" or spec.strict or not spec.categories:
            continue
        s = frame[c]
        unknown = (s.notna() & ~s.isin(list(spec.categories))).to_numpy()
        if unknown.any():
            idx = np.flatnonzero(unknown)
            counts = s[unknown].value_counts()
            listed = {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1],
                                                                                     str(kv[0])))}
            top = ", ".join(f"{k!r} ({v})" for k, v in list(listed.items())[:10])
            w = issue(batch=batch, file=file, column=c, check="unknown_category",
                      expected="one of " + ", ".join(spec.categories), count=len(idx),
                      rows=idx[:N_EXAMPLES].tolist(), values=s.iloc[idx[:N_EXAMPLES]].tolist(),
                      message=f"column {c!r} {fmt_rows(idx[:N_EXAMPLES].tolist(), len(idx))}:"
                              f" {len(idx)} value(s) not among the contract's categories "
                              f"(allowed, strict: false): {top}")
            w["values"] = listed
            warnings.append(w)
    return warnings


def check_batch(raw: pd.DataFrame, contract: Contract, schema: Any, *, batch: str, file: str,
                typed: bool, require_label: bool) -> BatchResult:
    """Every check on one batch; errors and warnings in the order the checks run."""
    raw = _normalised(raw)
    n = len(raw)
    expected_cols = [c for c in contract.columns
                     if require_label or c != contract.label_column]
    new = [c for c in raw.columns if c not in contract.columns and c != BATCH_COLUMN]
    missing = [c for c in expected_cols if c not in raw.columns]
    present = [c for c in expected_cols if c in raw.columns]
    coerced = _coerce_present(raw, present, contract, typed=typed, batch=batch, file=file)
    frame = pd.DataFrame(coerced.values, index=pd.RangeIndex(n))
    errors = (_missing_column_errors(missing, contract, batch=batch, file=file, n=n)
              + coerced.errors
              + _schema_errors(frame, schema, coerced.relax, contract, batch=batch, file=file))
    warnings = (_new_column_warnings(new, batch=batch, file=file, n=n) + coerced.warnings
                + _unknown_category_warnings(frame, present, contract, batch=batch, file=file))
    drift = {"new": sorted(new), "missing": sorted(missing),
             "retyped": sorted(coerced.retyped, key=lambda r: r["column"])}
    return BatchResult(frame=frame, errors=errors, warnings=warnings, drift=drift,
                       bad=coerced.bad)


def _pandera_issues(fc: pd.DataFrame, schema: Any, contract: Contract, *, batch: str,
                    file: str) -> list[dict[str, Any]]:
    """Group pandera's failure cases per (column, check): counts and the first example rows."""
    fc = fc.copy()
    fc["column"] = fc["column"].astype(object).where(fc["column"].notna(), None)
    labels: dict[tuple[Any, Any, Any], tuple[str, str]] = {}
    for col, chk, num in fc[["column", "check", "check_number"]].drop_duplicates().itertuples(
            index=False):
        labels[(col, chk, num)] = _label(col, chk, num, schema, contract)
    keys = list(zip(fc["column"], fc["check"], fc["check_number"], strict=True))
    fc["_name"] = [labels[k][0] for k in keys]
    fc["_expected"] = [labels[k][1] for k in keys]
    fc["_row"] = pd.to_numeric(fc["index"], errors="coerce").fillna(-1).astype("int64")
    fc["_col"] = fc["column"].fillna("")
    fc = fc.sort_values(["_col", "_name", "_row"], kind="mergesort")
    out = []
    for (col, name), g in fc.groupby(["_col", "_name"], sort=True):
        head = g.head(N_EXAMPLES)
        rows = [r for r in head["_row"].tolist() if r >= 0]
        values = head["failure_case"].tolist() if rows else []
        expected = str(head["_expected"].iloc[0])
        column = col or None
        if rows:
            out.append(issue(batch=batch, file=file, column=column, check=str(name),
                             expected=expected, count=len(g), rows=rows, values=values))
        else:
            out.append(issue(batch=batch, file=file, column=column, check=str(name),
                             expected=expected, count=len(g),
                             message=f"column {column!r}: expected {expected}, found "
                                     f"{', '.join(str(v) for v in head['failure_case'])}"))
    return out


def _label(col: Any, chk: Any, num: Any, schema: Any, contract: Contract) -> tuple[str, str]:
    """A pandera check as the report names it: (check name, what was expected)."""
    chk = str(chk)
    has_number = num is not None and not (isinstance(num, float) and math.isnan(num))
    if has_number and col in schema.columns:
        check = schema.columns[col].checks[int(num)]
        return str(check.name), str(check.error or check.name)
    if chk in _BUILTIN_CHECKS:
        return _BUILTIN_CHECKS[chk]
    if chk.startswith("dtype(") and col in contract.columns:
        return "dtype", check_dtype(contract.columns[col])
    if chk.startswith("column_in_dataframe"):
        return "missing_column", "the column to be present"
    return chk, chk


def cross_batch_unique(results: list[tuple[str, str, BatchResult]],
                       contract: Contract) -> list[dict[str, Any]]:
    """Rows whose value of a `unique` column already appeared in an earlier batch."""
    out: list[dict[str, Any]] = []
    if len(results) < 2:
        return out
    for c, spec in contract.columns.items():
        if not spec.unique:
            continue
        vals, bidx, rows = [], [], []
        for i, (_, _, res) in enumerate(results):
            if res.frame is None or c not in res.frame.columns:
                continue
            s = res.frame[c]
            keep = s.notna().to_numpy()
            vals.append(s[keep])
            bidx.append(np.full(int(keep.sum()), i))
            rows.append(np.flatnonzero(keep))
        if len(vals) < 2:
            continue
        v = pd.concat(vals, ignore_index=True)
        dup = v.duplicated(keep=False).to_numpy()
        if not dup.any():
            continue
        df = pd.DataFrame({"v": v[dup].to_numpy(), "b": np.concatenate(bidx)[dup],
                           "r": np.concatenate(rows)[dup]})
        first = df.groupby("v", sort=False)["b"].transform("min")
        later = df[(df["b"] != first).to_numpy()]
        if later.empty:
            continue
        first_b = first[later.index]
        for b, g in later.groupby("b", sort=True):
            batch, file, _ = results[int(b)]
            head = g.head(N_EXAMPLES)
            earlier = sorted({results[int(x)][1] for x in first_b[g.index]})
            out.append(issue(batch=batch, file=file, column=c, check="unique_across_batches",
                             expected=f"unique values (already in {', '.join(earlier[:3])})",
                             count=len(g), rows=head["r"].tolist(), values=head["v"].tolist()))
    return out

