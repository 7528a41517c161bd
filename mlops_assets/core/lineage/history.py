"""dvc.lock through time: the working tree's version and every committed one, newest first,
and the little readers of a stage entry (its outs, deps and params by path)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_assets.core.layout import MODEL
from mlops_assets.core.run_params import DEFAULT_PARAMS_FILE, deep_merge
from mlops_assets.core.store import HashCache, git

TRAIN_STAGE = "train"


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


def yaml_load(text: str | bytes) -> Any:
    """YAML with the C loader when there is one: committed locks are parsed by the hundred."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader)


class LockHistory:
    """The working dvc.lock and every committed version of it, newest first, parsed lazily."""

    def __init__(self, root: Path, cache: HashCache | None = None) -> None:
        self.root = root
        self.cache = cache  # parsed committed locks are kept in its facts table, by commit
        path = root / "dvc.lock"
        self.working = LockRev(None, stages=(yaml_load(path.read_bytes()) or {}).get("stages", {})
                               if path.exists() else {})
        self._commits: list[LockRev] | None = None

    def _stages_at(self, commit: str) -> Any:
        """The stages of dvc.lock at `commit`, False when it was deleted or does not parse."""
        key = f"lock/1:{commit}"
        stages = self.cache.get_fact(key) if self.cache is not None else None
        if stages is None:
            blob = git(self.root, "show", f"{commit}:dvc.lock", binary=True)
            try:
                stages = (yaml_load(blob) or {}).get("stages", {}) if blob else False
            except yaml.YAMLError:
                stages = False
            if self.cache is not None:  # a commit never changes: cache it for good
                self.cache.put_fact(key, stages)
        return stages

    def commits(self) -> list[LockRev]:
        if self._commits is None:
            out = git(self.root, "log", "--format=%H%x1f%ct%x1f%s", "--", "dvc.lock") or ""
            revs = []
            for line in out.splitlines():
                parts = line.split("\x1f")
                if len(parts) != 3:
                    continue
                stages = self._stages_at(parts[0])
                if stages is not False:
                    revs.append(LockRev(parts[0], int(parts[1]), parts[2], stages))
            self._commits = revs
        return self._commits

    def all(self) -> list[LockRev]:
        return [self.working, *self.commits()]

    def working_commit_of_lock(self) -> str | None:
        """The last commit of dvc.lock (`git log -1 -- dvc.lock`)."""
        out = git(self.root, "log", "-1", "--format=%H", "--", "dvc.lock")
        return (out or "").strip() or None


def outs_of(entry: Mapping[str, Any]) -> dict[str, str]:
    """path -> md5 of a stage entry's outs."""
    return {o["path"]: o.get("md5") for o in entry.get("outs", []) or []}


def deps_of(entry: Mapping[str, Any]) -> dict[str, str]:
    """path -> md5 of a stage entry's deps."""
    return {d["path"]: d.get("md5") for d in entry.get("deps", []) or []}


def params_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The params a stage entry pinned, merged over the params files: params.yaml first, the
    run params file (data/run_params.yaml) deep-merged on top, as the stage saw them."""
    files = entry.get("params") or {}
    merged: dict[str, Any] = {}
    for file in sorted(files, key=lambda f: f != DEFAULT_PARAMS_FILE):
        merged = deep_merge(merged, files[file] or {})
    return merged


def model_md5_of(rev: LockRev) -> str | None:
    return outs_of(rev.stages.get(TRAIN_STAGE, {})).get(MODEL)
