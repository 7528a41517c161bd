"""Orchestration: read every batch, run the per-batch and cross-batch checks, build the report
and, when everything passed, the one validated frame; and write the outputs so that a failure
never replaces the last good dataset."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.contract import Contract, final_dtype
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
from mlops_assets.core.validate.checks import BatchResult, check_batch, cross_batch_unique
from mlops_assets.core.validate.issues import issue
from mlops_assets.core.validate.report import ValidationFailed, ValidationReport

FAILED_REPORT_NAME = "validation_failed.json"
_TYPED_SUFFIXES = (".parquet", ".pq")


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


@dataclass
class _Checked:
    """Every batch's findings, collected in batch-key order."""

    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    drift: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)
    results: list[tuple[str, str, BatchResult]] = field(default_factory=list)
    n_rows: int = 0


def _check_items(items: list[tuple[str, str, Any]], contract: Contract, *,
                 require_label: bool) -> _Checked:
    """Check each batch (an unreadable one is a "read" error); every batch is checked even
    after one fails, so the report is complete."""
    schema = contract.pandera_schema()
    out = _Checked()
    for batch, file, raw in items:
        if isinstance(raw, DataError):
            out.errors.append(issue(batch=batch, file=file, column=raw.column, check="read",
                                    expected=raw.expected or "a readable CSV or Parquet file",
                                    count=1, rows=raw.rows, message=_data_error_text(raw)))
            out.batches.append({"batch": batch, "file": file, "rows": 0})
            out.drift[batch] = {"new": [], "missing": [], "retyped": []}
            continue
        typed = Path(file).suffix.lower() in _TYPED_SUFFIXES
        res = check_batch(raw, contract, schema, batch=batch, file=file, typed=typed,
                          require_label=require_label)
        out.n_rows += len(raw)
        out.batches.append({"batch": batch, "file": file, "rows": len(raw)})
        out.errors.extend(res.errors)
        out.warnings.extend(res.warnings)
        out.drift[batch] = res.drift
        out.results.append((batch, file, res))
    out.errors.extend(cross_batch_unique(out.results, contract))
    return out


def _counts(issues: list[dict[str, Any]]) -> dict[str, int]:
    """{"column/check": summed count} ("*" for a file-level issue)."""
    counts: dict[str, int] = {}
    for e in issues:
        k = f"{e['column'] or '*'}/{e['check']}"
        counts[k] = counts.get(k, 0) + e["count"]
    return counts


def _validated_frame(results: list[tuple[str, str, BatchResult]], contract: Contract, *,
                     require_label: bool, sort: bool,
                     batch_values: pd.Series | None) -> pd.DataFrame:
    """The passed batches as one frame in the validated-frame format (package docstring)."""
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
    return df


def _validate_batches(items: list[tuple[str, str, Any]], contract: Contract, *, location: str,
                      require_label: bool, sort: bool,
                      batch_values: pd.Series | None = None) -> tuple[pd.DataFrame | None,
                                                                       ValidationReport]:
    """items: (batch, file, DataFrame | DataError) in batch-key order."""
    checked = _check_items(items, contract, require_label=require_label)
    report = ValidationReport(
        contract=contract.name, contract_md5=contract.md5, schema_hash=contract.schema_hash(),
        passed=not checked.errors, n_rows=checked.n_rows, n_batches=len(items),
        batches=checked.batches, errors=checked.errors, warnings=checked.warnings,
        schema_drift=checked.drift, failure_counts=_counts(checked.errors),
        warning_counts=_counts(checked.warnings), location=location)
    if checked.errors:
        return None, report
    df = _validated_frame(checked.results, contract, require_label=require_label, sort=sort,
                          batch_values=batch_values)
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
