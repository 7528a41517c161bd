"""The chain's shape in one place: which DVC stage materialises which Dagster assets.

`dvc.yaml` holds the stage deps and outs; the Dagster assets take their deps from it
through this map, and a test fails if the two graphs ever disagree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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


def load_params(root: Path) -> dict[str, Any]:
    with open(root / "params.yaml") as f:
        return yaml.safe_load(f)


def _interpolate(value: str, params: dict[str, Any]) -> str:
    """Resolve DVC's ${a.b} templating against params.yaml, as `dvc` itself does."""
    import re

    def lookup(m: re.Match[str]) -> str:
        node: Any = params
        for part in m.group(1).split("."):
            node = node[part]
        return str(node)

    return re.sub(r"\$\{\s*([\w.]+)\s*\}", lookup, value)


def _paths(entries: list[Any] | None, params: dict[str, Any]) -> list[str]:
    out = []
    for e in entries or []:
        path = next(iter(e)) if isinstance(e, dict) else e
        out.append(_interpolate(str(path), params).rstrip("/"))
    return out


def dvc_stages(root: Path) -> dict[str, dict[str, list[str]]]:
    """Each stage's resolved deps and outs (outs include metrics and plots files)."""
    with open(root / "dvc.yaml") as f:
        spec = yaml.safe_load(f)
    params = load_params(root)
    stages: dict[str, dict[str, list[str]]] = {}
    for name, st in spec["stages"].items():
        outs = (_paths(st.get("outs"), params) + _paths(st.get("metrics"), params)
                + _paths(st.get("plots"), params))
        stages[name] = {"deps": _paths(st.get("deps"), params), "outs": outs}
    return stages


def dvc_stage_edges(root: Path) -> set[tuple[str, str]]:
    """(upstream, downstream) stage pairs: B depends on A when a dep of B is, or lies
    inside, an out of A."""
    stages = dvc_stages(root)
    edges = set()
    for down, st in stages.items():
        for dep in st["deps"]:
            for up, ust in stages.items():
                if up == down:
                    continue
                if any(dep == o or dep.startswith(o + "/") for o in ust["outs"]):
                    edges.add((up, down))
    return edges


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
