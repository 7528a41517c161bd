"""Lineage an auditor can verify: from a model version back to the exact bytes, code and
params that made it, and a check that every one of those hashes still holds.

The model version is the md5 of `model.skops`. The chain is walked by content hash, the way
DVC pins it:

1. find the `dvc.lock` whose `train` stage output `data/model/model.skops` has that md5 (the
   working tree's `dvc.lock` first, then every committed version of it, newest first);
2. from the train stage's deps walk up through the stages that produced them (split ->
   features -> validate -> snapshot -> landing), each time picking the stage entry whose
   output md5 equals the md5 the downstream stage recorded for it (working lock first, then
   git history), and across to the evaluate and drift stages whose deps name this model;
3. read the facts (record, manifest, split, validation, evaluation, drift) from the bytes
   that carry those md5s: the working tree when it holds them, else the DVC cache
   (`.dvc/cache/files/md5/xx/yyyy`), else git (code and contract at the lock's commit).

`verify_lineage` then recomputes every hash and checks it against every *claim* about it:
`dvc.lock` (outs and the deps recorded downstream), the model record, the snapshot manifest,
the DVC `.dir` listings, the registry, and (through an injected provider, because the core
never imports dagster) the Dagster materialisation metadata. It also checks the training set
for rows at or after the recorded cutoff (leakage), the feature definitions of the contract
against those the model was trained with, and the audit log's hash chain.

Hashing goes through `HashCache`, DVC's idea of a hash cache: md5s are kept in a small
sqlite file under `.dvc/tmp/` keyed by (path, size, mtime_ns, inode, ctime_ns), so a warm
verify re-reads no bytes. ctime is part of the key (DVC's state omits it): it cannot be set
from user space, so an edit that restores mtime still misses the cache. `--no-hash-cache`
rehashes everything.

No dagster import here (functional core)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

LINEAGE_FORMAT = "mlops_assets.lineage/1"

from mlops_assets.core.layout import (  # noqa: E402
    AUDIT_LOG,
    DRIFT_JSON,
    EVALUATION,
    FEATURE_META,
    FEATURES,
    HOLDOUT,
    LANDING,
    MANIFEST,
    MODEL,
    MODEL_RECORD,
    PRODUCTION_POINTER,
    REFERENCE_PROFILE,
    REGISTRY_DIR,
    REGISTRY_INDEX,
    RUNS_DIR,
    SNAPSHOTS,
    SPLIT_SUMMARY,
    TRAIN,
    VALIDATED,
    VALIDATION_REPORT,
)

TRAIN_STAGE = "train"

# A check's status. Only MISMATCHED and MISSING fail a verify; WARNING is a finding that does
# not by itself make the chain unverifiable (e.g. an artifact built by `dvc repro` that Dagster
# never materialised).
VERIFIED, MISSING, MISMATCHED, WARNING, SKIPPED = (
    "verified", "missing", "mismatched", "warning", "skipped")

# Libraries whose versions decide a model's bytes (the model record's "libraries" keys).
LIBRARIES = {"numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow",
             "scikit-learn": "scikit-learn", "scipy": "scipy", "skops": "skops"}


class LineageError(Exception):
    """The lineage cannot be built (unknown model version, no such file): a message for people."""


from mlops_assets.core.store import (  # noqa: E402
    HashCache,
    dir_md5,
    dvc_cache_dir,  # noqa: F401 (re-exported until lineage is split)
    dvc_cache_object,
    git,
    md5_of_file,  # noqa: F401
)


@dataclass
class LockRev:
    """One version of dvc.lock: the working tree's (commit None) or a committed one."""

    commit: str | None
    time: int | None = None
    subject: str = ""
    stages: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "dvc.lock (working tree)" if self.commit is None else f"dvc.lock@{self.commit[:10]}"


def _yaml_load(text: str | bytes) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)


class LockHistory:
    """The working dvc.lock and every committed version of it, newest first, parsed lazily."""

    def __init__(self, root: Path, cache: HashCache | None = None) -> None:
        self.root = root
        self.cache = cache  # parsed committed locks are kept in its facts table, by commit
        path = root / "dvc.lock"
        self.working = LockRev(None, stages=(_yaml_load(path.read_bytes()) or {}).get("stages", {})
                               if path.exists() else {})
        self._commits: list[LockRev] | None = None

    def commits(self) -> list[LockRev]:
        if self._commits is None:
            out = git(self.root, "log", "--format=%H%x1f%ct%x1f%s", "--", "dvc.lock") or ""
            revs = []
            for line in out.splitlines():
                parts = line.split("\x1f")
                if len(parts) != 3:
                    continue
                key = f"lock/1:{parts[0]}"
                stages = self.cache.get_fact(key) if self.cache is not None else None
                if stages is None:
                    blob = git(self.root, "show", f"{parts[0]}:dvc.lock", binary=True)
                    try:
                        stages = (_yaml_load(blob) or {}).get("stages", {}) if blob else False
                    except yaml.YAMLError:
                        stages = False
                    if self.cache is not None:  # a commit never changes: cache it for good
                        self.cache.put_fact(key, stages)
                if stages is False:
                    continue  # the commit deleted dvc.lock, or it does not parse
                revs.append(LockRev(parts[0], int(parts[1]), parts[2], stages))
            self._commits = revs
        return self._commits

    def all(self) -> list[LockRev]:
        return [self.working, *self.commits()]

    def working_commit_of_lock(self) -> str | None:
        """The last commit of dvc.lock (`git log -1 -- dvc.lock`)."""
        out = git(self.root, "log", "-1", "--format=%H", "--", "dvc.lock")
        return (out or "").strip() or None


def _outs(entry: Mapping[str, Any]) -> dict[str, str]:
    return {o["path"]: o.get("md5") for o in entry.get("outs", []) or []}


def _deps(entry: Mapping[str, Any]) -> dict[str, str]:
    return {d["path"]: d.get("md5") for d in entry.get("deps", []) or []}


def _params(entry: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for _file, values in (entry.get("params") or {}).items():
        merged.update(values or {})
    return merged


def model_md5_of(rev: LockRev) -> str | None:
    return _outs(rev.stages.get(TRAIN_STAGE, {})).get(MODEL)


# =============================================================================== helpers


def _read_json_bytes(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _rel(root: Path, p: Path) -> str:
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


def installed_libraries() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": f"{sys.version_info.major}.{sys.version_info.minor}"}
    for key, dist in LIBRARIES.items():
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = None
    return out


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


# =============================================================================== audit log


_TIME_KEYS = ("ts", "time", "timestamp", "at", "created_at", "recorded_at", "when")
_TYPE_KEYS = ("event", "type", "kind", "action")
_MODEL_KEYS = ("version", "model_version", "model", "model_md5", "candidate", "from_version",
               "to_version", "previous", "previous_version", "new_version", "production")


def event_type(e: Mapping[str, Any]) -> str:
    """`kind.action` (the registry and the sensors write {"kind": ..., "action": ...}), else
    the first of event/type/kind/action that is a string."""
    kind, action = e.get("kind"), e.get("action")
    if isinstance(kind, str) and isinstance(action, str):
        return f"{kind}.{action}"
    for k in _TYPE_KEYS:
        if isinstance(e.get(k), str):
            return e[k]
    return "?"


def event_matches_type(e: Mapping[str, Any], wanted: str) -> bool:
    """`--type` matches the kind, the action or kind.action."""
    w = wanted.lower()
    return w in {event_type(e).lower(), str(e.get("kind", "")).lower(),
                 str(e.get("action", "")).lower(), str(e.get("event", "")).lower()}


def event_time(e: Mapping[str, Any]) -> dt.datetime | None:
    for k in _TIME_KEYS:
        v = e.get(k)
        if v is None:
            continue
        try:
            if isinstance(v, (int, float)):
                return dt.datetime.fromtimestamp(float(v), dt.UTC)
            t = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
        except (ValueError, OverflowError, OSError):
            continue
    return None


def event_models(e: Mapping[str, Any]) -> set[str]:
    """The model versions an event names (top level or one level down, e.g. {"model":
    {"version": ...}})."""
    found: set[str] = set()
    for k in _MODEL_KEYS:
        v = e.get(k)
        if isinstance(v, str):
            found.add(v)
        elif isinstance(v, Mapping):
            for kk in ("version", "md5", "model_md5"):
                if isinstance(v.get(kk), str):
                    found.add(v[kk])
    lineage = e.get("lineage")
    if isinstance(lineage, Mapping) and isinstance(lineage.get("model_version"), str):
        found.add(lineage["model_version"])
    return found


def event_names_model(e: Mapping[str, Any], version: str) -> bool:
    return any(m == version or (len(version) >= 6 and m.startswith(version))
               for m in event_models(e))


def audit_events(root: Path) -> list[dict[str, Any]]:
    from mlops_assets.core.audit import read_events

    path = root / AUDIT_LOG
    try:
        return read_events(path)
    except ValueError:
        return []


# =============================================================================== model


@dataclass
class ModelRef:
    version: str
    model_path: str | None = None   # project-relative file holding the bytes (if any)
    record_path: str | None = None
    how: str = ""                   # how the reference was resolved


def _registry_index(root: Path) -> dict[str, Any]:
    data = _read_json_bytes((root / REGISTRY_INDEX).read_bytes()) if (
        root / REGISTRY_INDEX).exists() else None
    versions = (data or {}).get("versions") if isinstance(data, Mapping) else None
    return versions if isinstance(versions, dict) else {}


def production_pointer(root: Path) -> dict[str, Any] | None:
    p = root / PRODUCTION_POINTER
    if not p.exists():
        return None
    data = _read_json_bytes(p.read_bytes())
    return data if isinstance(data, dict) else None


def known_versions(root: Path, history: LockHistory) -> set[str]:
    versions = set(_registry_index(root))
    models = root / REGISTRY_DIR / "models"
    if models.is_dir():
        versions |= {p.name for p in models.iterdir() if p.is_dir()}
    for rev in history.all():
        m = model_md5_of(rev)
        if m:
            versions.add(m)
    return versions


def resolve_model(root: Path, ref: str, history: LockHistory,
                  cache: HashCache | None = None) -> ModelRef:
    """MODEL_VERSION (an md5 or a unique prefix of at least 6 characters), `production` (the
    registry pointer) or `current` (data/model/model.skops)."""
    if ref == "production":
        ptr = production_pointer(root)
        if not ptr or not ptr.get("version"):
            raise LineageError(f"no production model: {PRODUCTION_POINTER} has no version")
        return ModelRef(str(ptr["version"]), ptr.get("model_path"), ptr.get("record_path"),
                        f"production ({PRODUCTION_POINTER})")
    if ref in ("current", "latest"):
        path = root / MODEL
        md5 = model_md5_of(history.working)
        if md5 is None and path.exists():
            md5 = (cache or HashCache(None)).md5(path)
        if md5 is None:
            raise LineageError(f"no current model: {MODEL} is missing and dvc.lock has no train "
                               "stage")
        return ModelRef(md5, MODEL, MODEL_RECORD, f"current ({MODEL})")
    ref = ref.strip().lower()
    if len(ref) < 6 or any(c not in "0123456789abcdef" for c in ref):
        raise LineageError(f"{ref!r} is not a model version: give the md5 of model.skops (or a "
                           "unique prefix of at least 6 hex digits), 'production' or 'current'")
    versions = known_versions(root, history)
    if len(ref) < 32:
        matches = sorted(v for v in versions if v.startswith(ref))
        if len(matches) > 1:
            raise LineageError(f"model version prefix {ref!r} is ambiguous: {', '.join(matches)}")
        if matches:
            ref = matches[0]
    if ref not in versions:
        working_file = root / MODEL
        if working_file.exists() and (cache or HashCache(None)).md5(working_file) == ref:
            return ModelRef(ref, MODEL, MODEL_RECORD, "current (file hash)")
        raise LineageError(f"unknown model version {ref}: not in the registry, not in dvc.lock "
                           "nor in any committed dvc.lock")
    entry = _registry_index(root).get(ref) or {}
    reg_dir = root / REGISTRY_DIR / "models" / ref
    if entry.get("model_path") or (reg_dir / "model.skops").exists():
        return ModelRef(ref, entry.get("model_path") or f"{REGISTRY_DIR}/models/{ref}/model.skops",
                        entry.get("record_path") or f"{REGISTRY_DIR}/models/{ref}/model.json",
                        "registry")
    if model_md5_of(history.working) == ref:
        return ModelRef(ref, MODEL, MODEL_RECORD, "current (dvc.lock)")
    return ModelRef(ref, None, None, "dvc.lock history")


# =============================================================================== artifacts


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
        self.edges: list[tuple[str, str]] = []
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
                for p, m in _outs(entry).items():
                    if m:
                        outs.setdefault(p, set()).add(m)
                for p, m in _deps(entry).items():
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
        return _read_json_bytes(data), src

    def dir_listing(self, md5: str | None) -> list[tuple[str, str]] | None:
        """(relpath, md5) of a DVC directory object, from the cache."""
        if not md5:
            return None
        if md5 not in self._dir_listing_cache:
            obj = dvc_cache_object(self.root, md5)
            listing = None
            if obj.is_file():
                data = _read_json_bytes(obj.read_bytes())
                if isinstance(data, list):
                    listing = [(str(e["relpath"]), str(e["md5"])) for e in data]
            self._dir_listing_cache[md5] = listing
        return self._dir_listing_cache[md5]


# =============================================================================== build


class DagsterRecords(Protocol):
    """What the lineage needs from Dagster (implemented outside the core)."""

    def materializations(self, asset_key: str) -> list[dict[str, Any]]:
        """Ascending by time: {timestamp, run_id, partition, data_version, dvc_md5, metadata}."""
        ...


def build_lineage(root: Path, ref: str, *, cache: HashCache | None = None,
                  dagster: DagsterRecords | None = None,
                  history: LockHistory | None = None) -> tuple[dict[str, Any], Chain]:
    """The full chain of one model version as a plain dict (see module docstring), and the
    `Chain` that `verify_lineage` checks."""
    root = Path(root).resolve()
    cache = cache or HashCache(None)
    history = history or LockHistory(root, cache)
    model = resolve_model(root, ref, history, cache)
    version = model.version
    chain = Chain(root, history, cache)
    out: dict[str, Any] = {"format": LINEAGE_FORMAT, "root": str(root), "version": version,
                           "resolved_as": model.how}

    # ---------------------------------------------------------------- train entry
    found = chain.find_entry(TRAIN_STAGE, lambda e: _outs(e).get(MODEL) == version)
    introduced = None
    revs_with_model = [r for r in history.commits() if model_md5_of(r) == version]
    if revs_with_model:
        first = revs_with_model[-1]
        introduced = {"commit": first.commit, "time": _iso(first.time), "subject": first.subject}
    lock_info: dict[str, Any] = {
        "source": None, "introduced_in": introduced,
        "last_lock_commit": history.working_commit_of_lock(),
        "working_lock_has_model": model_md5_of(history.working) == version,
    }
    out["lock"] = lock_info
    if found:
        chain.entries[TRAIN_STAGE] = found
        lock_info["source"] = found[0].label
    else:
        chain.notes.append(f"no dvc.lock (working tree or committed) records a train stage with "
                           f"model md5 {version}: the lineage comes from the model record only")

    # ---------------------------------------------------------------- model + record
    m = chain.artifact("model", "model", MODEL)
    m.claim("model version", version)
    record_md5 = None
    if found:
        rev, entry = found
        outs = _outs(entry)
        m.claim(f"{rev.label} train.outs", outs.get(MODEL))
        record_md5 = outs.get(MODEL_RECORD)
    if model.model_path and model.model_path != MODEL:
        m.alt_paths.append(model.model_path)
    if not found or not chain.working_expected(m):
        m.strict = False
    rec = chain.artifact("record", "record", MODEL_RECORD)
    if found:
        rec.claim(f"{found[0].label} train.outs", record_md5)
    rec.strict = bool(found) and chain.working_expected(rec)
    if model.record_path and model.record_path != MODEL_RECORD:
        rec.alt_paths.append(model.record_path)
        if not found and (root / model.record_path).is_file():
            rec.claim("registry copy", cache.md5(root / model.record_path))
    record, record_src = None, None
    for p in [*rec.alt_paths, MODEL_RECORD]:
        record, record_src = chain.json_of(p, record_md5)
        if isinstance(record, dict) and record.get("model_md5") in (None, version):
            record_src = f"{p} ({record_src})"
            break
        record, record_src = None, None  # another model's record
    if record is None and not found:
        raise LineageError(f"model {version}: no model record found (registry copy, "
                           f"{MODEL_RECORD} or DVC cache)")
    record = record or {}
    m.claim("model.json model_md5", record.get("model_md5"))
    m.claim("model.json model.md5", (record.get("model") or {}).get("md5"))
    registry_entry = _registry_index(root).get(version)
    if registry_entry:
        m.claim("registry.json", version)
    out["model"] = {
        "version": version, "file": model.model_path or MODEL, "record_file": record_src,
        "record_md5": record_md5, "record": record, "registry": registry_entry,
        "production": (production_pointer(root) or {}).get("version") == version,
    }

    # ---------------------------------------------------------------- upstream stages
    train_entry = found[1] if found else {}
    train_deps = _deps(train_entry)
    data_rec = record.get("data") or {}

    def producer(stage: str, path: str, md5: str | None) -> tuple[LockRev, dict[str, Any]] | None:
        if not md5:
            return None
        hit = chain.find_entry(stage, lambda e: _outs(e).get(path) == md5)
        if hit:
            chain.entries.setdefault(stage, hit)
        else:
            chain.notes.append(f"no dvc.lock records the {stage} stage that produced {path} "
                               f"md5 {md5}")
        return hit

    def claim_file(id: str, kind: str, path: str, claims: list[tuple[str, str | None]],
                   in_dir: str | None = None) -> Artifact:
        a = chain.artifact(id, kind, path)
        for who, md5 in claims:
            a.claim(who, md5)
        a.in_dir = in_dir
        a.strict = chain.working_expected(a)
        return a

    train_md5 = train_deps.get(TRAIN) or data_rec.get(TRAIN)
    split_hit = producer("split", TRAIN, train_md5)
    split_outs = _outs(split_hit[1]) if split_hit else {}
    lbl = found[0].label if found else "dvc.lock"
    claim_file("train", "dataset", TRAIN, [
        (f"{lbl} train.deps", train_deps.get(TRAIN)),
        (f"{split_hit[0].label} split.outs" if split_hit else "split.outs", split_outs.get(TRAIN)),
        ("model.json data", data_rec.get(TRAIN))])
    claim_file("holdout", "dataset", HOLDOUT, [
        (f"{split_hit[0].label} split.outs" if split_hit else "split.outs", split_outs.get(HOLDOUT))])
    claim_file("split", "report", SPLIT_SUMMARY, [
        (f"{lbl} train.deps", train_deps.get(SPLIT_SUMMARY)),
        (f"{split_hit[0].label} split.outs" if split_hit else "split.outs",
         split_outs.get(SPLIT_SUMMARY))])
    split_json, _ = chain.json_of(SPLIT_SUMMARY, chain.artifacts["split"].md5)
    split_json = split_json or record.get("split") or {}

    feat_md5 = (_deps(split_hit[1]).get(FEATURES) if split_hit else None) or data_rec.get(FEATURES)
    feat_hit = producer("features", FEATURES, feat_md5)
    feat_outs = _outs(feat_hit[1]) if feat_hit else {}
    flbl = feat_hit[0].label if feat_hit else "features"
    claim_file("features", "features", FEATURES, [
        (f"{split_hit[0].label} split.deps" if split_hit else "split.deps", feat_md5),
        (f"{flbl} features.outs", feat_outs.get(FEATURES)),
        ("model.json data", data_rec.get(FEATURES))])
    claim_file("feature_meta", "report", FEATURE_META, [
        (f"{lbl} train.deps", train_deps.get(FEATURE_META)),
        (f"{flbl} features.outs", feat_outs.get(FEATURE_META))])
    feature_meta, _ = chain.json_of(FEATURE_META, chain.artifacts["feature_meta"].md5)
    feature_meta = feature_meta or {}

    val_md5 = (_deps(feat_hit[1]).get(VALIDATED) if feat_hit else None) or data_rec.get(VALIDATED)
    val_hit = producer("validate", VALIDATED, val_md5)
    val_outs = _outs(val_hit[1]) if val_hit else {}
    vlbl = val_hit[0].label if val_hit else "validate"
    claim_file("validated", "dataset", VALIDATED, [
        (f"{flbl} features.deps", val_md5),
        (f"{vlbl} validate.outs", val_outs.get(VALIDATED)),
        ("model.json data", data_rec.get(VALIDATED)),
        ("feature_meta.json validated_md5", feature_meta.get("validated_md5"))])
    claim_file("validation", "report", VALIDATION_REPORT, [
        (f"{vlbl} validate.outs", val_outs.get(VALIDATION_REPORT))])
    validation, _ = chain.json_of(VALIDATION_REPORT, chain.artifacts["validation"].md5)
    validation = validation or {}

    # contract: a git-tracked dep of validate and features
    contract_path = None
    for hit in (val_hit, feat_hit):
        if hit:
            for p in _deps(hit[1]):
                if p.endswith((".yaml", ".yml")) and "contract" in p:
                    contract_path = p
    contract_path = contract_path or (_params(val_hit[1]).get("dataset.contract") if val_hit
                                      else None) or "mlops_assets/contracts/fraud.yaml"
    ca = claim_file("contract", "contract", contract_path, [
        (f"{vlbl} validate.deps", _deps(val_hit[1]).get(contract_path) if val_hit else None),
        (f"{flbl} features.deps", _deps(feat_hit[1]).get(contract_path) if feat_hit else None),
        ("model.json contract.md5", (record.get("contract") or {}).get("md5"))])
    ca.git_tracked = True

    # snapshots: a directory out, listed file by file
    snap_md5 = (_deps(val_hit[1]).get(SNAPSHOTS) if val_hit else None) or train_deps.get(SNAPSHOTS)
    snap_hit = producer("snapshot", SNAPSHOTS, snap_md5)
    sdir = claim_file("snapshots", "dir", SNAPSHOTS, [
        (f"{vlbl} validate.deps", _deps(val_hit[1]).get(SNAPSHOTS) if val_hit else None),
        (f"{lbl} train.deps", train_deps.get(SNAPSHOTS)),
        (f"{snap_hit[0].label} snapshot.outs" if snap_hit else "snapshot.outs",
         _outs(snap_hit[1]).get(SNAPSHOTS) if snap_hit else None)])
    sdir.is_dir = True
    listing = chain.dir_listing(sdir.md5)
    if listing is None and sdir.md5:
        chain.notes.append(f"the DVC cache holds no listing for {SNAPSHOTS} {sdir.md5}: "
                           "snapshot files are checked against the manifest and model record")
    listed = dict(listing or [])
    man = claim_file("manifest", "manifest", MANIFEST,
                     [(f"{SNAPSHOTS} {sdir.md5}", listed.get("manifest.json"))], "snapshots")
    manifest, _ = chain.json_of(MANIFEST, man.md5)
    manifest_entries = (manifest or {}).get("entries") or record.get("snapshots") or []
    rec_snaps = {s.get("snapshot_file"): s for s in record.get("snapshots") or []}
    batch_times = _landing_times(dagster, root, manifest_entries)
    cutoff = record.get("cutoff") or split_json.get("cutoff")
    snapshots = []
    for e in manifest_entries:
        fname = e.get("snapshot_file")
        a = claim_file(f"snapshot:{e.get('batch')}", "snapshot", f"{SNAPSHOTS}/{fname}", [
            (f"{SNAPSHOTS} {sdir.md5}", listed.get(fname)),
            ("manifest.json", e.get("md5")),
            ("model.json snapshots", (rec_snaps.get(fname) or {}).get("md5"))], "snapshots")
        lt = batch_times.get(str(e.get("batch")), {})
        snapshots.append({
            "batch": e.get("batch"), "source_file": e.get("source_file"),
            "snapshot_file": fname, "md5": e.get("md5"), "rows": e.get("rows"),
            "size": e.get("size"), "landed_at": lt.get("time"), "landed_at_source": lt.get("source"),
        })
    for fname, md5 in listed.items():  # files the listing has and the manifest does not name
        if fname != "manifest.json" and fname not in {e.get("snapshot_file") for e in manifest_entries}:
            claim_file(f"snapshot-file:{fname}", "snapshot", f"{SNAPSHOTS}/{fname}",
                       [(f"{SNAPSHOTS} {sdir.md5}", md5)], "snapshots")

    # landing directory (the batches as they arrived)
    land_md5 = _deps(snap_hit[1]).get(LANDING) if snap_hit else None
    land_hit = producer("landing", LANDING, land_md5)
    if land_md5:
        ldir = claim_file("landing", "dir", LANDING, [
            (f"{snap_hit[0].label} snapshot.deps" if snap_hit else "snapshot.deps", land_md5),
            (f"{land_hit[0].label} landing.outs" if land_hit else "landing.outs",
             _outs(land_hit[1]).get(LANDING) if land_hit else None)])
        ldir.is_dir = True
        for fname, md5 in chain.dir_listing(ldir.md5) or []:
            claim_file(f"landing:{fname}", "landing", f"{LANDING}/{fname}",
                       [(f"{LANDING} {ldir.md5}", md5)], "landing")

    # reference profile, code deps
    tr_outs = _outs(train_entry)
    if REFERENCE_PROFILE in tr_outs:
        claim_file("reference_profile", "model", REFERENCE_PROFILE, [
            (f"{lbl} train.outs", tr_outs.get(REFERENCE_PROFILE)),
            ("model.json reference_profile_md5", record.get("reference_profile_md5"))])
    for p in tr_outs:
        if p not in (MODEL, MODEL_RECORD, REFERENCE_PROFILE):
            claim_file(f"out:{p}", "model", p, [(f"{lbl} train.outs", tr_outs[p])])
    # ---------------------------------------------------------------- evaluation + drift
    ev_hit = chain.find_entry("evaluate", lambda e: _deps(e).get(MODEL) == version)
    evaluation = None
    if ev_hit:
        chain.entries["evaluate"] = ev_hit
        ea = claim_file("evaluation", "report", EVALUATION,
                        [(f"{ev_hit[0].label} evaluate.outs", _outs(ev_hit[1]).get(EVALUATION))])
        if registry_entry and registry_entry.get("evaluation_md5"):
            ea.claim("registry.json evaluation_md5", registry_entry.get("evaluation_md5"))
        evaluation, _ = chain.json_of(EVALUATION, ea.md5)
        if isinstance(evaluation, dict) and evaluation.get("model_md5"):
            m.claim("evaluation.json model_md5", evaluation.get("model_md5"))
    dr_hit = chain.find_entry("drift", lambda e: _deps(e).get(MODEL) == version)
    drift_reports = []
    if dr_hit:
        chain.entries["drift"] = dr_hit
        da = claim_file("drift", "report", DRIFT_JSON,
                        [(f"{dr_hit[0].label} drift.outs", _outs(dr_hit[1]).get(DRIFT_JSON))])
        drift, _ = chain.json_of(DRIFT_JSON, da.md5)
        if not isinstance(drift, dict):
            drift_reports.append({"path": DRIFT_JSON, "md5": da.md5, "lock": dr_hit[0].label,
                                  "available": False})
        else:
            lin = drift.get("lineage") or {}
            drift_reports.append({
                "path": DRIFT_JSON, "md5": da.md5, "lock": dr_hit[0].label, "available": True,
                "severity": drift.get("severity"), "drift_share": drift.get("drift_share"),
                "drifted_features": drift.get("drifted_features"),
                "current_batch": lin.get("current_batch"),
                "current_window": lin.get("current_window"),
                "recommendation": drift.get("recommendation")})
            m.claim("drift.json lineage.model_version", lin.get("model_version"))

    # the other outputs of evaluate and drift, and what their deps (recorded in the same
    # dvc.lock as the training) say about the chain's files
    for stage in ("evaluate", "drift"):
        hit = chain.entries.get(stage)
        if not hit:
            continue
        rev, entry = hit
        known = {a.path for a in chain.artifacts.values()}
        for p, omd5 in _outs(entry).items():
            if p not in known:
                claim_file(f"out:{p}", "report", p, [(f"{rev.label} {stage}.outs", omd5)])
        if found and rev is found[0]:
            by_path = {a.path: a for a in chain.artifacts.values()}
            for p, dmd5 in _deps(entry).items():
                if p in by_path and not p.endswith(".py"):
                    by_path[p].claim(f"{rev.label} {stage}.deps", dmd5)
    code: dict[str, dict[str, str]] = {}
    for stage, (rev, entry) in list(chain.entries.items()):
        for p, md5 in _deps(entry).items():
            if p.endswith(".py") and md5:
                prior = chain.artifacts.get(f"code:{p}")
                aid = f"code:{p}" if prior is None or prior.md5 == md5 else f"code:{p}@{md5}"
                a = claim_file(aid, "code", p, [(f"{rev.label} {stage}.deps", md5)])
                a.git_tracked = True
                code.setdefault(stage, {})[p] = md5

    events = audit_events(root)
    trained_at = _trained_at(dagster, root, version, history, found)
    approvals = [e for e in events if event_names_model(e, version)
                 and str(e.get("action") or event_type(e)).split(".")[-1].lower() in {
                     "promote", "promotion", "approve", "approval", "reject", "rejection",
                     "rollback", "register", "evaluate", "promote_refused"}]
    drift_events = [e for e in events if "drift" in event_type(e).lower()]
    drift_events_on = [e for e in drift_events if event_names_model(e, version)]
    # what led to this model: the drift events that requested a retrain with this model's
    # cutoff (the retrain sensor logs the window it asked for), else the drift events
    # logged before the model was trained
    t_model = _parse_time(trained_at.get("time")) if trained_at else None
    rec_cut = str(record.get("cutoff") or "")[:10]
    led = [e for e in drift_events if rec_cut and str(e.get("cutoff") or "")[:10] == rec_cut]
    if not led and t_model is not None:
        led = [e for e in drift_events if e not in drift_events_on
               and (event_time(e) or t_model) < t_model][-10:]
    drift_events_before = led
    evaluation = evaluation if isinstance(evaluation, dict) else {}
    out["evaluation"] = None if not ev_hit else {
        "path": EVALUATION, "md5": chain.artifacts["evaluation"].md5, "lock": ev_hit[0].label,
        "available": bool(evaluation),
        "candidate": evaluation.get("candidate"), "reference": (evaluation.get("reference") or {})
        .get("name"), "eligible": (evaluation.get("gate") or {}).get("eligible"),
        "reasons": (evaluation.get("gate") or {}).get("reasons")}
    out["approvals"] = {"registry": (registry_entry or {}).get("approvals"),
                        "stage": (registry_entry or {}).get("stage"), "audit_events": approvals}

    # ---------------------------------------------------------------- the rest
    out["training_set"] = {"path": TRAIN, "md5": chain.artifacts["train"].md5,
                           "holdout_md5": chain.artifacts["holdout"].md5,
                           "split_md5": chain.artifacts["split"].md5, "split": split_json,
                           "cutoff": cutoff}
    fdh_claims = {"model.json": (record.get("contract") or {}).get("feature_definitions_hash"),
                  "feature_meta.json": feature_meta.get("feature_definitions_hash"),
                  "split.json": split_json.get("feature_definitions_hash")}
    out["features"] = {"path": FEATURES, "md5": chain.artifacts["features"].md5,
                       "meta_md5": chain.artifacts["feature_meta"].md5,
                       "feature_definitions_hash": next((v for v in fdh_claims.values() if v), None),
                       "feature_definitions_hash_claims": fdh_claims,
                       "features": feature_meta.get("features")
                       or (record.get("features") or {}).get("names"),
                       "rows": feature_meta.get("rows")}
    out["validated_dataset"] = {
        "path": VALIDATED, "md5": chain.artifacts["validated"].md5,
        "report": VALIDATION_REPORT, "report_md5": chain.artifacts["validation"].md5,
        "passed": validation.get("passed"), "n_rows": validation.get("n_rows"),
        "warnings": len(validation.get("warnings") or []),
        "failure_counts": validation.get("failure_counts"),
        "contract": {"path": contract_path, "md5": chain.artifacts["contract"].md5,
                     "name": (record.get("contract") or {}).get("name"),
                     "schema_hash": (record.get("contract") or {}).get("schema_hash")
                     or feature_meta.get("schema_hash")}}
    out["raw_snapshots"] = {"dir": SNAPSHOTS, "dir_md5": sdir.md5, "manifest_md5": man.md5,
                            "n": len(snapshots), "rows": sum(int(s.get("rows") or 0)
                                                             for s in snapshots),
                            "snapshots": snapshots,
                            "landing_dir_md5": chain.artifacts["landing"].md5
                            if "landing" in chain.artifacts else None}
    run_facts = {}
    for stage in ("train", "split", "features", "validate", "snapshot"):
        p = root / RUNS_DIR / f"{stage}.json"
        if p.exists():
            run_facts[stage] = _read_json_bytes(p.read_bytes())
    train_run = run_facts.get("train") or {}
    out["provenance"] = {
        "params": {"train": _params(train_entry) or {"train": record.get("params")},
                   "split": _params(split_hit[1]) if split_hit else {"split.cutoff": cutoff},
                   "record": record.get("params")},
        "cutoff": cutoff,
        "git": {"lock_commit": introduced, "last_lock_commit": lock_info["last_lock_commit"],
                "train_run_sha": train_run.get("git_sha") if lock_info["working_lock_has_model"]
                else None,
                "train_run_sha_source": f"{RUNS_DIR}/train.json (run facts of the last train run)"
                if lock_info["working_lock_has_model"] and train_run else None,
                "stage_run_shas": {s: (f or {}).get("git_sha") for s, f in run_facts.items()}},
        "code": code,
        "libraries": {"recorded": record.get("libraries"), "installed": installed_libraries()},
        "trained_at": trained_at,
    }
    out["drift"] = {"reports": drift_reports, "audit_events_on_model": drift_events_on,
                    "audit_events_before_training": drift_events_before[-10:]}
    out["notes"] = chain.notes
    # graph edges (ids of artifacts)
    chain.edges = [("landing", "snapshots"), ("snapshots", "validated"), ("contract", "validated"),
                   ("validated", "features"), ("contract", "features"), ("features", "train"),
                   ("features", "holdout"), ("train", "model"), ("snapshots", "model"),
                   ("model", "record"), ("model", "evaluation"), ("holdout", "evaluation"),
                   ("model", "drift"), ("features", "drift")]
    return out, chain


def _parse_time(s: str | None) -> dt.datetime | None:
    if not s:
        return None
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _landing_times(dagster: DagsterRecords | None, root: Path,
                   entries: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """batch -> {time, source}: the first Dagster materialisation of its raw_snapshots
    partition that shows its md5, else of the partition, else the landing file's mtime."""
    out: dict[str, dict[str, Any]] = {}
    if dagster is not None:
        by_part: dict[str, list[dict[str, Any]]] = {}
        for r in dagster.materializations("raw_snapshots"):
            if r.get("partition"):
                by_part.setdefault(r["partition"], []).append(r)
        for e in entries:
            recs = by_part.get(str(e.get("batch")), [])
            md5 = str(e.get("md5"))
            hit = next((r for r in recs if md5 in str((r.get("metadata") or {}).get("snapshots",
                                                                                    ""))), None)
            hit = hit or (recs[0] if recs else None)
            if hit:
                out[str(e.get("batch"))] = {
                    "time": _iso(hit["timestamp"]),
                    "source": f"dagster raw_snapshots[{e.get('batch')}] run {hit['run_id'][:8]}"}
    for e in entries:
        b = str(e.get("batch"))
        if b in out:
            continue
        p = root / LANDING / str(e.get("source_file"))
        if p.exists():
            out[b] = {"time": _iso(p.stat().st_mtime), "source": "landing file mtime"}
    return out


def _trained_at(dagster: DagsterRecords | None, root: Path, version: str,
                history: LockHistory, found: Any) -> dict[str, Any] | None:
    if dagster is not None:
        for r in dagster.materializations("model"):
            if r.get("data_version") == version or r.get("dvc_md5") == version:
                return {"time": _iso(r["timestamp"]), "source": f"dagster model run "
                                                                f"{r['run_id'][:8]}"}
    if found and found[0].commit is None and model_md5_of(history.working) == version:
        p = root / RUNS_DIR / "train.json"
        facts = _read_json_bytes(p.read_bytes()) if p.exists() else None
        if facts and facts.get("finished_at"):
            return {"time": facts["finished_at"], "source": f"{RUNS_DIR}/train.json"}
    revs = [r for r in history.commits() if model_md5_of(r) == version]
    if revs:
        return {"time": _iso(revs[-1].time), "source": f"commit time of {revs[-1].commit[:10]}"}
    return None


# =============================================================================== verify


def _actual_md5(chain: Chain, a: Artifact, commit: str | None) -> tuple[str | None, str | None,
                                                                         bool]:
    """(md5, where the bytes came from, working copy present)."""
    root = chain.root
    wf = root / a.path
    present = wf.is_file()
    expected = a.md5
    if present:
        got = chain.cache.md5(wf)
        if a.strict or got == expected:
            return got, "working tree", True
    if expected:
        obj = dvc_cache_object(root, expected)
        if obj.is_file():
            return chain.cache.md5(obj), "DVC cache", present
        if a.git_tracked:
            revs = ([commit] if commit else []) + [r.commit for r in chain.history.commits()
                                                   if r.commit != commit]
            for c in revs[:50]:
                blob = git(root, "show", f"{c}:{a.path}", binary=True)
                if blob is not None:
                    got = hashlib.md5(blob).hexdigest()
                    if got == expected:
                        return got, f"git {c[:10]}", present
    if present:  # not strict and not found elsewhere: report what the working tree holds
        return chain.cache.md5(wf), "working tree", True
    return None, None, False


def _dir_actual(chain: Chain, a: Artifact) -> tuple[str | None, list[str]]:
    """The working directory's DVC md5, and which files differ from the recorded listing."""
    d = chain.root / a.path
    if not d.is_dir():
        return None, []
    files = sorted(p for p in d.rglob("*") if p.is_file())
    md5s = chain.cache.md5_many(files)
    entries = [(p.relative_to(d).as_posix(), md5s[os.path.abspath(p)]) for p in files]
    actual = dir_md5(entries)
    diffs: list[str] = []
    listing = chain.dir_listing(a.md5)
    if listing is not None and actual != a.md5:
        want, have = dict(listing), dict(entries)
        diffs += [f"{r} changed" for r in want if r in have and have[r] != want[r]]
        diffs += [f"{r} missing" for r in want if r not in have]
        diffs += [f"{r} not in the recorded listing" for r in have if r not in want]
    return actual, diffs


def verify_lineage(lineage: dict[str, Any], chain: Chain, *,
                   dagster: DagsterRecords | None = None,
                   dagster_note: str | None = None,
                   asset_outs: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """Recompute every hash of the chain and check it against every claim; check leakage,
    feature definitions, params, the registry, Dagster and the audit log's hash chain."""
    root = chain.root
    checks: list[Check] = []
    train_rev = chain.entries.get(TRAIN_STAGE, (None, None))[0]
    commit = train_rev.commit if train_rev else None
    # warm the hash cache for every file at once (parallel on a cold run)
    wanted = []
    for a in chain.artifacts.values():
        p = root / a.path
        if a.is_dir and p.is_dir():
            wanted += [q for q in p.rglob("*") if q.is_file()]
        elif p.is_file():
            wanted.append(p)
        for alt in a.alt_paths:
            if (root / alt).is_file():
                wanted.append(root / alt)
    chain.cache.md5_many(wanted)

    for a in chain.artifacts.values():
        distinct = {m for _, m in a.claims}
        claims_txt = ", ".join(f"{who}={m[:12]}" for who, m in a.claims)
        if not a.claims:
            checks.append(Check(a.path, a.kind, MISSING, f"{a.path}: nothing records its md5"))
            continue
        if len(distinct) > 1:
            checks.append(Check(a.path, a.kind, MISMATCHED,
                                f"{a.path}: the records disagree about its md5: {claims_txt}",
                                expected=a.md5))
        if a.is_dir:
            if (root / a.path).is_dir() and a.strict:
                actual, diffs = _dir_actual(chain, a)
                if actual == a.md5:
                    checks.append(Check(a.path, a.kind, VERIFIED, f"{a.path}: {actual}",
                                        a.md5, actual, "working tree"))
                else:
                    detail = "; ".join(diffs[:10]) + (f" (+{len(diffs) - 10} more)"
                                                      if len(diffs) > 10 else "")
                    checks.append(Check(a.path, a.kind, MISMATCHED,
                                        f"{a.path}: directory md5 {actual} but {claims_txt}"
                                        + (f": {detail}" if detail else ""),
                                        a.md5, actual, "working tree"))
            else:
                listing = chain.dir_listing(a.md5)
                obj = dvc_cache_object(root, a.md5 or "")
                if listing is not None and chain.cache.md5(obj) == (a.md5 or "")[:-4]:
                    checks.append(Check(a.path, a.kind, VERIFIED,
                                        f"{a.path}: listing {a.md5} (DVC cache)", a.md5, a.md5,
                                        "DVC cache"))
                elif listing is not None:
                    checks.append(Check(a.path, a.kind, MISMATCHED,
                                        f"{a.path}: the DVC cache's listing object for {a.md5} "
                                        "is corrupt", a.md5, None, "DVC cache"))
                else:
                    checks.append(Check(a.path, a.kind, MISSING,
                                        f"{a.path}: {a.md5} is neither in the working tree nor in "
                                        "the DVC cache", a.md5))
            continue
        actual, src, present = _actual_md5(chain, a, commit)
        if actual is None:
            checks.append(Check(a.path, a.kind, MISSING,
                                f"{a.path}: missing (not in the working tree, the DVC cache"
                                + (" or git" if a.git_tracked else "") + f"); expected {a.md5}",
                                a.md5))
        elif actual != a.md5:
            msg = f"{a.path}: md5 {actual} ({src}) but {claims_txt}"
            if a.kind == "model":
                msg += " -- the model file was replaced or altered"
            elif a.kind == "code" and a.strict:
                msg += " -- the code changed since dvc.lock was written (rebuild or revert)"
            checks.append(Check(a.path, a.kind, MISMATCHED, msg, a.md5, actual, src))
        else:
            note = "" if src == "working tree" else (
                f" ({src}; the working copy is missing: `dvc checkout` restores it)"
                if not present and a.strict else
                f" ({src}; the working tree holds another version)" if present else f" ({src})")
            checks.append(Check(a.path, a.kind, VERIFIED, f"{a.path}: {actual}{note}",
                                a.md5, actual, src))
        for alt in a.alt_paths:  # registry copies must hold the same bytes
            p = root / alt
            if not p.is_file():
                checks.append(Check(alt, a.kind, MISSING, f"{alt}: missing (registry copy of "
                                                          f"{a.path})", a.md5))
                continue
            got = chain.cache.md5(p)
            checks.append(Check(alt, a.kind, VERIFIED if got == a.md5 else MISMATCHED,
                                f"{alt}: {got}" + ("" if got == a.md5 else
                                                   f" but {claims_txt} (registry copy altered)"),
                                a.md5, got, "working tree"))

    checks += _check_leakage(lineage, chain)
    checks += _check_feature_definitions(lineage, chain)
    checks += _check_params(lineage, chain)
    checks += _check_registry(lineage, chain)
    checks += _check_audit_log(root)
    if dagster is not None:
        checks += _check_dagster(lineage, chain, dagster, asset_outs)
    else:
        checks.append(Check("dagster", "dagster", SKIPPED,
                            dagster_note or "Dagster: no instance, materialisation metadata not "
                                            "checked"))
    counts = {s: sum(c.status == s for c in checks)
              for s in (VERIFIED, MISSING, MISMATCHED, WARNING, SKIPPED)}
    return {"ok": counts[MISMATCHED] == 0 and counts[MISSING] == 0, "counts": counts,
            "checks": [asdict(c) for c in checks], "hash_cache": chain.cache.stats()}


def _check_leakage(lineage: dict[str, Any], chain: Chain) -> list[Check]:
    """Rows at or after the recorded cutoff in the training set (the bytes checked: the
    working file when the working tree should hold it, else the DVC cache)."""
    a = chain.artifacts.get("train")
    cutoff = lineage["training_set"].get("cutoff")
    if a is None or not cutoff:
        return [Check(TRAIN, "leakage", SKIPPED, "leakage: no training set or no recorded cutoff")]
    candidates = []
    wf = chain.root / a.path
    if wf.is_file():
        candidates.append((wf, "working tree"))
    if a.md5 and dvc_cache_object(chain.root, a.md5).is_file():
        candidates.append((dvc_cache_object(chain.root, a.md5), "DVC cache"))
    if not candidates:
        return [Check(TRAIN, "leakage", MISSING, f"leakage: {TRAIN} is missing, cannot check")]
    path, src = candidates[0]
    if not a.strict and len(candidates) > 1 and chain.cache.md5(wf) != a.md5:
        path, src = candidates[1]
    ts_col = (lineage["training_set"].get("split") or {}).get("timestamp_column") or "ts"
    md5 = chain.cache.md5(path)
    key = f"leakage/1:{md5}:{ts_col}:{cutoff}"
    fact = chain.cache.get_fact(key)
    if fact is None:
        fact = scan_leakage(path, ts_col, cutoff)
        chain.cache.put_fact(key, fact)
    if fact.get("error"):
        return [Check(TRAIN, "leakage", MISMATCHED, f"leakage: cannot read {TRAIN} ({src}): "
                                                     f"{fact['error']}")]
    if fact["late"]:
        return [Check(TRAIN, "leakage", MISMATCHED,
                      f"leakage: {TRAIN} ({src}) holds {fact['late']} of {fact['rows']} rows at or "
                      f"after the recorded cutoff {cutoff} (latest {ts_col} {fact['ts_max']})",
                      expected=f"{ts_col} < {cutoff}", actual=fact["ts_max"], source=src)]
    return [Check(TRAIN, "leakage", VERIFIED,
                  f"leakage: none: {fact['rows']} training rows, latest {ts_col} {fact['ts_max']} "
                  f"< cutoff {cutoff}", f"{ts_col} < {cutoff}", fact["ts_max"], src)]


def scan_leakage(path: Path, ts_col: str, cutoff: str) -> dict[str, Any]:
    """Count the rows of a parquet file whose timestamp is at or after `cutoff` (reads only
    that column)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        col = pq.read_table(path, columns=[ts_col]).column(ts_col)
    except Exception as e:  # noqa: BLE001 (any unreadable file is a finding, with its reason)
        return {"error": f"{type(e).__name__}: {e}"}
    cut = dt.datetime.fromisoformat(str(cutoff).replace("Z", "+00:00"))
    if cut.tzinfo is not None:
        cut = cut.astimezone(dt.UTC).replace(tzinfo=None)
    if pa.types.is_timestamp(col.type) and col.type.tz is not None:
        col = pc.cast(col, pa.timestamp(col.type.unit))
    if not pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("ns"))
    scalar = pa.scalar(cut, type=col.type)
    late = pc.sum(pc.cast(pc.greater_equal(col, scalar), pa.int64())).as_py() or 0
    mx = pc.max(col).as_py()
    return {"rows": len(col), "late": int(late), "ts_max": None if mx is None else mx.isoformat()}


def _check_feature_definitions(lineage: dict[str, Any], chain: Chain) -> list[Check]:
    """The feature definitions the model was trained with against every record of them and
    against the contract as it stands (what scoring and serving would compute)."""
    from mlops_assets.core.contract import load_contract

    out = []
    f = lineage["features"]
    claims = {k: v for k, v in f["feature_definitions_hash_claims"].items() if v}
    if len(set(claims.values())) > 1:
        out.append(Check("feature definitions", "features", MISMATCHED,
                         "feature definitions: the records disagree: "
                         + ", ".join(f"{k}={v}" for k, v in claims.items())))
    want = f.get("feature_definitions_hash")
    contract = chain.artifacts.get("contract")
    if not want or contract is None:
        return out
    p = chain.root / contract.path
    if not p.exists():
        out.append(Check(contract.path, "features", MISSING,
                         f"feature definitions: {contract.path} is missing"))
        return out
    try:
        have = load_contract(p).feature_definitions_hash()
    except Exception as e:  # noqa: BLE001
        out.append(Check(contract.path, "features", MISMATCHED,
                         f"feature definitions: {contract.path} no longer loads: {e}"))
        return out
    if have == want:
        out.append(Check(contract.path, "features", VERIFIED,
                         f"feature definitions in {contract.path}: {have} (as trained)", want, have,
                         "working tree"))
    else:
        status = MISMATCHED if contract.strict else WARNING
        out.append(Check(contract.path, "features", status,
                         f"feature definitions in {contract.path} hash to {have} but the model was "
                         f"trained with {want}: the feature definitions were edited without a "
                         "rebuild (scoring or serving this model now computes different features)",
                         want, have, "working tree"))
    return out


def _check_params(lineage: dict[str, Any], chain: Chain) -> list[Check]:
    """params.yaml against the params dvc.lock pinned (when the working tree should hold this
    model), and the record's params and cutoff against dvc.lock's."""
    out = []
    rec = lineage["model"]["record"] or {}
    entry = chain.entries.get(TRAIN_STAGE)
    lock_params = _params(entry[1]) if entry else {}
    lp_train = lock_params.get("train") or {}
    rp = rec.get("params") or {}
    bad = [f"train.{k}: record {rp.get(k)!r}, dvc.lock {v!r}" for k, v in lp_train.items()
           if k in rp and rp.get(k) != v]
    split = chain.entries.get("split")
    lock_cut = (_params(split[1]).get("split") or {}).get("cutoff") if split else None
    if lock_cut and rec.get("cutoff") and str(lock_cut) != str(rec.get("cutoff")):
        bad.append(f"split.cutoff: record {rec.get('cutoff')!r}, dvc.lock {lock_cut!r}")
    if bad:
        out.append(Check("params", "params", MISMATCHED, "params: the model record and dvc.lock "
                                                         "disagree: " + "; ".join(bad)))
    if entry and entry[0].commit is None and chain.artifacts["model"].strict:
        pfile = chain.root / "params.yaml"
        try:
            now = _yaml_load(pfile.read_bytes()) or {}
        except (OSError, yaml.YAMLError):
            now = {}
        diffs = []
        for stage, (rev, e) in chain.entries.items():
            if rev.commit is not None:
                continue
            for key, val in _params(e).items():
                node: Any = now
                for part in key.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                if node != val:
                    diffs.append(f"{key} ({stage}): params.yaml {node!r}, dvc.lock {val!r}")
        if diffs:
            out.append(Check("params.yaml", "params", MISMATCHED,
                             "params.yaml differs from the params this chain was built with: "
                             + "; ".join(diffs[:10])))
        elif not bad:
            out.append(Check("params.yaml", "params", VERIFIED,
                             "params.yaml: equal to the params dvc.lock pinned"))
    elif not bad:
        out.append(Check("params", "params", VERIFIED, "params: the model record equals dvc.lock"))
    return out


def _check_registry(lineage: dict[str, Any], chain: Chain) -> list[Check]:
    out = []
    version = lineage["version"]
    ptr = production_pointer(chain.root)
    if ptr and ptr.get("version") == version:
        for key in ("model_path", "record_path"):
            rel = ptr.get(key)
            if not rel:
                continue
            p = chain.root / rel
            want = version if key == "model_path" else chain.artifacts["record"].md5
            if not p.is_file():
                out.append(Check(rel, "registry", MISSING, f"{PRODUCTION_POINTER} {key} {rel}: "
                                                           "missing"))
            elif want and chain.cache.md5(p) != want:
                out.append(Check(rel, "registry", MISMATCHED,
                                 f"{PRODUCTION_POINTER} {key} {rel}: md5 {chain.cache.md5(p)} "
                                 f"but expected {want}"))
    # the registry's story must be in the audit log: every approval it lists, and (for the
    # production model) the promotion or rollback that put it there
    entry = lineage["model"].get("registry") or {}
    if not entry and not (ptr and ptr.get("version") == version):
        return out
    events = [e for e in audit_events(chain.root) if e.get("version") == version
              or e.get("to_version") == version]
    if not (chain.root / AUDIT_LOG).exists():
        out.append(Check(AUDIT_LOG, "registry", WARNING,
                         f"registry: {AUDIT_LOG} is missing, so the registry's approvals and "
                         "promotions of this model cannot be checked against it"))
        return out
    logged = {(e.get("by"), e.get("reason")) for e in events if e.get("action") == "approve"}
    unlogged = [a for a in entry.get("approvals") or []
                if (a.get("by"), a.get("reason")) not in logged]
    if unlogged:
        out.append(Check(REGISTRY_INDEX, "registry", MISMATCHED,
                         f"registry: {REGISTRY_INDEX} lists approval(s) of {version} that the "
                         f"audit log never recorded: {unlogged}"))
    elif entry.get("approvals"):
        out.append(Check(REGISTRY_INDEX, "registry", VERIFIED,
                         f"registry: {len(entry['approvals'])} approval(s) of this model, each in "
                         f"the audit log"))
    if ptr and ptr.get("version") == version:
        promoted = [e for e in events if e.get("action") in ("promote", "rollback")
                    and (e.get("to_stage") == "production" or e.get("to_version") == version)]
        if not promoted:
            out.append(Check(PRODUCTION_POINTER, "registry", MISMATCHED,
                             f"registry: {PRODUCTION_POINTER} points at {version} but the audit "
                             "log records no promotion or rollback to it"))
        else:
            e = promoted[-1]
            out.append(Check(PRODUCTION_POINTER, "registry", VERIFIED,
                             f"registry: in production by {e.get('action')} #{e.get('seq')} "
                             f"({e.get('by')}, {e.get('at')})"))
    return out


def verify_audit_log(root: Path, path: Path | None = None) -> dict[str, Any]:
    """The audit log's hash chain (core.audit.verify_chain), with the altered entry named,
    plus the append-only check the chain alone cannot make: every pinned version (committed
    to git, or pinned by DVC in registry/audit.log.jsonl.dvc, whose bytes the DVC cache
    keeps) must be a byte prefix of the working file, so a rewritten chain, an edit of
    the last committed entry, or a truncation, is caught too. (An uncommitted last entry
    has nothing after it to chain to: edits to it are only caught once it is committed or
    followed by another entry.)"""
    from mlops_assets.core.audit import GENESIS, verify_chain

    path = Path(path) if path is not None else root / AUDIT_LOG
    if not path.exists():
        return {"path": str(path), "exists": False, "entries": 0, "ok": True, "problems": []}
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete = lines[:-1]  # a torn tail (no newline) is not an acknowledged entry
    problems: list[str] = []
    if verify_chain(path):  # the verdict is core.audit's; the detail names the entry
        prev = GENESIS
        path_txt = _rel(root, path)
        for n, line in enumerate(complete, start=1):
            text = line.decode("utf-8", "replace")
            try:
                entry = json.loads(text)
            except ValueError:
                problems.append(f"{path_txt}: line {n} is not valid JSON")
                prev = hashlib.sha256(line).hexdigest()
                continue
            if entry.get("prev_hash") != prev:
                if n == 1:
                    problems.append(f"{path_txt}: line 1 (seq {entry.get('seq')}) does not start the "
                                    "chain: entries before it were removed")
                else:
                    problems.append(
                        f"{path}: the entry at line {n - 1} was edited, or entries were removed "
                        f"or reordered there: line {n} (seq {entry.get('seq')}) records "
                        f"prev_hash {str(entry.get('prev_hash'))[:16]}… but line {n - 1} hashes "
                        f"to {prev[:16]}…")
            if entry.get("seq") != n - 1:
                problems.append(f"{path_txt}: line {n} has seq {entry.get('seq')}, expected {n - 1}")
            prev = hashlib.sha256(line).hexdigest()
        problems = problems or verify_chain(path)
    rel = path_txt = _rel(root, path)
    commit = (git(root, "log", "-1", "--format=%H", "--", rel) or "").strip()
    committed = git(root, "show", f"{commit}:{rel}", binary=True) if commit else None
    if committed is not None:
        problems += _prefix_problems(path_txt, raw, committed, f"the version committed in {commit[:10]}")
    dvc_md5 = None
    for label, md5 in _dvc_pinned_versions(root, rel):
        pinned = _dvc_cache_file(root, md5)
        if pinned is None:
            problems.append(f"{path_txt}: {label} pins md5 {md5}, but the DVC cache does not hold "
                            "those bytes (run `dvc pull`)")
            continue
        dvc_md5 = dvc_md5 or md5
        problems += _prefix_problems(path_txt, raw, pinned.read_bytes(), f"{label} (md5 {md5[:12]})")
    anchors = ([f"the version committed in {commit[:10]}"] if committed is not None else []) \
        + ([f"the DVC-tracked version {dvc_md5[:12]}"] if dvc_md5 else [])
    return {"path": str(path), "exists": True, "entries": len(complete), "ok": not problems,
            "problems": list(dict.fromkeys(problems)), "committed_in": commit or None,
            "dvc_md5": dvc_md5, "anchors": " and ".join(anchors)}


def _prefix_problems(path_txt: str, raw: bytes, anchor: bytes, what: str) -> list[str]:
    """The log is append-only: every pinned version of it must be a byte prefix of the file."""
    if raw.startswith(anchor):
        return []
    if len(raw) < len(anchor) and anchor.startswith(raw):
        n_old, n_new = anchor.count(b"\n"), raw.count(b"\n")
        return [f"{path_txt}: truncated: {what} has {n_old} entries, the file {n_new} "
                "(the log is append-only)"]
    old_lines, lines = anchor.split(b"\n"), raw.split(b"\n")
    k = next((i for i, (a, b) in enumerate(zip(old_lines, lines, strict=False)) if a != b),
             min(len(old_lines), len(lines)) - 1)
    return [f"{path_txt}: line {k + 1} differs from {what}: an entry already pinned was edited "
            "(the log is append-only)"]


def _dvc_pinned_versions(root: Path, rel: str) -> list[tuple[str, str]]:
    """(label, md5) of the log's `.dvc` pointer in the working tree and as last committed."""
    out: list[tuple[str, str]] = []
    pointer = rel + ".dvc"
    texts = [("the DVC-tracked version (" + pointer + ")",
              (root / pointer).read_text() if (root / pointer).exists() else None)]
    commit = (git(root, "log", "-1", "--format=%H", "--", pointer) or "").strip()
    if commit:
        texts.append((f"the DVC-tracked version committed in {commit[:10]}",
                      git(root, "show", f"{commit}:{pointer}")))
    for label, text in texts:
        try:
            md5 = ((yaml.safe_load(text or "") or {}).get("outs") or [{}])[0].get("md5")
        except (yaml.YAMLError, AttributeError, IndexError):
            md5 = None
        if md5 and md5 not in {m for _, m in out}:
            out.append((label, md5))
    return out


def _dvc_cache_file(root: Path, md5: str) -> Path | None:
    p = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    return p if p.is_file() else None


def _check_audit_log(root: Path) -> list[Check]:
    res = verify_audit_log(root)
    if not res["exists"]:
        return [Check(AUDIT_LOG, "audit", SKIPPED, f"audit log: {AUDIT_LOG} does not exist yet")]
    if res["problems"]:
        return [Check(AUDIT_LOG, "audit", MISMATCHED, f"audit log {AUDIT_LOG}: {p}")
                for p in res["problems"]]
    anchor = f", append-only against {res['anchors']}" if res.get("anchors") else ""
    return [Check(AUDIT_LOG, "audit", VERIFIED, f"audit log {AUDIT_LOG}: the hash chain holds "
                                                f"({res['entries']} entries{anchor})")]


# asset key -> (DVC stage, the out whose md5 is its data version); the CLI passes the map
# derived from dvc.yaml (mlops_assets.pipeline.asset_outs), this is the fallback.
DEFAULT_ASSET_OUTS: dict[str, tuple[str, str]] = {
    "landing_batches": ("landing", LANDING), "raw_snapshots": ("snapshot", SNAPSHOTS),
    "validated_dataset": ("validate", VALIDATED), "feature_table": ("features", FEATURES),
    "training_set": ("split", TRAIN), "holdout_set": ("split", HOLDOUT),
    "model": (TRAIN_STAGE, MODEL), "evaluation": ("evaluate", EVALUATION),
    "drift_report": ("drift", DRIFT_JSON)}


def _check_dagster(lineage: dict[str, Any], chain: Chain, dagster: DagsterRecords,
                   asset_outs: Mapping[str, tuple[str, str]] | None = None) -> list[Check]:
    """Each asset's Dagster materialisation for this chain: its data version and its
    "dvc/md5" metadata must both equal the md5 the chain's dvc.lock entry records."""
    out = []
    for key, (stage, path) in (asset_outs or DEFAULT_ASSET_OUTS).items():
        entry = chain.entries.get(stage)
        want = _outs(entry[1]).get(path) if entry else None
        if not want:
            continue
        recs = dagster.materializations(key)
        hits = [r for r in recs if r.get("data_version") == want]
        if not hits:
            latest = recs[-1] if recs else None
            msg = (f"Dagster: {key} was never materialised with data version {want} ({path})"
                   + (f"; latest: {latest.get('data_version')}, run {latest['run_id'][:8]} at "
                      f"{_iso(latest['timestamp'])}. Built outside Dagster (dvc repro)?"
                      if latest else "; it has no materialisation at all"))
            out.append(Check(f"dagster:{key}", "dagster", WARNING, msg, want,
                             None if latest is None else latest.get("data_version")))
            continue
        bad = [r for r in hits if r.get("dvc_md5") not in (None, "", want)]
        if bad:
            out.append(Check(f"dagster:{key}", "dagster", MISMATCHED,
                             f"Dagster: {key} run {bad[0]['run_id'][:8]} has data version {want} "
                             f"but dvc/md5 metadata {bad[0].get('dvc_md5')}", want,
                             bad[0].get("dvc_md5")))
            continue
        last = hits[-1]
        if key == "model":
            mm = (last.get("metadata") or {}).get("model_md5")
            if mm and mm != lineage["version"]:
                out.append(Check("dagster:model", "dagster", MISMATCHED,
                                 f"Dagster: model run {last['run_id'][:8]} metadata model_md5 {mm} "
                                 f"!= {lineage['version']}", lineage["version"], mm))
                continue
        # provenance: the upstream data versions Dagster recorded for this materialisation
        stale = []
        for tag, val in (last.get("tags") or {}).items():
            if not tag.startswith("dagster/input_data_version/"):
                continue
            up = tag.rsplit("/", 1)[-1]
            ustage, upath = (asset_outs or DEFAULT_ASSET_OUTS).get(up, (None, None))
            uentry = chain.entries.get(ustage) if ustage else None
            uwant = _outs(uentry[1]).get(upath) if uentry else None
            if uwant and not upath == SNAPSHOTS and val != uwant:  # partitioned: a combined hash
                stale.append(f"{up} {val} (the chain's: {uwant})")
        if stale:
            out.append(Check(f"dagster:{key}", "dagster", WARNING,
                             f"Dagster provenance: {key} run {last['run_id'][:8]} recorded input "
                             f"data versions {'; '.join(stale)}: upstream was rebuilt outside "
                             "Dagster, or the lineage disagrees", want, want))
        extra = (f", {len({r.get('partition') for r in hits})} partitions"
                 if any(r.get("partition") for r in hits) else "")
        out.append(Check(f"dagster:{key}", "dagster", VERIFIED,
                         f"Dagster: {key} materialised with data version = dvc/md5 = {want} "
                         f"(run {last['run_id'][:8]} at {_iso(last['timestamp'])}{extra})",
                         want, want, "dagster"))
    return out


# =============================================================================== render


def _short(md5: str | None, n: int = 12) -> str:
    return "-" if not md5 else md5[:n] + ("" if len(md5) <= n else "…")


_UNAVAILABLE = ("(bytes unavailable: not in the working tree, the registry or the DVC cache; "
                "`dvc pull` fetches them)")


def render_text(lineage: dict[str, Any], verification: dict[str, Any] | None = None) -> str:
    L: list[str] = []
    w = L.append
    v = lineage["version"]
    mdl = lineage["model"]
    rec = mdl.get("record") or {}
    lock = lineage["lock"]
    w(f"Lineage of model {v}  [{lineage['resolved_as']}]"
      + ("  (PRODUCTION)" if mdl.get("production") else ""))
    intro = lock.get("introduced_in")
    w(f"  pinned by      {lock.get('source') or 'no dvc.lock'}"
      + (f"; first committed in {intro['commit'][:10]} ({intro['time']}) \"{intro['subject']}\""
         if intro else "; not in any commit of dvc.lock"))
    w("")
    w("MODEL")
    w(f"  file           {mdl['file']}  md5 {v}")
    if rec:
        w(f"  record         {mdl.get('record_file')}  md5 {mdl.get('record_md5')}")
        m = rec.get("model") or {}
        w(f"  estimator      {m.get('estimator')}  ({m.get('serialisation')}); threshold "
          f"{rec.get('threshold')} at operating FPR {rec.get('operating_fpr')}")
    else:
        w(f"  record         {MODEL_RECORD}  md5 {mdl.get('record_md5')}  {_UNAVAILABLE}")
    ta = lineage["provenance"].get("trained_at")
    if ta:
        w(f"  trained at     {ta['time']}  ({ta['source']})")
    reg = mdl.get("registry")
    if reg:
        w(f"  registry       stage {reg.get('stage')}, registered from "
          f"{reg.get('registered_from')}")
    w("")
    ev = lineage.get("evaluation")
    w("EVALUATION")
    if ev and not ev.get("available"):
        w(f"  report         {ev['path']}  md5 {ev['md5']}  [{ev['lock']}]  " + _UNAVAILABLE)
    elif ev:
        c = ev.get("candidate") or {}
        w(f"  report         {ev['path']}  md5 {ev['md5']}  [{ev['lock']}]")
        w("  metrics        " + "  ".join(f"{k} {c[k]:.4f}" for k in
                                           ("precision", "recall", "fpr", "roc_auc", "pr_auc")
                                           if isinstance(c.get(k), (int, float))))
        w(f"  gate           {'eligible' if ev.get('eligible') else 'NOT eligible'} vs "
          f"{ev.get('reference')}")
        for r in ev.get("reasons") or []:
            w(f"                 {r}")
    else:
        w("  (no evaluate stage in dvc.lock names this model)")
    w("")
    w("APPROVAL")
    ap = lineage["approvals"]
    if ap.get("registry"):
        for a in ap["registry"]:
            w(f"  registry       {json.dumps(a, sort_keys=True, default=str)}")
    for e in ap.get("audit_events") or []:
        w(f"  audit #{e.get('seq')}       {_event_line(e)}")
    if not ap.get("registry") and not ap.get("audit_events"):
        w(f"  (none recorded: no registry entry or {AUDIT_LOG} event names this model)")
    w("")
    t = lineage["training_set"]
    s = t.get("split") or {}
    tr, ho = s.get("train") or {}, s.get("holdout") or {}
    w("TRAINING DATA")
    w(f"  training set   {TRAIN}  md5 {t['md5']}  rows {tr.get('rows')}  "
      f"ts {tr.get('ts_min')} .. {tr.get('ts_max')}")
    w(f"  holdout        {HOLDOUT}  md5 {t['holdout_md5']}  rows {ho.get('rows')}  "
      f"ts {ho.get('ts_min')} .. {ho.get('ts_max')}")
    w(f"  split          {SPLIT_SUMMARY}  md5 {t['split_md5']}  cutoff {t.get('cutoff')}")
    w("")
    f = lineage["features"]
    w("FEATURE TABLE")
    w(f"  table          {FEATURES}  md5 {f['md5']}  rows {f.get('rows')}")
    w(f"  definitions    hash {f.get('feature_definitions_hash')}  ({FEATURE_META} md5 "
      f"{f.get('meta_md5')})")
    feats = f.get("features") or []
    names = [x["name"] if isinstance(x, dict) else str(x) for x in feats]
    if names:
        w(f"  features       {', '.join(names)}")
    w("")
    vd = lineage["validated_dataset"]
    c = vd["contract"]
    w("VALIDATED DATASET")
    w(f"  dataset        {VALIDATED}  md5 {vd['md5']}  rows {vd.get('n_rows')}")
    w(f"  contract       {c['path']} ({c.get('name')})  md5 {c.get('md5')}  schema hash "
      f"{c.get('schema_hash')}")
    w(f"  validation     {VALIDATION_REPORT}  md5 {vd.get('report_md5')}  "
      f"{'PASSED' if vd.get('passed') else 'FAILED' if vd.get('passed') is False else '?'}, "
      f"{vd.get('warnings')} warnings")
    w("")
    rs = lineage["raw_snapshots"]
    w(f"RAW SNAPSHOTS  {rs['n']} batches, {rs['rows']} rows; {SNAPSHOTS} {rs['dir_md5']}, "
      f"manifest md5 {rs['manifest_md5']}; landing {rs.get('landing_dir_md5')}")
    w(f"  {'batch':<22} {'source file':<30} {'md5':<32} {'rows':>8}  landed at")
    for sn in rs["snapshots"]:
        w(f"  {str(sn['batch']):<22} {str(sn['source_file']):<30} {str(sn['md5']):<32} "
          f"{str(sn['rows']):>8}  {sn.get('landed_at') or '?'} ({sn.get('landed_at_source') or 'unknown'})")
    w("")
    pv = lineage["provenance"]
    w("PROVENANCE")
    w(f"  cutoff         {pv.get('cutoff')}")
    for k in ("train", "split"):
        val = (pv.get("params") or {}).get(k) or {}
        val = val.get(k, val) if isinstance(val, dict) else val
        w(f"  params {k:<7} {json.dumps(val, sort_keys=True, default=str)}")
    g = pv["git"]
    if g.get("train_run_sha"):
        w(f"  code commit    {g['train_run_sha']}  ({g.get('train_run_sha_source')})")
    if g.get("lock_commit"):
        w(f"  lock commit    {g['lock_commit']['commit']}  (first dvc.lock commit with this model)")
    w(f"  last dvc.lock  {g.get('last_lock_commit') or '(dvc.lock never committed)'}  "
      "(git log -1 -- dvc.lock)")
    for stage, files in (pv.get("code") or {}).items():
        w(f"  code {stage:<9} " + ", ".join(f"{Path(p).name} {md5[:8]}" for p, md5 in
                                             files.items()))
    libs = pv["libraries"]
    rec_l, ins_l = libs.get("recorded") or {}, libs.get("installed") or {}
    w("  libraries      " + ", ".join(
        f"{k} {rec_l.get(k)}" + ("" if ins_l.get(k) in (None, rec_l.get(k))
                                 else f" (installed {ins_l.get(k)})") for k in sorted(rec_l)))
    w("")
    d = lineage["drift"]
    w("DRIFT")
    for r in d["reports"]:
        if not r.get("available", True):
            w(f"  report         {r['path']}  md5 {r['md5']}  [{r['lock']}]  {_UNAVAILABLE}")
            continue
        w(f"  report         {r['path']}  md5 {r['md5']}  severity {r.get('severity')}, drift "
          f"share {r.get('drift_share')}, batch {r.get('current_batch')}  [{r['lock']}]")
    for e in d["audit_events_on_model"]:
        w(f"  audit #{e.get('seq')}       {_event_line(e)}")
    if d["audit_events_before_training"]:
        w("  drift events that led to this model (retrain with its cutoff, or logged before "
          "it was trained):")
        for e in d["audit_events_before_training"]:
            w(f"    audit #{e.get('seq')}     {_event_line(e)}")
    if not d["reports"] and not d["audit_events_on_model"]:
        w("  (no drift report names this model)")
    for n in lineage.get("notes") or []:
        w(f"note: {n}")
    if verification is not None:
        w("")
        w(render_verification(verification))
    return "\n".join(L)


_EVENT_SKIP = frozenset({"prev_hash", "seq", "version", "by", "reason", *_TIME_KEYS,
                         *_TYPE_KEYS})


def _event_line(e: Mapping[str, Any], width: int = 200) -> str:
    """time (as recorded), type, the model it names, who and why, then the other fields
    (shortened). Kept cheap: `audit log` prints 100k of these."""
    t = next((str(e[k]) for k in _TIME_KEYS if e.get(k) is not None), "?")
    head = []
    v = e.get("version")
    if isinstance(v, str):
        head.append(v[:12])
    if e.get("by"):
        head.append(f"by {e['by']}")
    if e.get("reason"):
        head.append(f"\"{e['reason']}\"")
    body = {k: v for k, v in e.items() if k not in _EVENT_SKIP}
    txt = " ".join(head)
    if body:
        txt += (" " if head else "") + json.dumps(body, sort_keys=True, default=str)
    if len(txt) > width:
        txt = txt[:width - 3] + "..."
    return f"{t[:25]:<25} {event_type(e):<26} {txt}"


def render_verification(ver: dict[str, Any]) -> str:
    L = ["VERIFY  (every hash recomputed from the working tree, the DVC cache or git)"]
    order = {MISMATCHED: 0, MISSING: 1, WARNING: 2, SKIPPED: 3, VERIFIED: 4}
    for c in sorted(ver["checks"], key=lambda c: order[c["status"]]):
        L.append(f"  {c['status'].upper() if c['status'] != VERIFIED else 'verified':<11} "
                 f"{c['message']}")
    n = ver["counts"]
    hc = ver.get("hash_cache") or {}
    L.append("")
    L.append(f"Result: {n[VERIFIED]} verified, {n[MISMATCHED]} mismatched, {n[MISSING]} missing, "
             f"{n[WARNING]} warnings, {n[SKIPPED]} skipped -> "
             + ("OK" if ver["ok"] else "FAILED"))
    L.append(f"hash cache: {hc.get('hits')} hits, {hc.get('hashed')} files hashed "
             f"({(hc.get('bytes_hashed') or 0) / 1e6:.1f} MB)")
    return "\n".join(L)


_GRAPH_NODES = [
    ("landing", "landing batches"), ("snapshots", "raw snapshots"), ("contract", "contract"),
    ("validated", "validated dataset"), ("features", "feature table"),
    ("train", "training set"), ("holdout", "holdout set"), ("model", "model"),
    ("record", "model record"), ("evaluation", "evaluation"), ("drift", "drift report")]


def render_graph(lineage: dict[str, Any], chain: Chain, fmt: str = "mermaid",
                 verification: dict[str, Any] | None = None) -> str:
    """The chain as a Mermaid flowchart or a Graphviz DOT digraph; with a verification,
    mismatched/missing nodes are marked."""
    status: dict[str, str] = {}
    if verification:
        by_path = {a.path: aid for aid, a in chain.artifacts.items()}
        for c in verification["checks"]:
            aid = by_path.get(c["target"])
            if aid and c["status"] in (MISMATCHED, MISSING):
                status[aid] = c["status"]
    nodes = []
    for aid, label in _GRAPH_NODES:
        a = chain.artifacts.get(aid)
        if a is None:
            continue
        nodes.append((aid, f"{label}\\n{a.path}\\n{_short(a.md5)}"))
    snaps = [(aid, a) for aid, a in chain.artifacts.items() if a.kind == "snapshot"]
    for aid, a in snaps:
        nodes.append((aid, f"{Path(a.path).name}\\n{_short(a.md5)}"))
    for e in lineage["approvals"].get("audit_events") or []:
        nodes.append((f"audit{e.get('seq')}", f"{event_type(e)}\\naudit #{e.get('seq')}"))
    ids = {n for n, _ in nodes}
    edges = [(a, b) for a, b in chain.edges if a in ids and b in ids]
    edges += [(aid, "snapshots") for aid, _ in snaps if "snapshots" in ids]
    edges += [("evaluation" if "evaluation" in ids else "model", f"audit{e.get('seq')}")
              for e in lineage["approvals"].get("audit_events") or []]

    def nid(s: str) -> str:
        return "n_" + "".join(ch if ch.isalnum() else "_" for ch in s)

    if fmt == "dot":
        out = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        for n, label in nodes:
            color = {MISMATCHED: "red", MISSING: "orange"}.get(status.get(n, ""), "black")
            out.append(f'  {nid(n)} [label="{label}", color={color}];')
        for a, b in edges:
            out.append(f"  {nid(a)} -> {nid(b)};")
        out.append("}")
        return "\n".join(out)
    if fmt != "mermaid":
        raise ValueError(f"unknown graph format {fmt!r}: mermaid or dot")
    out = ["flowchart LR"]
    for n, label in nodes:
        out.append(f'  {nid(n)}["{label.replace(chr(92) + "n", "<br/>")}"]')
    for a, b in edges:
        out.append(f"  {nid(a)} --> {nid(b)}")
    for n, st in status.items():
        out.append(f"  style {nid(n)} stroke:{'#d00' if st == MISMATCHED else '#e80'},stroke-width:3px")
    return "\n".join(out)
