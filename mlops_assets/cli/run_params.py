"""`mlops-assets run-params ...`: the run-scoped params in force (data/run_params.yaml).

    mlops-assets run-params show [--json]   the overrides over params.yaml, and the effective
                                            split and train sections the next run will use
    mlops-assets run-params reset           drop every override: params.yaml alone applies
    mlops-assets run-params init            create the empty file if missing (every stage
                                            command does; needed before `dvc status` or
                                            `dvc repro` when `dvc pull` brought the data)

A drift retrain's window and Launchpad hyperparameters live there, never in params.yaml,
and stay until a later run sets them again or `reset` empties them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlops_assets.core.io import DataError
from mlops_assets.core.layout import RUN_PARAMS
from mlops_assets.core.run_params import (
    RUN_SECTIONS,
    active_overrides,
    effective_params,
    ensure_run_params,
    load_run_params,
    reset_run_params,
)
from mlops_assets.pipeline import project_root
from mlops_assets.repo.dvc_bridge import repo_lock


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root).resolve() if args.root else project_root()


def _show(args: argparse.Namespace) -> int:
    root = _root(args)
    run = load_run_params(root)
    eff = effective_params(root)
    if args.json:
        print(json.dumps({"file": RUN_PARAMS, "exists": (root / RUN_PARAMS).is_file(),
                          "overrides": active_overrides(run),
                          "effective": {s: eff.get(s) for s in RUN_SECTIONS}},
                         indent=2, sort_keys=True, default=str))
        return 0
    active = active_overrides(run)
    if not active:
        print(f"{RUN_PARAMS}: no overrides; params.yaml alone applies")
    else:
        print(f"{RUN_PARAMS}: overrides over params.yaml (from the last run that set them; "
              "`mlops-assets run-params reset` drops them)")
        for key, value in active.items():
            print(f"  {key} = {value!r}")
    for s in RUN_SECTIONS:
        print(f"effective {s}: {json.dumps(eff.get(s), sort_keys=True, default=str)}")
    return 0


def _reset(args: argparse.Namespace) -> int:
    root = _root(args)
    with repo_lock(root):  # never under a stage that is reading the file
        dropped = reset_run_params(root)
    if dropped:
        print(f"{RUN_PARAMS}: dropped {active_overrides(dropped)}; the next split/train run "
              "(dvc repro or a materialisation) uses params.yaml alone")
    else:
        print(f"{RUN_PARAMS}: no overrides to drop")
    return 0


def _init(args: argparse.Namespace) -> int:
    root = _root(args)
    existed = (root / RUN_PARAMS).is_file()
    with repo_lock(root):
        ensure_run_params(root)
    print(f"{RUN_PARAMS}: {'already there' if existed else 'created, no overrides'}")
    return 0


def _guarded(func: Any) -> Any:
    """Clear errors (exit 2, on stderr) instead of tracebacks."""
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except DataError as e:
            print(f"run-params: {e}", file=sys.stderr)
            return 2
    return run


def add_run_params_parser(sub: Any) -> argparse.ArgumentParser:
    """Mount `run-params` and its sub-commands on the main parser's sub-parsers."""
    p = sub.add_parser("run-params", help="run-scoped params (retrain window, Launchpad "
                                          "hyperparameters): show, reset")
    p.add_argument("--root", type=Path, help="project root (default: mlops-assets --root, "
                   "MLOPS_ASSETS_ROOT, else the nearest dvc.yaml from the cwd up)")
    rs = p.add_subparsers(dest="run_params_command", required=True)
    q = rs.add_parser("show", help="the overrides in force and the effective sections")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_guarded(_show))
    q = rs.add_parser("reset", help="drop every override (params.yaml alone applies)")
    q.set_defaults(func=_guarded(_reset))
    q = rs.add_parser("init", help="create the empty file if missing (before dvc status/repro)")
    q.set_defaults(func=_guarded(_init))
    return p
