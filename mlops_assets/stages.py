"""The stage commands of dvc.yaml, and the same functions Dagster calls in-process.

`python -m mlops_assets.stages STAGE` is what `dvc repro` runs; the Dagster assets call
`run_stage(STAGE, root)` and then `dvc commit` the stage, so both paths execute the very
same code and leave the same bytes, `dvc.lock` and cache behind."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_assets.core import drift
from mlops_assets.core.contract import Contract, load_contract
from mlops_assets.core.evaluate import evaluate_candidate, rule_baseline_reference
from mlops_assets.core.features import build_features
from mlops_assets.core.generate import FraudScenario, land_batches
from mlops_assets.core.importance import permutation_importance_auc
from mlops_assets.core.ingest import (
    BATCH_COLUMN,
    landing_order,
    list_landing_batches,
    load_manifest,
    snapshot_batches,
)
from mlops_assets.core.io import (
    DataError,
    md5_file,
    read_table,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
)
from mlops_assets.core.layout import (
    DRIFT_HTML,
    DRIFT_JSON,
    EVALUATION,
    FEATURE_META,
    FEATURES,
    HOLDOUT,
    MODEL,
    MODEL_FILE,
    MODEL_RECORD,
    PLOTS,
    PROFILE_FILES,
    RECORD_FILE,
    REFERENCE_PROFILE,
    REFERENCE_VALUES,
    RUNS_DIR,
    SNAPSHOTS,
    SPLIT_SUMMARY,
    TRAIN,
    VALIDATED,
    VALIDATION_FAILED,
    VALIDATION_REPORT,
)
from mlops_assets.core.plots import write_plots
from mlops_assets.core.registry import Registry, Settings
from mlops_assets.core.run_params import effective_params, ensure_run_params
from mlops_assets.core.split import assert_no_leakage, split_summary, temporal_split
from mlops_assets.core.train import (
    TrainParams,
    load_model,
    model_record,
    save_model,
    score,
    train_model,
)
from mlops_assets.core.validate import validate_snapshots, write_validation_outputs
from mlops_assets.pipeline import ProjectNotFoundError, project_root

TREND_BATCHES = 8  # earlier batches shown in the drift report's trend


@dataclass
class StageResult:
    """What a stage made: its output files and the facts worth showing (plain types)."""

    stage: str
    outputs: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    compute_seconds: float = 0.0


@dataclass
class StageContext:
    root: Path
    params: dict[str, Any]
    partition_keys: list[str] | None = None

    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def contract(self) -> Contract:
        return load_contract(self.root / self.params["dataset"]["contract"])


# ---------------------------------------------------------------- stages

def stage_landing(ctx: StageContext) -> StageResult:
    """Land the embedded sample data as an upstream system would: one file per week."""
    landing = ctx.path(ctx.params["dataset"]["landing_dir"])
    landing.mkdir(parents=True, exist_ok=True)
    sample = ctx.params.get("sample_data") or {}
    generator = sample.get("generator", "none")
    if generator == "fraud":
        land_batches(FraudScenario.from_params(sample), landing)
    elif generator not in ("none", None):
        raise DataError(f"unknown sample_data.generator {generator!r}", path="params.yaml",
                        expected="fraud | none")
    files = list_landing_batches(landing)
    if not files:
        raise DataError("the landing area holds no batch files", path=landing,
                        expected="*.csv or *.parquet files, or sample_data.generator: fraud")
    return StageResult("landing", [ctx.params["dataset"]["landing_dir"]], {
        "batches": [f.name for f in files], "n_batches": len(files), "generator": generator})


def stage_snapshot(ctx: StageContext) -> StageResult:
    """Immutable, content-hashed copies of the landing batches."""
    entries = snapshot_batches(ctx.path(ctx.params["dataset"]["landing_dir"]), ctx.path(SNAPSHOTS),
                               keys=ctx.partition_keys)
    rows = [_as_dict(e) for e in entries]
    return StageResult("snapshot", [SNAPSHOTS], {
        "snapshots": rows, "n_batches": len(rows),
        "row_count": int(sum(r.get("rows", 0) for r in rows))})


def stage_validate(ctx: StageContext) -> StageResult:
    """Lazy pandera validation of every snapshot; the previous version survives a failure."""
    contract = ctx.contract
    try:
        df, report = validate_snapshots(ctx.path(SNAPSHOTS), contract)
    except DataError as e:
        report = getattr(e, "report", None)
        if report is not None:
            write_json_atomic(ctx.path(VALIDATION_FAILED), report.to_dict())
        raise
    write_validation_outputs(df, report, ctx.path(VALIDATED), ctx.path(VALIDATION_REPORT))
    failed = ctx.path(VALIDATION_FAILED)
    if failed.exists():
        failed.unlink()
    return StageResult("validate", [VALIDATED, VALIDATION_REPORT], {
        "report": report.to_dict(), "row_count": len(df), "contract_md5": contract.md5,
        "schema_hash": contract.schema_hash()})


def stage_features(ctx: StageContext) -> StageResult:
    """The feature table, from the one feature-definition list in the contract."""
    contract = ctx.contract
    validated = read_table(ctx.path(VALIDATED))
    feats = build_features(validated, contract)
    write_parquet_atomic(ctx.path(FEATURES), feats)
    meta = {
        "feature_definitions_hash": contract.feature_definitions_hash(),
        "features": [{"name": f.name, "transform": f.transform, "source": list(f.source),
                      "kind": "categorical" if f.is_categorical else "numeric"}
                     for f in contract.features],
        "contract": contract.name,
        "schema_hash": contract.schema_hash(),
        "validated_md5": md5_file(ctx.path(VALIDATED)),
        "rows": len(feats),
        "batches": sorted(feats["_batch"].unique().tolist()) if "_batch" in feats else [],
    }
    write_json_atomic(ctx.path(FEATURE_META), meta)
    return StageResult("features", [FEATURES, FEATURE_META], {**meta, "row_count": len(feats)})


def stage_split(ctx: StageContext) -> StageResult:
    """A temporal split at the cutoff in params: nothing at or after it is trained on."""
    contract = ctx.contract
    sp = ctx.params["split"]
    feats = read_table(ctx.path(FEATURES))
    train, holdout = temporal_split(feats, contract, sp["cutoff"], sp.get("holdout_end"))
    assert_no_leakage(train, contract, sp["cutoff"])
    write_parquet_atomic(ctx.path(TRAIN), train)
    write_parquet_atomic(ctx.path(HOLDOUT), holdout)
    summary = split_summary(train, holdout, contract, sp["cutoff"], sp.get("holdout_end"))
    write_json_atomic(ctx.path(SPLIT_SUMMARY), summary)
    return StageResult("split", [TRAIN, HOLDOUT, SPLIT_SUMMARY], {"summary": summary})


def stage_train(ctx: StageContext) -> StageResult:
    """Fit the pipeline, save it as canonical skops, and pin its record and reference profile."""
    contract = ctx.contract
    params = TrainParams.from_params(ctx.params["train"])
    train = read_table(ctx.path(TRAIN))
    result = train_model(train, contract, params)
    save_model(result.pipeline, ctx.path(MODEL))
    train_scores = result.scores  # train_model scored exactly these rows, in this order
    drift.write_reference_profile(
        train, contract, train_scores, result.threshold, ctx.params.get("drift", {}),
        ctx.path(REFERENCE_PROFILE), ctx.path(REFERENCE_VALUES))
    split = json.loads(ctx.path(SPLIT_SUMMARY).read_text())
    feature_meta = json.loads(ctx.path(FEATURE_META).read_text())
    data_hashes = {TRAIN: md5_file(ctx.path(TRAIN)), FEATURES: md5_file(ctx.path(FEATURES)),
                   VALIDATED: feature_meta["validated_md5"]}
    snaps = _snapshot_hashes(ctx)
    record = model_record(
        model_path=ctx.path(MODEL), result=result, contract=contract, params=params,
        data_hashes=data_hashes, cutoff=ctx.params["split"]["cutoff"],
        extra={"snapshots": snaps, "split": split,
               "feature_importance": permutation_importance_auc(result.pipeline, train, contract,
                                                                 params.seed),
               "reference_profile_md5": md5_file(ctx.path(REFERENCE_PROFILE))})
    write_json_atomic(ctx.path(MODEL_RECORD), record)
    return StageResult("train", [MODEL, MODEL_RECORD, REFERENCE_PROFILE, REFERENCE_VALUES],
                       {"record": record})


def stage_evaluate(ctx: StageContext) -> StageResult:
    """The candidate against production (or, for the first model, the rule baseline)."""
    contract = ctx.contract
    holdout = read_table(ctx.path(HOLDOUT))
    record = json.loads(ctx.path(MODEL_RECORD).read_text())
    model = load_model(ctx.path(MODEL))
    labels = holdout[contract.label_column].to_numpy()
    cand = score(model, holdout, contract)
    prod = _production_model(ctx)
    if prod is not None:
        ref_model, ref_record = prod
        ref_scores = score(ref_model, holdout, contract)
        ref_name, ref_threshold = f"production:{ref_record['model_md5']}", ref_record["threshold"]
    else:
        train = read_table(ctx.path(TRAIN))
        ref_scores, ref_threshold = rule_baseline_reference(
            train, holdout, contract, ctx.params["train"]["operating_fpr"])
        ref_name = "rule_baseline"
    result = evaluate_candidate(
        cand, labels, record["threshold"], ref_scores, ref_name, ref_threshold,
        ctx.params["evaluate"]["tolerance"])
    result["model_md5"] = record["model_md5"]
    write_json_atomic(ctx.path(EVALUATION), result)
    write_plots(ctx.path(PLOTS), labels, cand, record["threshold"], reference_scores=ref_scores,
                reference_name=ref_name, reference_threshold=ref_threshold)
    return StageResult("evaluate", [EVALUATION, PLOTS], {"evaluation": result})


def _registry(ctx: StageContext) -> Registry:
    return Registry(ctx.root, Settings.from_params(ctx.params))


def _drift_reference(ctx: StageContext) -> dict[str, str]:
    """Drift is measured against what SERVES: the registry's production version (its model,
    record and reference profile, stored beside it), so an unapproved candidate trained on
    the drifted data never makes a degrading production look normal. Before the first
    promotion, the model the chain trained last (the one that will serve)."""
    reg = _registry(ctx)
    version = reg.pointer().get("version")
    if version:
        d = reg.model_dir(version).relative_to(ctx.root).as_posix()
        files = {MODEL: f"{d}/{MODEL_FILE}", MODEL_RECORD: f"{d}/{RECORD_FILE}",
                 REFERENCE_PROFILE: f"{d}/{PROFILE_FILES[0]}",
                 REFERENCE_VALUES: f"{d}/{PROFILE_FILES[1]}"}
        if all(ctx.path(p).is_file() for p in files.values()):
            return {**files, "source": f"production:{version}"}
    return {MODEL: MODEL, MODEL_RECORD: MODEL_RECORD, REFERENCE_PROFILE: REFERENCE_PROFILE,
            REFERENCE_VALUES: REFERENCE_VALUES, "source": "latest_trained"}


def drift_batches(ctx: StageContext, present: list[str]) -> tuple[str, list[str]]:
    """The batch to report on and the earlier batches of its trend, oldest first.

    Order is landing order (the snapshot manifest's), not the batches' dates: a late batch
    holding older dates is still the newest arrival and gets checked. A run for given batch
    partitions reports on the last landed of them. Batches the manifest does not know come
    after those it does, by key."""
    landed = [b for b in landing_order(ctx.path(SNAPSHOTS)) if b in present]
    order = landed + sorted(set(present) - set(landed))
    if not order:
        raise DataError("the feature table holds no batches", path=ctx.path(FEATURES))
    wanted = ctx.partition_keys
    if wanted:
        missing = sorted(set(wanted) - set(order))
        if missing:
            raise DataError(f"no features for batch partition(s) {missing}",
                            path=ctx.path(FEATURES), expected=f"one of {order}")
        current = [b for b in order if b in set(wanted)][-1]
    else:
        current = order[-1]
    earlier = order[:order.index(current)]
    return current, earlier[-TREND_BATCHES:]


def stage_drift(ctx: StageContext) -> StageResult:
    """The batch that landed last (or the run's batch partition): its features and scores
    against the reference of the model that serves, with the earlier batches as a trend."""
    contract = ctx.contract
    feats = read_table(ctx.path(FEATURES))
    ts = contract.timestamp_column
    newest, trend_batches = drift_batches(ctx, feats[BATCH_COLUMN].astype(str).unique().tolist())
    current = feats[feats[BATCH_COLUMN] == newest].reset_index(drop=True)
    ref = _drift_reference(ctx)
    model = load_model(ctx.path(ref[MODEL]))
    record = json.loads(ctx.path(ref[MODEL_RECORD]).read_text())
    scores = score(model, current, contract)
    lineage = {
        "inputs": {ref[p]: md5_file(ctx.path(ref[p])) for p in (MODEL, REFERENCE_PROFILE,
                                                                 REFERENCE_VALUES)}
        | {FEATURES: md5_file(ctx.path(FEATURES))},
        "model_version": record["model_md5"],
        "reference_source": ref["source"],
        "current_batch": str(newest),
        "current_window": [str(current[ts].min()), str(current[ts].max())],
        "current_rows": len(current),
        "reference_window": record.get("train_window"),
        "reference_rows": record.get("n_rows"),
        "params": ctx.params.get("drift", {}),
        "libraries": record.get("libraries", {}),
    }
    importance = record.get("feature_importance") or None
    profile = drift.load_reference_profile(ctx.path(ref[REFERENCE_PROFILE]),
                                           ctx.path(ref[REFERENCE_VALUES]))
    drift_params = ctx.params.get("drift", {})
    report = drift.drift_report(profile, current, scores, drift_params, lineage, importance)
    history = []
    for batch in trend_batches:
        part = feats[feats[BATCH_COLUMN] == batch].reset_index(drop=True)
        earlier = drift.drift_report(profile, part, score(model, part, contract), drift_params,
                                     {"current_batch": str(batch)}, importance)
        history.append({k: earlier[k] for k in ("lineage", "drift_share", "severity",
                                                "multivariate", "prediction", "features")})
    report["trend"] = [{"batch": h["lineage"]["current_batch"], "drift_share": h["drift_share"],
                        "severity": h["severity"]} for h in history]
    write_json_atomic(ctx.path(DRIFT_JSON), report)
    write_text_atomic(ctx.path(DRIFT_HTML), drift.render_html(report, history, importance))
    return StageResult("drift", [DRIFT_JSON, DRIFT_HTML], {"report": report})


STAGES: dict[str, Callable[[StageContext], StageResult]] = {
    "landing": stage_landing,
    "snapshot": stage_snapshot,
    "validate": stage_validate,
    "features": stage_features,
    "split": stage_split,
    "train": stage_train,
    "evaluate": stage_evaluate,
    "drift": stage_drift,
}


# ---------------------------------------------------------------- helpers

def _as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj) if is_dataclass(obj) else dict(obj)


def _snapshot_hashes(ctx: StageContext) -> list[dict[str, Any]]:
    return [{k: e[k] for k in ("batch", "source_file", "snapshot_file", "md5", "rows") if k in e}
            for e in load_manifest(ctx.path(SNAPSHOTS))["entries"]]


def _production_model(ctx: StageContext) -> tuple[Any, dict[str, Any]] | None:
    """The registry's production model, pinned by the version hash in its pointer file."""
    info = _registry(ctx).pointer()
    if not info.get("version"):
        return None
    model_path = ctx.root / info["model_path"]
    if md5_file(model_path) != info["version"]:
        raise DataError("production model bytes do not match the registry's version hash",
                        path=model_path, expected=info["version"])
    record = json.loads((ctx.root / info["record_path"]).read_text())
    return load_model(model_path), record


def run_stage(name: str, root: Path | None = None, partition_keys: list[str] | None = None,
              params: dict[str, Any] | None = None) -> StageResult:
    """Run one stage of the chain in this process and time its compute. The params are the
    effective ones (params.yaml + data/run_params.yaml), and the run params file is created
    first if missing: DVC refuses the split and train stages without it."""
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    root = Path(root) if root else project_root()
    ensure_run_params(root)
    ctx = StageContext(root=root, params=params or effective_params(root),
                       partition_keys=partition_keys)
    start = time.perf_counter()
    result = STAGES[name](ctx)
    result.compute_seconds = time.perf_counter() - start
    _write_run_facts(root, result)
    return result


def _write_run_facts(root: Path, result: StageResult) -> None:
    """Timing and the git sha go here, outside the DVC outputs, so outputs stay reproducible."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        sha = None
    facts = {"stage": result.stage, "compute_seconds": round(result.compute_seconds, 4),
             "finished_at": pd.Timestamp.now("UTC").isoformat(), "git_sha": sha}
    write_json_atomic(root / RUNS_DIR / f"{result.stage}.json", facts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_assets.stages",
                                     description="Run one stage (what dvc repro calls).")
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        result = run_stage(args.stage, args.root)
    except (DataError, ProjectNotFoundError) as e:
        print(f"[{args.stage}] error: {e}", file=sys.stderr)
        return 2
    print(f"[{args.stage}] done in {result.compute_seconds:.2f}s -> {', '.join(result.outputs)}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
