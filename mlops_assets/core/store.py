"""Bytes by md5: file hashing (with a persistent hash cache), DVC's cache objects (found
through DVC's own `cache.dir` setting) and git. The one place that knows where an md5's
bytes live; lineage, reproduce and the sensors read artifacts through it."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import platformdirs

from mlops_assets.core.io import md5_file


def md5_of_file(path: str | os.PathLike[str], chunk: int = 1 << 22) -> str:
    """The md5 DVC records for a file: the md5 of its raw bytes (core.io.md5_file)."""
    return md5_file(path, chunk)


def dir_md5(entries: Iterable[tuple[str, str]]) -> str:
    """DVC's md5 of a directory output: md5 of the JSON list of {md5, relpath} sorted by
    relpath (dvc_data Tree.as_bytes), with ".dir" appended."""
    listing = sorted(({"md5": m, "relpath": r} for r, m in entries), key=lambda e: e["relpath"])
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


class HashCache:
    """md5s of files keyed by (absolute path, size, mtime_ns, inode, ctime_ns) in sqlite.

    `path=None` keeps nothing between runs (every hash is recomputed). Also holds small
    derived facts keyed by content md5 (e.g. the leakage scan of a training set), which are
    valid for as long as the content is."""

    def __init__(self, path: str | os.PathLike[str] | None, workers: int | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.hits = 0
        self.misses = 0
        self.bytes_hashed = 0
        self.workers = workers or min(8, (os.cpu_count() or 2))
        self._db: sqlite3.Connection | None = None
        self._memo: dict[tuple[str, int, int, int, int], str] = {}  # this run, cache or not
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(self.path), timeout=30)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, "
                                 "size INTEGER, mtime_ns INTEGER, inode INTEGER, "
                                 "ctime_ns INTEGER, md5 TEXT)")
                self._db.execute("CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, "
                                 "value TEXT)")
                self._db.commit()
            except (OSError, sqlite3.Error):
                self._db = None  # read-only checkout: hash without a cache

    @classmethod
    def for_root(cls, root: Path, enabled: bool = True) -> HashCache:
        return cls(root / ".dvc" / "tmp" / "lineage-hashes.sqlite" if enabled else None)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def _key(path: str) -> tuple[int, int, int, int]:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns

    def md5(self, path: str | os.PathLike[str]) -> str:
        return self.md5_many([path])[os.path.abspath(path)]

    def md5_many(self, paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
        """{absolute path: md5} for existing files; misses are hashed in parallel threads
        (hashlib releases the GIL) and stored."""
        out: dict[str, str] = {}
        todo: list[tuple[str, tuple[int, int, int, int]]] = []
        for p in dict.fromkeys(os.path.abspath(p) for p in paths):
            key = self._key(p)
            row = None
            memo = self._memo.get((p, *key))
            if memo is not None:
                out[p] = memo
                continue
            if self._db is not None:
                row = self._db.execute(
                    "SELECT md5 FROM hashes WHERE path=? AND size=? AND mtime_ns=? AND inode=? "
                    "AND ctime_ns=?", (p, *key)).fetchone()
            if row:
                out[p] = self._memo[(p, *key)] = row[0]
                self.hits += 1
            else:
                todo.append((p, key))
        if todo:
            if len(todo) > 1 and self.workers > 1:
                with ThreadPoolExecutor(self.workers) as pool:
                    digests = list(pool.map(lambda t: md5_of_file(t[0]), todo))
            else:
                digests = [md5_of_file(p) for p, _ in todo]
            self.misses += len(todo)
            self.bytes_hashed += sum(k[0] for _, k in todo)
            for (p, k), d in zip(todo, digests, strict=True):
                out[p] = d
                self._memo[(p, *k)] = d
            if self._db is not None:
                self._db.executemany(
                    "INSERT OR REPLACE INTO hashes VALUES (?,?,?,?,?,?)",
                    [(p, *k, d) for (p, k), d in zip(todo, digests, strict=True)])
                self._db.commit()
        return out

    def get_fact(self, key: str) -> Any:
        if self._db is None:
            return None
        row = self._db.execute("SELECT value FROM facts WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_fact(self, key: str, value: Any) -> None:
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO facts VALUES (?,?)",
                             (key, json.dumps(value, sort_keys=True, default=str)))
            self._db.commit()

    def stats(self) -> dict[str, Any]:
        return {"cache_file": None if self._db is None or self.path is None else str(self.path),
                "hits": self.hits, "hashed": self.misses, "bytes_hashed": self.bytes_hashed}


def _dvc_config_files(root: Path) -> list[Path]:
    """DVC's config files in the order they shadow each other: system < global < repo
    (.dvc/config) < local (.dvc/config.local). The first two where DVC looks for them
    (DVC_SYSTEM_CONFIG_DIR / DVC_GLOBAL_CONFIG_DIR, else the platform's config dirs)."""
    system = os.environ.get("DVC_SYSTEM_CONFIG_DIR") or platformdirs.site_config_dir(
        "dvc", "iterative")
    user = os.environ.get("DVC_GLOBAL_CONFIG_DIR") or platformdirs.user_config_dir(
        "dvc", "iterative")
    return [Path(system) / "config", Path(user) / "config",
            root / ".dvc" / "config", root / ".dvc" / "config.local"]


def _config_value(path: Path, section: str, option: str) -> str | None:
    """One value of a DVC (configobj-style) config file, None when unset or unreadable.
    Section names are compared case-blind and unquoted, as DVC lowercases them."""
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       inline_comment_prefixes=("#", ";"))
    try:
        parser.read_string(path.read_text())
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    for name in parser.sections():
        if name.strip().strip("'\"").lower() == section and parser.has_option(name, option):
            return parser.get(name, option).strip().strip("'\"")
    return None


def dvc_cache_dir(root: Path) -> Path:
    """The DVC cache directory as DVC itself finds it (`dvc cache dir`): `cache.dir` of
    the highest config level that sets it (a relative path is relative to that config
    file's directory; `~` is expanded), else .dvc/cache. Read here rather than through
    DVC so the core never imports it."""
    for cfg in reversed(_dvc_config_files(root)):
        value = _config_value(cfg, "cache", "dir") if cfg.is_file() else None
        if value:
            expanded = os.path.expanduser(value)
            return Path(os.path.abspath(os.path.join(cfg.parent, expanded)))
    return root / ".dvc" / "cache"


def dvc_cache_object(root: Path, md5: str) -> Path:
    """Where DVC 3 keeps the object with this md5 (`xx/yyyy`, `.dir` kept for directories)."""
    return dvc_cache_dir(root) / "files" / "md5" / md5[:2] / md5[2:]


def git(root: Path, *args: str, binary: bool = False) -> Any:
    """Output of a git command in `root`, or None when git fails (not a repo, no commit)."""
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout if binary else proc.stdout.decode("utf-8", "replace")
