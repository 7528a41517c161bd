"""Lineage an auditor can verify: from a model version back to the exact bytes, code and
params that made it, and a check that every one of those hashes still holds.

- `build` resolves a model version (md5 of `model.skops`) to its dvc.lock entries and
  `walk`s dvc.yaml's stage graph, claiming every artifact by content hash; `summary`
  reads the facts from the bytes that carry those md5s (working tree, DVC cache, git).
- `verify` recomputes every hash against every claim; `checks` adds leakage, feature
  definitions, params, registry and Dagster; `auditlog` the audit log's integrity.
- `render` prints it (text, diagram, JSON). `history` reads dvc.lock through git,
  `model` the registry (through core.registry), `events` the audit log (through core.audit).

Bytes by md5 (hashing with `HashCache`, the DVC cache, git) live in `core.store`. No dagster
import here (functional core): Dagster records come in through `DagsterRecords`."""

from __future__ import annotations

from mlops_assets.core.lineage.auditlog import verify_audit_log
from mlops_assets.core.lineage.build import build_lineage
from mlops_assets.core.lineage.chain import (
    LINEAGE_FORMAT,
    MISMATCHED,
    MISSING,
    SKIPPED,
    VERIFIED,
    WARNING,
    Artifact,
    Chain,
    Check,
    DagsterRecords,
    LineageError,
)
from mlops_assets.core.lineage.checks import DEFAULT_ASSET_OUTS, scan_leakage
from mlops_assets.core.lineage.events import (
    event_line,
    event_matches_type,
    event_names_model,
    event_time,
    event_type,
)
from mlops_assets.core.lineage.history import TRAIN_STAGE, LockHistory, LockRev
from mlops_assets.core.lineage.model import ModelRef, resolve_model
from mlops_assets.core.lineage.render import (
    json_default,
    render_graph,
    render_json,
    render_text,
    render_verification,
    to_json,
)
from mlops_assets.core.lineage.verify import verify_lineage
from mlops_assets.core.store import HashCache

__all__ = [
    "DEFAULT_ASSET_OUTS", "LINEAGE_FORMAT", "MISMATCHED", "MISSING", "SKIPPED", "TRAIN_STAGE",
    "VERIFIED", "WARNING", "Artifact", "Chain", "Check", "DagsterRecords", "HashCache",
    "LineageError", "LockHistory", "LockRev", "ModelRef", "build_lineage", "event_line",
    "event_matches_type", "event_names_model", "event_time", "event_type", "json_default",
    "render_graph", "render_json", "render_text", "render_verification", "resolve_model",
    "scan_leakage", "to_json", "verify_audit_log", "verify_lineage",
]
