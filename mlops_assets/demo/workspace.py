"""The incident replay's workspace: a fresh copy of this checkout as a git repo of its own
(its own DVC cache, registry and Dagster instance), with params overridden so the replay
lands the normal weeks first and the daemon ticks every few seconds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from mlops_assets.core.generate import FraudScenario
from mlops_assets.core.layout import PRODUCTION_POINTER, REGISTRY_DIR
from mlops_assets.pipeline import project_root
from mlops_assets.repo.params_edit import update_params_section

# the checkout this package lives in (mlops_assets/demo/workspace.py -> the checkout), if any
SOURCE = Path(__file__).resolve().parents[2]


def source_checkout() -> Path:
    """The checkout the replay copies: the one this package's source lives in (an editable
    install or a clone), else, for a non-editable install, which has no checkout of its
    own, the project the user is in."""
    if (SOURCE / "dvc.yaml").is_file() and (SOURCE / "pyproject.toml").is_file():
        return SOURCE
    return project_root()

# read at definition load: the daemon ticks every few seconds, not every 30
FAST_AUTOMATION = {"landing_sensor_interval_seconds": 3, "drift_sensor_interval_seconds": 3,
                   "landing_settle_seconds": 2}

_GIT_IDENTITY = {"GIT_AUTHOR_NAME": "incident", "GIT_COMMITTER_NAME": "incident",
                 "GIT_AUTHOR_EMAIL": "incident@example.invalid",
                 "GIT_COMMITTER_EMAIL": "incident@example.invalid"}


def _project_files(src: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                         cwd=src, capture_output=True, text=True, check=True).stdout
    return [p for p in out.splitlines() if p and (src / p).is_file()]


def make_workspace(src: Path, dest: Path, overrides: dict[str, dict[str, Any]]) -> Path:
    """A copy of the project's source files as a fresh git repo, without data, lock or
    registry state (the pointer starts empty)."""
    for rel in _project_files(src):
        if rel == "dvc.lock" or (rel.startswith(f"{REGISTRY_DIR}/") and rel != PRODUCTION_POINTER):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    (dest / REGISTRY_DIR).mkdir(exist_ok=True)
    (dest / PRODUCTION_POINTER).write_text(
        json.dumps({"model_path": None, "record_path": None, "version": None}, indent=2,
                   sort_keys=True) + "\n")
    for section, values in overrides.items():
        update_params_section(dest / "params.yaml", section, values)
    env = {**os.environ, **_GIT_IDENTITY}
    for cmd in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                ["git", "commit", "-q", "-m", "incident replay workspace"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    (dest / ".dagster_home").mkdir(exist_ok=True)
    return dest


def scenario(src: Path, rows_per_week: int | None) -> tuple[FraudScenario, list[int], list[int]]:
    """The sample scenario of `src`'s params and its normal and holiday week indices."""
    sample = dict(yaml.safe_load((src / "params.yaml").read_text())["sample_data"])
    if rows_per_week:
        sample["rows_per_week"] = rows_per_week
    full = FraudScenario.from_params(sample)
    normal = [i for i in range(full.weeks) if not full.is_holiday_week(i)]
    holiday = [i for i in range(full.weeks) if full.is_holiday_week(i)]
    if not normal or not holiday:
        raise SystemExit("the sample scenario needs normal weeks before holiday weeks")
    return full, normal, holiday


def overrides(n_normal: int, rows_per_week: int | None,
              daemon: bool) -> dict[str, dict[str, Any]]:
    """params.yaml overrides: only the normal weeks land with the chain; a daemon replay
    gets the short sensor intervals."""
    out: dict[str, dict[str, Any]] = {"sample_data": {
        "weeks": n_normal, **({"rows_per_week": rows_per_week} if rows_per_week else {})}}
    if daemon:
        out["automation"] = dict(FAST_AUTOMATION)
    return out


class Workspace(NamedTuple):
    """A built workspace and the weeks of its scenario (by index)."""

    root: Path
    full: FraudScenario
    normal: list[int]
    holiday: list[int]


def setup(workdir: Path, rows_per_week: int | None, daemon: bool) -> Workspace:
    """Build the workspace in `workdir` and point this process at it (MLOPS_ASSETS_ROOT,
    DAGSTER_HOME, cwd). Call it before the Dagster definitions are imported: they read
    dvc.yaml and params.yaml of MLOPS_ASSETS_ROOT at import."""
    src = source_checkout()
    full, normal, holiday = scenario(src, rows_per_week)
    root = make_workspace(src, workdir, overrides(len(normal), rows_per_week, daemon))
    os.environ["MLOPS_ASSETS_ROOT"] = str(root)
    os.environ["DAGSTER_HOME"] = str(root / ".dagster_home")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.chdir(root)
    return Workspace(root, full, normal, holiday)
