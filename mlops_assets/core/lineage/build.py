"""`build_lineage`: the full chain of one model version, from its bytes back to the raw
batches, as a plain dict plus the `Chain` of claims that `verify_lineage` checks.

The model version is the md5 of `model.skops`. Its train stage entry is the `dvc.lock`
(working tree first, then every committed version, newest first) whose model out has that
md5; from there `walk` follows dvc.yaml's stage graph, and `summary` reads the facts
(record, manifest, split, validation, evaluation, drift) from the bytes carrying those
md5s: the working tree when it holds them, else the DVC cache, else git."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlops_assets.core.dvcgraph import dvc_stages, load_params
from mlops_assets.core.layout import MODEL, MODEL_RECORD
from mlops_assets.core.lineage.chain import (
    LINEAGE_FORMAT,
    Chain,
    DagsterRecords,
    LineageError,
    iso,
)
from mlops_assets.core.lineage.history import TRAIN_STAGE, LockHistory, model_md5_of, outs_of
from mlops_assets.core.lineage.model import (
    ModelRef,
    production_pointer,
    registry_versions,
    resolve_model,
)
from mlops_assets.core.lineage.registered import claim_registered
from mlops_assets.core.lineage.summary import summarise
from mlops_assets.core.lineage.walk import (
    Hit,
    Walk,
    claim_code,
    claim_train_outs,
    walk_downstream,
    walk_upstream,
)
from mlops_assets.core.store import HashCache


def _lock_info(chain: Chain, version: str, found: Hit | None) -> dict[str, Any]:
    """Where the model is pinned: the lock its train entry came from, the commit that first
    recorded it, the last commit of dvc.lock."""
    history = chain.history
    introduced = None
    revs_with_model = [r for r in history.commits() if model_md5_of(r) == version]
    if revs_with_model:
        first = revs_with_model[-1]
        introduced = {"commit": first.commit, "time": iso(first.time), "subject": first.subject}
    if not found:
        chain.notes.append(f"no dvc.lock (working tree or committed) records a train stage with "
                           f"model md5 {version}: the lineage comes from the model record only")
    return {"source": found[0].label if found else None, "introduced_in": introduced,
            "last_lock_commit": history.working_commit_of_lock(),
            "working_lock_has_model": model_md5_of(history.working) == version}


def _read_record(chain: Chain, paths: list[str], record_md5: str | None, version: str
                 ) -> tuple[dict[str, Any] | None, str | None]:
    """The model record: the first copy (registry, then the working path) that is this
    model's, at the md5 the train entry recorded."""
    for p in paths:
        record, src = chain.json_of(p, record_md5)
        if isinstance(record, dict) and record.get("model_md5") in (None, version):
            return record, f"{p} ({src})"
    return None, None


def _claim_model(chain: Chain, model: ModelRef, found: Hit | None, registered: bool
                 ) -> tuple[dict[str, Any], str | None, str | None]:
    """The model and its record, claimed by the train entry and the registry; returns
    (record, where it was read, its md5 in dvc.lock). When the registry recorded its copy's
    md5 (`registered`), that copy is an artifact of its own (`lineage.registered`), not a
    copy of the working record: re-recording the same model with newer data is no
    tampering."""
    version, root = model.version, chain.root
    m = chain.artifact("model", "model", MODEL)
    m.claim("model version", version)
    record_md5 = None
    if found:
        outs = outs_of(found[1])
        m.claim(f"{found[0].label} train.outs", outs.get(MODEL))
        record_md5 = outs.get(MODEL_RECORD)
    if model.model_path and model.model_path != MODEL:
        m.alt_paths.append(model.model_path)
    if not found or not chain.working_expected(m):
        m.strict = False
    rec = chain.artifact("record", "record", MODEL_RECORD)
    if found:
        rec.claim(f"{found[0].label} train.outs", record_md5)
    rec.strict = bool(found) and chain.working_expected(rec)
    registry_copy = []
    if model.record_path and model.record_path != MODEL_RECORD:
        registry_copy.append(model.record_path)
        if not registered:
            rec.alt_paths.append(model.record_path)
        if not found and (root / model.record_path).is_file():
            rec.claim("registry copy", chain.cache.md5(root / model.record_path))
    paths = ([MODEL_RECORD, *registry_copy] if registered and found
             else [*registry_copy, MODEL_RECORD])  # the lock's record first when both are
    record, record_src = _read_record(chain, paths, record_md5, version)
    if record is None and not found:
        raise LineageError(f"model {version}: no model record found (registry copy, "
                           f"{MODEL_RECORD} or DVC cache)")
    record = record or {}
    m.claim("model.json model_md5", record.get("model_md5"))
    m.claim("model.json model.md5", (record.get("model") or {}).get("md5"))
    return record, record_src, record_md5


def _graph(root: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """dvc.yaml's stages and params.yaml: the graph the walk follows."""
    try:
        params = load_params(root) or {}
    except (OSError, yaml.YAMLError):
        params = {}
    try:
        return dvc_stages(root), params
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        raise LineageError(f"cannot read the stage graph from {root / 'dvc.yaml'} "
                           f"({type(e).__name__}: {e})") from None


def build_lineage(root: Path, ref: str, *, cache: HashCache | None = None,
                  dagster: DagsterRecords | None = None,
                  history: LockHistory | None = None) -> tuple[dict[str, Any], Chain]:
    """The full chain of one model version as a plain dict (see module docstring), and the
    `Chain` that `verify_lineage` checks."""
    root = Path(root).resolve()
    cache = cache or HashCache(None)
    history = history or LockHistory(root, cache)
    model = resolve_model(root, ref, history, cache)
    version = model.version
    graph, params = _graph(root)
    chain = Chain(root, history, cache)
    found = chain.find_entry(TRAIN_STAGE, lambda e: outs_of(e).get(MODEL) == version)
    if found:
        chain.entries[TRAIN_STAGE] = found
    lock_info = _lock_info(chain, version, found)
    registry_entry = registry_versions(root).get(version)
    record, record_src, record_md5 = _claim_model(
        chain, model, found, bool((registry_entry or {}).get("record_md5")))
    if registry_entry:
        chain.artifacts["model"].claim("registry.json", version)
    claim_registered(chain, version, registry_entry)
    w = Walk(chain, graph, params, version, record, found, registry_entry, dagster)
    walk_upstream(w)
    claim_train_outs(w)
    walk_downstream(w)
    code = claim_code(w)
    out: dict[str, Any] = {
        "format": LINEAGE_FORMAT, "root": str(root), "version": version,
        "resolved_as": model.how, "lock": lock_info,
        "model": {"version": version, "file": model.model_path or MODEL,
                  "record_file": record_src, "record_md5": record_md5, "record": record,
                  "registry": registry_entry,
                  "production": (production_pointer(root) or {}).get("version") == version}}
    out.update(summarise(w, lock_info, code))
    out["notes"] = chain.notes
    return out, chain
