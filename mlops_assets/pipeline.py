"""The chain's shape in one place: which DVC stage materialises which Dagster assets.

`dvc.yaml` holds the stage deps and outs; the Dagster assets take their deps from it
through this map, and a test fails if the two graphs ever disagree."""

from __future__ import annotations

from pathlib import Path

from mlops_assets.core.dvcgraph import dvc_stage_edges, dvc_stages, load_params

# dvc.yaml is read by core.dvcgraph; these names stay importable from here for the adapters.
__all__ = ["ASSET_GROUPS", "ASSET_OUTS_OVERRIDE", "ASSET_STAGE", "STAGE_ASSETS", "asset_deps",
           "asset_outs", "dvc_stage_edges", "dvc_stages", "load_params", "project_root",
           "stage_code_files"]

# DVC stage name -> Dagster asset keys it materialises, in chain order.
STAGE_ASSETS: dict[str, tuple[str, ...]] = {
    "landing": ("landing_batches",),
    "snapshot": ("raw_snapshots",),
    "validate": ("validated_dataset",),
    "features": ("feature_table",),
    "split": ("training_set", "holdout_set"),
    "train": ("model",),
    "evaluate": ("evaluation",),
    "drift": ("drift_report",),
}

ASSET_STAGE: dict[str, str] = {a: s for s, assets in STAGE_ASSETS.items() for a in assets}

# The Dagster group (pipeline stage family) of each asset, shown in the UI.
ASSET_GROUPS: dict[str, str] = {
    "landing_batches": "ingest",
    "raw_snapshots": "ingest",
    "validated_dataset": "validation",
    "feature_table": "features",
    "training_set": "training",
    "holdout_set": "training",
    "model": "training",
    "evaluation": "evaluation",
    "drift_report": "monitoring",
}


def project_root() -> Path:
    """The checkout that holds dvc.yaml: MLOPS_ASSETS_ROOT, else the package's parent."""
    import os

    env = os.environ.get("MLOPS_ASSETS_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parent.parent


# Which of a multi-asset stage's outs belong to which asset (default: all of them).
ASSET_OUTS_OVERRIDE: dict[str, list[str]] = {
    "training_set": ["data/split/train.parquet", "data/split/split.json"],
    "holdout_set": ["data/split/holdout.parquet"],
}


def asset_outs(root: Path) -> dict[str, list[str]]:
    """Asset key -> the DVC outs it owns; its first out's md5 is its data version."""
    stages = dvc_stages(root)
    return {a: ASSET_OUTS_OVERRIDE.get(a, stages[s]["outs"])
            for s, assets in STAGE_ASSETS.items() for a in assets}


def asset_deps(root: Path) -> dict[str, list[str]]:
    """Asset key -> upstream asset keys, derived from dvc.yaml: the one source of truth."""
    stages = dvc_stages(root)
    owners = asset_outs(root)
    deps: dict[str, list[str]] = {}
    for stage, assets in STAGE_ASSETS.items():
        ups: list[str] = []
        for dep in stages[stage]["deps"]:
            for asset, outs in owners.items():
                if ASSET_STAGE[asset] == stage or asset in ups:
                    continue
                if any(dep == o or dep.startswith(o + "/") for o in outs):
                    ups.append(asset)
        for a in assets:
            deps[a] = ups
    return deps


def stage_code_files(root: Path, stage: str) -> list[str]:
    """The Python files a stage depends on (its code version is their hash)."""
    files = [d for d in dvc_stages(root)[stage]["deps"] if d.endswith(".py")]
    return sorted(set(files) | {"mlops_assets/stages.py", "mlops_assets/core/io.py"})
