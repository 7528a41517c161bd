"""core.lineage.history and core.lineage.model: dvc.lock through git, and which model a
reference means."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from mlops_assets.core.lineage.chain import LineageError
from mlops_assets.core.lineage.history import LockHistory
from mlops_assets.core.lineage.model import resolve_model


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout


def _lock(model_md5: str) -> str:
    return yaml.safe_dump({"schema": "2.0", "stages": {"train": {
        "cmd": "python -m mlops_assets.stages train",
        "outs": [{"path": "data/model/model.skops", "md5": model_md5, "hash": "md5"}]}}})


def test_resolve_model_over_the_history_of_dvc_lock(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    a, b = "a1b2c3" + "0" * 26, "a1b2c3" + "1" * 26
    for md5 in (a, b):
        (tmp_path / "dvc.lock").write_text(_lock(md5))
        _git(tmp_path, "add", "-A")
        _git(tmp_path, "commit", "-qm", md5[:8])
    hist = LockHistory(tmp_path)
    assert [r.stages["train"]["outs"][0]["md5"] for r in hist.commits()] == [b, a]
    assert resolve_model(tmp_path, "current", hist).version == b
    assert resolve_model(tmp_path, "a1b2c30", hist).version == a
    assert resolve_model(tmp_path, a, hist).how == "dvc.lock history"
    with pytest.raises(LineageError, match="ambiguous"):
        resolve_model(tmp_path, "a1b2c3", hist)
    with pytest.raises(LineageError, match="not a model version"):
        resolve_model(tmp_path, "a1b2c", hist)
    with pytest.raises(LineageError, match="unknown model version"):
        resolve_model(tmp_path, "f" * 32, hist)
    with pytest.raises(LineageError, match="no production model"):
        resolve_model(tmp_path, "production", hist)
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "production.json").write_text(json.dumps({"version": a}))
    assert resolve_model(tmp_path, "production", hist).version == a
