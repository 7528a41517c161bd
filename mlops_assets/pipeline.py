"""The chain's shape in one place: one `StageSpec` per DVC stage, naming the Dagster assets
it materialises with their group, kinds, files and asset checks.

`dvc.yaml` holds the stage deps and outs; the Dagster assets take their deps from it (an
asset depends on the assets owning its stage's deps), and a test fails if the two graphs
ever disagree. Nothing here imports Dagster: `defs/` turns these specs into assets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlops_assets.core import layout
from mlops_assets.core.dvcgraph import dvc_stage_edges, dvc_stages, inside, load_params
from mlops_assets.core.run_params import effective_params

# dvc.yaml is read by core.dvcgraph; these names stay importable from here for the adapters
# (load_params: params.yaml alone; effective_params: with the run params on top).
__all__ = ["ASSETS", "ASSET_GROUPS", "ASSET_STAGE", "SPECS", "STAGE_ASSETS", "STAGE_SPECS",
           "CheckSpec", "StageAsset", "StageSpec", "asset_deps", "asset_outs", "dvc_stage_edges",
           "dvc_stages", "effective_params", "find_project_root", "load_params", "project_root",
           "stage_code_files", "ProjectNotFoundError", "ROOT_ENV"]


@dataclass(frozen=True)
class CheckSpec:
    """An asset check. `blocking`: a failure stops everything downstream in the run."""

    name: str
    description: str
    blocking: bool = False
    severity: Literal["ERROR", "WARN"] = "ERROR"


@dataclass(frozen=True)
class StageAsset:
    """One Dagster asset of a stage: it owns the stage's dvc.yaml outs that are, or lie
    inside, `files` (its data version is the md5 of the first of them)."""

    key: str
    group: str
    files: tuple[str, ...]
    checks: tuple[CheckSpec, ...] = ()


@dataclass(frozen=True)
class StageSpec:
    """A DVC stage (`python -m mlops_assets.stages NAME`) and the assets it materialises.
    `partitioned`: the stage runs per landing batch (Dagster's `batches` partitions)."""

    name: str
    assets: tuple[StageAsset, ...]
    kinds: frozenset[str]
    partitioned: bool = False


STAGE_SPECS: tuple[StageSpec, ...] = (
    StageSpec("landing", (StageAsset("landing_batches", "ingest", (layout.LANDING,)),),
              frozenset({"parquet"})),
    StageSpec("snapshot", (StageAsset("raw_snapshots", "ingest", (layout.SNAPSHOTS,)),),
              frozenset({"parquet", "dvc"}), partitioned=True),
    StageSpec("validate", (StageAsset(
        "validated_dataset", "validation", (layout.VALIDATED, layout.VALIDATION_REPORT),
        (CheckSpec("validation_passed", "Every snapshot meets the dataset contract (lazy "
                   "pandera validation). Blocking: nothing downstream runs on invalid data.",
                   blocking=True),)),),
        frozenset({"pandera", "pandas"})),
    StageSpec("features", (StageAsset("feature_table", "features",
                                      (layout.FEATURES, layout.FEATURE_META)),),
              frozenset({"pandas"})),
    StageSpec("split", (
        StageAsset("training_set", "training", (layout.TRAIN, layout.SPLIT_SUMMARY), (
            CheckSpec("no_rows_at_or_after_cutoff", "No row of the written training file "
                      "is at or after params split.cutoff (no leakage), checked on the file "
                      "itself. Blocking: a leaky split never reaches training.",
                      blocking=True),)),
        StageAsset("holdout_set", "training", (layout.HOLDOUT,)),
    ), frozenset({"pandas"})),
    StageSpec("train", (StageAsset("model", "training", (
        layout.MODEL, layout.MODEL_RECORD, layout.REFERENCE_PROFILE, layout.REFERENCE_VALUES)),),
        frozenset({"scikitlearn"})),
    StageSpec("evaluate", (StageAsset("evaluation", "evaluation", (layout.EVALUATION, layout.PLOTS), (
        CheckSpec("promotion_gate", "The candidate is not worse than production (or the rule "
                  "baseline) beyond params.evaluate.tolerance.", severity="WARN"),)),),
        frozenset({"scikitlearn"})),
    StageSpec("drift", (StageAsset("drift_report", "monitoring", (layout.DRIFT_JSON, layout.DRIFT_HTML), (
        # "The newest batch" (= the one that landed last): defs/monitoring_assets.py
        # rewrites that phrase for live_drift_report's check
        CheckSpec("no_significant_drift", "The newest batch shows no significant drift "
                  "against the training reference. Fails on significant drift so "
                  "automation can react."),)),),
        frozenset({"scipy"})),
)

SPECS: dict[str, StageSpec] = {s.name: s for s in STAGE_SPECS}
ASSETS: dict[str, StageAsset] = {a.key: a for s in STAGE_SPECS for a in s.assets}

# Views of the table, by the names the rest of the code (and other branches) import.
STAGE_ASSETS: dict[str, tuple[str, ...]] = {s.name: tuple(a.key for a in s.assets)
                                            for s in STAGE_SPECS}
ASSET_STAGE: dict[str, str] = {a: s for s, assets in STAGE_ASSETS.items() for a in assets}
ASSET_GROUPS: dict[str, str] = {k: a.group for k, a in ASSETS.items()}


# ---------------------------------------------------------------- the project root

ROOT_ENV = "MLOPS_ASSETS_ROOT"
ROOT_MARKER = "dvc.yaml"


class ProjectNotFoundError(RuntimeError):
    """No project where the user is: the message names the directory searched."""


def find_project_root(start: Path) -> Path | None:
    """The nearest of `start` and its ancestors holding dvc.yaml (as git and DVC find
    theirs), None when there is none."""
    start = start.resolve()
    return next((d for d in (start, *start.parents) if (d / ROOT_MARKER).is_file()), None)


def project_root() -> Path:
    """The project this process acts on: MLOPS_ASSETS_ROOT (the CLI's `--root` sets it),
    else the nearest ancestor of the working directory holding dvc.yaml. Never where the
    package is installed: an editable install would otherwise act on its own checkout."""
    env = os.environ.get(ROOT_ENV)
    if env:
        root = Path(env).expanduser().resolve()
        if not (root / ROOT_MARKER).is_file():
            raise ProjectNotFoundError(f"{ROOT_ENV}={env}: {root} holds no {ROOT_MARKER}")
        return root
    cwd = Path.cwd()
    found = find_project_root(cwd)
    if found is None:
        raise ProjectNotFoundError(
            f"no mlops_assets project here: neither {cwd.resolve()} nor any of its parents "
            f"holds {ROOT_MARKER} (cd into a project, or pass --root DIR / set {ROOT_ENV})")
    return found


def _within(path: str, outs: list[str] | tuple[str, ...]) -> bool:
    return any(inside(path, o) for o in outs)


# ---------------------------------------------------------------- assets from dvc.yaml

def asset_outs(root: Path) -> dict[str, list[str]]:
    """Asset key -> the DVC outs it owns, in dvc.yaml order; its first out's md5 is its
    data version. The landing out is params dataset.landing_dir, whatever its value."""
    stages = dvc_stages(root)
    owned: dict[str, list[str]] = {}
    for s in STAGE_SPECS:
        outs = stages[s.name]["outs"]
        for a in s.assets:
            mine = [o for o in outs if _within(o, a.files)]
            owned[a.key] = mine if len(s.assets) > 1 else (mine or outs)
    return owned


def asset_deps(root: Path) -> dict[str, list[str]]:
    """Asset key -> upstream asset keys, derived from dvc.yaml: the one source of truth."""
    stages = dvc_stages(root)
    owners = asset_outs(root)
    deps: dict[str, list[str]] = {}
    for stage, assets in STAGE_ASSETS.items():
        ups: list[str] = []
        for dep in stages[stage]["deps"]:
            for asset, outs in owners.items():
                if ASSET_STAGE[asset] != stage and asset not in ups and _within(dep, outs):
                    ups.append(asset)
        for a in assets:
            deps[a] = ups
    return deps


def stage_code_files(root: Path, stage: str) -> list[str]:
    """The Python files a stage depends on (its code version is their hash)."""
    files = [d for d in dvc_stages(root)[stage]["deps"] if d.endswith(".py")]
    return sorted(set(files) | {"mlops_assets/stages.py", "mlops_assets/core/io.py"})
