"""The link from an in-process stage run to DVC: commit the stage so `dvc.lock` and the
cache hold exactly what was just computed, and read back the md5s DVC recorded.

Dagster uses these md5s as data versions, so the UI and `dvc.lock` can never disagree."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from mlops_assets.core.audit import append_event
from mlops_assets.core.layout import AUDIT_LOG

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@contextmanager
def repo_lock(root: Path) -> Iterator[None]:
    """Serialise stage runs and DVC commits across processes (DVC's own lock fails fast)."""
    lock_dir = root / ".dvc" / "tmp"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "mlops_assets.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def open_repo(root: Path) -> Iterator[Any]:
    """DVC's Repo at `root`, its git hints ("To track the changes with git, run: git add
    ...") silenced: they are DVC's CLI talking to a person, and leak into our commands'
    output and Dagster's logs, where they ask for a step our own messages already name."""
    # Lazy: dvc takes about a second to import; the Dagster definitions import this module.
    from dvc.repo import Repo

    dvc_logger = logging.getLogger("dvc")
    level = dvc_logger.level
    dvc_logger.setLevel(max(level, logging.WARNING))
    try:
        with Repo(str(root)) as repo:
            repo.scm_context.quiet = True
            yield repo
    finally:
        dvc_logger.setLevel(level)


def dvc_add(root: Path, path: Path) -> None:
    """`dvc add path` in the project at `root`, without DVC's git hints."""
    with open_repo(root) as repo:
        repo.add(str(path))


def commit_stage(root: Path, stage: str) -> None:
    """Record the stage's current deps, params and outs in dvc.lock and the cache."""
    with open_repo(root) as repo:
        repo.commit(stage, force=True, relink=False)


def read_lock(root: Path) -> dict[str, Any]:
    path = root / "dvc.lock"
    if not path.exists():
        return {}
    with open(path) as f:
        return (yaml.safe_load(f) or {}).get("stages", {})


def lock_outs(root: Path, stage: str) -> dict[str, str]:
    """path -> md5 of the stage's outs as dvc.lock records them."""
    entry = read_lock(root).get(stage, {})
    return {o["path"]: o["md5"] for o in entry.get("outs", [])}


def lock_deps(root: Path, stage: str) -> dict[str, str]:
    entry = read_lock(root).get(stage, {})
    return {d["path"]: d["md5"] for d in entry.get("deps", [])}


def status(root: Path) -> dict[str, Any]:
    """`dvc status` as a dict: empty when every stage is up to date."""
    with open_repo(root) as repo:
        return repo.status()


def track_audit_log(root: Path, *, locked: bool = False) -> str | None:
    """`dvc add` the audit log, so its bytes sit in the DVC cache (and remote, with `dvc
    push`) and `registry/audit.log.jsonl.dvc` pins them in git: the pinned version is the
    append-only anchor `audit verify` checks the file against. Returns the md5, None when
    there is no log yet. `locked`: the caller already holds repo_lock."""
    path = root / AUDIT_LOG
    if not path.exists():
        return None
    if not locked:
        with repo_lock(root):
            return track_audit_log(root, locked=True)
    dvc_add(root, path)
    with open(path.with_name(path.name + ".dvc")) as f:
        return (yaml.safe_load(f) or {}).get("outs", [{}])[0].get("md5")


def record_audit(root: Path, event: dict[str, Any], *, track: bool = True,
                 locked: bool = False) -> dict[str, Any]:
    """Append one event (stamped with the time) to the hash-chained audit log and, with
    `track`, pin the new version in DVC."""
    entry = append_event(root / AUDIT_LOG, {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        **event})
    if track:
        track_audit_log(root, locked=locked)
    return entry
