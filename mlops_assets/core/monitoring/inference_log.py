"""The inference log: every scored record, as append-only Parquet segments.

Layout (under the project root):

    data/inference_log/date=YYYY-MM-DD/seg-<UTC yyyymmddTHHMMSSffffff>-<pid>-<seq>.parquet

One row per scored record: request_id, request_time (naive UTC), record_index (position in
its request), served_by (production | canary), model_version, threshold, the id and
timestamp columns, every feature as build_features made it, score, decision.

Records are buffered in memory and written as a NEW segment file when the buffer holds
`max_records` records or its oldest record is `max_seconds` old (and at shutdown). A segment
is written to a temporary file and renamed into place, so a reader (or a crash) never sees
half a segment; existing segments are never rewritten. A crash loses at most the in-flight
buffer (bounded by max_records; and by `max_buffer` if the disk fails, after which records
are dropped and counted). Segments are split by the request date, so a period partition
(one day) is a directory.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_assets.core import layout
from mlops_assets.core.io import DataError, atomic_path, write_parquet_atomic
from mlops_assets.core.monitoring.files import consolidated_log_path

log = logging.getLogger("mlops_assets.serve")

LOG_DIR = layout.INFERENCE_LOG
META_COLUMNS = ["request_id", "request_time", "record_index", "served_by", "model_version",
                "threshold"]


class InferenceLog:
    def __init__(self, directory: str | os.PathLike[str], max_records: int = 5000,
                 max_seconds: float = 2.0, max_buffer: int = 200_000,
                 on_write: Callable[[int, int], None] | None = None,
                 on_drop: Callable[[int], None] | None = None) -> None:
        self.directory = Path(directory)
        self.max_records, self.max_seconds, self.max_buffer = max_records, max_seconds, max_buffer
        self.on_write, self.on_drop = on_write, on_drop
        self._frames: list[pd.DataFrame | dict[str, np.ndarray]] = []
        self._rows = 0
        self._oldest: float | None = None
        self._lock = threading.Lock()        # guards the buffer
        self._write_lock = threading.Lock()  # one writer at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self.segments_written = 0
        self.records_written = 0
        self.records_dropped = 0

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> InferenceLog:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="inference-log", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the writer thread and write whatever is buffered."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)
        self.flush()

    # ---------------------------------------------------------------- appending
    def append(self, frame: pd.DataFrame | dict[str, np.ndarray]) -> None:
        """Buffer the rows of one request: a frame, or (cheaper on the request path) a dict
        of equal-length column arrays in log column order, which the writer thread turns
        into a frame. Nothing is copied: do not modify it afterwards."""
        n = len(frame) if isinstance(frame, pd.DataFrame) else len(next(iter(frame.values())))
        if n == 0:
            return
        with self._lock:
            self._frames.append(frame)
            self._rows += n
            if self._oldest is None:
                self._oldest = time.monotonic()
            full = self._rows >= self.max_records
        if full:
            self._wake.set()

    @property
    def buffered(self) -> int:
        return self._rows

    def _run(self) -> None:
        tick = min(0.25, self.max_seconds / 4) if self.max_seconds > 0 else 0.25
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            with self._lock:
                due = self._rows >= self.max_records or (
                    self._oldest is not None
                    and time.monotonic() - self._oldest >= self.max_seconds)
            if due:
                try:
                    self.flush()
                except Exception as e:  # noqa: BLE001 - keep serving, keep the buffer
                    log.error("inference log write failed: %s: %s", type(e).__name__, e)

    # ---------------------------------------------------------------- writing
    def flush(self) -> list[Path]:
        """Write the buffer as new segment(s); returns the paths written."""
        with self._write_lock:
            with self._lock:
                frames, rows = self._frames, self._rows
                self._frames, self._rows, self._oldest = [], 0, None
            if not frames:
                return []
            try:
                return self._write(_concat(frames))
            except Exception:
                with self._lock:  # put it back, oldest first, within the bound
                    self._frames = frames + self._frames
                    self._rows += rows
                    self._oldest = self._oldest or time.monotonic()
                    if self._rows > self.max_buffer:
                        self._drop_oldest()
                raise

    def _drop_oldest(self) -> None:
        dropped = 0
        while self._frames and self._rows > self.max_buffer:
            f = self._frames.pop(0)
            n = len(f) if isinstance(f, pd.DataFrame) else len(next(iter(f.values())))
            self._rows -= n
            dropped += n
        self.records_dropped += dropped
        log.error("inference log buffer over %d records: dropped %d", self.max_buffer, dropped)
        if self.on_drop is not None:
            self.on_drop(dropped)

    def _write(self, cols: dict[str, np.ndarray]) -> list[Path]:
        """One segment per request date, straight from numpy columns to Arrow (no pandas
        frame, no per-row date formatting: this runs in the serving process)."""
        out: list[Path] = []
        days = cols["request_time"].astype("datetime64[D]")
        for day in np.unique(days):
            mask = days == day
            part = cols if mask.all() else {k: v[mask] for k, v in cols.items()}
            n = int(mask.sum())
            first = pd.Timestamp(part["request_time"][0])
            name = f"seg-{first.strftime('%Y%m%dT%H%M%S%f')}-{os.getpid()}-" \
                   f"{next(self._seq):06d}.parquet"
            dest = self.directory / f"date={day}" / name
            table = pa.table({k: _arrow(v) for k, v in part.items()})
            with atomic_path(dest) as tmp:
                pq.write_table(table, tmp, compression="zstd")
            out.append(dest)
            self.segments_written += 1
            self.records_written += n
            if self.on_write is not None:
                self.on_write(1, n)
        return out


def _arrow(values: np.ndarray) -> pa.Array:
    """A log column as Arrow; text columns are always `string` (also when all null)."""
    if values.dtype == object:
        try:
            return pa.array(values, type=pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            return pa.array(values)
    return pa.array(values)


def _concat(chunks: list[pd.DataFrame | dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The buffered chunks as one set of columns, in order (numpy concatenation: one array
    per column, not one frame per request)."""
    dicts = [c if isinstance(c, dict) else {k: c[k].to_numpy() for k in c.columns}
             for c in chunks]
    names = list(dicts[0])
    if any(list(d) != names for d in dicts):
        frame = pd.concat([pd.DataFrame(d) for d in dicts], ignore_index=True)
        return {k: frame[k].to_numpy() for k in frame.columns}
    return {k: np.concatenate([d[k] for d in dicts]) for k in names}


def segment_files(directory: str | os.PathLike[str], dates: list[str] | None = None
                  ) -> list[Path]:
    """The complete segment files under `directory` (optionally only some dates), in name
    order (temporary files of a writer in progress are skipped)."""
    d = Path(directory)
    if not d.exists():
        return []
    files = sorted(p for p in d.glob("date=*/seg-*.parquet") if not p.name.startswith("."))
    if dates is not None:
        wanted = {f"date={x}" for x in dates}
        files = [p for p in files if p.parent.name in wanted]
    return files


def read_inference_log(directory: str | os.PathLike[str], dates: list[str] | None = None
                       ) -> pd.DataFrame:
    """All logged records (optionally for some dates) as one frame, in write order."""
    files = segment_files(directory, dates)
    if not files:
        return pd.DataFrame()
    return pd.concat([pq.read_table(p).to_pandas() for p in files], ignore_index=True)


# Consolidated day order: request time, then request id and record index, then route, so
# the same segments always give the same bytes (and the same data version).
CONSOLIDATED_ORDER = ["request_time", "request_id", "record_index", "served_by"]


def consolidate_day(root: Path, settings: Mapping[str, Any], day: str
                    ) -> tuple[pd.DataFrame, list[Path], Path]:
    """One request date's segments as one Parquet under the monitoring output folder,
    sorted by CONSOLIDATED_ORDER. Returns (records, segment files, written path)."""
    log_dir = root / settings["inference_log_dir"]
    files = segment_files(log_dir, [day])
    if not files:
        raise DataError(f"the inference log has no segments for {day}",
                        path=log_dir / f"date={day}", expected="seg-*.parquet written by the service")
    df = read_inference_log(log_dir, [day])
    df = df.sort_values(CONSOLIDATED_ORDER, kind="stable").reset_index(drop=True)
    return df, files, write_parquet_atomic(consolidated_log_path(root, settings, day), df)


def scan_log_days(log_dir: Path) -> dict[str, dict[str, Any]]:
    """day -> {sig: md5 of its segment names (segments are immutable), newest: mtime,
    segments: count}: what the monitoring sensor compares between ticks."""
    out: dict[str, dict[str, Any]] = {}
    for p in segment_files(log_dir):
        day = p.parent.name.removeprefix("date=")
        d = out.setdefault(day, {"names": [], "newest": 0.0})
        d["names"].append(p.name)
        try:
            d["newest"] = max(d["newest"], p.stat().st_mtime)
        except FileNotFoundError:
            continue
    return {day: {"sig": hashlib.md5("\n".join(d["names"]).encode()).hexdigest()[:16],
                  "newest": d["newest"], "segments": len(d["names"])}
            for day, d in sorted(out.items())}


def settled_changes(days: Mapping[str, Mapping[str, Any]], seen: Mapping[str, str], now: float,
                    settle_seconds: float) -> tuple[list[str], list[str]]:
    """The days (`scan_log_days`) whose segments changed since `seen` (day -> sig), split
    into (ready, waiting): a day is consolidated only once no segment of it is younger than
    `settle_seconds`, so a day the service is still writing is not consolidated per flush."""
    ready: list[str] = []
    waiting: list[str] = []
    for day, info in days.items():
        if seen.get(day) == info["sig"]:
            continue
        (waiting if now - info["newest"] < settle_seconds else ready).append(day)
    return ready, waiting
