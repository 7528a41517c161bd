"""Which model a reference means (an md5 or prefix, `production`, `current`) and what the
registry says about it, read through `core.registry.Registry` (the registry's one reader);
a registry file that does not parse reads as empty here, `verify` reports the rest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_assets.core.io import DataError
from mlops_assets.core.layout import (
    MODEL,
    MODEL_FILE,
    MODEL_RECORD,
    PRODUCTION_POINTER,
    RECORD_FILE,
    REGISTRY_MODELS,
    registry_model_dir,
)
from mlops_assets.core.lineage.chain import LineageError
from mlops_assets.core.lineage.history import LockHistory, model_md5_of
from mlops_assets.core.registry import Registry, Settings
from mlops_assets.core.registry import production_pointer as registry_production_pointer
from mlops_assets.core.store import HashCache


@dataclass
class ModelRef:
    version: str
    model_path: str | None = None   # project-relative file holding the bytes (if any)
    record_path: str | None = None
    how: str = ""                   # how the reference was resolved


def _registry(root: Path) -> Registry:
    # default settings: lineage only reads, so params.yaml's approval rules do not matter
    return Registry(root, Settings())


def registry_versions(root: Path) -> dict[str, Any]:
    """version -> its registry entry; {} when there is no registry or it does not parse."""
    try:
        versions = _registry(root).versions()
    except (ValueError, KeyError, TypeError):  # RegistryError is a ValueError
        return {}
    return versions if isinstance(versions, dict) else {}


def production_pointer(root: Path) -> dict[str, Any] | None:
    """The production pointer, or None when there is none or it cannot be read (lineage
    reports that as a finding; the strict reader is core.registry)."""
    try:
        return registry_production_pointer(root)
    except DataError:
        return None


def known_versions(root: Path, history: LockHistory) -> set[str]:
    versions = set(registry_versions(root))
    models = root / REGISTRY_MODELS
    if models.is_dir():
        versions |= {p.name for p in models.iterdir() if p.is_dir()}
    for rev in history.all():
        m = model_md5_of(rev)
        if m:
            versions.add(m)
    return versions


def _special(root: Path, ref: str, history: LockHistory, cache: HashCache | None) -> ModelRef:
    """`production` (the registry pointer) or `current` (the working model file)."""
    if ref == "production":
        ptr = production_pointer(root)
        if not ptr or not ptr.get("version"):
            raise LineageError(f"no production model: {PRODUCTION_POINTER} has no version")
        return ModelRef(str(ptr["version"]), ptr.get("model_path"), ptr.get("record_path"),
                        f"production ({PRODUCTION_POINTER})")
    path = root / MODEL
    md5 = model_md5_of(history.working)
    if md5 is None and path.exists():
        md5 = (cache or HashCache(None)).md5(path)
    if md5 is None:
        raise LineageError(f"no current model: {MODEL} is missing and dvc.lock has no train "
                           "stage")
    return ModelRef(md5, MODEL, MODEL_RECORD, f"current ({MODEL})")


def _hex_ref(ref: str) -> str:
    """An md5 or prefix, normalised; anything else is an error for people."""
    ref = ref.strip().lower()
    if len(ref) < 6 or any(c not in "0123456789abcdef" for c in ref):
        raise LineageError(f"{ref!r} is not a model version: give the md5 of model.skops (or a "
                           "unique prefix of at least 6 hex digits), 'production' or 'current'")
    return ref


def _full_version(ref: str, versions: set[str]) -> str:
    """A unique prefix completed; an ambiguous one is an error for people."""
    if len(ref) < 32:
        matches = sorted(v for v in versions if v.startswith(ref))
        if len(matches) > 1:
            raise LineageError(f"model version prefix {ref!r} is ambiguous: {', '.join(matches)}")
        if matches:
            ref = matches[0]
    return ref


def resolve_model(root: Path, ref: str, history: LockHistory,
                  cache: HashCache | None = None) -> ModelRef:
    """MODEL_VERSION (an md5 or a unique prefix of at least 6 characters), `production` (the
    registry pointer) or `current` (data/model/model.skops)."""
    if ref in ("production", "current", "latest"):
        return _special(root, ref, history, cache)
    ref = _hex_ref(ref)
    versions = known_versions(root, history)
    ref = _full_version(ref, versions)
    if ref not in versions:
        working_file = root / MODEL
        if working_file.exists() and (cache or HashCache(None)).md5(working_file) == ref:
            return ModelRef(ref, MODEL, MODEL_RECORD, "current (file hash)")
        raise LineageError(f"unknown model version {ref}: not in the registry, not in dvc.lock "
                           "nor in any committed dvc.lock")
    entry = registry_versions(root).get(ref) or {}
    reg_dir = registry_model_dir(ref)
    if entry.get("model_path") or (root / reg_dir / MODEL_FILE).exists():
        return ModelRef(ref, entry.get("model_path") or f"{reg_dir}/{MODEL_FILE}",
                        entry.get("record_path") or f"{reg_dir}/{RECORD_FILE}", "registry")
    if model_md5_of(history.working) == ref:
        return ModelRef(ref, MODEL, MODEL_RECORD, "current (dvc.lock)")
    return ModelRef(ref, None, None, "dvc.lock history")
