"""Turn each stage's plain facts into what the Dagster UI shows: row counts, column
schema, metrics, markdown tables, links to reports, and asset-check results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.defs.lineage import model_lineage_metadata
from mlops_assets.stages import StageResult

# asset key -> [(check name, blocking, description)]
CHECKS: dict[str, list[tuple[str, bool, str]]] = {
    "validated_dataset": [("validation_passed", True,
                           "Every snapshot meets the dataset contract (lazy pandera validation). "
                           "Blocking: nothing downstream runs on invalid data.")],
    "training_set": [("no_rows_at_or_after_cutoff", True,
                      "No training row is at or after the split cutoff (no leakage).")],
    "evaluation": [("promotion_gate", False,
                    "The candidate is not worse than production (or the rule baseline) beyond "
                    "params.evaluate.tolerance.")],
    "drift_report": [("no_significant_drift", False,
                      "The newest batch shows no significant drift against the training "
                      "reference. Fails on significant drift so automation can react.")],
}


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


def _column_schema(root: Path) -> dg.TableSchema:
    from mlops_assets.core.contract import load_contract
    from mlops_assets.pipeline import load_params

    contract = load_contract(root / load_params(root)["dataset"]["contract"])
    return dg.TableSchema(columns=[dg.TableColumn(name=n, type=t, description=d or None)
                                   for n, t, d in contract.table_schema_columns()])


def _path(root: Path, rel: str) -> dg.MetadataValue:
    return dg.MetadataValue.path(str(root / rel))


def asset_metadata(key: str, result: StageResult, root: Path) -> dict[str, Any]:
    m = result.metadata
    out: dict[str, Any] = {}
    if key == "landing_batches":
        out["batches"] = dg.MetadataValue.json(m["batches"])
        out["n_batches"] = m["n_batches"]
        out["generator"] = m["generator"]
    elif key == "raw_snapshots":
        out["dagster/row_count"] = m["row_count"]
        out["n_batches"] = m["n_batches"]
        out["snapshots"] = dg.MetadataValue.md(_md_table(
            m["snapshots"], ["batch", "source_file", "md5", "rows"]))
    elif key == "validated_dataset":
        rep = m["report"]
        out["dagster/row_count"] = m["row_count"]
        out["dagster/column_schema"] = _column_schema(root)
        out["contract_md5"] = m["contract_md5"]
        out["schema_hash"] = m["schema_hash"]
        out["warnings"] = len(rep.get("warnings", []))
        out["validation_report"] = _path(root, "data/reports/validation.json")
    elif key == "feature_table":
        out["dagster/row_count"] = m["row_count"]
        out["feature_definitions_hash"] = m["feature_definitions_hash"]
        out["features"] = dg.MetadataValue.md(_md_table(m["features"],
                                                        ["name", "transform", "source", "kind"]))
        out["dagster/column_schema"] = dg.TableSchema(columns=[
            dg.TableColumn(f["name"], "string" if f["kind"] == "categorical" else "float64",
                           description=f"{f['transform']}({', '.join(f['source'])})")
            for f in m["features"]])
    elif key in ("training_set", "holdout_set"):
        s = m["summary"]
        part = s.get("train" if key == "training_set" else "holdout", {})
        out["dagster/row_count"] = int(part.get("rows", 0))
        out["cutoff"] = str(s.get("cutoff"))
        out["split"] = dg.MetadataValue.json(s)
    elif key == "model":
        r = m["record"]
        out["model_md5"] = r.get("model_md5", "")
        out["threshold"] = float(r.get("threshold", 0.0))
        out["cutoff"] = str(r.get("cutoff"))
        out["feature_definitions_hash"] = r.get("feature_definitions_hash", "")
        out["record"] = _path(root, "data/model/model.json")
        out["record_json"] = dg.MetadataValue.json(r)
        if r.get("model_md5"):  # the link to its lineage record (mlops-assets lineage VERSION)
            out.update(model_lineage_metadata(root, r["model_md5"]))
    elif key == "evaluation":
        ev = m["evaluation"]
        cand = ev.get("candidate", {})
        for name in ("precision", "recall", "fpr", "roc_auc", "pr_auc"):
            if cand.get(name) is not None:
                out[name] = float(cand[name])
        out["eligible"] = bool(ev["gate"]["eligible"])
        out["compared_with"] = str(ev["reference"].get("name", ""))
        out["metrics"] = _path(root, "data/reports/evaluation.json")
        rows = [{"model": n, **{k: ev.get(n, {}).get(k) for k in
                                ("precision", "recall", "fpr", "roc_auc", "pr_auc")}}
                for n in ("candidate", "reference")]
        out["comparison"] = dg.MetadataValue.md(_md_table(
            rows, ["model", "precision", "recall", "fpr", "roc_auc", "pr_auc"]))
        out["plots"] = _path(root, "data/reports/plots/evaluation.svg")
    elif key == "drift_report":
        rep = m["report"]
        from mlops_assets.core import drift

        out["drift_share"] = float(rep.get("drift_share", 0.0))
        out["severity"] = str(rep.get("severity"))
        out["features"] = dg.MetadataValue.md(drift.markdown_table(rep))
        out["html_report"] = dg.MetadataValue.url(
            (root / "data/reports/drift.html").resolve().as_uri())
        out["json_report"] = _path(root, "data/reports/drift.json")
    return out


def check_results(key: str, result: StageResult, root: Path) -> list[dg.AssetCheckResult]:
    m = result.metadata
    if key == "validated_dataset":
        rep = m["report"]
        return [dg.AssetCheckResult(
            check_name="validation_passed", asset_key=key, passed=True,
            metadata={"rows": m["row_count"], "warnings": len(rep.get("warnings", [])),
                      "warning_details": dg.MetadataValue.json(rep.get("warnings", []))})]
    if key == "training_set":
        s = m["summary"]
        train_max = s.get("train", {}).get("ts_max")
        ok = train_max is None or str(train_max) < str(s.get("cutoff"))
        return [dg.AssetCheckResult(
            check_name="no_rows_at_or_after_cutoff", asset_key=key, passed=ok,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"cutoff": str(s.get("cutoff")), "train_ts_max": str(train_max)})]
    if key == "evaluation":
        ev = m["evaluation"]
        return [dg.AssetCheckResult(
            check_name="promotion_gate", asset_key=key, passed=bool(ev["gate"]["eligible"]),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"reasons": dg.MetadataValue.json(ev["gate"].get("reasons", [])),
                      "compared_with": str(ev["reference"].get("name", ""))})]
    if key == "drift_report":
        rep = m["report"]
        return [dg.AssetCheckResult(
            check_name="no_significant_drift", asset_key=key,
            passed=rep.get("severity") != "significant",
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"severity": str(rep.get("severity")),
                      "drift_share": float(rep.get("drift_share", 0.0))})]
    return []


def validation_failure_check(report: Any, message: str) -> dg.AssetCheckResult:
    rep = report.to_dict()
    examples = rep.get("errors", [])[:20]
    cols = sorted({k for e in examples for k in e}) if examples else ["message"]
    return dg.AssetCheckResult(
        check_name="validation_passed", asset_key="validated_dataset", passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        description=message[:2000],
        metadata={
            "failure_counts": dg.MetadataValue.json(rep.get("failure_counts", {})),
            "schema_drift": dg.MetadataValue.json(rep.get("schema_drift", {})),
            "examples": dg.MetadataValue.md(_md_table(examples, cols) if examples else message),
            "previous_version_kept": True,
        })
