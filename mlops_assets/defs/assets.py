"""The chain as Dagster assets: one multi-asset per DVC stage, built from dvc.yaml.

Each asset runs the same stage function `dvc repro` runs, in-process, then commits the
stage to DVC and reports the md5 from dvc.lock as its data version."""


import hashlib
from collections.abc import Iterator
from typing import Any

import dagster as dg

from mlops_assets import stages as st
from mlops_assets.defs.metadata import CHECKS, asset_metadata, check_results
from mlops_assets.pipeline import (
    ASSET_GROUPS,
    STAGE_ASSETS,
    asset_deps,
    asset_outs,
    project_root,
    stage_code_files,
)
from mlops_assets.repo.dvc_bridge import commit_stage, lock_outs, record_audit, repo_lock

BATCHES = dg.DynamicPartitionsDefinition(name="batches")
PARTITIONED_STAGES = {"snapshot": BATCHES}
OWNERS = ["team:ml-platform"]
KINDS: dict[str, set[str]] = {
    "landing": {"parquet"},
    "snapshot": {"parquet", "dvc"},
    "validate": {"pandera", "pandas"},
    "features": {"pandas"},
    "split": {"pandas"},
    "train": {"scikitlearn"},
    "evaluate": {"scikitlearn"},
    "drift": {"scipy"},
}


class TrainConfig(dg.Config):
    """Hyperparameters editable in the Launchpad. A value set here is written back into
    params.yaml before training, so DVC pins exactly what the model was trained with."""

    learning_rate: float | None = None
    max_iter: int | None = None
    max_leaf_nodes: int | None = None
    min_samples_leaf: int | None = None
    l2_regularization: float | None = None
    operating_fpr: float | None = None


class SplitConfig(dg.Config):
    """The split window, editable in the Launchpad and set by the drift-triggered retrain
    (defs/sensors.py). Written back into params.yaml's split section before splitting, so
    DVC pins the window a model was trained on."""

    cutoff: str | None = None
    holdout_end: str | None = None


def _code_version(stage: str) -> str:
    root = project_root()
    h = hashlib.md5()
    for rel in stage_code_files(root, stage):
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:16]


def _run(context: dg.AssetExecutionContext, stage: str,
         overrides: dict[str, Any] | None = None, section: str = "train") -> Iterator[Any]:
    root = project_root()
    keys = None
    if stage in PARTITIONED_STAGES and context.has_partition_key:
        keys = list(context.partition_keys)
    with repo_lock(root):
        if overrides:
            from mlops_assets.repo.params_edit import update_params_section

            update_params_section(root / "params.yaml", section, overrides)
            context.log.info(f"params.yaml {section} section updated from run config: {overrides}")
        try:
            result = st.run_stage(stage, root, partition_keys=keys)
        except Exception as exc:
            failed = _failure_results(context, stage, exc)
            if failed is None:
                raise
            record_audit(root, _validation_failure_event(context, exc), locked=True)
            yield from failed
            return
        commit_stage(root, stage)
        outs = lock_outs(root, stage)
        if stage == "drift":
            record_audit(root, _drift_event(context, result, outs), locked=True)
    if stage == "landing":
        _register_batches(context, result)
    owned = asset_outs(root)
    for key in STAGE_ASSETS[stage]:
        md5 = outs.get(owned[key][0])
        meta = asset_metadata(key, result, root)
        meta.update({
            "dvc/stage": stage,
            "dvc/md5": md5 or "",
            "dvc/outs": dg.MetadataValue.json({p: outs.get(p) for p in owned[key]}),
            "compute_seconds": round(result.compute_seconds, 3),
        })
        yield dg.MaterializeResult(
            asset_key=key,
            data_version=dg.DataVersion(md5) if md5 else None,
            metadata=meta,
            check_results=check_results(key, result, root),
        )


def _failure_results(context: dg.AssetExecutionContext, stage: str,
                     exc: Exception) -> list[Any] | None:
    """A validation failure becomes a failed blocking check, shown with counts and examples;
    the asset is not materialised, so the previous version and everything downstream stay."""
    report = getattr(exc, "report", None)
    if stage != "validate" or report is None:
        return None
    from mlops_assets.defs.metadata import validation_failure_check

    context.log.error(str(exc))
    return [validation_failure_check(report, str(exc))]


def _drift_event(context: dg.AssetExecutionContext, result: st.StageResult,
                 outs: dict[str, str]) -> dict[str, Any]:
    """Every drift result, negative ones too, goes to the audit log: "nothing drifted on
    batch X against model Y" is evidence an auditor needs as much as an alarm."""
    rep = result.metadata["report"]
    lineage = rep.get("lineage", {})
    drifted = [f if isinstance(f, str) else f.get("name")
               for f in (rep.get("drifted_features") or [])]
    return {"kind": "drift", "action": "drift_result", "by": "dagster",
            "run_id": context.run.run_id, "severity": rep.get("severity"),
            "drift_share": rep.get("drift_share"), "drifted_features": drifted[:20],
            "batch": lineage.get("current_batch"), "window": lineage.get("current_window"),
            "model_version": lineage.get("model_version") or lineage.get("model_md5"),
            "report_md5": outs.get(st.DRIFT_JSON),
            "reason": f"drift report: severity {rep.get('severity')}"}


def _validation_failure_event(context: dg.AssetExecutionContext, exc: Exception) -> dict[str, Any]:
    rep = exc.report.to_dict()  # type: ignore[attr-defined]
    return {"kind": "validation", "action": "validation_failed", "by": "dagster",
            "run_id": context.run.run_id, "failure_counts": rep.get("failure_counts", {}),
            "schema_drift": rep.get("schema_drift", {}),
            "examples": rep.get("errors", [])[:5], "reason": str(exc).splitlines()[0][:500]}


def _register_batches(context: dg.AssetExecutionContext, result: st.StageResult) -> None:
    from pathlib import Path

    from mlops_assets.core.ingest import batch_key

    keys = [batch_key(Path(name)) for name in result.metadata.get("batches", [])]
    existing = set(context.instance.get_dynamic_partitions(BATCHES.name))
    new = [k for k in keys if k not in existing]
    if new:
        context.instance.add_dynamic_partitions(BATCHES.name, new)
        context.log.info(f"registered {len(new)} new batch partitions")


def _build_stage_asset(stage: str) -> dg.AssetsDefinition:
    root = project_root()
    deps = asset_deps(root)
    doc = (st.STAGES[stage].__doc__ or "").strip()
    specs = [
        dg.AssetSpec(
            key=key,
            deps=deps[key],
            group_name=ASSET_GROUPS[key],
            description=f"{doc}\n\nDVC stage `{stage}` (dvc.yaml); outputs: "
                        + ", ".join(f"`{p}`" for p in asset_outs(root)[key]),
            kinds=KINDS[stage],
            owners=OWNERS,
            code_version=_code_version(stage),
            skippable=stage == "validate",
            metadata={"dvc/stage": stage},
        )
        for key in STAGE_ASSETS[stage]
    ]
    check_specs = [dg.AssetCheckSpec(name, asset=key, blocking=blocking, description=desc)
                   for key in STAGE_ASSETS[stage] for name, blocking, desc in CHECKS.get(key, [])]
    common: dict[str, Any] = dict(
        name=stage, specs=specs, check_specs=check_specs or None,
        partitions_def=PARTITIONED_STAGES.get(stage),
        backfill_policy=dg.BackfillPolicy.single_run(),  # one run per chain, also for `dg launch`
        can_subset=False,
    )

    if stage == "train":
        @dg.multi_asset(**common)
        def train_asset(context: dg.AssetExecutionContext, config: TrainConfig):
            overrides = {k: v for k, v in config.model_dump().items() if v is not None}
            yield from _run(context, stage, overrides)

        return train_asset

    if stage == "split":
        @dg.multi_asset(**common)
        def split_asset(context: dg.AssetExecutionContext, config: SplitConfig):
            overrides = {k: v for k, v in config.model_dump().items() if v is not None}
            yield from _run(context, stage, overrides, section="split")

        return split_asset

    @dg.multi_asset(**common)
    def stage_asset(context: dg.AssetExecutionContext):
        yield from _run(context, stage)

    return stage_asset


stage_assets = [_build_stage_asset(s) for s in STAGE_ASSETS]
