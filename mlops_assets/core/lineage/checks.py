"""The checks of a lineage that are not one file's bytes: leakage past the cutoff, feature
definitions, params, the registry's story in the audit log, and Dagster's records."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from mlops_assets.core.contract import load_contract
from mlops_assets.core.io import DataError
from mlops_assets.core.layout import (
    AUDIT_LOG,
    DRIFT_JSON,
    EVALUATION,
    FEATURES,
    HOLDOUT,
    LANDING,
    MODEL,
    PRODUCTION_POINTER,
    REGISTRY_INDEX,
    SNAPSHOTS,
    TRAIN,
    VALIDATED,
)
from mlops_assets.core.lineage.chain import (
    MISMATCHED,
    MISSING,
    SKIPPED,
    VERIFIED,
    WARNING,
    Chain,
    Check,
    DagsterRecords,
    iso,
)
from mlops_assets.core.lineage.events import audit_events
from mlops_assets.core.lineage.history import TRAIN_STAGE, outs_of, params_of, yaml_load
from mlops_assets.core.lineage.model import production_pointer
from mlops_assets.core.lineage.registered import REGISTERED_RECORD
from mlops_assets.core.run_params import effective_params
from mlops_assets.core.store import dvc_cache_object

# ------------------------------------------------------------------------------ leakage


def scan_leakage(path: Path, ts_col: str, cutoff: str) -> dict[str, Any]:
    """Count the rows of a parquet file whose timestamp is at or after `cutoff` (reads only
    that column)."""
    try:
        col = pq.read_table(path, columns=[ts_col]).column(ts_col)
    except Exception as e:  # noqa: BLE001 (any unreadable file is a finding, with its reason)
        return {"error": f"{type(e).__name__}: {e}"}
    cut = dt.datetime.fromisoformat(str(cutoff).replace("Z", "+00:00"))
    if cut.tzinfo is not None:
        cut = cut.astimezone(dt.UTC).replace(tzinfo=None)
    if pa.types.is_timestamp(col.type) and col.type.tz is not None:
        col = pc.cast(col, pa.timestamp(col.type.unit))
    if not pa.types.is_timestamp(col.type):
        col = pc.cast(col, pa.timestamp("ns"))
    scalar = pa.scalar(cut, type=col.type)
    late = pc.sum(pc.cast(pc.greater_equal(col, scalar), pa.int64())).as_py() or 0
    mx = pc.max(col).as_py()
    return {"rows": len(col), "late": int(late), "ts_max": None if mx is None else mx.isoformat()}


def _training_bytes(chain: Chain) -> tuple[Path, str] | None:
    """The training set's bytes to scan: the working file when the working tree should hold
    it (or holds this version), else the DVC cache's copy."""
    a = chain.artifacts["train"]
    candidates = []
    wf = chain.root / a.path
    if wf.is_file():
        candidates.append((wf, "working tree"))
    if a.md5 and dvc_cache_object(chain.root, a.md5).is_file():
        candidates.append((dvc_cache_object(chain.root, a.md5), "DVC cache"))
    if not candidates:
        return None
    if not a.strict and len(candidates) > 1 and chain.cache.md5(wf) != a.md5:
        return candidates[1]
    return candidates[0]


def check_leakage(lineage: dict[str, Any], chain: Chain) -> list[Check]:
    """Rows at or after the recorded cutoff in the training set; the scan is kept in the
    hash cache by content md5."""
    cutoff = lineage["training_set"].get("cutoff")
    if chain.artifacts.get("train") is None or not cutoff:
        return [Check(TRAIN, "leakage", SKIPPED, "leakage: no training set or no recorded cutoff")]
    found = _training_bytes(chain)
    if found is None:
        return [Check(TRAIN, "leakage", MISSING, f"leakage: {TRAIN} is missing, cannot check")]
    path, src = found
    ts_col = (lineage["training_set"].get("split") or {}).get("timestamp_column") or "ts"
    key = f"leakage/1:{chain.cache.md5(path)}:{ts_col}:{cutoff}"
    fact = chain.cache.get_fact(key)
    if fact is None:
        fact = scan_leakage(path, ts_col, cutoff)
        chain.cache.put_fact(key, fact)
    if fact.get("error"):
        return [Check(TRAIN, "leakage", MISMATCHED, f"leakage: cannot read {TRAIN} ({src}): "
                                                     f"{fact['error']}")]
    if fact["late"]:
        return [Check(TRAIN, "leakage", MISMATCHED,
                      f"leakage: {TRAIN} ({src}) holds {fact['late']} of {fact['rows']} rows at or "
                      f"after the recorded cutoff {cutoff} (latest {ts_col} {fact['ts_max']})",
                      expected=f"{ts_col} < {cutoff}", actual=fact["ts_max"], source=src)]
    return [Check(TRAIN, "leakage", VERIFIED,
                  f"leakage: none: {fact['rows']} training rows, latest {ts_col} {fact['ts_max']} "
                  f"< cutoff {cutoff}", f"{ts_col} < {cutoff}", fact["ts_max"], src)]


# ------------------------------------------------------------------------------ features


def check_feature_definitions(lineage: dict[str, Any], chain: Chain) -> list[Check]:
    """The feature definitions the model was trained with against every record of them and
    against the contract as it stands (what scoring and serving would compute)."""
    out = []
    f = lineage["features"]
    claims = {k: v for k, v in f["feature_definitions_hash_claims"].items() if v}
    if len(set(claims.values())) > 1:
        out.append(Check("feature definitions", "features", MISMATCHED,
                         "feature definitions: the records disagree: "
                         + ", ".join(f"{k}={v}" for k, v in claims.items())))
    want = f.get("feature_definitions_hash")
    contract = chain.artifacts.get("contract")
    if not want or contract is None:
        return out
    p = chain.root / contract.path
    if not p.exists():
        out.append(Check(contract.path, "features", MISSING,
                         f"feature definitions: {contract.path} is missing"))
        return out
    try:
        have = load_contract(p).feature_definitions_hash()
    except Exception as e:  # noqa: BLE001
        out.append(Check(contract.path, "features", MISMATCHED,
                         f"feature definitions: {contract.path} no longer loads: {e}"))
        return out
    if have == want:
        out.append(Check(contract.path, "features", VERIFIED,
                         f"feature definitions in {contract.path}: {have} (as trained)", want, have,
                         "working tree"))
    else:
        status = MISMATCHED if contract.strict else WARNING
        out.append(Check(contract.path, "features", status,
                         f"feature definitions in {contract.path} hash to {have} but the model was "
                         f"trained with {want}: the feature definitions were edited without a "
                         "rebuild (scoring or serving this model now computes different features)",
                         want, have, "working tree"))
    return out


# ------------------------------------------------------------------------------ params


def _record_vs_lock(lineage: dict[str, Any], chain: Chain) -> list[str]:
    """Where the model record's params and cutoff differ from what dvc.lock pinned."""
    rec = lineage["model"]["record"] or {}
    entry = chain.entries.get(TRAIN_STAGE)
    lp_train = (params_of(entry[1]) if entry else {}).get("train") or {}
    rp = rec.get("params") or {}
    bad = [f"train.{k}: record {rp.get(k)!r}, dvc.lock {v!r}" for k, v in lp_train.items()
           if k in rp and rp.get(k) != v]
    split = chain.entries.get("split")
    lock_cut = (params_of(split[1]).get("split") or {}).get("cutoff") if split else None
    if lock_cut and rec.get("cutoff") and str(lock_cut) != str(rec.get("cutoff")):
        bad.append(f"split.cutoff: record {rec.get('cutoff')!r}, dvc.lock {lock_cut!r}")
    return bad


def _params_yaml_vs_lock(chain: Chain) -> list[str]:
    """Where the effective params (params.yaml + the run params file) differ from the params
    the working lock's entries pinned."""
    try:
        base = yaml_load((chain.root / "params.yaml").read_bytes()) or {}
        now = effective_params(chain.root, base)
    except (OSError, yaml.YAMLError, DataError):
        now = {}
    diffs = []
    for stage, (rev, e) in chain.entries.items():
        if rev.commit is not None:
            continue
        for key, val in params_of(e).items():
            node: Any = now
            for part in key.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node != val:
                diffs.append(f"{key} ({stage}): params.yaml {node!r}, dvc.lock {val!r}")
    return diffs


def check_params(lineage: dict[str, Any], chain: Chain) -> list[Check]:
    """params.yaml against the params dvc.lock pinned (when the working tree should hold this
    model), and the record's params and cutoff against dvc.lock's."""
    out = []
    bad = _record_vs_lock(lineage, chain)
    if bad:
        out.append(Check("params", "params", MISMATCHED, "params: the model record and dvc.lock "
                                                         "disagree: " + "; ".join(bad)))
    entry = chain.entries.get(TRAIN_STAGE)
    if entry and entry[0].commit is None and chain.artifacts["model"].strict:
        diffs = _params_yaml_vs_lock(chain)
        if diffs:
            out.append(Check("params.yaml", "params", MISMATCHED,
                             "params.yaml differs from the params this chain was built with: "
                             + "; ".join(diffs[:10])))
        elif not bad:
            out.append(Check("params.yaml", "params", VERIFIED,
                             "params.yaml: equal to the params dvc.lock pinned"))
    elif not bad:
        out.append(Check("params", "params", VERIFIED, "params: the model record equals dvc.lock"))
    return out


# ------------------------------------------------------------------------------ registry


def _check_pointer_files(chain: Chain, ptr: dict[str, Any], version: str) -> list[Check]:
    """The production pointer's model and record files hold this model's bytes."""
    out = []
    for key in ("model_path", "record_path"):
        rel = ptr.get(key)
        if not rel:
            continue
        p = chain.root / rel
        record = chain.artifacts.get(REGISTERED_RECORD) or chain.artifacts["record"]
        want = version if key == "model_path" else record.md5
        if not p.is_file():
            out.append(Check(rel, "registry", MISSING, f"{PRODUCTION_POINTER} {key} {rel}: "
                                                       "missing"))
        elif want and chain.cache.md5(p) != want:
            out.append(Check(rel, "registry", MISMATCHED,
                             f"{PRODUCTION_POINTER} {key} {rel}: md5 {chain.cache.md5(p)} "
                             f"but expected {want}"))
    return out


def _check_promotion(events: list[dict[str, Any]], version: str) -> Check:
    promoted = [e for e in events if e.get("action") in ("promote", "rollback")
                and (e.get("to_stage") == "production" or e.get("to_version") == version)]
    if not promoted:
        return Check(PRODUCTION_POINTER, "registry", MISMATCHED,
                     f"registry: {PRODUCTION_POINTER} points at {version} but the audit "
                     "log records no promotion or rollback to it")
    e = promoted[-1]
    return Check(PRODUCTION_POINTER, "registry", VERIFIED,
                 f"registry: in production by {e.get('action')} #{e.get('seq')} "
                 f"({e.get('by')}, {e.get('at')})")


def check_registry(lineage: dict[str, Any], chain: Chain) -> list[Check]:
    """The registry's story must be in the audit log: every approval it lists, and (for the
    production model) the promotion or rollback that put it there."""
    version = lineage["version"]
    ptr = production_pointer(chain.root)
    in_production = bool(ptr and ptr.get("version") == version)
    out = _check_pointer_files(chain, ptr or {}, version) if in_production else []
    entry = lineage["model"].get("registry") or {}
    if not entry and not in_production:
        return out
    events = [e for e in audit_events(chain.root) if e.get("version") == version
              or e.get("to_version") == version]
    if not (chain.root / AUDIT_LOG).exists():
        out.append(Check(AUDIT_LOG, "registry", WARNING,
                         f"registry: {AUDIT_LOG} is missing, so the registry's approvals and "
                         "promotions of this model cannot be checked against it"))
        return out
    logged = {(e.get("by"), e.get("reason")) for e in events if e.get("action") == "approve"}
    unlogged = [a for a in entry.get("approvals") or []
                if (a.get("by"), a.get("reason")) not in logged]
    if unlogged:
        out.append(Check(REGISTRY_INDEX, "registry", MISMATCHED,
                         f"registry: {REGISTRY_INDEX} lists approval(s) of {version} that the "
                         f"audit log never recorded: {unlogged}"))
    elif entry.get("approvals"):
        out.append(Check(REGISTRY_INDEX, "registry", VERIFIED,
                         f"registry: {len(entry['approvals'])} approval(s) of this model, each in "
                         f"the audit log"))
    if in_production:
        out.append(_check_promotion(events, version))
    return out


# ------------------------------------------------------------------------------ Dagster

# asset key -> (DVC stage, the out whose md5 is its data version); the CLI passes the map
# derived from dvc.yaml (mlops_assets.pipeline.asset_outs), this is the fallback.
DEFAULT_ASSET_OUTS: dict[str, tuple[str, str]] = {
    "landing_batches": ("landing", LANDING), "raw_snapshots": ("snapshot", SNAPSHOTS),
    "validated_dataset": ("validate", VALIDATED), "feature_table": ("features", FEATURES),
    "training_set": ("split", TRAIN), "holdout_set": ("split", HOLDOUT),
    "model": (TRAIN_STAGE, MODEL), "evaluation": ("evaluate", EVALUATION),
    "drift_report": ("drift", DRIFT_JSON)}


def _stale_inputs(chain: Chain, last: dict[str, Any],
                  asset_outs: Mapping[str, tuple[str, str]]) -> list[str]:
    """The upstream data versions Dagster recorded for a materialisation that differ from
    the chain's (partitioned raw snapshots record a combined hash: not compared)."""
    stale = []
    for tag, val in (last.get("tags") or {}).items():
        if not tag.startswith("dagster/input_data_version/"):
            continue
        up = tag.rsplit("/", 1)[-1]
        ustage, upath = asset_outs.get(up, (None, None))
        uentry = chain.entries.get(ustage) if ustage else None
        uwant = outs_of(uentry[1]).get(upath) if uentry else None
        if uwant and not upath == SNAPSHOTS and val != uwant:
            stale.append(f"{up} {val} (the chain's: {uwant})")
    return stale


def _check_asset(lineage: dict[str, Any], chain: Chain, key: str, path: str, want: str,
                 recs: list[dict[str, Any]], asset_outs: Mapping[str, tuple[str, str]]
                 ) -> list[Check]:
    hits = [r for r in recs if r.get("data_version") == want]
    if not hits:
        latest = recs[-1] if recs else None
        msg = (f"Dagster: {key} was never materialised with data version {want} ({path})"
               + (f"; latest: {latest.get('data_version')}, run {latest['run_id'][:8]} at "
                  f"{iso(latest['timestamp'])}. Built outside Dagster (dvc repro)?"
                  if latest else "; it has no materialisation at all"))
        return [Check(f"dagster:{key}", "dagster", WARNING, msg, want,
                      None if latest is None else latest.get("data_version"))]
    bad = [r for r in hits if r.get("dvc_md5") not in (None, "", want)]
    if bad:
        return [Check(f"dagster:{key}", "dagster", MISMATCHED,
                      f"Dagster: {key} run {bad[0]['run_id'][:8]} has data version {want} "
                      f"but dvc/md5 metadata {bad[0].get('dvc_md5')}", want, bad[0].get("dvc_md5"))]
    last = hits[-1]
    mm = (last.get("metadata") or {}).get("model_md5") if key == "model" else None
    if mm and mm != lineage["version"]:
        return [Check("dagster:model", "dagster", MISMATCHED,
                      f"Dagster: model run {last['run_id'][:8]} metadata model_md5 {mm} "
                      f"!= {lineage['version']}", lineage["version"], mm)]
    out = []
    stale = _stale_inputs(chain, last, asset_outs)
    if stale:
        out.append(Check(f"dagster:{key}", "dagster", WARNING,
                         f"Dagster provenance: {key} run {last['run_id'][:8]} recorded input "
                         f"data versions {'; '.join(stale)}: upstream was rebuilt outside "
                         "Dagster, or the lineage disagrees", want, want))
    extra = (f", {len({r.get('partition') for r in hits})} partitions"
             if any(r.get("partition") for r in hits) else "")
    out.append(Check(f"dagster:{key}", "dagster", VERIFIED,
                     f"Dagster: {key} materialised with data version = dvc/md5 = {want} "
                     f"(run {last['run_id'][:8]} at {iso(last['timestamp'])}{extra})",
                     want, want, "dagster"))
    return out


def check_dagster(lineage: dict[str, Any], chain: Chain, dagster: DagsterRecords,
                  asset_outs: Mapping[str, tuple[str, str]] | None = None) -> list[Check]:
    """Each asset's Dagster materialisation for this chain: its data version and its
    "dvc/md5" metadata must both equal the md5 the chain's dvc.lock entry records."""
    asset_outs = asset_outs or DEFAULT_ASSET_OUTS
    out = []
    for key, (stage, path) in asset_outs.items():
        entry = chain.entries.get(stage)
        want = outs_of(entry[1]).get(path) if entry else None
        if want:
            out += _check_asset(lineage, chain, key, path, want,
                                dagster.materializations(key), asset_outs)
    return out
