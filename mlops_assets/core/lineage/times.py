"""When things happened: a batch's landing and a model's training, from the best witness
available (Dagster's materialisations, then run facts, then file or commit times)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_assets.core.layout import LANDING, RUNS_DIR
from mlops_assets.core.lineage.chain import DagsterRecords, iso, read_json_bytes
from mlops_assets.core.lineage.history import LockHistory, LockRev, model_md5_of


def parse_time(s: str | None) -> dt.datetime | None:
    if not s:
        return None
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _dagster_landing(dagster: DagsterRecords, entries: list[Mapping[str, Any]]
                     ) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    by_part: dict[str, list[dict[str, Any]]] = {}
    for r in dagster.materializations("raw_snapshots"):
        if r.get("partition"):
            by_part.setdefault(r["partition"], []).append(r)
    for e in entries:
        recs = by_part.get(str(e.get("batch")), [])
        md5 = str(e.get("md5"))
        hit = next((r for r in recs
                    if md5 in str((r.get("metadata") or {}).get("snapshots", ""))), None)
        hit = hit or (recs[0] if recs else None)
        if hit:
            out[str(e.get("batch"))] = {
                "time": iso(hit["timestamp"]),
                "source": f"dagster raw_snapshots[{e.get('batch')}] run {hit['run_id'][:8]}"}
    return out


def landing_times(dagster: DagsterRecords | None, root: Path,
                  entries: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """batch -> {time, source}: the first Dagster materialisation of its raw_snapshots
    partition that shows its md5, else of the partition, else the landing file's mtime."""
    out = _dagster_landing(dagster, entries) if dagster is not None else {}
    for e in entries:
        b = str(e.get("batch"))
        if b in out:
            continue
        p = root / LANDING / str(e.get("source_file"))
        if p.exists():
            out[b] = {"time": iso(p.stat().st_mtime), "source": "landing file mtime"}
    return out


def trained_at(dagster: DagsterRecords | None, root: Path, version: str,
               history: LockHistory, found: tuple[LockRev, Any] | None) -> dict[str, Any] | None:
    """Dagster's model materialisation with this data version, else the last train run's
    facts (when the working lock holds this model), else the commit that first pinned it."""
    if dagster is not None:
        for r in dagster.materializations("model"):
            if r.get("data_version") == version or r.get("dvc_md5") == version:
                return {"time": iso(r["timestamp"]),
                        "source": f"dagster model run {r['run_id'][:8]}"}
    if found and found[0].commit is None and model_md5_of(history.working) == version:
        p = root / RUNS_DIR / "train.json"
        facts = read_json_bytes(p.read_bytes()) if p.exists() else None
        if facts and facts.get("finished_at"):
            return {"time": facts["finished_at"], "source": f"{RUNS_DIR}/train.json"}
    revs = [r for r in history.commits() if model_md5_of(r) == version]
    if revs:
        return {"time": iso(revs[-1].time), "source": f"commit time of {revs[-1].commit[:10]}"}
    return None
