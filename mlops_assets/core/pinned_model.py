"""The production model, read through the registry and pinned by the md5 of its bytes.

One loader for everything that scores with "the production model": the web service
(serve.model_holder adds its fast path and warm-up on top) and live monitoring (batch
predictions, live drift). The pointer names a version; the model file's md5 must equal it,
so a caller scores exactly the pinned bytes and never "the latest file"."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_assets.core import layout
from mlops_assets.core.contract import Contract
from mlops_assets.core.io import DataError, md5_file
from mlops_assets.core.registry import production_pointer
from mlops_assets.core.train import load_model


class NoProductionModel(DataError):
    """The registry has no production model (pointer missing or its version is null)."""


@dataclass(frozen=True)
class PinnedModel:
    """A verified model file: its md5 (`version`), record and operating threshold;
    `pipeline` is None when only verified, not loaded."""

    path: Path
    version: str
    threshold: float
    record: dict[str, Any] = field(repr=False)
    pipeline: Any = field(default=None, repr=False, compare=False)


def require_production(root: Path, message: str) -> dict[str, Any]:
    """The production pointer; NoProductionModel(message) when there is none."""
    info = production_pointer(root)
    if info is None:
        raise NoProductionModel(message, path=root / layout.PRODUCTION_POINTER,
                                expected="a pointer with a version")
    return info


def _absolute(root: Path, p: str | Path) -> Path:
    p = Path(p)
    return p if p.is_absolute() else root / p


def _read_record(root: Path, model: Path, actual: str, record_path: str | Path | None,
                 require_record: bool) -> tuple[dict[str, Any], Path]:
    """The model's record (model.json beside it unless named), checked to describe it."""
    rp = _absolute(root, record_path) if record_path else model.with_name(layout.RECORD_FILE)
    if not rp.exists():
        if require_record:
            raise DataError("model record does not exist", path=rp, expected="model.json")
        return {}, rp
    record = json.loads(rp.read_text())
    if record.get("model_md5") not in (None, actual):
        raise DataError(f"model record names model md5 {record.get('model_md5')}, "
                        f"not {actual}", path=rp, expected="the record of this model")
    return record, rp


def verify_pinned(root: Path, contract: Contract, model_path: str | Path, version: str | None,
                  record_path: str | Path | None, require_record: bool = True) -> PinnedModel:
    """Check a model file without loading it: its md5 equals `version` (when given), its
    record describes it and matches the contract's feature definitions, and it has an
    operating threshold."""
    mp = _absolute(root, model_path)
    if not mp.exists():
        raise DataError("model file does not exist", path=mp, expected="a skops model file")
    actual = md5_file(mp)
    if version is not None and actual != version:
        raise DataError(f"model bytes do not match the pinned version hash (md5 {actual})",
                        path=mp, expected=f"md5 {version}")
    record, rp = _read_record(root, mp, actual, record_path, require_record)
    fdh = (record.get("contract") or {}).get("feature_definitions_hash")
    if fdh is not None and fdh != contract.feature_definitions_hash():
        raise DataError("the model was trained with other feature definitions than the "
                        f"serving contract's ({fdh} != {contract.feature_definitions_hash()})",
                        path=rp, expected="a model trained on this contract's features")
    threshold = record.get("threshold")
    if threshold is None:
        raise DataError("the model record has no operating threshold", path=rp,
                        expected="a 'threshold' key (written by the train stage)")
    return PinnedModel(path=mp, version=actual, threshold=float(threshold), record=record)


def load_production_model(root: Path, contract: Contract,
                          message: str = "the registry has no production model") -> PinnedModel:
    """The production model, verified against its pinned md5 and loaded."""
    info = require_production(root, message)
    pinned = verify_pinned(root, contract, info["model_path"], info["version"],
                           info.get("record_path"))
    return PinnedModel(path=pinned.path, version=pinned.version, threshold=pinned.threshold,
                       record=pinned.record, pipeline=load_model(pinned.path))
