"""Shared fixtures: a real copy of the project in a temporary git repository, with DVC
and a temporary DAGSTER_HOME, so tests exercise the real tools and never the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")


def tool_env(root: Path, dagster_home: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLOPS_ASSETS_ROOT"] = str(root)
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "tests"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "tests@example.invalid"
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return env


def run(cmd: list[str], root: Path, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=root, env=env or tool_env(root), capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}")
    return proc


# Files a person or a run changes in a checkout (edited params, registry state, outputs):
# a copy takes them from git HEAD, never from the working tree, so `make demo`/`make ui`
# in a checkout cannot change what its tests see. Code comes from the working tree, so
# developers test their uncommitted code.
STATE_FILES = ("params.yaml", "dvc.lock", ".dagster_home/dagster.yaml")
STATE_PREFIXES = ("registry/", "data/", ".dvc/config")


def is_state(rel: str) -> bool:
    """Whether `rel` (a path relative to the repo) is human-owned or run state."""
    return rel in STATE_FILES or rel.startswith(STATE_PREFIXES)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout


def project_files() -> list[str]:
    """The working tree's code files: tracked or untracked-but-not-ignored, no state."""
    out = _git("ls-files", "--cached", "--others", "--exclude-standard")
    return [p for p in out.splitlines() if p and not is_state(p) and (REPO / p).is_file()]


def committed_state_files() -> list[str]:
    """The state files as committed at HEAD (untracked state is never copied)."""
    return [p for p in _git("ls-tree", "-r", "--name-only", "HEAD").splitlines() if is_state(p)]


def committed_bytes(rel: str) -> bytes:
    """A file's content at git HEAD (`git show HEAD:rel`)."""
    return subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=REPO, capture_output=True,
                          check=True).stdout


def committed_text(rel: str) -> str:
    return committed_bytes(rel).decode("utf-8")


def make_project_copy(dest: Path, params_overrides: dict[str, dict] | None = None,
                      with_lock: bool = True) -> Path:
    """Copy the project into `dest` as a fresh git repo: code from the working tree, state
    (params.yaml, dvc.lock, registry/, data/, .dvc/config*) from git HEAD."""
    for rel in project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    for rel in committed_state_files():
        if not with_lock and rel == "dvc.lock":
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(committed_bytes(rel))
    if params_overrides:
        from mlops_assets.repo.params_edit import update_params_section

        for section, values in params_overrides.items():
            update_params_section(dest / "params.yaml", section, values)
    env = tool_env(dest)
    run(["git", "init", "-q", "-b", "main"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-q", "-m", "copy of the project for a test"], dest, env)
    (dest / ".dagster_home").mkdir(exist_ok=True)
    return dest


SMALL = {"sample_data": {"rows_per_week": 2500}}


def point_at_project(mp: pytest.MonkeyPatch, root: Path) -> None:
    """MLOPS_ASSETS_ROOT, DAGSTER_HOME, the venv's tools and the working directory: the
    process acts on the project copy `root`, as a person standing in it would."""
    mp.setenv("MLOPS_ASSETS_ROOT", str(root))
    mp.setenv("DAGSTER_HOME", str(root / ".dagster_home"))
    mp.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    mp.chdir(root)


@contextmanager
def in_project(root: Path) -> Iterator[None]:
    """`point_at_project` for a module-scoped fixture (no function-scoped monkeypatch)."""
    mp = pytest.MonkeyPatch()
    point_at_project(mp, root)
    try:
        yield
    finally:
        mp.undo()


@pytest.fixture
def small_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project copy with small batches, MLOPS_ASSETS_ROOT and DAGSTER_HOME pointing at it."""
    root = make_project_copy(tmp_path / "project", SMALL, with_lock=False)
    point_at_project(monkeypatch, root)
    yield root
