"""The link from an in-process stage run to DVC: commit the stage so `dvc.lock` and the
cache hold exactly what was just computed, and read back the md5s DVC recorded.

Dagster uses these md5s as data versions, so the UI and `dvc.lock` can never disagree."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

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


def commit_stage(root: Path, stage: str) -> None:
    """Record the stage's current deps, params and outs in dvc.lock and the cache."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
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
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.status()
