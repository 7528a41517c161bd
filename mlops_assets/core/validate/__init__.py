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

Modules: `issues` (one finding's shape and message), `report` (`ValidationReport`,
`ValidationFailed`), `checks` (the per-batch and cross-batch checks), `run` (orchestration,
the validated frame, the outputs). The names below are the public API.

No dagster import here (functional core)."""

from mlops_assets.core.validate.issues import N_EXAMPLES
from mlops_assets.core.validate.report import ValidationFailed, ValidationReport
from mlops_assets.core.validate.run import (
    FAILED_REPORT_NAME,
    sort_validated,
    validate_frame,
    validate_snapshots,
    write_validation_outputs,
)

__all__ = [
    "N_EXAMPLES", "FAILED_REPORT_NAME", "ValidationFailed", "ValidationReport", "sort_validated",
    "validate_snapshots", "validate_frame", "write_validation_outputs",
]
