"""The vocabulary of a lineage: artifacts and every claim about their md5, the checks
`verify` makes, and the `Chain` that holds the resolved stage entries and finds the bytes
of any (path, md5) in the working tree, the DVC cache or git."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlops_assets.core.lineage.history import LockHistory, LockRev, deps_of, outs_of
from mlops_assets.core.store import HashCache, dvc_cache_object, git

LINEAGE_FORMAT = "mlops_assets.lineage/1"

# A check's status. Only MISMATCHED and MISSING fail a verify; WARNING is a finding that does
# not by itself make the chain unverifiable (e.g. an artifact built by `dvc repro` that Dagster
# never materialised).
VERIFIED, MISSING, MISMATCHED, WARNING, SKIPPED = (
    "verified", "missing", "mismatched", "warning", "skipped")
STATUSES = (VERIFIED, MISSING, MISMATCHED, WARNING, SKIPPED)


class LineageError(Exception):
    """The lineage cannot be built (unknown model version, no such file): a message for people."""


class DagsterRecords(Protocol):
    """What the lineage needs from Dagster (implemented outside the core)."""

    def materializations(self, asset_key: str) -> list[dict[str, Any]]:
        """Ascending by time: {timestamp, run_id, partition, data_version, dvc_md5, metadata}."""
        ...


def read_json_bytes(data: bytes | None) -> Any:
    """Parsed JSON, or None for absent or unparsable bytes (a finding, not a crash)."""
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


@dataclass
class Artifact:
    """One file (or DVC directory output) of the chain and every claim about its md5."""

    id: str
    kind: str
    path: str
    claims: list[tuple[str, str]] = field(default_factory=list)  # (who says so, md5)
    is_dir: bool = False
    git_tracked: bool = False       # code / contract: bytes also in git at the lock's commit
    in_dir: str | None = None       # the DVC directory output this file is listed in
    strict: bool = True             # the working tree is expected to hold this version
    alt_paths: list[str] = field(default_factory=list)  # other copies (registry)

    @property
    def md5(self) -> str | None:
        return self.claims[0][1] if self.claims else None

    def claim(self, who: str, md5: str | None) -> None:
        if md5 and (who, md5) not in self.claims:
            self.claims.append((who, str(md5)))


@dataclass
class Check:
    target: str
    kind: str
    status: str
    message: str
    expected: str | None = None
    actual: str | None = None
    source: str | None = None


class Chain:
    """The resolved chain: stage entries by name (with the lock version each came from),
    artifacts by id, and a byte source for any (path, md5)."""

    def __init__(self, root: Path, history: LockHistory, cache: HashCache) -> None:
        self.root = root
        self.history = history
        self.cache = cache
        self.entries: dict[str, tuple[LockRev, dict[str, Any]]] = {}
        self.artifacts: dict[str, Artifact] = {}
        self.notes: list[str] = []
        self._working_index: dict[str, set[str]] | None = None
        self._dir_listing_cache: dict[str, list[tuple[str, str]] | None] = {}

    # ------------------------------------------------------------------ lock lookups
    def find_entry(self, stage: str, pred: Callable[[dict[str, Any]], bool]
                   ) -> tuple[LockRev, dict[str, Any]] | None:
        for rev in self.history.all():
            entry = rev.stages.get(stage)
            if entry and pred(entry):
                return rev, entry
        return None

    def working_index(self) -> dict[str, set[str]]:
        """path -> the md5s the working dvc.lock records for it: the producing stage's out,
        or for a plain dep (code, contract) what the stages that use it recorded (several
        when a stage entry is older than the file's last change)."""
        if self._working_index is None:
            outs: dict[str, set[str]] = {}
            deps: dict[str, set[str]] = {}
            for entry in self.history.working.stages.values():
                for p, m in outs_of(entry).items():
                    if m:
                        outs.setdefault(p, set()).add(m)
                for p, m in deps_of(entry).items():
                    if m:
                        deps.setdefault(p, set()).add(m)
            # a stage's output is what its producing stage recorded; a stale consumer's dep
            # record does not mean the working tree should hold that version
            self._working_index = {**deps, **outs}
        return self._working_index

    def artifact(self, id: str, kind: str, path: str, **kw: Any) -> Artifact:
        a = self.artifacts.get(id)
        if a is None:
            a = self.artifacts[id] = Artifact(id, kind, path, **kw)
        return a

    def claim_file(self, id: str, kind: str, path: str, claims: list[tuple[str, str | None]],
                   in_dir: str | None = None) -> Artifact:
        """The artifact with these claims; strict when the working tree should hold it."""
        a = self.artifact(id, kind, path)
        for who, md5 in claims:
            a.claim(who, md5)
        a.in_dir = in_dir
        a.strict = self.working_expected(a)
        return a

    # ------------------------------------------------------------------ bytes
    def working_expected(self, a: Artifact) -> bool:
        """Whether the working tree is supposed to hold exactly this version: the working
        dvc.lock records this md5 for its path (or for the directory output it is listed in)."""
        idx = self.working_index()
        if a.in_dir is not None:
            parent = self.artifacts.get(a.in_dir)
            return parent is not None and parent.md5 in idx.get(parent.path, set())
        return a.md5 is not None and a.md5 in idx.get(a.path, set())

    def bytes_of(self, path: str, md5: str | None) -> tuple[bytes | None, str | None]:
        """The bytes of `path` at version `md5` (working tree, DVC cache, or git)."""
        wf = self.root / path
        if wf.is_file() and (md5 is None or self.cache.md5(wf) == md5):
            return wf.read_bytes(), "working tree"
        if md5:
            obj = dvc_cache_object(self.root, md5)
            if obj.is_file():
                return obj.read_bytes(), "DVC cache"
            for rev in self.history.commits():
                blob = git(self.root, "show", f"{rev.commit}:{path}", binary=True)
                if blob is not None and hashlib.md5(blob).hexdigest() == md5:
                    return blob, f"git {rev.commit[:10]}"
        return None, None

    def json_of(self, path: str, md5: str | None) -> tuple[Any, str | None]:
        data, src = self.bytes_of(path, md5)
        return read_json_bytes(data), src

    def dir_listing(self, md5: str | None) -> list[tuple[str, str]] | None:
        """(relpath, md5) of a DVC directory object, from the cache."""
        if not md5:
            return None
        if md5 not in self._dir_listing_cache:
            obj = dvc_cache_object(self.root, md5)
            listing = None
            if obj.is_file():
                data = read_json_bytes(obj.read_bytes())
                if isinstance(data, list):
                    listing = [(str(e["relpath"]), str(e["md5"])) for e in data]
            self._dir_listing_cache[md5] = listing
        return self._dir_listing_cache[md5]
