"""A lineage for people and scripts: the text report, the verification table, a Mermaid or
Graphviz diagram of the chain, and the `--json` document."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_assets.core.layout import (
    AUDIT_LOG,
    FEATURE_META,
    FEATURES,
    HOLDOUT,
    MODEL_RECORD,
    SNAPSHOTS,
    SPLIT_SUMMARY,
    TRAIN,
    VALIDATED,
    VALIDATION_REPORT,
)
from mlops_assets.core.lineage.chain import (
    MISMATCHED,
    MISSING,
    SKIPPED,
    VERIFIED,
    WARNING,
    Chain,
)
from mlops_assets.core.lineage.events import event_line, event_type

Lines = list[str]

_UNAVAILABLE = ("(bytes unavailable: not in the working tree, the registry or the DVC cache; "
                "`dvc pull` fetches them)")


def _short(md5: str | None, n: int = 12) -> str:
    return "-" if not md5 else md5[:n] + ("" if len(md5) <= n else "…")


# ------------------------------------------------------------------------------ text


def _header(lin: dict[str, Any]) -> Lines:
    mdl, lock = lin["model"], lin["lock"]
    intro = lock.get("introduced_in")
    return [f"Lineage of model {lin['version']}  [{lin['resolved_as']}]"
            + ("  (PRODUCTION)" if mdl.get("production") else ""),
            f"  pinned by      {lock.get('source') or 'no dvc.lock'}"
            + (f"; first committed in {intro['commit'][:10]} ({intro['time']}) "
               f"\"{intro['subject']}\"" if intro else "; not in any commit of dvc.lock")]


def _model(lin: dict[str, Any]) -> Lines:
    mdl = lin["model"]
    rec = mdl.get("record") or {}
    out = ["MODEL", f"  file           {mdl['file']}  md5 {lin['version']}"]
    if rec:
        m = rec.get("model") or {}
        out += [f"  record         {mdl.get('record_file')}  md5 {mdl.get('record_md5')}",
                f"  estimator      {m.get('estimator')}  ({m.get('serialisation')}); threshold "
                f"{rec.get('threshold')} at operating FPR {rec.get('operating_fpr')}"]
    else:
        out.append(f"  record         {MODEL_RECORD}  md5 {mdl.get('record_md5')}  {_UNAVAILABLE}")
    ta = lin["provenance"].get("trained_at")
    if ta:
        out.append(f"  trained at     {ta['time']}  ({ta['source']})")
    reg = mdl.get("registry")
    if reg:
        out.append(f"  registry       stage {reg.get('stage')}, registered from "
                   f"{reg.get('registered_from')}")
        if reg.get("record_md5") or reg.get("evaluation_md5"):
            out.append(f"  registered     record md5 {reg.get('record_md5') or '-'}, approved on "
                       f"evaluation md5 {reg.get('evaluation_md5') or '-'}")
    return out


def _evaluation(lin: dict[str, Any]) -> Lines:
    ev = lin.get("evaluation")
    out = ["EVALUATION"]
    if ev and not ev.get("available"):
        out.append(f"  report         {ev['path']}  md5 {ev['md5']}  [{ev['lock']}]  "
                   + _UNAVAILABLE)
    elif ev:
        c = ev.get("candidate") or {}
        out.append(f"  report         {ev['path']}  md5 {ev['md5']}  [{ev['lock']}]")
        out.append("  metrics        " + "  ".join(
            f"{k} {c[k]:.4f}" for k in ("precision", "recall", "fpr", "roc_auc", "pr_auc")
            if isinstance(c.get(k), (int, float))))
        out.append(f"  gate           {'eligible' if ev.get('eligible') else 'NOT eligible'} vs "
                   f"{ev.get('reference')}")
        out += [f"                 {r}" for r in ev.get("reasons") or []]
    else:
        out.append("  (no evaluate stage in dvc.lock names this model)")
    return out


def _approval(lin: dict[str, Any]) -> Lines:
    ap = lin["approvals"]
    out = ["APPROVAL"]
    out += [f"  registry       {json.dumps(a, sort_keys=True, default=str)}"
            for a in ap.get("registry") or []]
    out += [f"  audit #{e.get('seq')}       {event_line(e)}" for e in ap.get("audit_events") or []]
    if not ap.get("registry") and not ap.get("audit_events"):
        out.append(f"  (none recorded: no registry entry or {AUDIT_LOG} event names this model)")
    return out


def _training_data(lin: dict[str, Any]) -> Lines:
    t = lin["training_set"]
    s = t.get("split") or {}
    tr, ho = s.get("train") or {}, s.get("holdout") or {}
    return ["TRAINING DATA",
            f"  training set   {TRAIN}  md5 {t['md5']}  rows {tr.get('rows')}  "
            f"ts {tr.get('ts_min')} .. {tr.get('ts_max')}",
            f"  holdout        {HOLDOUT}  md5 {t['holdout_md5']}  rows {ho.get('rows')}  "
            f"ts {ho.get('ts_min')} .. {ho.get('ts_max')}",
            f"  split          {SPLIT_SUMMARY}  md5 {t['split_md5']}  cutoff {t.get('cutoff')}"]


def _feature_table(lin: dict[str, Any]) -> Lines:
    f = lin["features"]
    out = ["FEATURE TABLE", f"  table          {FEATURES}  md5 {f['md5']}  rows {f.get('rows')}",
           f"  definitions    hash {f.get('feature_definitions_hash')}  ({FEATURE_META} md5 "
           f"{f.get('meta_md5')})"]
    names = [x["name"] if isinstance(x, dict) else str(x) for x in f.get("features") or []]
    if names:
        out.append(f"  features       {', '.join(names)}")
    return out


def _validated(lin: dict[str, Any]) -> Lines:
    vd = lin["validated_dataset"]
    c = vd["contract"]
    verdict = "PASSED" if vd.get("passed") else "FAILED" if vd.get("passed") is False else "?"
    return ["VALIDATED DATASET",
            f"  dataset        {VALIDATED}  md5 {vd['md5']}  rows {vd.get('n_rows')}",
            f"  contract       {c['path']} ({c.get('name')})  md5 {c.get('md5')}  schema hash "
            f"{c.get('schema_hash')}",
            f"  validation     {VALIDATION_REPORT}  md5 {vd.get('report_md5')}  "
            f"{verdict}, {vd.get('warnings')} warnings"]


def _snapshots(lin: dict[str, Any]) -> Lines:
    rs = lin["raw_snapshots"]
    out = [f"RAW SNAPSHOTS  {rs['n']} batches, {rs['rows']} rows; {SNAPSHOTS} {rs['dir_md5']}, "
           f"manifest md5 {rs['manifest_md5']}; landing {rs.get('landing_dir_md5')}",
           f"  {'batch':<22} {'source file':<30} {'md5':<32} {'rows':>8}  landed at"]
    out += [f"  {str(sn['batch']):<22} {str(sn['source_file']):<30} {str(sn['md5']):<32} "
            f"{str(sn['rows']):>8}  {sn.get('landed_at') or '?'} "
            f"({sn.get('landed_at_source') or 'unknown'})" for sn in rs["snapshots"]]
    return out


def _provenance(lin: dict[str, Any]) -> Lines:
    pv = lin["provenance"]
    out = ["PROVENANCE", f"  cutoff         {pv.get('cutoff')}"]
    for k in ("train", "split"):
        val = (pv.get("params") or {}).get(k) or {}
        val = val.get(k, val) if isinstance(val, dict) else val
        out.append(f"  params {k:<7} {json.dumps(val, sort_keys=True, default=str)}")
    g = pv["git"]
    if g.get("train_run_sha"):
        out.append(f"  code commit    {g['train_run_sha']}  ({g.get('train_run_sha_source')})")
    if g.get("lock_commit"):
        out.append(f"  lock commit    {g['lock_commit']['commit']}  (first dvc.lock commit with "
                   "this model)")
    out.append(f"  last dvc.lock  {g.get('last_lock_commit') or '(dvc.lock never committed)'}  "
               "(git log -1 -- dvc.lock)")
    for stage, files in (pv.get("code") or {}).items():
        out.append(f"  code {stage:<9} " + ", ".join(f"{Path(p).name} {md5[:8]}"
                                                    for p, md5 in files.items()))
    libs = pv["libraries"]
    rec_l, ins_l = libs.get("recorded") or {}, libs.get("installed") or {}
    out.append("  libraries      " + ", ".join(
        f"{k} {rec_l.get(k)}" + ("" if ins_l.get(k) in (None, rec_l.get(k))
                                 else f" (installed {ins_l.get(k)})") for k in sorted(rec_l)))
    return out


def _drift(lin: dict[str, Any]) -> Lines:
    d = lin["drift"]
    out = ["DRIFT"]
    for r in d["reports"]:
        if not r.get("available", True):
            out.append(f"  report         {r['path']}  md5 {r['md5']}  [{r['lock']}]  "
                       f"{_UNAVAILABLE}")
            continue
        out.append(f"  report         {r['path']}  md5 {r['md5']}  severity {r.get('severity')}, "
                   f"drift share {r.get('drift_share')}, batch {r.get('current_batch')}  "
                   f"[{r['lock']}]")
    out += [f"  audit #{e.get('seq')}       {event_line(e)}" for e in d["audit_events_on_model"]]
    if d["audit_events_before_training"]:
        out.append("  drift events that led to this model (retrain with its cutoff, or logged "
                   "before it was trained):")
        out += [f"    audit #{e.get('seq')}     {event_line(e)}"
                for e in d["audit_events_before_training"]]
    if not d["reports"] and not d["audit_events_on_model"]:
        out.append("  (no drift report names this model)")
    return out


_SECTIONS: tuple[Callable[[dict[str, Any]], Lines], ...] = (
    _header, _model, _evaluation, _approval, _training_data, _feature_table, _validated,
    _snapshots, _provenance)


def render_text(lineage: dict[str, Any], verification: dict[str, Any] | None = None) -> str:
    """The report `mlops-assets lineage` prints: one block per link of the chain."""
    lines: Lines = []
    for section in _SECTIONS:
        lines += [*section(lineage), ""]
    lines += _drift(lineage)
    lines += [f"note: {n}" for n in lineage.get("notes") or []]
    if verification is not None:
        lines += ["", render_verification(verification)]
    return "\n".join(lines)


def render_verification(ver: dict[str, Any]) -> str:
    lines = ["VERIFY  (every hash recomputed from the working tree, the DVC cache or git)"]
    order = {MISMATCHED: 0, MISSING: 1, WARNING: 2, SKIPPED: 3, VERIFIED: 4}
    for c in sorted(ver["checks"], key=lambda c: order[c["status"]]):
        lines.append(f"  {c['status'].upper() if c['status'] != VERIFIED else 'verified':<11} "
                     f"{c['message']}")
    n = ver["counts"]
    hc = ver.get("hash_cache") or {}
    lines += ["", f"Result: {n[VERIFIED]} verified, {n[MISMATCHED]} mismatched, {n[MISSING]} "
                  f"missing, {n[WARNING]} warnings, {n[SKIPPED]} skipped -> "
                  + ("OK" if ver["ok"] else "FAILED"),
              f"hash cache: {hc.get('hits')} hits, {hc.get('hashed')} files hashed "
              f"({(hc.get('bytes_hashed') or 0) / 1e6:.1f} MB)"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------ graph

# The diagram: the chain's main artifacts (by id) and the edges drawn between them, a
# reading of dvc.yaml kept short on purpose (e.g. the record hangs off the model).
_GRAPH_NODES = [
    ("landing", "landing batches"), ("snapshots", "raw snapshots"), ("contract", "contract"),
    ("validated", "validated dataset"), ("features", "feature table"),
    ("train", "training set"), ("holdout", "holdout set"), ("model", "model"),
    ("record", "model record"), ("evaluation", "evaluation"), ("drift", "drift report")]
_GRAPH_EDGES = [
    ("landing", "snapshots"), ("snapshots", "validated"), ("contract", "validated"),
    ("validated", "features"), ("contract", "features"), ("features", "train"),
    ("features", "holdout"), ("train", "model"), ("snapshots", "model"), ("model", "record"),
    ("model", "evaluation"), ("holdout", "evaluation"), ("model", "drift"),
    ("features", "drift")]


def _nid(s: str) -> str:
    return "n_" + "".join(ch if ch.isalnum() else "_" for ch in s)


def _graph_status(chain: Chain, verification: dict[str, Any] | None) -> dict[str, str]:
    """artifact id -> mismatched/missing, for the nodes to mark."""
    status: dict[str, str] = {}
    if verification:
        by_path = {a.path: aid for aid, a in chain.artifacts.items()}
        for c in verification["checks"]:
            aid = by_path.get(c["target"])
            if aid and c["status"] in (MISMATCHED, MISSING):
                status[aid] = c["status"]
    return status


def _graph(lineage: dict[str, Any], chain: Chain
           ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(node id, label) and (from, to) of the diagram."""
    nodes = [(aid, f"{label}\\n{chain.artifacts[aid].path}\\n{_short(chain.artifacts[aid].md5)}")
             for aid, label in _GRAPH_NODES if aid in chain.artifacts]
    snaps = [(aid, a) for aid, a in chain.artifacts.items() if a.kind == "snapshot"]
    nodes += [(aid, f"{Path(a.path).name}\\n{_short(a.md5)}") for aid, a in snaps]
    audit = lineage["approvals"].get("audit_events") or []
    nodes += [(f"audit{e.get('seq')}", f"{event_type(e)}\\naudit #{e.get('seq')}") for e in audit]
    ids = {n for n, _ in nodes}
    edges = [(a, b) for a, b in _GRAPH_EDGES if a in ids and b in ids]
    edges += [(aid, "snapshots") for aid, _ in snaps if "snapshots" in ids]
    edges += [("evaluation" if "evaluation" in ids else "model", f"audit{e.get('seq')}")
              for e in audit]
    return nodes, edges


def render_graph(lineage: dict[str, Any], chain: Chain, fmt: str = "mermaid",
                 verification: dict[str, Any] | None = None) -> str:
    """The chain as a Mermaid flowchart or a Graphviz DOT digraph; with a verification,
    mismatched/missing nodes are marked."""
    status = _graph_status(chain, verification)
    nodes, edges = _graph(lineage, chain)
    if fmt == "dot":
        out = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        for n, label in nodes:
            color = {MISMATCHED: "red", MISSING: "orange"}.get(status.get(n, ""), "black")
            out.append(f'  {_nid(n)} [label="{label}", color={color}];')
        out += [f"  {_nid(a)} -> {_nid(b)};" for a, b in edges]
        out.append("}")
        return "\n".join(out)
    if fmt != "mermaid":
        raise ValueError(f"unknown graph format {fmt!r}: mermaid or dot")
    out = ["flowchart LR"]
    out += [f'  {_nid(n)}["{label.replace(chr(92) + "n", "<br/>")}"]' for n, label in nodes]
    out += [f"  {_nid(a)} --> {_nid(b)}" for a, b in edges]
    out += [f"  style {_nid(n)} stroke:{'#d00' if st == MISMATCHED else '#e80'},stroke-width:3px"
            for n, st in status.items()]
    return "\n".join(out)


# ------------------------------------------------------------------------------ JSON


def json_default(o: Any) -> Any:
    """What `json.dumps` cannot encode by itself: times, paths, sets."""
    if isinstance(o, (dt.datetime, dt.date)):
        return o.isoformat()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, set):
        return sorted(o)
    return str(o)


def to_json(doc: Any) -> str:
    """The lineage's JSON encoding (sorted keys: stable bytes for the same lineage)."""
    return json.dumps(doc, indent=2, sort_keys=True, default=json_default)


def render_json(lineage: dict[str, Any], chain: Chain,
                verification: dict[str, Any] | None = None) -> str:
    """`lineage --json`: the lineage, every artifact with its claims, and the verification."""
    doc = {**lineage, "artifacts": [
        {"id": a.id, "kind": a.kind, "path": a.path, "md5": a.md5,
         "claims": [{"by": who, "md5": m} for who, m in a.claims]}
        for a in chain.artifacts.values()]}
    if verification is not None:
        doc["verification"] = verification
    return to_json(doc)
