"""Run the whole chain through Dagster from Python: what `mlops-assets demo` does.

Two runs, as a person would in the UI: land the batches (which registers one partition
per batch), then everything else with the snapshot asset over all batch partitions."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from mlops_assets.core.layout import DRIFT_JSON, EVALUATION, MODEL_RECORD
from mlops_assets.definitions import defs as project_defs
from mlops_assets.defs.assets import BATCHES
from mlops_assets.defs.metadata import CHECKS

warnings.filterwarnings("ignore", category=dg.BetaWarning)


def load_defs() -> dg.Definitions:
    """The project's Definitions (what the UI and the daemon load)."""
    return project_defs()


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, selection: str,
             tags: dict[str, str] | None = None) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    sel = dg.AssetSelection.from_string(selection)
    subset = job.get_subset(asset_selection=sel.resolve(defs.resolve_asset_graph()))
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    return subset.execute_in_process(run_config=quiet, instance=instance, tags=tags or {},
                                     raise_on_error=False)


def materialize_chain(root: Path, progress: bool = True,
                      instance: dg.DagsterInstance | None = None) -> dict[str, Any]:
    """Land the batches, then run the rest of the chain over all batch partitions; the
    summary says whether it worked (and what failed) and carries the headline reports."""
    defs = load_defs()
    instance = instance or dg.DagsterInstance.get()
    say = print if progress else (lambda *a, **k: None)
    say("[1/2] landing the sample batches ...")
    first = _execute(defs, instance, 'key:"landing_batches"')
    runs = [first]
    if first.success:
        keys = instance.get_dynamic_partitions(BATCHES.name)
        say(f"[2/2] snapshots of {len(keys)} batches -> validation -> features -> split -> "
            "train -> evaluate -> drift ...")
        tags = {ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
        # promotion (production_model) needs a person's approval: never part of the chain run
        chain = ('* and not key:"landing_batches" and not key:"production_model"'
                 ' and not group:"live_monitoring"')  # live traffic has partitions of its own
        runs.append(_execute(defs, instance, chain, tags))
    failed, errors = _failures(runs)
    success = all(r.success for r in runs) and not failed and len(runs) == 2
    summary: dict[str, Any] = {"success": success, "run_ids": [r.run_id[:8] for r in runs],
                               "failed_steps": failed, "errors": errors}
    if success:
        summary["evaluation"] = json.loads((root / EVALUATION).read_text())
        summary["drift"] = json.loads((root / DRIFT_JSON).read_text())
        summary["model_md5"] = json.loads((root / MODEL_RECORD).read_text())["model_md5"]
    return summary


def _failures(runs: list[dg.ExecuteInProcessResult]) -> tuple[list[str], list[str]]:
    """Failed steps and failed blocking checks of the runs, with their first error lines
    (a failed blocking check stops the chain as surely as an exception)."""
    blocking = {name for checks in CHECKS.values() for name, is_blocking, _ in checks if is_blocking}
    failed, errors = [], []
    for r in runs:
        for ev in r.all_events:
            data = ev.event_specific_data
            if ev.is_step_failure:
                failed.append(ev.step_key)
                if data.error and "AssetCheckFailedError" not in (data.error.cls_name or ""):
                    errors.append(data.error.message.strip().splitlines()[0])
            elif (ev.event_type_value == "ASSET_CHECK_EVALUATION" and not data.passed
                  and data.severity == dg.AssetCheckSeverity.ERROR
                  and data.check_name in blocking):
                failed.append(f"{data.asset_key.to_user_string()} (check {data.check_name})")
                errors.extend((data.description or f"check {data.check_name} failed").splitlines())
    return failed, errors
