"""The sections of a lineage record (evaluation, approvals, training set, features,
validated dataset, raw snapshots, provenance, drift), read from a finished walk: what
`render` prints and `--json` returns."""

from __future__ import annotations

from typing import Any

from mlops_assets.core.dvcgraph import ancestors, producer_of, topological
from mlops_assets.core.layout import (
    EVALUATION,
    FEATURE_META,
    FEATURES,
    RUNS_DIR,
    SNAPSHOTS,
    SPLIT_SUMMARY,
    TRAIN,
    VALIDATED,
    VALIDATION_REPORT,
)
from mlops_assets.core.lineage.chain import read_json_bytes
from mlops_assets.core.lineage.events import (
    audit_events,
    event_names_model,
    event_time,
    event_type,
)
from mlops_assets.core.lineage.history import TRAIN_STAGE, params_of
from mlops_assets.core.lineage.times import parse_time, trained_at
from mlops_assets.core.lineage.walk import Walk
from mlops_assets.core.versions import library_versions

# audit actions that are part of a model's approval story
APPROVAL_ACTIONS = {"promote", "promotion", "approve", "approval", "reject", "rejection",
                    "rollback", "register", "evaluate", "promote_refused"}


def _md5(w: Walk, aid: str) -> str | None:
    a = w.chain.artifacts.get(aid)
    return a.md5 if a is not None else None


def _split(w: Walk) -> dict[str, Any]:
    return w.facts.get(SPLIT_SUMMARY) or w.record.get("split") or {}


def _cutoff(w: Walk) -> Any:
    return w.record.get("cutoff") or _split(w).get("cutoff")


def _evaluation(w: Walk) -> dict[str, Any] | None:
    hit = w.chain.entries.get(producer_of(w.graph, EVALUATION) or "")
    if not hit or "evaluation" not in w.chain.artifacts:
        return None
    ev = w.facts.get(EVALUATION)
    ev = ev if isinstance(ev, dict) else {}
    return {"path": EVALUATION, "md5": _md5(w, "evaluation"), "lock": hit[0].label,
            "available": bool(ev), "candidate": ev.get("candidate"),
            "reference": (ev.get("reference") or {}).get("name"),
            "eligible": (ev.get("gate") or {}).get("eligible"),
            "reasons": (ev.get("gate") or {}).get("reasons")}


def _events(w: Walk, trained: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    """The audit events on this model: its approvals, the drift reports on it, and the drift
    events that led to it (the retrain requested with its cutoff, else those logged before
    it was trained)."""
    events = audit_events(w.chain.root)
    version = w.version
    approvals = [e for e in events if event_names_model(e, version) and str(
        e.get("action") or event_type(e)).split(".")[-1].lower() in APPROVAL_ACTIONS]
    drift_events = [e for e in events if "drift" in event_type(e).lower()]
    on_model = [e for e in drift_events if event_names_model(e, version)]
    t_model = parse_time(trained.get("time")) if trained else None
    rec_cut = str(w.record.get("cutoff") or "")[:10]
    led = [e for e in drift_events if rec_cut and str(e.get("cutoff") or "")[:10] == rec_cut]
    if not led and t_model is not None:
        led = [e for e in drift_events if e not in on_model
               and (event_time(e) or t_model) < t_model][-10:]
    return {"approvals": approvals, "on_model": on_model, "before": led[-10:]}


def _features(w: Walk) -> dict[str, Any]:
    meta = w.facts.get(FEATURE_META) or {}
    fdh_claims = {"model.json": (w.record.get("contract") or {}).get("feature_definitions_hash"),
                  "feature_meta.json": meta.get("feature_definitions_hash"),
                  "split.json": _split(w).get("feature_definitions_hash")}
    return {"path": FEATURES, "md5": _md5(w, "features"), "meta_md5": _md5(w, "feature_meta"),
            "feature_definitions_hash": next((v for v in fdh_claims.values() if v), None),
            "feature_definitions_hash_claims": fdh_claims,
            "features": meta.get("features") or (w.record.get("features") or {}).get("names"),
            "rows": meta.get("rows")}


def _validated(w: Walk) -> dict[str, Any]:
    validation = w.facts.get(VALIDATION_REPORT) or {}
    meta = w.facts.get(FEATURE_META) or {}
    contract = w.record.get("contract") or {}
    return {"path": VALIDATED, "md5": _md5(w, "validated"),
            "report": VALIDATION_REPORT, "report_md5": _md5(w, "validation"),
            "passed": validation.get("passed"), "n_rows": validation.get("n_rows"),
            "warnings": len(validation.get("warnings") or []),
            "failure_counts": validation.get("failure_counts"),
            "contract": {"path": w.sources.get("contract"), "md5": _md5(w, "contract"),
                         "name": contract.get("name"),
                         "schema_hash": contract.get("schema_hash") or meta.get("schema_hash")}}


def _raw_snapshots(w: Walk) -> dict[str, Any]:
    snaps = w.snapshots
    return {"dir": SNAPSHOTS, "dir_md5": _md5(w, "snapshots"), "manifest_md5": _md5(w, "manifest"),
            "n": len(snaps), "rows": sum(int(s.get("rows") or 0) for s in snaps),
            "snapshots": snaps, "landing_dir_md5": _md5(w, "landing")}


def _run_facts(w: Walk) -> dict[str, Any]:
    """The last run's facts of the train stage and the stages it depends on (not the source
    stage: its facts describe the last arrival of data, not this chain)."""
    ups = ancestors(w.graph, TRAIN_STAGE)
    stages = [TRAIN_STAGE, *(s for s in reversed(topological(w.graph))
                             if s in ups and ancestors(w.graph, s))]
    facts = {}
    for stage in stages:
        p = w.chain.root / RUNS_DIR / f"{stage}.json"
        if p.exists():
            facts[stage] = read_json_bytes(p.read_bytes())
    return facts


def _provenance(w: Walk, lock_info: dict[str, Any], code: dict[str, dict[str, str]],
                trained: dict[str, Any] | None) -> dict[str, Any]:
    run_facts = _run_facts(w)
    train_run = run_facts.get(TRAIN_STAGE) or {}
    split_hit = w.chain.entries.get(producer_of(w.graph, TRAIN) or "")
    cutoff = _cutoff(w)
    has_model = lock_info["working_lock_has_model"]
    return {
        "params": {"train": params_of(w.found[1] if w.found else {})
                   or {"train": w.record.get("params")},
                   "split": params_of(split_hit[1]) if split_hit else {"split.cutoff": cutoff},
                   "record": w.record.get("params")},
        "cutoff": cutoff,
        "git": {"lock_commit": lock_info["introduced_in"],
                "last_lock_commit": lock_info["last_lock_commit"],
                "train_run_sha": train_run.get("git_sha") if has_model else None,
                "train_run_sha_source": f"{RUNS_DIR}/train.json (run facts of the last train "
                                        "run)" if has_model and train_run else None,
                "stage_run_shas": {s: (f or {}).get("git_sha") for s, f in run_facts.items()}},
        "code": code,
        "libraries": {"recorded": w.record.get("libraries"), "installed": library_versions()},
        "trained_at": trained,
    }


def summarise(w: Walk, lock_info: dict[str, Any], code: dict[str, dict[str, str]]
              ) -> dict[str, Any]:
    """Every section of the lineage record but the header and the model."""
    trained = trained_at(w.dagster, w.chain.root, w.version, w.chain.history, w.found)
    events = _events(w, trained)
    entry = w.registry_entry or {}
    return {
        "evaluation": _evaluation(w),
        "approvals": {"registry": entry.get("approvals"), "stage": entry.get("stage"),
                      "audit_events": events["approvals"]},
        "training_set": {"path": TRAIN, "md5": _md5(w, "train"),
                         "holdout_md5": _md5(w, "holdout"), "split_md5": _md5(w, "split"),
                         "split": _split(w), "cutoff": _cutoff(w)},
        "features": _features(w),
        "validated_dataset": _validated(w),
        "raw_snapshots": _raw_snapshots(w),
        "provenance": _provenance(w, lock_info, code, trained),
        "drift": {"reports": w.drift_reports, "audit_events_on_model": events["on_model"],
                  "audit_events_before_training": events["before"]},
    }
