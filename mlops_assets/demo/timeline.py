"""The incident timeline: what each week looked like (drift, the serving model's FPR on
that week's labels, the candidate) and its rendering as a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlops_assets.core.contract import load_contract
from mlops_assets.core.evaluate import classification_metrics
from mlops_assets.core.io import read_table
from mlops_assets.core.layout import DRIFT_JSON, EVALUATION, FEATURES, MODEL_RECORD
from mlops_assets.core.registry import Registry
from mlops_assets.core.train import load_model, score
from mlops_assets.pipeline import load_params

Row = dict[str, Any]


def fpr(root: Path, version: str | None, batch: str) -> float | None:
    """FPR at the operating threshold of registry version `version` on one batch's labels."""
    if not version:
        return None
    info = Registry(root).get(version)
    record = json.loads((root / info["record_path"]).read_text())
    contract = load_contract(root / load_params(root)["dataset"]["contract"])
    feats = read_table(root / FEATURES)
    week = feats[feats["_batch"] == batch].reset_index(drop=True)
    if week.empty:
        return None
    scores = score(load_model(root / info["model_path"]), week, contract)
    m = classification_metrics(week[contract.label_column].to_numpy(), scores,
                               float(record["threshold"]))
    return None if m.get("fpr") is None else float(m["fpr"])


def chain_drift(root: Path) -> dict[str, Any]:
    """The drift summary of the chain's current data/reports/drift.json."""
    rep = json.loads((root / DRIFT_JSON).read_text())
    return {"severity": rep.get("severity"), "drift_share": rep.get("drift_share"),
            "top_features": list(rep.get("drifted_features") or [])[:3],
            "batch": rep.get("lineage", {}).get("current_batch")}


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """Severity, share and top three drifted features of a (pinned) drift report."""
    return {"severity": report.get("severity"), "drift_share": report.get("drift_share"),
            "top_features": [f if isinstance(f, str) else f.get("name")
                             for f in (report.get("drifted_features") or [])][:3]}


def candidate(root: Path, cutoff: str | None) -> tuple[dict[str, Any], bool]:
    """The freshly trained candidate against production (its evaluation), and whether it
    passed the gate."""
    cand = json.loads((root / MODEL_RECORD).read_text())["model_md5"]
    ev = json.loads((root / EVALUATION).read_text())
    return ({"version": cand, "cutoff": cutoff, "eligible": ev["gate"]["eligible"],
             "compared_with": ev["reference"]["name"],
             "candidate_pr_auc": ev["candidate"]["pr_auc"],
             "production_pr_auc": ev["reference"]["pr_auc"],
             "candidate_fpr_holdout": ev["candidate"]["fpr"],
             "production_fpr_holdout": ev["reference"]["fpr"]}, bool(ev["gate"]["eligible"]))


def holiday_row(root: Path, full: Any, i: int, key: str, drift: dict[str, Any],
                serving: str | None, actions: list[str]) -> Row:
    """One holiday week's row, before retrain and approval add to it."""
    return {"week": full.week_start(i).isoformat(), "batch": key, "period": "holiday",
            "rows": full.rows_per_week,
            **{k: drift[k] for k in ("severity", "drift_share", "top_features")},
            "production_version": serving, "fpr": fpr(root, serving, key), "actions": actions}


def finish_week(rows: list[Row], row: Row, actions: list[str], serving: Any, say: Any) -> None:
    """Append the week's row and say what happened in one line."""
    rows.append(row)
    say(f"[incident] {row['week']}: severity {row['severity']}, FPR "
        f"{pct(row['fpr'])} ({str(serving)[:8]}), {', '.join(actions)}")


def pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"


def _candidate_lines(r: Row) -> list[str]:
    lines = []
    if r.get("candidate"):
        c = r["candidate"]
        lines.append(f"{'':<11} candidate {c['version'][:12]} (cutoff {c['cutoff']}): "
                     f"PR AUC {c['candidate_pr_auc']:.3f} vs production "
                     f"{c['production_pr_auc']:.3f}, holdout FPR "
                     f"{pct(c['candidate_fpr_holdout'])} vs {pct(c['production_fpr_holdout'])}"
                     f", gate {'passed' if c['eligible'] else 'FAILED'}")
    if r.get("candidate_fpr_this_week") is not None:
        lines.append(f"{'':<11} the approved candidate's FPR on this week: "
                     f"{pct(r['candidate_fpr_this_week'])}")
    if r.get("fpr_after_promotion") is not None:
        lines.append(f"{'':<11} FPR on this week with the promoted model: "
                     f"{pct(r['fpr_after_promotion'])}")
    return lines


def render(timeline: list[Row]) -> str:
    """The timeline as a fixed-width table, one line per week plus candidate details."""
    head = (f"{'week':<11} {'period':<8} {'rows':>6} {'severity':<12} {'drift':>6} "
            f"{'top drifted features':<40} {'production':<12} {'FPR':>7}  actions")
    lines = [head, "-" * len(head)]
    for r in timeline:
        lines.append(
            f"{r['week']:<11} {r['period']:<8} {r['rows']:>6} {str(r['severity'] or '-'):<12} "
            f"{'-' if r['drift_share'] is None else format(r['drift_share'], '.2f'):>6} "
            f"{', '.join(r['top_features'])[:40]:<40} {str(r['production_version'])[:12]:<12} "
            f"{pct(r['fpr']):>7}  {'; '.join(r['actions'])}")
        lines.extend(_candidate_lines(r))
    return "\n".join(lines)
