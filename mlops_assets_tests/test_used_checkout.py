"""The tests pass in a checkout that has been used: after `make demo` and `make ui` a
checkout has an edited params.yaml (a sensor retrain writes split.cutoff), a registry with
a production version, a stale dvc.lock and outputs under data/. Project copies take code
from the working tree but that state from git HEAD, so none of it reaches a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.core.io import md5_file
from mlops_assets.core.registry import Registry
from mlops_assets.repo.params_edit import update_params_section
from mlops_assets_tests.conftest import VENV_BIN, make_project_copy

# fast-tier modules that build project copies (make_project_copy, small_project) or read
# the checkout's params.yaml
MODULES = ["mlops_assets_tests/core/test_registry.py", "mlops_assets_tests/test_stages.py",
           "mlops_assets_tests/core/test_split.py", "mlops_assets_tests/test_pipeline.py"]


def use(checkout: Path, tmp: Path) -> None:
    """Leave `checkout` as a person's would be after using it (nothing committed)."""
    update_params_section(checkout / "params.yaml", "split", {"cutoff": "2024-01-01"})
    src = tmp / "model"
    src.mkdir()
    (src / "model.skops").write_bytes(b"a model someone trained")
    md5 = md5_file(src / "model.skops")
    (src / "model.json").write_text(json.dumps({"model_md5": md5, "cutoff": "2024-01-01"}))
    (src / "evaluation.json").write_text(json.dumps({
        "model_md5": md5, "candidate": {"pr_auc": 0.9, "fpr": 0.01},
        "gate": {"eligible": True, "reference": "rule_baseline", "reasons": ["PASS"]}}))
    reg = Registry(checkout)
    v = reg.register(src / "model.skops", src / "model.json",
                     evaluation_path=src / "evaluation.json", by="ana", reason="trained")
    reg.approve(v, by="ana", reason="reviewed")
    reg.promote(v, "production", by="ana", reason="ship it")
    assert reg.pointer()["version"] == v
    lock = checkout / "dvc.lock"
    text = lock.read_text()
    lock.write_text(text.replace("md5: ", "md5: 0", 1))  # stale, as after a local run
    for rel in ("data/model/model.skops", "data/landing/week_00.parquet",
                "data/reports/evaluation.json", "registry/models.dvc"):
        (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
        (checkout / rel).write_bytes(b"output of a run, not a test fixture")
    (checkout / ".dvc" / "config.local").write_text("[cache]\n    dir = /nonexistent/cache\n")


@pytest.mark.slow
def test_fast_tests_pass_inside_a_used_checkout(tmp_path: Path) -> None:
    checkout = make_project_copy(tmp_path / "checkout")  # a git repo, HEAD = clean state
    use(checkout, tmp_path)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=checkout, capture_output=True,
                           text=True, check=True).stdout
    assert "params.yaml" in dirty and "registry/production.json" in dirty
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_ASSETS_ROOT", "DAGSTER_HOME")}
    env.update(PYTHONPATH=str(checkout), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-m", "not slow", *MODULES], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
