"""The chain as Dagster assets: one multi-asset per DVC stage, built from the StageSpec
table (mlops_assets/pipeline.py) and dvc.yaml.

Each asset runs the same stage function `dvc repro` runs, in-process, then commits the
stage to DVC and reports the md5 from dvc.lock as its data version."""


import hashlib
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets import stages as st
from mlops_assets.core.ingest import batch_key
from mlops_assets.core.layout import RUN_PARAMS
from mlops_assets.core.run_params import active_overrides, load_run_params, write_run_params
from mlops_assets.defs.metadata import (
    asset_metadata,
    check_results,
    validation_failure_check,
)
from mlops_assets.pipeline import (
    SPECS,
    STAGE_ASSETS,
    StageSpec,
    asset_deps,
    asset_outs,
    project_root,
    stage_code_files,
)
from mlops_assets.repo.dvc_bridge import commit_stage, lock_outs, record_audit, repo_lock

BATCHES = dg.DynamicPartitionsDefinition(name="batches")
OWNERS = ["team:ml-platform"]
PARTITION_TAG = "dagster/partition"


class TrainConfig(dg.Config):
    """Hyperparameters editable in the Launchpad. Values set here become this run's `train`
    section of data/run_params.yaml (never params.yaml, the person's file) before training,
    so DVC pins exactly what the model was trained with. They stay in force for later runs
    without config until a run sets the section again or `mlops-assets run-params reset`."""

    learning_rate: float | None = None
    max_iter: int | None = None
    max_leaf_nodes: int | None = None
    min_samples_leaf: int | None = None
    l2_regularization: float | None = None
    operating_fpr: float | None = None


class SplitConfig(dg.Config):
    """The split window, editable in the Launchpad and set by the drift-triggered retrain
    (defs/sensors.py). Written to the `split` section of data/run_params.yaml (never
    params.yaml) before splitting, so DVC pins the window a model was trained on; it stays
    until the next retrain or `mlops-assets run-params reset`."""

    cutoff: str | None = None
    holdout_end: str | None = None


def _code_version(stage: str) -> str:
    root = project_root()
    h = hashlib.md5()
    for rel in stage_code_files(root, stage):
        h.update(rel.encode())
        h.update((root / rel).read_bytes())
    return h.hexdigest()[:16]


def _partition_keys(context: dg.AssetExecutionContext, stage: str) -> list[str] | None:
    """The batches a run is for: a partitioned stage's own keys; for the drift stage, the
    batch partition of the run (a landing run of one batch reports on that batch)."""
    if SPECS[stage].partitioned and context.has_partition_key:
        return list(context.partition_keys)
    if stage == "drift" and context.run.tags.get(PARTITION_TAG):
        return [context.run.tags[PARTITION_TAG]]
    return None


def _apply_run_config(context: dg.AssetExecutionContext, root: Path, section: str,
                      overrides: dict[str, Any]) -> dict[str, Any]:
    """This run's config becomes `section` of the run params (params.yaml is never written);
    without config the overrides of an earlier run stay, and the log says so. Returns the
    metadata that shows which run params the stage used."""
    if overrides:
        write_run_params(root, section, overrides)
        context.log.info(f"{RUN_PARAMS} {section}: {overrides} (this run's config)")
        source = "this run's config"
    else:
        kept = load_run_params(root)[section]
        source = "an earlier run's config (kept)" if kept else "none: params.yaml alone"
        if kept:
            context.log.warning(f"{RUN_PARAMS} {section} from an earlier run still applies: "
                                f"{kept}; `mlops-assets run-params reset` drops it")
    active = active_overrides({section: load_run_params(root)[section]})
    return {"run_params/file": RUN_PARAMS, "run_params/source": source,
            "run_params/overrides": dg.MetadataValue.json(active)}


def _run(context: dg.AssetExecutionContext, stage: str,
         overrides: dict[str, Any] | None = None, section: str | None = None) -> Iterator[Any]:
    root = project_root()
    keys = _partition_keys(context, stage)
    run_meta: dict[str, Any] = {}
    with repo_lock(root):
        if section:
            run_meta = _apply_run_config(context, root, section, overrides or {})
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
            **run_meta,
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
    keys = [batch_key(Path(name)) for name in result.metadata.get("batches", [])]
    existing = set(context.instance.get_dynamic_partitions(BATCHES.name))
    new = [k for k in keys if k not in existing]
    if new:
        context.instance.add_dynamic_partitions(BATCHES.name, new)
        context.log.info(f"registered {len(new)} new batch partitions")


def _asset_specs(spec: StageSpec, root: Path) -> list[dg.AssetSpec]:
    deps, outs = asset_deps(root), asset_outs(root)
    doc = inspect.cleandoc(st.STAGES[spec.name].__doc__ or "")
    return [dg.AssetSpec(
        key=a.key,
        deps=deps[a.key],
        group_name=a.group,
        description=f"{doc}\n\nDVC stage `{spec.name}` (dvc.yaml); outputs: "
                    + ", ".join(f"`{p}`" for p in outs[a.key]),
        kinds=set(spec.kinds),
        owners=OWNERS,
        code_version=_code_version(spec.name),
        skippable=spec.name == "validate",
        metadata={"dvc/stage": spec.name},
    ) for a in spec.assets]


def _build_stage_asset(stage: str) -> dg.AssetsDefinition:
    spec = SPECS[stage]
    check_specs = [dg.AssetCheckSpec(c.name, asset=a.key, blocking=c.blocking,
                                     description=c.description)
                   for a in spec.assets for c in a.checks]
    common: dict[str, Any] = dict(
        name=stage, specs=_asset_specs(spec, project_root()), check_specs=check_specs or None,
        partitions_def=BATCHES if spec.partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run(),  # one run per chain, also for `dg launch`
        can_subset=False,
    )

    if stage == "train":
        @dg.multi_asset(**common)
        def train_asset(context: dg.AssetExecutionContext, config: TrainConfig):
            overrides = {k: v for k, v in config.model_dump().items() if v is not None}
            yield from _run(context, stage, overrides, section="train")

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
