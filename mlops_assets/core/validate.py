"""Validation: every snapshot batch against the dataset contract (lazy pandera), with schema
drift, failure counts and example rows, into one deterministic validated frame.

Per batch, in this order:
1. read the file (an unreadable file is an error of check "read" naming the file);
2. schema drift: columns the contract does not know ("new": a warning, the column is
   dropped), contract columns that are absent ("missing": an error), and columns of another
   type family ("retyped", e.g. strings where a float is expected). Each column is converted
   to its contract type (`contract.coerce_column`); values that do not convert are errors of
   check "dtype" with their rows. A Parquet column of another type whose values all convert is
   a "retyped" warning; a CSV has no types, so there only values that do not convert count;
3. `contract.pandera_schema().validate(frame, lazy=True)`: every failure of every check is
   collected (`SchemaErrors.failure_cases`) and grouped per (column, check) with a count and
   up to 5 example rows (file, row, column, offending value, expected);
4. categories: a value outside a `strict: false` column's list is a warning (counted and
   listed; the row passes and keeps its value); in a `strict: true` column it is an error.
Then a `unique` column must also be unique across batches.

Rows are 0-based data-row positions in the batch file (the header is not a row), which is
also the row's index when the file is read with pandas.

The validated frame (only when everything passed): the contract columns in contract order,
then `_batch` (the batch key); dtypes as `contract.final_dtype` gives them: string/category ->
object holding str (None if missing), int -> int64 (Int64 if nullable), float -> float64,
bool -> bool (boolean if nullable), datetime -> datetime64[ns] naive UTC; rows sorted by
(timestamp, id) with a stable sort (ties keep batch-key order then file order); RangeIndex.
The same snapshots always give the same frame and so the same Parquet bytes.

Failure: `ValidationFailed` (a DataError) carrying `.report`; its message is
`report.summary()`, e.g. "validation failed for data/snapshots/week_x-0123456789ab.parquet:
column 'amount' rows 3, 17: expected >= 0, found -5.0, -1.0 (2 violations)".
`write_validation_outputs` never replaces the previous validated dataset or report on a
failure: the failure report goes to a separate file (`data/reports/validation_failed.json`,
not a DVC output), so everything downstream keeps using the last good version.

No dagster import here (functional core)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.contract import (
    ColumnSpec,
    Contract,
    check_dtype,
    coerce_column,
    final_dtype,
)
from mlops_assets.core.ingest import (
    BATCH_COLUMN,
    SnapshotEntry,
    manifest_entries,
    read_snapshot,
)
from mlops_assets.core.io import (
    DataError,
    atomic_path,
    canonical_json,
    write_json_atomic,
    write_parquet_atomic,
)

N_EXAMPLES = 5
FAILED_REPORT_NAME = "validation_failed.json"
_TYPED_SUFFIXES = (".parquet", ".pq")
_BUILTIN_CHECKS = {
    "not_nullable": ("not_null", "no missing values"),
    "field_uniqueness": ("unique", "unique values"),
}


class ValidationFailed(DataError):
    """Validation found errors. `.report` is the full `ValidationReport`; the message is its
    summary, naming the file, column, rows and what was expected for each error."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(report.summary())
        self.report = report
        first = report.errors[0] if report.errors else {}
        self.path = report.display_path(first["file"]) if first.get("file") else None
        self.column = first.get("column")
        self.rows = list(first.get("rows", []))
        self.expected = first.get("expected")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes
        return (ValidationFailed, (self.report,))


@dataclass
class ValidationReport:
    """What validation found. `to_dict()` is deterministic (sorted, no paths beyond file
    names, no times) and is what `data/reports/validation.json` holds.

    errors / warnings: dicts {batch, file, column, check, count, rows (up to 5), expected,
    found (up to 5 offending values), examples [{file, row, column, value, expected}],
    message}. schema_drift: {batch: {"new": [...], "missing": [...], "retyped":
    [{column, expected, found, count}]}} for every batch. failure_counts / warning_counts:
    {"column/check": n} summed over batches."""

    contract: str
    contract_md5: str
    schema_hash: str
    passed: bool
    n_rows: int
    n_batches: int
    batches: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    schema_drift: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    failure_counts: dict[str, int] = field(default_factory=dict)
    warning_counts: dict[str, int] = field(default_factory=dict)
    columns: list[list[str]] = field(default_factory=list)
    # where the files live, for messages only (never serialised: it may be absolute)
    location: str = field(default="", compare=False, repr=False)

    def display_path(self, file: str) -> str:
        return os.path.join(self.location, file) if self.location else file

    def to_dict(self) -> dict[str, Any]:
        key = _issue_sort_key
        return {
            "contract": {"name": self.contract, "md5": self.contract_md5,
                         "schema_hash": self.schema_hash},
            "passed": bool(self.passed),
            "n_rows": int(self.n_rows),
            "n_batches": int(self.n_batches),
            "batches": sorted(self.batches, key=lambda b: b["batch"]),
            "errors": sorted(self.errors, key=key),
            "warnings": sorted(self.warnings, key=key),
            "schema_drift": {b: self.schema_drift[b] for b in sorted(self.schema_drift)},
            "failure_counts": dict(sorted(self.failure_counts.items())),
            "warning_counts": dict(sorted(self.warning_counts.items())),
            "columns": self.columns,
        }

    def summary(self, max_lines: int = 20) -> str:
        """A message for a person: each error with file, column, rows and expectation."""
        errors = sorted(self.errors, key=_issue_sort_key)
        warn = f"; {len(self.warnings)} warning(s)" if self.warnings else ""
        if not errors:
            lines = [f"validation passed: {self.n_rows} rows in {self.n_batches} batch(es){warn}"]
            lines += [f"  warning: {self._line(w)}" for w in
                      sorted(self.warnings, key=_issue_sort_key)[:max_lines]]
            return "\n".join(lines)
        files = sorted({e["file"] for e in errors})
        if len(files) == 1:
            where = self.display_path(files[0])
            details = [self._line(e, with_file=False) for e in errors]
            if len(details) == 1:
                return f"validation failed for {where}: {details[0]}{warn}"
            head = f"validation failed for {where}: {len(errors)} problems{warn}"
        else:
            details = [self._line(e) for e in errors]
            head = (f"validation failed: {len(errors)} problems in {len(files)} of "
                    f"{self.n_batches} batch files{warn}")
        shown = details[:max_lines]
        more = (f"\n  ... and {len(details) - max_lines} more (see the report)"
                if len(details) > max_lines else "")
        return head + "\n  " + "\n  ".join(shown) + more

    def _line(self, e: dict[str, Any], with_file: bool = True) -> str:
        prefix = f"{self.display_path(e['file'])}: " if with_file and e.get("file") else ""
        return prefix + e["message"]


def _issue_sort_key(e: dict[str, Any]) -> tuple[str, str, str, str]:
    return (str(e.get("file") or ""), str(e.get("batch") or ""), str(e.get("column") or ""),
            str(e.get("check") or ""))


# ---------------------------------------------------------------------------- helpers


def _jsonable(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) else (f if math.isfinite(f) else str(f))
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(v).isoformat()
    if isinstance(v, (int, str)):
        return v
    return str(v)


def _fmt_value(v: Any) -> str:
    return "null" if v is None else repr(v)


def _fmt_rows(rows: list[int], count: int) -> str:
    text = ", ".join(str(r) for r in rows)
    if count > len(rows):
        text += f" and {count - len(rows)} more"
    return ("row " if count == 1 else "rows ") + text


def _issue(*, batch: str, file: str, column: str | None, check: str, expected: str,
           count: int, rows: list[int] | None = None, values: list[Any] | None = None,
           message: str | None = None) -> dict[str, Any]:
    rows = [int(r) for r in (rows or [])][:N_EXAMPLES]
    found = [_jsonable(v) for v in (values or [])][:N_EXAMPLES]
    examples = [{"file": file, "row": r, "column": column, "value": v, "expected": expected}
                for r, v in zip(rows, found, strict=False)]
    if message is None:
        distinct = list(dict.fromkeys(_fmt_value(v) for v in found))
        found_txt = f", found {', '.join(distinct)}" if distinct else ""
        noun = "violation" if count == 1 else "violations"
        message = (f"column {column!r} {_fmt_rows(rows, count)}: expected {expected}"
                   f"{found_txt} ({count} {noun})")
    return {"batch": batch, "file": file, "column": column, "check": check, "count": int(count),
            "rows": rows, "expected": expected, "found": found, "examples": examples,
            "message": message}


def _type_words(spec: ColumnSpec) -> str:
    return {"string": "text", "category": "text", "int": "whole numbers", "float": "numbers",
            "bool": "booleans (true/false)", "datetime": "ISO 8601 timestamps"}[spec.type]


def _display_dir(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _data_error_text(err: DataError) -> str:
    text = str(err)
    if err.path:
        text = text.replace(f"; file: {err.path}", "")
    return text


# ---------------------------------------------------------------------------- per batch


@dataclass
class _BatchResult:
    frame: pd.DataFrame | None  # coerced contract columns (checking dtypes), RangeIndex
    errors: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    drift: dict[str, list[Any]]
    bad: dict[str, np.ndarray]  # per column: values that did not convert


def _check_batch(raw: pd.DataFrame, contract: Contract, schema: Any, *, batch: str, file: str,
                 typed: bool, require_label: bool) -> _BatchResult:
    from pandera.errors import SchemaError, SchemaErrors

    raw = raw.copy(deep=False)  # never touch the caller's frame
    if not raw.index.equals(pd.RangeIndex(len(raw))):
        raw.index = pd.RangeIndex(len(raw))
    raw.columns = [str(c) for c in raw.columns]
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    expected_cols = [c for c in contract.columns
                     if require_label or c != contract.label_column]
    new = [c for c in raw.columns if c not in contract.columns and c != BATCH_COLUMN]
    missing = [c for c in expected_cols if c not in raw.columns]
    retyped: list[dict[str, Any]] = []
    n = len(raw)
    for c in new:
        warnings.append(_issue(
            batch=batch, file=file, column=c, check="new_column",
            expected="only the contract's columns", count=n,
            message=f"column {c!r} is not in the contract (ignored; not in the validated data)"))
    for c in missing:
        spec = contract.columns[c]
        errors.append(_issue(
            batch=batch, file=file, column=c, check="missing_column",
            expected=f"a {spec.type} column", count=n,
            message=f"column {c!r} is missing: expected a {spec.type} column "
                    f"({'nullable' if spec.nullable else 'required'}; all {n} rows lack it)"))

    present = [c for c in expected_cols if c in raw.columns]
    coerced: dict[str, pd.Series] = {}
    bad: dict[str, np.ndarray] = {}
    relax: dict[str, dict[str, Any]] = {}
    for c in present:
        spec = contract.columns[c]
        cc = coerce_column(raw[c], spec, typed_source=typed)
        coerced[c] = cc.values
        if cc.retyped:
            retyped.append({"column": c, "expected": spec.type, "found": cc.family,
                            "count": cc.n_bad})
            if not cc.n_bad:
                warnings.append(_issue(
                    batch=batch, file=file, column=c, check="retyped",
                    expected=spec.type, count=n,
                    message=f"column {c!r} is stored as {cc.family}, expected {spec.type} "
                            f"(all {n} values converted)"))
        if cc.n_bad:
            bad[c] = cc.bad
            idx = np.flatnonzero(cc.bad)
            errors.append(_issue(
                batch=batch, file=file, column=c, check="dtype",
                expected=f"{spec.type} ({_type_words(spec)})", count=cc.n_bad,
                rows=idx[:N_EXAMPLES].tolist(),
                values=raw[c].iloc[idx[:N_EXAMPLES]].tolist()))
            if not spec.nullable:
                # the unconvertible values are now missing: check real nulls here instead
                relax[c] = {"nullable": True}
                nulls = raw[c].isna().to_numpy()
                if nulls.any():
                    ni = np.flatnonzero(nulls)
                    errors.append(_issue(
                        batch=batch, file=file, column=c, check="not_null",
                        expected="no missing values", count=len(ni),
                        rows=ni[:N_EXAMPLES].tolist(), values=[None] * min(len(ni), N_EXAMPLES)))
    drift = {"new": sorted(new), "missing": sorted(missing),
             "retyped": sorted(retyped, key=lambda r: r["column"])}

    frame = pd.DataFrame(coerced, index=pd.RangeIndex(n))
    batch_schema = schema
    absent = [c for c in schema.columns if c not in coerced]
    if absent:
        batch_schema = batch_schema.remove_columns(absent)
    if relax:
        batch_schema = batch_schema.update_columns(relax)
    try:
        batch_schema.validate(frame, lazy=True)
    except SchemaErrors as e:
        errors.extend(_pandera_issues(e.failure_cases, batch_schema, contract, batch=batch,
                                      file=file))
    except SchemaError as e:  # pragma: no cover - lazy=True collects, but be safe
        errors.append(_issue(batch=batch, file=file, column=None, check="schema",
                             expected="a frame matching the contract", count=n,
                             message=f"schema check failed: {e}"))

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
            w = _issue(batch=batch, file=file, column=c, check="unknown_category",
                       expected="one of " + ", ".join(spec.categories), count=len(idx),
                       rows=idx[:N_EXAMPLES].tolist(), values=s.iloc[idx[:N_EXAMPLES]].tolist(),
                       message=f"column {c!r} {_fmt_rows(idx[:N_EXAMPLES].tolist(), len(idx))}:"
                               f" {len(idx)} value(s) not among the contract's categories "
                               f"(allowed, strict: false): {top}")
            w["values"] = listed
            warnings.append(w)
    return _BatchResult(frame=frame, errors=errors, warnings=warnings, drift=drift, bad=bad)


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
            out.append(_issue(batch=batch, file=file, column=column, check=str(name),
                              expected=expected, count=len(g), rows=rows, values=values))
        else:
            out.append(_issue(batch=batch, file=file, column=column, check=str(name),
                              expected=expected, count=len(g),
                              message=f"column {column!r}: expected {expected}, found "
                                      f"{', '.join(str(v) for v in head['failure_case'])}"))
    return out


def _label(col: Any, chk: Any, num: Any, schema: Any, contract: Contract) -> tuple[str, str]:
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


# ---------------------------------------------------------------------------- all batches


def _validate_batches(items: list[tuple[str, str, Any]], contract: Contract, *, location: str,
                      require_label: bool, sort: bool,
                      batch_values: pd.Series | None = None) -> tuple[pd.DataFrame | None,
                                                                       ValidationReport]:
    """items: (batch, file, DataFrame | DataError) in batch-key order."""
    schema = contract.pandera_schema()
    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    drift: dict[str, dict[str, list[Any]]] = {}
    batches: list[dict[str, Any]] = []
    results: list[tuple[str, str, _BatchResult]] = []
    n_rows = 0
    for batch, file, raw in items:
        if isinstance(raw, DataError):
            errors.append(_issue(batch=batch, file=file, column=raw.column, check="read",
                                 expected=raw.expected or "a readable CSV or Parquet file",
                                 count=1, rows=raw.rows, message=_data_error_text(raw)))
            batches.append({"batch": batch, "file": file, "rows": 0})
            drift[batch] = {"new": [], "missing": [], "retyped": []}
            continue
        typed = Path(file).suffix.lower() in _TYPED_SUFFIXES
        res = _check_batch(raw, contract, schema, batch=batch, file=file, typed=typed,
                           require_label=require_label)
        n_rows += len(raw)
        batches.append({"batch": batch, "file": file, "rows": len(raw)})
        errors.extend(res.errors)
        warnings.extend(res.warnings)
        drift[batch] = res.drift
        results.append((batch, file, res))

    errors.extend(_cross_batch_unique(results, contract))

    failure_counts: dict[str, int] = {}
    for e in errors:
        k = f"{e['column'] or '*'}/{e['check']}"
        failure_counts[k] = failure_counts.get(k, 0) + e["count"]
    warning_counts: dict[str, int] = {}
    for w in warnings:
        k = f"{w['column'] or '*'}/{w['check']}"
        warning_counts[k] = warning_counts.get(k, 0) + w["count"]

    report = ValidationReport(
        contract=contract.name, contract_md5=contract.md5, schema_hash=contract.schema_hash(),
        passed=not errors, n_rows=n_rows, n_batches=len(items), batches=batches,
        errors=errors, warnings=warnings, schema_drift=drift, failure_counts=failure_counts,
        warning_counts=warning_counts, location=location)
    if errors:
        return None, report

    cols = [c for c in contract.columns if require_label or c != contract.label_column]
    frames = [res.frame for _, _, res in results if res.frame is not None]
    df = pd.concat([f[cols] for f in frames], ignore_index=True)
    if batch_values is not None:
        df[BATCH_COLUMN] = batch_values.astype(str).to_numpy()
    else:
        names = np.array([b for b, _, _ in results], dtype=object)
        df[BATCH_COLUMN] = np.repeat(names, [len(f) for f in frames])
    for c in cols:
        target = final_dtype(contract.columns[c])
        if str(df[c].dtype) != target:
            df[c] = df[c].astype(target)
    if sort:
        df = sort_validated(df, contract)
    df.index = pd.RangeIndex(len(df))
    report.columns = [[str(c), str(t)] for c, t in df.dtypes.items()]
    return df, report


def sort_validated(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """`df` sorted by (timestamp, id), stable (ties keep their order), index kept.

    Same order as `df.sort_values([ts, id], kind="mergesort")` with missing values last, but
    it sorts the timestamps as integers and compares ids only within runs of equal
    timestamps (string sorts of a million ids are slow)."""
    ts_col, id_col = contract.timestamp_column, contract.id_column
    n = len(df)
    if n < 2:
        return df
    ts = df[ts_col]
    if not pd.api.types.is_datetime64_any_dtype(ts.dtype) or ts.isna().any():
        return df.sort_values([ts_col, id_col], kind="mergesort")
    t = ts.to_numpy(dtype="datetime64[ns]").view("int64")
    order = np.argsort(t, kind="stable")
    ts_sorted = t[order]
    eq = ts_sorted[1:] == ts_sorted[:-1]
    tie = np.zeros(n, dtype=bool)
    tie[1:] |= eq
    tie[:-1] |= eq
    if tie.any():
        sub = order[tie]
        ids = df[id_col].iloc[sub]
        sub_df = pd.DataFrame({"t": t[sub], "i": ids.to_numpy()})
        sub_order = sub_df.sort_values(["t", "i"], kind="mergesort").index.to_numpy()
        order[tie] = sub[sub_order]
    return df.iloc[order]


def _cross_batch_unique(results: list[tuple[str, str, _BatchResult]],
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
            out.append(_issue(batch=batch, file=file, column=c, check="unique_across_batches",
                              expected=f"unique values (already in {', '.join(earlier[:3])})",
                              count=len(g), rows=head["r"].tolist(), values=head["v"].tolist()))
    return out


# ---------------------------------------------------------------------------- public API


def validate_snapshots(snapshot_dir: str | os.PathLike[str], contract: Contract, *,
                       entries: list[SnapshotEntry] | None = None,
                       ) -> tuple[pd.DataFrame, ValidationReport]:
    """Validate the current snapshot of every batch in the manifest (or `entries`).

    Returns (validated frame, report) when every batch passes (warnings allowed); raises
    `ValidationFailed` carrying the report otherwise (see the module docstring). An empty store
    raises DataError. Every batch is checked even after one fails, so the report is complete.
    File names in the report are snapshot file names; messages prefix them with the store
    directory (relative to the working directory when it is below it)."""
    store = Path(snapshot_dir)
    items_entries = manifest_entries(store) if entries is None else list(entries)
    if not items_entries:
        raise DataError("the snapshot store holds no batches", path=store / "manifest.json",
                        expected="at least one snapshot (run the snapshot stage first)")
    items: list[tuple[str, str, Any]] = []
    for e in sorted(items_entries, key=lambda e: e.batch):
        try:
            raw: Any = read_snapshot(store, e)
        except DataError as err:
            raw = err
        items.append((e.batch, e.snapshot_file, raw))
    df, report = _validate_batches(items, contract, location=_display_dir(store),
                                   require_label=True, sort=True)
    if df is None:
        raise ValidationFailed(report)
    return df, report


def validate_frame(df: pd.DataFrame, contract: Contract, source: str = "frame", *,
                   batch: str | None = None, require_label: bool = True, sort: bool = True,
                   raise_on_failure: bool = True) -> tuple[pd.DataFrame | None, ValidationReport]:
    """Validate one in-memory frame as a single batch called `batch` (default: the stem of
    `source`); `source` names it in messages ("file" in the report). Rows are positions in `df`.

    The result has the validated-frame format (module docstring); a `_batch` column already in
    `df` is kept as is, else it is `batch`. `require_label=False` accepts a frame without the
    label column (scoring/serving) and leaves it out of the result; `sort=False` keeps the
    input order. On failure raises `ValidationFailed`, or with `raise_on_failure=False` returns
    (None, report)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"validate_frame needs a pandas DataFrame, got {type(df).__name__}",
                        path=source)
    name = batch or Path(str(source)).stem or str(source)
    batch_values = df[BATCH_COLUMN].reset_index(drop=True) if BATCH_COLUMN in df else None
    raw = df.drop(columns=[BATCH_COLUMN]) if batch_values is not None else df
    items: list[tuple[str, str, Any]] = [(name, str(source), raw)]
    out, report = _validate_batches(items, contract, location="", require_label=require_label,
                                    sort=False, batch_values=batch_values)
    if out is None:
        if raise_on_failure:
            raise ValidationFailed(report)
        return None, report
    if sort:
        out = sort_validated(out, contract)
        out.index = pd.RangeIndex(len(out))
    return out, report


def write_validation_outputs(df: pd.DataFrame | None, report: ValidationReport,
                             out_parquet: str | os.PathLike[str],
                             out_report_json: str | os.PathLike[str],
                             failed_report_json: str | os.PathLike[str] | None = None,
                             ) -> list[Path]:
    """Write the validation outputs; return the paths written.

    Passed: the validated frame (`out_parquet`, deterministic Parquet) and the report
    (`out_report_json`, canonical JSON) are both written to temporary files first and then
    renamed into place, so a crash never leaves a new dataset beside an old report; a stale
    failure report is removed.
    Failed (`report.passed` is False): ONLY the failure report is written, to
    `failed_report_json` (default: `validation_failed.json` beside `out_report_json`, i.e.
    `data/reports/validation_failed.json`, not a DVC output). The previous validated dataset
    and report are left byte for byte as they were, so downstream keeps the last good data.
    This function does not raise for a failed report: the caller re-raises `ValidationFailed`."""
    out_parquet, out_report_json = Path(out_parquet), Path(out_report_json)
    failed = (Path(failed_report_json) if failed_report_json is not None
              else out_report_json.with_name(FAILED_REPORT_NAME))
    if not report.passed:
        write_json_atomic(failed, report.to_dict())
        return [failed]
    if df is None:
        raise ValueError("a passed report needs the validated frame")
    with atomic_path(out_parquet) as tmp_parquet, atomic_path(out_report_json) as tmp_json:
        write_parquet_atomic(tmp_parquet, df)
        tmp_json.write_text(canonical_json(report.to_dict()), encoding="utf-8")
    if failed.exists():
        failed.unlink()
    return [out_parquet, out_report_json]
