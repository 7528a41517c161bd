"""Ingest: immutable, content-hashed snapshots of the landing batches.

The landing area (`data/landing/`) is where batch files arrive, one file per batch (CSV or
Parquet). `snapshot_batches` copies each batch byte for byte into the snapshot store
(`data/snapshots/`) as `<batch key>-<md5[:12]><suffix>` and records it in
`data/snapshots/manifest.json`:

* a snapshot file is never rewritten: the same content gives the same name, so snapshotting
  an unchanged batch again does nothing (not even touch the file);
* a landing file whose content changed (same name, new bytes) gets a NEW snapshot file; the old
  one stays, the manifest points the batch at the newest and keeps the md5 history;
* a batch whose landing file has gone keeps its manifest entry (the store is the record);
* an existing snapshot whose bytes no longer match its name is corruption: `DataError`;
* a batch file that cannot be read as a table (0 bytes, corrupt Parquet, non-UTF-8 CSV, a
  header and no rows) is rejected with `DataError` naming the landing file, and nothing is
  written for any batch in that call.

`manifest.json` is a DVC output hashed in `dvc.lock`, so it holds no time stamps and no
absolute paths; its bytes depend only on the batch files' names and contents (and on the
order in which contents of one batch were seen, which is its history):

    {"entries": [{"batch", "source_file", "snapshot_file", "md5", "size", "rows", "columns",
                  "history": [md5, ...]}, ...in landing order], "format": 1}

The entries are in the order their current content was snapshotted (batches of one call by
key; a batch whose content changed moves to the end): `landing_order` reads it, so the drift
stage knows which batch landed last even when a late batch holds older dates. When all
batches land at once (the sample data) that is plain key order.

No dagster import here (functional core)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_assets.core.io import (
    DataError,
    atomic_path,
    canonical_json,
    md5_file,
    read_table,
    write_json_atomic,
)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
BATCH_COLUMN = "_batch"
BATCH_SUFFIXES = (".parquet", ".csv")
_TEMP_SUFFIXES = (".tmp", ".partial", ".part", ".crdownload", ".swp")
_KEY_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class SnapshotEntry:
    """One batch in the snapshot store: its current snapshot and the md5s it has had.

    `created` (not written to the manifest) says this call wrote the snapshot file."""

    batch: str
    source_file: str
    snapshot_file: str
    md5: str
    size: int
    rows: int
    columns: tuple[str, ...]
    history: tuple[str, ...] = ()
    created: bool = field(default=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The manifest form (no `created`)."""
        d = asdict(self)
        d.pop("created")
        d["columns"] = list(self.columns)
        d["history"] = list(self.history)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SnapshotEntry:
        return cls(batch=str(d["batch"]), source_file=str(d["source_file"]),
                   snapshot_file=str(d["snapshot_file"]), md5=str(d["md5"]),
                   size=int(d["size"]), rows=int(d["rows"]),
                   columns=tuple(str(c) for c in d.get("columns") or ()),
                   history=tuple(str(h) for h in d.get("history") or (d["md5"],)))


# ---------------------------------------------------------------------------- landing


def _is_batch_file(p: Path) -> bool:
    name = p.name
    if name.startswith((".", "_", "~")) or name.endswith("~"):
        return False
    lower = name.lower()
    if lower.endswith(_TEMP_SUFFIXES):
        return False
    return p.suffix.lower() in BATCH_SUFFIXES and p.is_file()


def list_landing_batches(landing_dir: str | os.PathLike[str]) -> list[Path]:
    """The batch files in the landing area, sorted by name: `*.parquet` and `*.csv` (any case).

    Hidden and temporary files are ignored: names starting with '.', '_' or '~', ending in
    '~', and `*.tmp`/`*.partial`/`*.part` (e.g. a writer's `.week_1.parquet.tmp`);
    sub-directories are not searched. A missing directory holds no batches."""
    landing = Path(landing_dir)
    if not landing.is_dir():
        return []
    return sorted((p for p in landing.iterdir() if _is_batch_file(p)), key=lambda p: p.name)


def batch_key(path: str | os.PathLike[str]) -> str:
    """The batch key of a landing file: its stem with every character outside
    [A-Za-z0-9_.-] replaced by '_' (`week 1 (fix).csv` -> `week_1__fix_`). It is the Dagster
    partition key and the prefix of the snapshot file name."""
    stem = Path(path).stem
    key = _KEY_BAD_CHARS.sub("_", stem)
    if not key or key.startswith("."):
        key = "_" + key
    return key


def snapshot_name(key: str, md5: str, suffix: str) -> str:
    return f"{key}-{md5[:12]}{suffix.lower()}"


# ---------------------------------------------------------------------------- manifest


def load_manifest(snapshot_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed manifest: {"entries": [entry dicts sorted by batch], "format": 1}; an empty
    entry list when the store has no manifest yet. Use `manifest_entries` for
    `SnapshotEntry` objects."""
    path = Path(snapshot_dir) / MANIFEST
    if not path.exists():
        return {"entries": [], "format": MANIFEST_FORMAT}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = [SnapshotEntry.from_dict(e).to_dict() for e in data["entries"]]
    except (ValueError, KeyError, TypeError) as e:
        raise DataError(f"snapshot manifest is not valid ({type(e).__name__}: {e})", path=path,
                        expected='JSON {"entries": [...], "format": 1} written by the snapshot '
                                 "stage") from None
    return {"entries": sorted(entries, key=lambda e: e["batch"]),
            "format": data.get("format", MANIFEST_FORMAT)}


def landing_order(snapshot_dir: str | os.PathLike[str]) -> list[str]:
    """Batch keys in the order their current content was snapshotted, oldest first (the
    manifest's entry order; `load_manifest` sorts by key instead)."""
    path = Path(snapshot_dir) / MANIFEST
    if not path.exists():
        return []
    load_manifest(snapshot_dir)  # validates the file, raising DataError when it is broken
    return [str(e["batch"]) for e in json.loads(path.read_text(encoding="utf-8"))["entries"]]


def manifest_entries(snapshot_dir: str | os.PathLike[str]) -> list[SnapshotEntry]:
    """The manifest's entries as `SnapshotEntry` objects, sorted by batch key."""
    return [SnapshotEntry.from_dict(e) for e in load_manifest(snapshot_dir)["entries"]]


def _write_manifest(snapshot_dir: Path, entries: Iterable[SnapshotEntry]) -> None:
    """Write the manifest (atomically, entries in the order given: landing order), or leave
    it untouched when its bytes would not change."""
    obj = {"entries": [e.to_dict() for e in entries], "format": MANIFEST_FORMAT}
    path = snapshot_dir / MANIFEST
    if path.exists() and path.read_text(encoding="utf-8") == canonical_json(obj):
        return
    write_json_atomic(path, obj)


@contextmanager
def _store_lock(snapshot_dir: Path) -> Iterator[None]:
    """An exclusive lock on the store directory itself (flock on its fd: no lock file, which
    would become part of the DVC output), so concurrent partition runs don't lose updates."""
    fd = os.open(snapshot_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ---------------------------------------------------------------------------- snapshot


def _inspect(path: Path) -> tuple[int, tuple[str, ...]]:
    """Rows and columns of a batch file, reading it as validation will (so a file the store
    accepts is a file that reads); raises DataError naming the file otherwise."""
    df = read_table(path)
    return len(df), tuple(str(c) for c in df.columns)


def _same_bytes(path: Path, size: int, md5: str) -> bool:
    return path.stat().st_size == size and md5_file(path) == md5


def _select_batches(landing: Path, keys: Iterable[str] | None) -> dict[str, Path]:
    """The landing files to snapshot, by batch key: every one, or those named in `keys`.
    Two files with one key, or a requested key without a file, are errors (nothing is done)."""
    by_key: dict[str, Path] = {}
    for f in list_landing_batches(landing):
        k = batch_key(f)
        if k in by_key:
            raise DataError(f"two landing files map to the batch key {k!r}: {by_key[k].name} and "
                            f"{f.name}", path=f, expected="one file per batch (unique file stems)")
        by_key[k] = f
    if keys is not None:
        wanted = sorted(set(keys))
        missing = [k for k in wanted if k not in by_key]
        if missing:
            raise DataError(f"no landing file for batch key(s) {missing}", path=landing,
                            expected=f"one of {sorted(by_key)}" if by_key else "batch files")
        by_key = {k: by_key[k] for k in wanted}
    return by_key


def _plan_entry(key: str, src: Path, store: Path, old: SnapshotEntry | None) -> SnapshotEntry:
    """The manifest entry `src` will have. Its rows and columns are reused when the bytes are
    unchanged (no re-read); an unreadable file raises DataError from `_inspect`."""
    md5 = md5_file(src)
    size = src.stat().st_size
    target = store / snapshot_name(key, md5, src.suffix)
    if old is not None and old.md5 == md5 and old.snapshot_file == target.name:
        rows, columns = old.rows, old.columns
    else:
        rows, columns = _inspect(src)
    history = tuple(old.history) if old is not None else ()
    if md5 not in history:
        history = history + (md5,)
    return SnapshotEntry(batch=key, source_file=src.name, snapshot_file=target.name,
                         md5=md5, size=size, rows=rows, columns=columns, history=history)


def _check_existing(store: Path, entry: SnapshotEntry) -> None:
    """Snapshots are never rewritten: one already stored under this name must hold its bytes."""
    target = store / entry.snapshot_file
    if target.exists() and not _same_bytes(target, entry.size, entry.md5):
        raise DataError("snapshot store is corrupt: an existing snapshot's bytes do not "
                        f"match its name (md5 {md5_file(target)} != {entry.md5}); snapshots "
                        "are never rewritten, restore it (dvc checkout / dvc pull)",
                        path=target, expected=f"md5 {entry.md5}")


def _plan(by_key: Mapping[str, Path], store: Path,
          current: Mapping[str, SnapshotEntry]) -> list[tuple[SnapshotEntry, Path]]:
    """First pass: hash and inspect everything; no write happens if any batch is bad (every
    unreadable file is named in one error)."""
    planned: list[tuple[SnapshotEntry, Path]] = []
    problems: list[str] = []
    for key in sorted(by_key):
        src = by_key[key]
        try:
            entry = _plan_entry(key, src, store, current.get(key))
        except DataError as e:
            problems.append(str(e))
            continue
        _check_existing(store, entry)
        planned.append((entry, src))
    if problems:
        raise DataError(f"{len(problems)} landing batch file(s) cannot be read; nothing was "
                        "snapshotted:\n  " + "\n  ".join(problems))
    return planned


def _copy_snapshot(src: Path, target: Path, md5: str) -> bool:
    """Copy `src` to the store atomically unless already there; True when it was created."""
    if target.exists():
        return False
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)
    if md5_file(target) != md5:  # the landing file changed under us
        target.unlink()
        raise DataError("landing file changed while it was being snapshotted; "
                        "retry once its writer has finished", path=src)
    return True


def _apply(planned: list[tuple[SnapshotEntry, Path]], store: Path,
           current: dict[str, SnapshotEntry]) -> list[SnapshotEntry]:
    """Second pass: write the snapshots and update `current` (landing order: a batch whose
    content changed moves to the end)."""
    done: list[SnapshotEntry] = []
    for entry, src in planned:
        created = _copy_snapshot(src, store / entry.snapshot_file, entry.md5)
        if entry.batch in current and current[entry.batch].md5 != entry.md5:
            del current[entry.batch]  # new content landed: it moves to the end
        current[entry.batch] = entry
        done.append(SnapshotEntry(**{**asdict(entry), "created": created}))
    return done


def snapshot_batches(landing_dir: str | os.PathLike[str], snapshot_dir: str | os.PathLike[str],
                     keys: Iterable[str] | None = None) -> list[SnapshotEntry]:
    """Snapshot the landing batches (all of them, or only those whose batch key is in `keys`)
    and update the manifest; return the entries of the batches processed, sorted by key.

    See the module docstring for the rules. Raises DataError (naming the file) when a batch
    file is unreadable, two landing files map to the same batch key, a requested key has no
    landing file, or an existing snapshot's bytes no longer match its name. Entries of other
    batches already in the manifest are kept as they are."""
    store = Path(snapshot_dir)
    by_key = _select_batches(Path(landing_dir), keys)
    store.mkdir(parents=True, exist_ok=True)
    with _store_lock(store):
        known = {e.batch: e for e in manifest_entries(store)}
        current = {k: known[k] for k in landing_order(store) if k in known}
        planned = _plan(by_key, store, current)
        done = _apply(planned, store, current)
        _write_manifest(store, current.values())
    return done


# ---------------------------------------------------------------------------- read


def _as_entry(e: SnapshotEntry | Mapping[str, Any]) -> SnapshotEntry:
    return e if isinstance(e, SnapshotEntry) else SnapshotEntry.from_dict(e)


def read_snapshot(snapshot_dir: str | os.PathLike[str],
                  entry: SnapshotEntry | Mapping[str, Any], *, verify: bool = True) -> pd.DataFrame:
    """One batch's current snapshot as read from disk (raw types, no `_batch` column).

    With `verify`, the file's md5 must still be the manifest's (else DataError: the store is
    corrupt). Unreadable files raise DataError naming the file."""
    e = _as_entry(entry)
    path = Path(snapshot_dir) / e.snapshot_file
    if not path.exists():
        raise DataError(f"snapshot of batch {e.batch!r} is missing (restore it with dvc "
                        "checkout / dvc pull, or re-run the snapshot stage)", path=path)
    if verify and not _same_bytes(path, e.size, e.md5):
        raise DataError(f"snapshot of batch {e.batch!r} does not match the manifest's md5 "
                        f"{e.md5}: the store is corrupt", path=path, expected=f"md5 {e.md5}")
    return read_table(path)


def read_snapshots(snapshot_dir: str | os.PathLike[str],
                   entries: Iterable[SnapshotEntry | Mapping[str, Any]] | None = None,
                   ) -> pd.DataFrame:
    """The current snapshot of every batch (or of `entries`), concatenated in batch-key order
    with a `_batch` column (the batch key) last; raw types as read (validation coerces).
    Batches whose columns differ are aligned by name (missing values where absent)."""
    items = manifest_entries(snapshot_dir) if entries is None else [_as_entry(e) for e in entries]
    if not items:
        raise DataError("the snapshot store holds no batches", path=Path(snapshot_dir) / MANIFEST,
                        expected="a manifest with at least one entry (run the snapshot stage)")
    frames = []
    for e in sorted(items, key=lambda e: e.batch):
        df = read_snapshot(snapshot_dir, e)
        df = df.drop(columns=[BATCH_COLUMN], errors="ignore")
        df[BATCH_COLUMN] = e.batch
        frames.append(df)
    return pd.concat(frames, ignore_index=True, sort=False)
