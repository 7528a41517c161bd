"""The Dagster side of lineage: the instance's materialisation records as the plain dicts
`core.lineage.DagsterRecords` asks for, and the `model` asset's link to its lineage record.

An adapter module of the auto-loaded defs/ folder: it defines no `Definitions`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.core.layout import RUNS_DIR
from mlops_assets.core.lineage import build_lineage, render_graph, to_json
from mlops_assets.core.store import HashCache

LINEAGE_RECORDS = f"{RUNS_DIR}/lineage"  # run facts: git-ignored, never a DVC output


def _plain(metadata: Any) -> dict[str, Any]:
    """Metadata values as JSON scalars (anything else as its string)."""
    meta = {}
    for k, v in (metadata or {}).items():
        val = getattr(v, "value", v)
        meta[k] = val if isinstance(val, (str, int, float, bool)) else str(val)
    return meta


class InstanceRecords:
    """Materialisation records of the project's Dagster instance, as plain dicts (what
    `core.lineage.DagsterRecords` asks for). Fetched once per asset."""

    def __init__(self, instance: Any) -> None:
        self.instance = instance
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def _fetch(self, asset_key: str) -> list[Any]:
        recs: list[Any] = []
        cursor = None
        while True:
            res = self.instance.fetch_materializations(
                dg.AssetKey(asset_key), limit=1000, cursor=cursor, ascending=True)
            recs += res.records
            if not res.has_more:
                return recs
            cursor = res.cursor

    def materializations(self, asset_key: str) -> list[dict[str, Any]]:
        if asset_key not in self._cache:
            out = []
            for r in self._fetch(asset_key):
                mat = r.asset_materialization
                if mat is None:
                    continue
                meta = _plain(mat.metadata)
                out.append({"timestamp": r.timestamp, "run_id": r.run_id,
                            "partition": mat.partition,
                            "data_version": (mat.tags or {}).get("dagster/data_version"),
                            "dvc_md5": meta.get("dvc/md5"), "metadata": meta,
                            "tags": dict(mat.tags or {})})
            self._cache[asset_key] = out
        return self._cache[asset_key]


def dagster_records(root: Path) -> tuple[InstanceRecords | None, str]:
    """The instance's records, or None and why not. Only an instance whose DAGSTER_HOME
    already has storage is opened (opening one would otherwise create it)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return None, "Dagster: DAGSTER_HOME is not set, materialisation metadata not checked"
    h = Path(home)
    if not any((h / d).exists() for d in ("storage", "history")):
        return None, (f"Dagster: DAGSTER_HOME {h} has no storage yet (nothing was materialised "
                      "there), materialisation metadata not checked")
    warnings.filterwarnings("ignore")
    try:
        instance = dg.DagsterInstance.get()
    except Exception as e:  # noqa: BLE001 (a broken instance is a note, not a crash)
        return None, f"Dagster: cannot open the instance at {h} ({type(e).__name__}: {e})"
    return InstanceRecords(instance), f"Dagster: instance {h}"


def model_lineage_metadata(root: Path, version: str) -> dict[str, Any]:
    """Metadata for the `model` asset's materialisation that links it to its lineage record:
    writes `data/runs/lineage/<version>.json` (run facts: git-ignored, not a DVC output) and
    returns {lineage_record (path), lineage_verify (the command), lineage_graph (Mermaid)}.
    Meant for defs/metadata.py `asset_metadata(key="model", ...)`; never raises (a lineage
    problem must not fail a training run), returns {} instead."""
    try:
        with HashCache.for_root(root) as cache:
            lineage, chain = build_lineage(root, version, cache=cache)
        out = root / LINEAGE_RECORDS / f"{version}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(to_json(lineage))
        tmp.replace(out)
        return {
            "lineage_record": dg.MetadataValue.path(str(out)),
            "lineage_verify": dg.MetadataValue.text(f"mlops-assets lineage {version} --verify"),
            "lineage_graph": dg.MetadataValue.md(
                "```mermaid\n" + render_graph(lineage, chain, "mermaid") + "\n```"),
        }
    except Exception:  # noqa: BLE001
        return {}
