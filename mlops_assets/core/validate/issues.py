"""One validation finding (an "issue" dict) and the formatting its message needs: every
check builds its errors and warnings here, so they share one shape and one wording."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.contract import ColumnSpec

N_EXAMPLES = 5


def issue_sort_key(e: dict[str, Any]) -> tuple[str, str, str, str]:
    """The report's order for issues (file, batch, column, check): stable across runs."""
    return (str(e.get("file") or ""), str(e.get("batch") or ""), str(e.get("column") or ""),
            str(e.get("check") or ""))


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


def fmt_rows(rows: list[int], count: int) -> str:
    """'row 3' / 'rows 3, 17 and 4 more': the example rows of a message."""
    text = ", ".join(str(r) for r in rows)
    if count > len(rows):
        text += f" and {count - len(rows)} more"
    return ("row " if count == 1 else "rows ") + text


def issue(*, batch: str, file: str, column: str | None, check: str, expected: str,
          count: int, rows: list[int] | None = None, values: list[Any] | None = None,
          message: str | None = None) -> dict[str, Any]:
    """An error or warning with up to `N_EXAMPLES` example rows (JSON-safe values) and, unless
    given, the standard message naming column, rows, expectation and offending values."""
    rows = [int(r) for r in (rows or [])][:N_EXAMPLES]
    found = [_jsonable(v) for v in (values or [])][:N_EXAMPLES]
    examples = [{"file": file, "row": r, "column": column, "value": v, "expected": expected}
                for r, v in zip(rows, found, strict=False)]
    if message is None:
        distinct = list(dict.fromkeys(_fmt_value(v) for v in found))
        found_txt = f", found {', '.join(distinct)}" if distinct else ""
        noun = "violation" if count == 1 else "violations"
        message = (f"column {column!r} {fmt_rows(rows, count)}: expected {expected}"
                   f"{found_txt} ({count} {noun})")
    return {"batch": batch, "file": file, "column": column, "check": check, "count": int(count),
            "rows": rows, "expected": expected, "found": found, "examples": examples,
            "message": message}


def type_words(spec: ColumnSpec) -> str:
    """A column type in words for a person reading a dtype error."""
    return {"string": "text", "category": "text", "int": "whole numbers", "float": "numbers",
            "bool": "booleans (true/false)", "datetime": "ISO 8601 timestamps"}[spec.type]
