"""Request validation against the dataset contract, before anything reaches the model.

A request body is one record (a JSON object of named fields) or `{"records": [...]}`. The
accepted fields are the contract's columns minus the label. Per record and field:

  unknown_field   a key the contract does not have (the label is refused too);
  not_null        missing or null where the contract does not allow it (id and timestamp
                  are never nullable);
  type            the JSON value is not of the column's type: string/category -> string,
                  int -> integer (a whole float like 3.0 is accepted), float -> number,
                  bool -> true/false, datetime -> ISO 8601 string; booleans are never numbers;
                  non-finite numbers are refused;
  min / max       outside the contract's range;
  category        not among the categories of a `strict: true` column (a `strict: false`
                  column accepts new values, as validation does: they are drift, not errors);
  unique          a duplicated id within one batch.
Request-level: `body` (not JSON / not an object), `records` (not a list, empty, or longer
than the configured maximum).

Every problem is a `FieldError` {record, field, check, message, value}; `RequestInvalid`
carries all of them (the service answers 422 with the list). Records that pass are turned
into a frame with the validated-frame dtypes (core.validate): str/object, int64, float64,
datetime64[ns] naive UTC, which core.features.build_features then transforms exactly as in
training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.contract import ColumnSpec, Contract, column_constraints
from mlops_assets.serve.records import parse_iso_ns

MAX_ERRORS_LISTED = 100
_MISSING = object()


@dataclass(frozen=True)
class FieldError:
    record: int | None
    field: str | None
    check: str
    message: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RequestInvalid(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(e.message for e in errors[:5]))

    def to_dict(self) -> dict[str, Any]:
        return {"error": "validation failed", "n_errors": len(self.errors),
                "errors": [e.to_dict() for e in self.errors[:MAX_ERRORS_LISTED]]}


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v if not isinstance(v, str) or len(v) <= 200 else v[:200] + "..."
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    return repr(v)[:200]


class RequestValidator:
    """Validates request bodies against a contract; `max_batch` caps records per request."""

    def __init__(self, contract: Contract, max_batch: int = 10_000) -> None:
        self.contract = contract
        self.max_batch = int(max_batch)
        self.fields: dict[str, ColumnSpec] = {
            n: s for n, s in contract.columns.items() if n != contract.label_column}
        self.required_always = {contract.id_column, contract.timestamp_column}

    # ------------------------------------------------------------------ body shape
    def records(self, body: Any) -> tuple[list[dict[str, Any]], bool]:
        """(records, is_batch) from a parsed JSON body, or RequestInvalid."""
        if isinstance(body, dict) and "records" in body and "records" not in self.fields:
            extra = sorted(k for k in body if k != "records")
            if extra:
                raise RequestInvalid([FieldError(None, extra[0], "unknown_field",
                                                 f"a batch body has only 'records'; found "
                                                 f"{extra}")])
            recs = body["records"]
            if not isinstance(recs, list):
                raise RequestInvalid([FieldError(None, "records", "type",
                                                 "'records' must be a list of objects",
                                                 _jsonable(type(recs).__name__))])
            if not recs:
                raise RequestInvalid([FieldError(None, "records", "size",
                                                 "'records' is empty: send at least one")])
            if len(recs) > self.max_batch:
                raise RequestInvalid([FieldError(
                    None, "records", "max_batch",
                    f"batch of {len(recs)} records exceeds the maximum of {self.max_batch}",
                    len(recs))])
            return recs, True
        if isinstance(body, dict):
            return [body], False
        raise RequestInvalid([FieldError(None, "body", "type",
                                         "the body must be a JSON object: one record, or "
                                         "{\"records\": [...]}", _jsonable(type(body).__name__))])

    # ------------------------------------------------------------------ records
    def validate(self, records: list[Any]) -> pd.DataFrame:
        """The records as a typed frame (contract column order), or RequestInvalid."""
        errors: list[FieldError] = []
        ok_objects = True
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                errors.append(FieldError(i, None, "type", f"record {i} is not a JSON object",
                                         _jsonable(type(r).__name__)))
                ok_objects = False
                continue
            for k in r:
                if k not in self.fields:
                    what = ("the label is not an input"
                            if k == self.contract.label_column else "not in the contract")
                    errors.append(FieldError(i, str(k), "unknown_field",
                                             f"record {i}: unknown field {k!r} ({what})"))
        if not ok_objects:
            raise RequestInvalid(errors)
        columns: dict[str, Any] = {}
        for name, spec in self.fields.items():
            values = [r.get(name, _MISSING) for r in records]
            columns[name] = self._column(name, spec, values, errors)
        if errors:
            errors.sort(key=lambda e: (e.record if e.record is not None else -1,
                                       list(self.fields).index(e.field)
                                       if e.field in self.fields else -1))
            raise RequestInvalid(errors)
        return pd.DataFrame(columns, index=pd.RangeIndex(len(records)))

    def _column(self, name: str, spec: ColumnSpec, values: list[Any],
                errors: list[FieldError]) -> Any:
        nullable = spec.nullable and name not in self.required_always
        present = np.fromiter((v is not _MISSING and v is not None for v in values),
                              dtype=bool, count=len(values))
        if not nullable and not present.all():
            for i in np.flatnonzero(~present):
                what = "missing" if values[i] is _MISSING else "null"
                errors.append(FieldError(int(i), name, "not_null",
                                         f"record {i}: field {name!r} is {what}; it is "
                                         f"required (not nullable)"))
        t = spec.type
        if t in ("string", "category"):
            return self._strings(name, spec, values, present, errors)
        if t in ("int", "float"):
            return self._numbers(name, spec, values, present, errors)
        if t == "bool":
            out = np.zeros(len(values), dtype=object)
            for i, v in enumerate(values):
                if present[i] and not isinstance(v, bool):
                    errors.append(self._type_error(i, name, "a boolean", v))
                out[i] = v if present[i] else None
            return out if nullable else out.astype(bool, copy=False) if present.all() else out
        if t == "datetime":
            return self._datetimes(name, values, present, errors)
        raise AssertionError(t)  # pragma: no cover - load_contract rejects other types

    @staticmethod
    def _type_error(i: int, name: str, expected: str, v: Any) -> FieldError:
        return FieldError(int(i), name, "type",
                          f"record {i}: field {name!r} must be {expected}, got "
                          f"{type(v).__name__} {_jsonable(v)!r}", _jsonable(v))

    def _strings(self, name: str, spec: ColumnSpec, values: list[Any], present: np.ndarray,
                 errors: list[FieldError]) -> np.ndarray:
        out = np.empty(len(values), dtype=object)
        cats = set(spec.categories or ()) if spec.type == "category" and spec.strict else None
        for i, v in enumerate(values):
            if not present[i]:
                out[i] = None
                continue
            if type(v) is not str:
                errors.append(self._type_error(i, name, "a string", v))
                out[i] = None
                continue
            if cats is not None and v not in cats:
                errors.append(FieldError(i, name, "category",
                                         f"record {i}: field {name!r} is {v!r}, not one of "
                                         f"{sorted(cats)}", _jsonable(v)))
            out[i] = v
        if self.contract.columns[name].unique and present.all() and len(values) > 1:
            seen: dict[str, int] = {}
            for i, v in enumerate(out):
                if v in seen:
                    errors.append(FieldError(i, name, "unique",
                                             f"record {i}: {name} {v!r} repeats record "
                                             f"{seen[v]} of this batch", _jsonable(v)))
                else:
                    seen[v] = i
        return out

    def _numbers(self, name: str, spec: ColumnSpec, values: list[Any], present: np.ndarray,
                 errors: list[FieldError]) -> np.ndarray:
        out = np.full(len(values), np.nan, dtype=np.float64)
        is_int = spec.type == "int"
        typ = "an integer" if is_int else "a number"
        for i, v in enumerate(values):
            if not present[i]:
                continue
            tv = type(v)
            if tv is int or (tv is float and math.isfinite(v) and (not is_int or v.is_integer())):
                out[i] = v
            else:
                errors.append(self._type_error(i, name, typ if tv is not float or math.isfinite(v)
                                               else f"{typ} (finite)", v))
                present[i] = False  # not range-checked
        checks = dict(column_constraints(spec))
        with np.errstate(invalid="ignore"):
            if spec.min is not None:
                for i in np.flatnonzero(present & (out < spec.min)):
                    errors.append(FieldError(int(i), name, "min",
                                             f"record {i}: field {name!r} is {values[i]!r}, "
                                             f"expected {checks['min']}", _jsonable(values[i])))
            if spec.max is not None:
                for i in np.flatnonzero(present & (out > spec.max)):
                    errors.append(FieldError(int(i), name, "max",
                                             f"record {i}: field {name!r} is {values[i]!r}, "
                                             f"expected {checks['max']}", _jsonable(values[i])))
        if is_int and not spec.nullable and not np.isnan(out).any() and \
                np.all(np.abs(out) < 2.0 ** 53):
            return out.astype(np.int64)
        return out

    def _datetimes(self, name: str, values: list[Any], present: np.ndarray,
                   errors: list[FieldError]) -> pd.Series:
        text = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            if not present[i]:
                text[i] = None
            elif type(v) is not str:
                errors.append(self._type_error(i, name, "an ISO 8601 timestamp string", v))
                text[i] = None
            else:
                text[i] = v
        parsed = _parse_iso(text)
        bad = np.flatnonzero(pd.isna(parsed).to_numpy() & np.array(
            [t is not None for t in text], dtype=bool))
        for i in bad:
            errors.append(FieldError(int(i), name, "type",
                                     f"record {i}: field {name!r} is {text[i]!r}, not an ISO "
                                     "8601 timestamp", _jsonable(text[i])))
        return parsed


def _parse_iso(text: np.ndarray) -> pd.Series:
    """ISO 8601 strings -> naive-UTC datetime64[ns] (zone offsets converted, naive = UTC);
    unparseable values become NaT. Each value is parsed on its own: pandas parsing a whole
    array lets a naive timestamp inherit the offset of the value before it (pandas 2.3:
    ["...T00:00:00+03:30", "...T13:05:44"] gives 09:35:44 for the second), which would make
    a record's score depend on its neighbours in a batch. The common forms go through
    `parse_iso_ns`; any other form that starts with a year through pandas, one value at a
    time."""
    ns = np.empty(len(text), dtype=np.int64)
    nat = np.iinfo(np.int64).min  # the NaT bit pattern
    for i, t in enumerate(text):
        if t is None:
            ns[i] = nat
            continue
        x = parse_iso_ns(t)
        if x is None and not t[:4].isdigit():
            x = nat  # pandas would read "now" and "today" as the clock: not ISO 8601
        elif x is None:
            try:
                x = pd.Timestamp(pd.to_datetime(t, format="ISO8601", utc=True)
                                 ).tz_localize(None).as_unit("ns").value
            except (ValueError, TypeError, OverflowError):
                x = nat
        ns[i] = x
    return pd.Series(ns.view("datetime64[ns]"))


def records_to_frame(records: list[dict[str, Any]], contract: Contract) -> pd.DataFrame:
    """Validated records as a typed frame (RequestInvalid if they are not valid)."""
    return RequestValidator(contract, max_batch=max(len(records), 1)).validate(records)
