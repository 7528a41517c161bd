"""The model registry in Dagster: `model_candidate` registers what the chain just trained,
`production_model` is the promotion itself, with a person's approval given as run config.

Neither is a DVC stage (the registry is a file store of its own, core/registry.py), so both
carry the metadata `mlops_assets/dvc_mirrored: false` and the graph-agreement test leaves
them out. Their data version is the registry version: the md5 of the model bytes."""


from typing import Any

import dagster as dg

from mlops_assets.core.layout import EVALUATION, MODEL, MODEL_RECORD
from mlops_assets.core.registry import PRODUCTION, Registry, RegistryError
from mlops_assets.pipeline import project_root
from mlops_assets.repo.dvc_bridge import repo_lock, track_audit_log

NOT_MIRRORED = {"mlops_assets/dvc_mirrored": False}
REGISTRY_TAGS = {"mlops_assets/dvc_mirrored": "false"}
OWNERS = ["team:ml-platform"]
PROMOTION_CHECK = "promotion_allowed"
TRIGGER_TAG = "mlops_assets/trigger"  # set by defs/sensors.py on the runs it requests


class PromotionConfig(dg.Config):
    """Run config of a promotion (Launchpad). `approved_by` + `reason` record a person's
    sign-off of the version first; `version` (md5 or unique prefix) promotes an already
    registered version instead of the model the chain built last."""

    approved_by: str = ""
    reason: str = ""
    version: str = ""


def _launcher(context: dg.AssetExecutionContext) -> str:
    tags = context.run.tags if context.run else {}
    return tags.get("dagster/user") or tags.get("user") or f"dagster-run:{context.run.run_id[:8]}"


def _register_current(context: dg.AssetExecutionContext, reg: Registry) -> str:
    """Register data/model (+ its evaluation) under the repo lock, so a chain run cannot
    swap the model file between its hash and its copy."""
    root = reg.root
    evaluation = root / EVALUATION
    with repo_lock(root):
        return reg.register(root / MODEL, root / MODEL_RECORD,
                            evaluation_path=evaluation if evaluation.exists() else None,
                            by=_launcher(context),
                            reason=f"registered by Dagster run {context.run.run_id}",
                            registered_from=MODEL,
                            source={"run_id": context.run.run_id,
                                    "trigger": context.run.tags.get(TRIGGER_TAG, "manual"),
                                    "cutoff_tag": context.run.tags.get("mlops_assets/cutoff")})


def _version_metadata(reg: Registry, v: str) -> dict[str, Any]:
    info = reg.get(v)
    ev = info.get("evaluation") or {}
    return {
        "version": v,
        "stage": info["stage"],
        "model_path": dg.MetadataValue.path(str(reg.root / info["model_path"])),
        "cutoff": str(info.get("cutoff")),
        "gate_eligible": bool(ev.get("eligible")) if ev else False,
        "compared_with": str(ev.get("reference", "")),
        "approvals": dg.MetadataValue.json(info.get("approvals", [])),
    }


@dg.asset(
    key="model_candidate",
    deps=["model", "evaluation"],
    group_name="registry",
    kinds={"scikitlearn"},
    owners=OWNERS,
    tags=REGISTRY_TAGS,
    metadata=NOT_MIRRORED,
    description="The model the chain trained last, registered in registry/ as a candidate "
                "(content-addressed by its md5, with its evaluation gate). Promotion to "
                "production is the `production_model` asset.",
)
def model_candidate(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    reg = Registry(project_root())
    v = _register_current(context, reg)
    refusal = reg.promotion_refusal(v, PRODUCTION) if reg.production() != v else None
    meta = _version_metadata(reg, v)
    meta["production_version"] = str(reg.production())
    meta["promotable_now"] = refusal is None
    if refusal:
        meta["waiting_for"] = refusal
    context.log.info(f"registered {v} ({meta['stage']})"
                     + (f"; to reach production: {refusal}" if refusal else ""))
    track_audit_log(project_root())  # registry events are in the log: pin it with DVC
    return dg.MaterializeResult(data_version=dg.DataVersion(v), metadata=meta)


@dg.asset(
    key="production_model",
    deps=["model", "evaluation"],
    group_name="registry",
    kinds={"scikitlearn"},
    owners=OWNERS,
    tags=REGISTRY_TAGS,
    metadata=NOT_MIRRORED,
    output_required=False,  # a refused promotion materialises nothing: serving is unchanged
    check_specs=[dg.AssetCheckSpec(
        PROMOTION_CHECK, asset="production_model", blocking=True,
        description="Refuses the promotion when the candidate's evaluation gate failed, or "
                    "when approval is required (params registry.approval_required, the "
                    "default) and run config gives none. Blocking: a refusal fails the run.")],
    description="The model serving points at (registry/production.json). Materialising it "
                "promotes the model the chain built last, or run config `version`; give the "
                "approval as run config `approved_by` and `reason`.",
)
def production_model(context: dg.AssetExecutionContext, config: PromotionConfig):
    try:
        yield from _promote(context, config)
    finally:  # approvals, promotions and refusals are all in the log: pin it with DVC
        track_audit_log(project_root())


def _promote(context: dg.AssetExecutionContext, config: PromotionConfig):
    reg = Registry(project_root())
    try:
        v = reg.resolve(config.version) if config.version else _register_current(context, reg)
    except RegistryError as e:  # an unknown version, or a model/record that do not match
        yield _refused(config.version or MODEL, str(e))
        return
    by = config.approved_by.strip() or _launcher(context)
    if config.approved_by.strip():
        info = reg.get(v)
        already = any(a["by"] == config.approved_by and a["reason"] == config.reason
                      for a in info.get("approvals", []))
        if not already:
            try:
                reg.approve(v, by=config.approved_by, reason=config.reason)
            except RegistryError as e:
                yield _refused(v, str(e))
                return
    before = reg.production()
    if before == v:
        context.log.info(f"{v} is already in production; nothing to change")
    else:
        try:
            reg.promote(v, PRODUCTION, by=by,
                        reason=config.reason or f"promoted by Dagster run {context.run.run_id}")
        except RegistryError as e:  # the registry logged the refused attempt
            context.log.error(f"promotion of {v} refused: {e}")
            yield _refused(v, str(e))
            return
    meta = _version_metadata(reg, v)
    meta["previous_production"] = str(before)
    meta["serving_pointer"] = dg.MetadataValue.json(reg.pointer())
    yield dg.MaterializeResult(
        data_version=dg.DataVersion(v), metadata=meta,
        check_results=[dg.AssetCheckResult(
            check_name=PROMOTION_CHECK, passed=True,
            metadata={"version": v, "approved_by": by})])


def _refused(version: str, message: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=PROMOTION_CHECK, asset_key="production_model", passed=False,
        severity=dg.AssetCheckSeverity.ERROR, description=message[:2000],
        metadata={"version": version, "refused": message[:2000]})
