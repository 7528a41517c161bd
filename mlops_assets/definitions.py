"""Dagster entry point: `dg dev`, `dagster dev -w workspace.yaml` and `dg launch` load this."""

from pathlib import Path

import dagster as dg

from mlops_assets import defs as defs_folder


@dg.definitions
def defs() -> dg.Definitions:
    # The defs folder of the installed package, found from the module rather than from a
    # pyproject.toml above it: a non-editable install has none. The project the assets act
    # on is pipeline.project_root() (the process's working directory, MLOPS_ASSETS_ROOT).
    tree = dg.ComponentTree.from_module(defs_folder, project_root=Path(__file__).resolve().parent.parent)
    # One process runs the whole chain: no per-step interpreter start-up, and stage runs
    # are serialised on the DVC repository anyway.
    return dg.Definitions.merge(tree.build_defs(), dg.Definitions(executor=dg.in_process_executor))
