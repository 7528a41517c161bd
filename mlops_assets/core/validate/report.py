"""The validation report and the exception that carries it: what `validation.json` holds and
what a person reads when validation fails."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.core.io import DataError
from mlops_assets.core.validate.issues import issue_sort_key


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
        key = issue_sort_key
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
        errors = sorted(self.errors, key=issue_sort_key)
        warn = f"; {len(self.warnings)} warning(s)" if self.warnings else ""
        if not errors:
            lines = [f"validation passed: {self.n_rows} rows in {self.n_batches} batch(es){warn}"]
            lines += [f"  warning: {self._line(w)}" for w in
                      sorted(self.warnings, key=issue_sort_key)[:max_lines]]
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

