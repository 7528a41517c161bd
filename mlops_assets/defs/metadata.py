"""Turn each stage's plain facts into what the Dagster UI shows: row counts, column
schema, metrics, markdown tables, links to reports, and asset-check results.

Which asset has which checks (name, blocking, severity, description) is the StageSpec
table in mlops_assets/pipeline.py; the functions here evaluate them. Each check function
takes plain inputs, so a test can make every check fail without running the chain."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from mlops_assets.core import drift
from mlops_assets.core.contract import Contract, load_contract
from mlops_assets.core.layout import DRIFT_HTML, DRIFT_JSON, EVALUATION, MODEL_RECORD, PLOTS, TRAIN
from mlops_assets.core.layout import VALIDATION_REPORT as VALIDATION_JSON
from mlops_assets.core.split import leaking_rows
from mlops_assets.defs.lineage import model_lineage_metadata
from mlops_assets.pipeline import ASSETS, CheckSpec, effective_params, load_params
from mlops_assets.stages import StageResult

# asset key -> [(check name, blocking, description)]: a view of pipeline.STAGE_SPECS
CHECKS: dict[str, list[tuple[str, bool, str]]] = {
    key: [(c.name, c.blocking, c.description) for c in a.checks]
    for key, a in ASSETS.items() if a.checks}
CHECK_SPECS: dict[str, CheckSpec] = {c.name: c for a in ASSETS.values() for c in a.checks}


def _md_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |\n" for r in rows)
    return head + body


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(map(str, v))
    return "" if v is None else str(v).replace("|", "\\|")


def _contract(root: Path) -> Contract:
    return load_contract(root / load_params(root)["dataset"]["contract"])


def _column_schema(root: Path) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name=n, type=t, description=d or None)
                                   for n, t, d in _contract(root).table_schema_columns()])


def _path(root: Path, rel: str) -> dg.MetadataValue:
    return dg.MetadataValue.path(str(root / rel))


# ---------------------------------------------------------------- asset metadata

def _landing(m: dict[str, Any], root: Path, key: str) -> dict[str, Any]:
    return {"batches": dg.MetadataValue.json(m["batches"]), "n_batches": m["n_batches"],
            "generator": m["generator"]}


def _snapshots(m: dict[str, Any], root: Path, key: str) -> dict[str, Any]:
    return {"dagster/row_count": m["row_count"], "n_batches": m["n_batches"],
            "snapshots": dg.MetadataValue.md(_md_table(
                m["snapshots"], ["batch", "source_file", "md5", "rows"]))}


def _validated(m: dict[str, Any], root: Path, key: str) -> dict[str, Any]:
    return {"dagster/row_count": m["row_count"], "dagster/column_schema": _column_schema(root),
            "contract_md5": m["contract_md5"], "schema_hash": m["schema_hash"],
            "warnings": len(m["report"].get("warnings", [])),
            "validation_report": _path(root, VALIDATION_JSON)}


def _features(m: dict[str, Any], root: Path, key: str) -> dict[str, Any]:
    return {
        "dagster/row_count": m["row_count"],
        "feature_definitions_hash": m["feature_definitions_hash"],
        "features": dg.MetadataValue.md(_md_table(m["features"],
                                                  ["name", "transform", "source", "kind"])),
        "dagster/column_schema": dg.TableSchema(columns=[
            dg.TableColumn(f["name"], "string" if f["kind"] == "categorical" else "float64",
                           description=f"{f['transform']}({', '.join(f['source'])})")
            for f in m["features"]]),
    }


def _split(m: dict[str, Any], root: Path, key: str) -> dict[str, Any]:
    s = m["summary"]
    part = s.get("train" if key == "training_set" else "holdout", {})
    return {"dagster/row_count": int(part.get("rows", 0)), "cutoff": str(s.get("cutoff")),
            "split": dg.MetadataValue.json(s)}


def _model(m: dict[str, Any], root: Path, key: str) -> dict[str, Any]:
    r = m["record"]
    out: dict[str, Any] = {
        "model_md5": r.get("model_md5", ""), "threshold": float(r.get("threshold", 0.0)),
        "cutoff": str(r.get("cutoff")),
        "feature_definitions_hash": r.get("feature_definitions_hash", ""),
        "record": _path(root, MODEL_RECORD), "record_json": dg.MetadataValue.json(r)}
    if r.get("model_md5"):  # the link to its lineage record (mlops-assets lineage VERSION)
        out.update(model_lineage_metadata(root, r["model_md5"]))
    return out


def _evaluation(m: dict[str, Any], root: Path, key: str) -> dict[str, Any]:
    ev = m["evaluation"]
    cand = ev.get("candidate", {})
    metrics = ("precision", "recall", "fpr", "roc_auc", "pr_auc")
    out: dict[str, Any] = {n: float(cand[n]) for n in metrics if cand.get(n) is not None}
    rows = [{"model": n, **{k: ev.get(n, {}).get(k) for k in metrics}}
            for n in ("candidate", "reference")]
    out.update({"eligible": bool(ev["gate"]["eligible"]),
                "compared_with": str(ev["reference"].get("name", "")),
                "metrics": _path(root, EVALUATION),
                "comparison": dg.MetadataValue.md(_md_table(rows, ["model", *metrics])),
                "plots": _path(root, f"{PLOTS}/evaluation.svg")})
    return out


def _drift(m: dict[str, Any], root: Path, key: str) -> dict[str, Any]:
    rep = m["report"]
    return {"drift_share": float(rep.get("drift_share", 0.0)),
            "severity": str(rep.get("severity")),
            "features": dg.MetadataValue.md(drift.markdown_table(rep)),
            "html_report": dg.MetadataValue.url((root / DRIFT_HTML).resolve().as_uri()),
            "json_report": _path(root, DRIFT_JSON)}


METADATA: dict[str, Callable[[dict[str, Any], Path, str], dict[str, Any]]] = {
    "landing_batches": _landing, "raw_snapshots": _snapshots, "validated_dataset": _validated,
    "feature_table": _features, "training_set": _split, "holdout_set": _split,
    "model": _model, "evaluation": _evaluation, "drift_report": _drift}


def asset_metadata(key: str, result: StageResult, root: Path) -> dict[str, Any]:
    shape = METADATA.get(key)
    return shape(result.metadata, root, key) if shape else {}


# ---------------------------------------------------------------- asset checks

def _result(name: str, key: str, passed: bool, metadata: dict[str, Any],
            description: str | None = None) -> dg.AssetCheckResult:
    severity = dg.AssetCheckSeverity[CHECK_SPECS[name].severity]
    return dg.AssetCheckResult(check_name=name, asset_key=key, passed=bool(passed),
                               severity=severity, metadata=metadata, description=description)


def validation_check(report: dict[str, Any], rows: int) -> dg.AssetCheckResult:
    """Passes when the validation report says so and holds no errors."""
    ok = bool(report.get("passed")) and not report.get("errors")
    return _result("validation_passed", "validated_dataset", ok, {
        "rows": rows, "errors": len(report.get("errors", [])),
        "failure_counts": dg.MetadataValue.json(report.get("failure_counts", {})),
        "warnings": len(report.get("warnings", [])),
        "warning_details": dg.MetadataValue.json(report.get("warnings", []))})


def leakage_check(root: Path) -> dg.AssetCheckResult:
    """Reads the training file as written and checks it against the effective split.cutoff
    (params.yaml + run params), on its own: the split stage's assertion is not trusted."""
    contract = _contract(root)
    cutoff = str(effective_params(root)["split"]["cutoff"])
    ts = contract.timestamp_column
    train = pd.read_parquet(root / TRAIN, columns=[ts])
    late = leaking_rows(train, contract, cutoff)
    return _result("no_rows_at_or_after_cutoff", "training_set", not late, {
        "cutoff": cutoff, "train_ts_max": str(train[ts].max()),
        "rows_at_or_after_cutoff": len(late), "file": _path(root, TRAIN)},
        description=f"{len(late)} training rows at or after {cutoff}" if late else None)


def gate_check(evaluation: dict[str, Any]) -> dg.AssetCheckResult:
    gate = evaluation["gate"]
    return _result("promotion_gate", "evaluation", gate["eligible"], {
        "reasons": dg.MetadataValue.json(gate.get("reasons", [])),
        "compared_with": str(evaluation["reference"].get("name", ""))})


def drift_check(report: dict[str, Any]) -> dg.AssetCheckResult:
    return _result("no_significant_drift", "drift_report", report.get("severity") != "significant",
                   {"severity": str(report.get("severity")),
                    "drift_share": float(report.get("drift_share", 0.0))})


def check_results(key: str, result: StageResult, root: Path) -> list[dg.AssetCheckResult]:
    m = result.metadata
    if key == "validated_dataset":
        return [validation_check(m["report"], m["row_count"])]
    if key == "training_set":
        return [leakage_check(root)]
    if key == "evaluation":
        return [gate_check(m["evaluation"])]
    if key == "drift_report":
        return [drift_check(m["report"])]
    return []


def validation_failure_check(report: Any, message: str) -> dg.AssetCheckResult:
    """The failed `validation_passed` of a run whose validation raised: counts, schema
    drift and examples; the asset is not materialised, its previous version stays."""
    rep = report.to_dict()
    examples = rep.get("errors", [])[:20]
    cols = sorted({k for e in examples for k in e}) if examples else ["message"]
    return _result("validation_passed", "validated_dataset", False, {
        "failure_counts": dg.MetadataValue.json(rep.get("failure_counts", {})),
        "schema_drift": dg.MetadataValue.json(rep.get("schema_drift", {})),
        "examples": dg.MetadataValue.md(_md_table(examples, cols) if examples else message),
        "previous_version_kept": True}, description=message[:2000])
