"""A file-based model registry that travels with the repository (docs/ARCHITECTURE.md,
"Model registry"). No dagster import here (functional core).

    registry/
      production.json      serving pointer {version, model_path, record_path}
      registry.json        {versions: {md5: {...}}, production_history: [md5, ...]}
      models/<md5>/        immutable copies: model.skops (version = its md5), model.json
                           (its md5 in registry.json record_md5), evaluations/<md5>.json
      audit.log.jsonl      hash-chained append-only log (core.audit)

Rules
* A version is the md5 of its model.skops bytes; registering the same bytes twice is one
  version. Its copy under models/<md5>/ is written once, atomically, then made read-only;
  bytes that no longer match the name are corruption (RegistryError).
* Stages: candidate -> staging -> production -> archived. One production at a time:
  promoting a version to production archives the one before it, and the serving pointer
  (production.json) is replaced atomically (write to a temp file + rename).
* Refused, with a message saying why and what to do:
    - promoting a version whose evaluation gate failed (evaluation.json gate.eligible false)
      to staging or production, or one never evaluated to production;
    - promoting to production without an approval of *that* version when
      `registry.approval_required` is true (the default for this high-stakes model);
    - promoting a rejected version (approve it again first);
    - rolling back when there is no previous production version.
* Every change (register, evaluate, approve, reject, promote, rollback) and every refused
  promotion is an event in audit.log.jsonl: who, when, why, stage from -> to and
  production version from -> to. The log is hash-chained and survives a torn last line.
* All changes happen under an exclusive flock on the registry directory itself (no lock
  file in the tree), so concurrent writers in several processes serialise; state is read
  again inside the lock, so two concurrent promotions leave exactly one production.
  registry.json is the source of truth; production.json is derived from it and repaired on
  the next change if a crash left it behind.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_assets.core import layout
from mlops_assets.core.audit import append_event, read_events
from mlops_assets.core.io import (
    DataError,
    atomic_path,
    md5_file,
    write_bytes_atomic,
    write_json_atomic,
)

# File names inside the registry folder (core.layout holds the full paths).
POINTER = PurePosixPath(layout.PRODUCTION_POINTER).name
STATE = PurePosixPath(layout.REGISTRY_INDEX).name
MODELS = PurePosixPath(layout.REGISTRY_MODELS).name
AUDIT_LOG = PurePosixPath(layout.AUDIT_LOG).name
REGISTRY_DIR, MODEL_FILE, RECORD_FILE = layout.REGISTRY_DIR, layout.MODEL_FILE, layout.RECORD_FILE
PROFILE_FILES = layout.PROFILE_FILES  # beside model.skops

CANDIDATE, STAGING, PRODUCTION, ARCHIVED = "candidate", "staging", "production", "archived"
STAGES = (CANDIDATE, STAGING, PRODUCTION, ARCHIVED)

# Which explicit promotions are allowed (production leaves only by another promotion or a
# rollback, so serving is never left without a model by accident).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    CANDIDATE: (STAGING, PRODUCTION, ARCHIVED),
    STAGING: (CANDIDATE, PRODUCTION, ARCHIVED),
    PRODUCTION: (),
    ARCHIVED: (CANDIDATE, STAGING, PRODUCTION),
}


class RegistryError(DataError):
    """A refused registry operation; the message says why and what would be accepted."""


@dataclass(frozen=True)
class Settings:
    """The `registry:` section of params.yaml."""

    approval_required: bool = True
    min_approvals: int = 1

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> Settings:
        section = (params or {}).get("registry") or {}
        return cls(approval_required=bool(section.get("approval_required", True)),
                   min_approvals=int(section.get("min_approvals", 1)))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _empty_state() -> dict[str, Any]:
    return {"format": 1, "versions": {}, "production_history": []}


class Registry:
    """The registry under `<root>/registry`. `settings` default to params.yaml's `registry:`
    section (approval required unless it says otherwise)."""

    def __init__(self, root: str | os.PathLike[str], settings: Settings | None = None) -> None:
        self.root = Path(root)
        self.dir = self.root / REGISTRY_DIR
        if settings is None:
            settings = Settings.from_params(_load_params(self.root))
        self.settings = settings

    # ------------------------------------------------------------------ paths

    @property
    def pointer_path(self) -> Path:
        return self.dir / POINTER

    @property
    def state_path(self) -> Path:
        return self.dir / STATE

    @property
    def log_path(self) -> Path:
        return self.dir / AUDIT_LOG

    def model_dir(self, version: str) -> Path:
        return self.dir / MODELS / version

    def _rel(self, p: Path) -> str:
        return p.relative_to(self.root).as_posix()

    # ------------------------------------------------------------------ reading

    def state(self) -> dict[str, Any]:
        if not self.state_path.exists():
            return _empty_state()
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            data.setdefault("versions", {})
            data.setdefault("production_history", [])
            return data
        except (ValueError, AttributeError) as e:
            raise RegistryError(f"registry state is not valid JSON ({e})", path=self.state_path,
                                expected="registry.json written by mlops_assets.core.registry") \
                from None

    def versions(self) -> dict[str, dict[str, Any]]:
        return self.state()["versions"]

    def resolve(self, version: str, state: dict[str, Any] | None = None) -> str:
        """A full version from a unique prefix (at least 6 characters)."""
        versions = (state or self.state())["versions"]
        if version in versions:
            return version
        matches = [v for v in versions if len(version) >= 6 and v.startswith(version)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise RegistryError(f"version prefix {version!r} is ambiguous: {sorted(matches)}")
        known = ", ".join(v[:12] for v in sorted(versions)) or "none registered"
        raise RegistryError(f"no registered model version {version!r}",
                            expected=f"one of: {known}")

    def get(self, version: str) -> dict[str, Any]:
        state = self.state()
        v = self.resolve(version, state)
        return {"version": v, **state["versions"][v]}

    def production(self) -> str | None:
        for v, info in self.versions().items():
            if info["stage"] == PRODUCTION:
                return v
        return None

    def pointer(self) -> dict[str, Any]:
        if not self.pointer_path.exists():
            return {"version": None, "model_path": None, "record_path": None}
        return json.loads(self.pointer_path.read_text(encoding="utf-8"))

    def events(self, version: str | None = None) -> list[dict[str, Any]]:
        evs = [e for e in read_events(self.log_path) if e.get("kind") == "registry"]
        if version is not None:
            evs = [e for e in evs if e.get("version") == version]
        return evs

    def awaiting_approval(self, trigger: str | None = None) -> list[str]:
        """Candidates (or staged versions) registered after the current production went
        live, whose gate passed and that nobody rejected: what a person has to decide on.
        With `trigger`, only those whose source says they came from such a run."""
        versions = self.versions()
        prod = next((i for i in versions.values() if i["stage"] == PRODUCTION), None)
        since = (prod or {}).get("promoted_at") or ""
        out = []
        for v, i in versions.items():
            if i["stage"] not in (CANDIDATE, STAGING) or i.get("rejection"):
                continue
            if not (i.get("evaluation") or {}).get("eligible"):
                continue
            if trigger is not None and (i.get("source") or {}).get("trigger") != trigger:
                continue
            if (i.get("registered_at") or "") > since:
                out.append(v)
        return sorted(out, key=lambda v: versions[v].get("registered_at") or "")

    def approved(self, version: str, state: dict[str, Any] | None = None) -> bool:
        info = (state or self.state())["versions"][version]
        return len(info.get("approvals", [])) >= self.settings.min_approvals

    # ------------------------------------------------------------------ writing

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """Exclusive lock on the registry directory; yields the state read inside the lock.
        The caller mutates it; it is written back (and the pointer synced) on exit."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            state = self.state()
            before = json.dumps(state, sort_keys=True)
            yield state
            if json.dumps(state, sort_keys=True) != before:
                write_json_atomic(self.state_path, state)
            self._sync_pointer(state)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _sync_pointer(self, state: dict[str, Any]) -> None:
        prod = [v for v, i in state["versions"].items() if i["stage"] == PRODUCTION]
        if len(prod) > 1:  # cannot happen under the lock; refuse to guess if it ever does
            raise RegistryError(f"registry state has {len(prod)} production versions: {prod}",
                                path=self.state_path, expected="exactly one")
        if prod:
            info = state["versions"][prod[0]]
            want = {"version": prod[0], "model_path": info["model_path"],
                    "record_path": info["record_path"]}
        else:
            want = {"version": None, "model_path": None, "record_path": None}
        if self.pointer() != want:
            write_json_atomic(self.pointer_path, want)  # temp file + rename: atomic

    def _event(self, action: str, version: str | None, by: str, reason: str,
               **fields: Any) -> dict[str, Any]:
        event = {"kind": "registry", "action": action, "version": version, "by": by,
                 "reason": reason, "at": _now(), **fields}
        return append_event(self.log_path, event)

    def register(self, model_path: str | os.PathLike[str], record_path: str | os.PathLike[str],
                 *, evaluation_path: str | os.PathLike[str] | None = None,
                 by: str = "system", reason: str = "registered",
                 registered_from: str | None = None,
                 source: dict[str, Any] | None = None) -> str:
        """Copy a model and its record into the registry as a candidate; returns its version
        (md5 of the model bytes). Registering known bytes again only refreshes the
        evaluation (when one for this very model is given)."""
        model_path, record_path = Path(model_path), Path(record_path)
        for p in (model_path, record_path):
            if not p.is_file():
                raise RegistryError("cannot register: file not found", path=p)
        version = md5_file(model_path)
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("model_md5") not in (None, version):
            raise RegistryError(f"the model record describes model {record.get('model_md5')}, "
                                f"not this file ({version})", path=record_path,
                                expected="the model.json written with this model.skops")
        evaluation = _read_evaluation(evaluation_path, version) if evaluation_path else None
        with self._locked() as state:
            target = self.model_dir(version)
            self._store_copy(model_path, target / MODEL_FILE, version)
            self._store_copy(record_path, target / RECORD_FILE, None)
            for name in PROFILE_FILES:  # the drift reference travels with its model
                if (model_path.parent / name).is_file():
                    self._store_copy(model_path.parent / name, target / name, None)
            info = state["versions"].get(version)
            if info is None:
                info = {"stage": CANDIDATE,
                        "model_path": self._rel(target / MODEL_FILE),
                        "record_path": self._rel(target / RECORD_FILE),
                        "record_md5": md5_file(target / RECORD_FILE),
                        "registered_from": registered_from or _safe_rel(model_path, self.root),
                        "registered_at": _now(), "registered_by": by,
                        "cutoff": record.get("cutoff"), "threshold": record.get("threshold"),
                        "evaluation_md5": None, "evaluation": None,
                        "approvals": [], "rejection": None, "source": dict(source or {})}
                state["versions"][version] = info
                self._event("register", version, by, reason, from_stage=None,
                            to_stage=CANDIDATE, registered_from=info["registered_from"],
                            record_md5=info["record_md5"])
            if evaluation is not None and info.get("evaluation_md5") != evaluation["md5"]:
                # the evaluation it is judged on is kept by its md5: the working
                # evaluation.json moves on whenever production or the data does
                copy = self.root / layout.registry_evaluation_file(version, evaluation["md5"])
                if not copy.exists():
                    write_bytes_atomic(copy, evaluation["data"])
                    os.chmod(copy, 0o444)
                info["evaluation_md5"] = evaluation["md5"]
                info["evaluation_path"] = self._rel(copy)
                info["evaluation"] = evaluation["summary"]
                self._event("evaluate", version, by, "evaluation attached",
                            eligible=evaluation["summary"]["eligible"],
                            compared_with=evaluation["summary"]["reference"],
                            evaluation_md5=evaluation["md5"])
        return version

    def _store_copy(self, src: Path, dest: Path, expect_md5: str | None) -> None:
        if dest.exists():
            if expect_md5 is not None and md5_file(dest) != expect_md5:
                raise RegistryError("registry copy is corrupt: its bytes do not match its "
                                    "version; restore it (dvc checkout / git checkout)",
                                    path=dest, expected=f"md5 {expect_md5}")
            return
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        os.chmod(dest, 0o444)  # immutable by convention and by mode

    def approve(self, version: str, by: str, reason: str) -> dict[str, Any]:
        """Record a person's sign-off on one version (clears an earlier rejection)."""
        _need_person(by, reason, "approve")
        with self._locked() as state:
            v = self.resolve(version, state)
            info = state["versions"][v]
            approval = {"by": by, "reason": reason, "at": _now()}
            info.setdefault("approvals", []).append(approval)
            info["rejection"] = None
            self._event("approve", v, by, reason, stage=info["stage"],
                        approvals=len(info["approvals"]))
            return {"version": v, **info}

    def reject(self, version: str, by: str, reason: str) -> dict[str, Any]:
        """A person's refusal: the version is archived and cannot be promoted until approved
        again. The production version cannot be rejected (roll back instead)."""
        _need_person(by, reason, "reject")
        with self._locked() as state:
            v = self.resolve(version, state)
            info = state["versions"][v]
            if info["stage"] == PRODUCTION:
                raise RegistryError(f"version {v[:12]} is in production and cannot be rejected",
                                    expected="`mlops-assets registry rollback` to restore the "
                                             "previous production version")
            frm = info["stage"]
            info["stage"] = ARCHIVED
            info["approvals"] = []
            info["rejection"] = {"by": by, "reason": reason, "at": _now()}
            self._event("reject", v, by, reason, from_stage=frm, to_stage=ARCHIVED)
            return {"version": v, **info}

    def promote(self, version: str, to: str, by: str, reason: str = "") -> dict[str, Any]:
        """Move a version to `to`. To production: the current production is archived and the
        serving pointer moves, atomically, under the lock."""
        if to not in STAGES:
            raise RegistryError(f"unknown stage {to!r}", expected=" | ".join(STAGES))
        with self._locked() as state:
            v = self.resolve(version, state)
            info = state["versions"][v]
            frm = info["stage"]
            try:
                self._check_promotion(v, info, to, state)
            except RegistryError as refused:
                self._event("promote_refused", v, by, reason, from_stage=frm, to_stage=to,
                            refused=str(refused))
                raise
            old_prod = next((x for x, i in state["versions"].items()
                             if i["stage"] == PRODUCTION), None)
            if to == PRODUCTION:
                if old_prod is not None:
                    state["versions"][old_prod]["stage"] = ARCHIVED
                info["stage"] = PRODUCTION
                info["promoted_at"] = _now()
                hist = state["production_history"]
                hist.append(v)
                self._event("promote", v, by, reason, from_stage=frm, to_stage=to,
                            from_version=old_prod, to_version=v,
                            approvals=info.get("approvals", []))
            else:
                info["stage"] = to
                self._event("promote", v, by, reason, from_stage=frm, to_stage=to)
            return {"version": v, **info}

    def promotion_refusal(self, version: str, to: str = PRODUCTION) -> str | None:
        """Why promoting `version` to `to` would be refused right now (None: it would not).
        Read-only: nothing is logged (promote() logs refused attempts)."""
        state = self.state()
        v = self.resolve(version, state)
        try:
            self._check_promotion(v, state["versions"][v], to, state)
        except RegistryError as e:
            return str(e)
        return None

    def _check_promotion(self, v: str, info: dict[str, Any], to: str,
                         state: dict[str, Any]) -> None:
        frm = info["stage"]
        if frm == to:
            raise RegistryError(f"version {v[:12]} is already in {to}")
        if to not in TRANSITIONS[frm]:
            hint = ("promote another version to production, or roll back" if frm == PRODUCTION
                    else f"from {frm}: {', '.join(TRANSITIONS[frm])}")
            raise RegistryError(f"version {v[:12]} cannot move from {frm} to {to}",
                                expected=hint)
        if to in (STAGING, PRODUCTION):
            if info.get("rejection"):
                r = info["rejection"]
                raise RegistryError(f"version {v[:12]} was rejected by {r['by']} "
                                    f"({r['reason']}); it cannot be promoted",
                                    expected="a new approval (`registry approve`) first")
            ev = info.get("evaluation")
            if ev is not None and not ev.get("eligible"):
                why = "; ".join(r for r in ev.get("reasons", []) if r.startswith("FAIL"))
                raise RegistryError(f"refused: the evaluation gate failed for version {v[:12]} "
                                    f"against {ev.get('reference')}: {why}",
                                    expected="a candidate whose evaluation gate passed "
                                             "(data/reports/evaluation.json gate.eligible)")
            if to == PRODUCTION and ev is None:
                raise RegistryError(f"refused: version {v[:12]} has no evaluation, so its gate "
                                    "cannot be checked",
                                    expected="register it with its evaluation.json "
                                             "(`registry register --evaluation ...`)")
        if to == PRODUCTION and self.settings.approval_required and not self.approved(v, state):
            n = len(info.get("approvals", []))
            raise RegistryError(f"refused: approval is required to promote version {v[:12]} to "
                                f"production (registry.approval_required: true) and it has {n} "
                                f"of {self.settings.min_approvals}",
                                expected=f"`mlops-assets registry approve {v[:12]} --by NAME "
                                         "--reason TEXT` first")

    def rollback(self, by: str, reason: str = "rollback") -> dict[str, Any]:
        """Bring back the previous production version; the current one is archived and the
        serving pointer moves to the previous one. Needs no new approval: that version was
        approved when it first went to production."""
        with self._locked() as state:
            hist: list[str] = state["production_history"]
            current = next((x for x, i in state["versions"].items()
                            if i["stage"] == PRODUCTION), None)
            # drop trailing history entries that are no longer production (e.g. hand edits)
            while hist and hist[-1] != current:
                hist.pop()
            if current is None or len(hist) < 2:
                msg = ("refused: there is no previous production version to roll back to"
                       + ("" if current else " (and nothing is in production)"))
                self._event("rollback_refused", current, by, reason, refused=msg)
                raise RegistryError(msg, expected="at least two versions promoted to "
                                                  "production over time")
            hist.pop()
            previous = hist[-1]
            state["versions"][current]["stage"] = ARCHIVED
            state["versions"][previous]["stage"] = PRODUCTION
            state["versions"][previous]["promoted_at"] = _now()
            self._event("rollback", previous, by, reason, from_stage=ARCHIVED,
                        to_stage=PRODUCTION, from_version=current, to_version=previous)
            return {"version": previous, "from_version": current,
                    **state["versions"][previous]}


# ---------------------------------------------------------------------- helpers


def _need_person(by: str, reason: str, action: str) -> None:
    if not (by or "").strip() or not (reason or "").strip():
        raise RegistryError(f"{action} needs a person (--by) and a reason (--reason)")


def _safe_rel(p: Path, root: Path) -> str:
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return p.name


def _read_evaluation(path: str | os.PathLike[str], version: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise RegistryError("evaluation file not found", path=path)
    data = path.read_bytes()  # hashed, parsed and copied from the same bytes
    ev = json.loads(data.decode("utf-8"))
    if ev.get("model_md5") not in (None, version):
        raise RegistryError(f"the evaluation is of model {ev.get('model_md5')}, not {version}",
                            path=path, expected="the evaluation.json of this model")
    gate = ev.get("gate") or {}
    cand = ev.get("candidate") or {}
    return {"md5": hashlib.md5(data).hexdigest(), "data": data, "summary": {
        "eligible": bool(gate.get("eligible")), "reference": gate.get("reference"),
        "reasons": list(gate.get("reasons", [])),
        "metrics": {k: cand.get(k) for k in ("precision", "recall", "fpr", "roc_auc", "pr_auc")},
    }}


def _load_params(root: Path) -> dict[str, Any] | None:
    import yaml

    p = root / "params.yaml"
    if not p.exists():
        return None
    return yaml.safe_load(p.read_text())


def production_pointer(root: Path) -> dict[str, Any] | None:
    """The production pointer {version, model_path, record_path}, or None when there is no
    production model. An unreadable pointer is a DataError, never "no model"."""
    registry = Registry(root, Settings())  # the pointer needs no approval settings
    try:
        info = registry.pointer()
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read the production pointer ({e})", path=registry.pointer_path,
                        expected="JSON {version, model_path, record_path}") from None
    if not isinstance(info, dict) or not info.get("version"):
        return None
    return info
