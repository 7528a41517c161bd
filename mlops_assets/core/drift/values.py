"""The reference profile's two files: the JSON (statistics) and the Parquet values file
(sorted unique values and counts, long layout: columns ``u`` and ``n``, one contiguous run
of row groups per feature, written and read one feature at a time so memory stays at about
one column). Written atomically; a profile loaded here verifies the values file's md5.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_assets.core.io import DataError, atomic_path, md5_file, write_json_atomic

PROFILE_FORMAT = "mlops_assets.drift.reference_profile/1"
SCORE = "__score__"
SPILL_ABOVE_BYTES = 256 << 20  # build spills sorted values to disk above this total size


def values_path_for(json_path: str | Path) -> Path:
    return Path(json_path).with_suffix(".parquet")


VALUES_ROWS = 1 << 20  # values per row group of the values file
_VALUES_SCHEMA = pa.schema([("u", pa.float64()), ("n", pa.int64())])


class ValuesWriter:
    """Writes the sorted reference values one column at a time ("long" layout: columns
    ``u`` (value) and ``n`` (its count, null when there are no ties); each feature owns a
    contiguous run of row groups of at most ``VALUES_ROWS`` values). Only one feature's
    values are ever in memory, on writing and on reading."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.layout: dict[str, dict[str, Any]] = {}
        self._groups = 0
        self._writer = pq.ParquetWriter(
            self.path, _VALUES_SCHEMA, compression="zstd", use_dictionary=False,
            write_statistics=False, column_encoding={"u": "BYTE_STREAM_SPLIT"}, store_schema=False)

    def add(self, name: str, u: np.ndarray, counts: np.ndarray | None) -> None:
        u = np.asarray(u, dtype=np.float64)
        ties = counts is not None and bool(np.any(np.asarray(counts) != 1))
        c = np.asarray(counts, dtype=np.int64) if ties else None
        first = self._groups
        for i in range(0, u.size, VALUES_ROWS):
            m = min(VALUES_ROWS, u.size - i)
            n = pa.array(c[i:i + m]) if c is not None else pa.nulls(m, pa.int64())
            self._writer.write_table(pa.table([pa.array(u[i:i + m]), n], schema=_VALUES_SCHEMA),
                                     row_group_size=VALUES_ROWS)
            self._groups += 1
        self.layout[name] = {"length": int(u.size), "ties": ties,
                             "total": int(c.sum()) if c is not None else int(u.size),
                             "row_groups": [first, self._groups - first]}

    def close(self) -> dict[str, dict[str, Any]]:
        self._writer.close()
        return self.layout


class SpillSink:
    """``values[name] = (u, counts)`` during a build, written straight to a temporary file."""

    def __init__(self) -> None:
        self.tmpdir = tempfile.mkdtemp(prefix="drift_values_")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.tmpdir, True)  # failed builds
        self.writer = ValuesWriter(Path(self.tmpdir) / "values.parquet")

    def __setitem__(self, name: str, value: tuple[np.ndarray, np.ndarray | None]) -> None:
        self.writer.add(name, *value)

    def finish(self) -> LazyValues:
        layout = self.writer.close()
        self._cleanup.detach()
        return LazyValues(self.writer.path, layout, cleanup=self.tmpdir)


def _values_order(profile: Mapping[str, Any], values: Mapping[str, Any]) -> list[str]:
    """The build's order (features, then the score), so a spilled build and an in-memory
    one write the same bytes."""
    order = [n for n in profile.get("feature_order") or profile.get("features", {}) if n in values]
    order += [SCORE] if SCORE in values else []
    return order + sorted(set(values) - set(order))


def save_reference_profile(profile: Mapping[str, Any], json_path: str | Path,
                           values_path: str | Path | None = None) -> tuple[Path, Path]:
    """Write the Parquet side file (sorted unique values, counts when not all 1), then the
    JSON with the side file's md5. Both byte-deterministic; no paths or times inside.
    Values already on disk in the long layout (a spilled build, a loaded profile) are
    copied byte for byte."""
    json_path = Path(json_path)
    values_path = Path(values_path) if values_path else values_path_for(json_path)
    values = profile.get("_values", {})
    with atomic_path(values_path) as tmp:
        if isinstance(values, LazyValues) and values.long_layout:
            shutil.copyfile(values.path, tmp)
            layout = dict(values.layout)
        else:
            writer = ValuesWriter(tmp)
            for name in _values_order(profile, values):
                u, counts = values[name]
                writer.add(name, u, counts)
                del u, counts
            layout = writer.close()
    meta = {k: v for k, v in profile.items() if k != "_values"}
    meta["values_file"] = {"name": values_path.name, "md5": md5_file(values_path), "columns": layout}
    write_json_atomic(json_path, meta)
    return json_path, values_path


class LazyValues(Mapping):
    """Reads one column's sorted reference values from the side file when asked for it,
    so a report holds one reference column in memory at a time. Reads the long layout
    (``ValuesWriter``) and the older wide one (a ``u:NAME`` column per feature). Safe to
    call from several threads (a reader per call)."""

    def __init__(self, path: str | Path, layout: Mapping[str, Any], cleanup: str | None = None) -> None:
        self.path, self.layout = Path(path), dict(layout)
        if not self.path.exists():
            raise DataError("reference values file does not exist", path=self.path,
                            expected="the Parquet file written beside reference_profile.json")
        self.long_layout = all("row_groups" in v for v in self.layout.values())
        if cleanup:  # a spilled build's temporary directory goes with this object
            weakref.finalize(self, shutil.rmtree, cleanup, True)

    def __getitem__(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        info = self.layout[name]
        n = int(info["length"])
        if "row_groups" in info:
            first, k = info["row_groups"]
            if n == 0 or k == 0:
                return np.zeros(0), (np.zeros(0, np.int64) if info["ties"] else None)
            cols = ["u", "n"] if info["ties"] else ["u"]
            f = pq.ParquetFile(self.path)
            if k == 1:  # zero-copy
                t = f.read_row_group(first, columns=cols, use_threads=True)
                return (_chunked_to_numpy(t.column(0)),
                        _chunked_to_numpy(t.column(1)) if info["ties"] else None)
            u = np.empty(n, dtype=np.float64)  # row group by row group: no second full copy
            counts = np.empty(n, dtype=np.int64) if info["ties"] else None
            off = 0
            for g in range(first, first + k):
                t = f.read_row_group(g, columns=cols, use_threads=True)
                m = t.num_rows
                u[off:off + m] = _chunked_to_numpy(t.column(0))
                if counts is not None:
                    counts[off:off + m] = _chunked_to_numpy(t.column(1))
                off += m
                del t
            return u, counts
        cols = [f"u:{name}"] + ([f"n:{name}"] if info["ties"] else [])
        t = pq.read_table(self.path, columns=cols, use_threads=True)
        u = t.column(0).slice(0, n).to_numpy()
        counts = t.column(1).slice(0, n).to_numpy() if info["ties"] else None
        return u, counts

    def __iter__(self):
        return iter(self.layout)

    def __len__(self) -> int:
        return len(self.layout)


def _chunked_to_numpy(col: pa.ChunkedArray) -> np.ndarray:
    return col.chunk(0).to_numpy() if col.num_chunks == 1 else col.to_numpy()


def load_reference_profile(json_path: str | Path, values_path: str | Path | None = None,
                           verify: bool = False) -> dict[str, Any]:
    """The profile written by ``save_reference_profile``; numeric values load lazily."""
    import json

    json_path = Path(json_path)
    if not json_path.exists():
        raise DataError("reference profile does not exist", path=json_path,
                        expected="reference_profile.json written by the train stage")
    profile = json.loads(json_path.read_text())
    if profile.get("format") != PROFILE_FORMAT:
        raise DataError(f"unknown reference profile format {profile.get('format')!r}",
                        path=json_path, expected=PROFILE_FORMAT)
    vf = profile.get("values_file", {})
    values_path = Path(values_path) if values_path else json_path.parent / vf.get("name", "")
    if verify and md5_file(values_path) != vf.get("md5"):
        raise DataError("reference values file does not match the profile (md5 differs)",
                        path=values_path, expected=vf.get("md5"))
    profile["_values"] = LazyValues(values_path, vf.get("columns", {}))
    return profile
