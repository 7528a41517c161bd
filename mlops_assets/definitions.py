"""Dagster entry point: `dg dev`, `dagster dev -w workspace.yaml` and `dg launch` load this."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    # One process runs the whole chain: no per-step interpreter start-up, and stage runs
    # are serialised on the DVC repository anyway.
    return dg.Definitions.merge(loaded, dg.Definitions(executor=dg.in_process_executor))
