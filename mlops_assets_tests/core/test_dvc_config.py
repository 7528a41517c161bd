"""core.store reads DVC's `cache.dir` without importing DVC: its answer must be DVC's own
(`dvc cache dir`) for every level and form of the setting, or lineage and the sensors look
for cache objects where DVC never put them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.core.store import dvc_cache_dir

DVC = str(Path(sys.executable).parent / "dvc")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DVC repo (no git) whose system and global config dirs and HOME are the test's."""
    for var, sub in (("DVC_SYSTEM_CONFIG_DIR", "system"), ("DVC_GLOBAL_CONFIG_DIR", "global"),
                     ("HOME", "home")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    root = tmp_path / "project"
    root.mkdir()
    subprocess.run([DVC, "init", "-q", "--no-scm"], cwd=root, check=True, env=dict(os.environ))
    return root


def _dvc_answer(root: Path) -> Path:
    out = subprocess.run([DVC, "cache", "dir"], cwd=root, capture_output=True, text=True,
                         check=True, env=dict(os.environ)).stdout.strip()
    return Path(out)


def _set(root: Path, level: str, value: str) -> None:
    """Write `cache.dir = value` into one level's config file, as a person would."""
    files = {"repo": root / ".dvc" / "config", "local": root / ".dvc" / "config.local",
             "global": Path(os.environ["DVC_GLOBAL_CONFIG_DIR"]) / "config",
             "system": Path(os.environ["DVC_SYSTEM_CONFIG_DIR"]) / "config"}
    path = files[level]
    text = path.read_text() if path.exists() else ""
    path.write_text(text + f"['cache']\n    dir = {value}  # where the objects live\n")


@pytest.mark.parametrize("level", ["repo", "local", "global", "system"])
@pytest.mark.parametrize("form", ["relative", "absolute", "home"])
def test_cache_dir_is_dvcs_own_answer(project: Path, tmp_path: Path, level: str,
                                      form: str) -> None:
    value = {"relative": "../../shared-cache", "absolute": str(tmp_path / "abs-cache"),
             "home": "~/dvc-cache"}[form]
    _set(project, level, value)
    assert dvc_cache_dir(project) == _dvc_answer(project)


def test_default_and_precedence_system_global_repo_local(project: Path, tmp_path: Path) -> None:
    assert dvc_cache_dir(project) == _dvc_answer(project) == project / ".dvc" / "cache"
    for level in ("system", "global", "repo", "local"):
        _set(project, level, str(tmp_path / f"from-{level}"))
        assert dvc_cache_dir(project) == _dvc_answer(project) == tmp_path / f"from-{level}"
    (project / ".dvc" / "config.local").unlink()
    assert dvc_cache_dir(project) == _dvc_answer(project) == tmp_path / "from-repo"
