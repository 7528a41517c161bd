"""Batch scoring of a whole snapshot: the service's scoring path, offline (backfills).

Functional core (no Dagster). The rows are validated against the dataset contract
(core.validate.validate_frame, as training validates them; the service's request validator
applies the same contract), turned into features by core.features.build_features and scored
by core.train.score: the very functions the service calls (serve/app.py Service.predict), so
a record gets the same score offline and online (the tests hold them to 1e-12).

The output has exactly the inference log's columns, in its order (core.monitoring.inference_log):

    request_id, request_time, record_index, served_by, model_version, threshold,
    <id column>, <timestamp column>, <features in contract order>, score, decision

with served_by = "batch", request_id = "batch:<batch key>:<snapshot md5>", request_time =
the record's own timestamp and record_index = its position in the snapshot. Every value
derives from the inputs (no wall clock), so the same snapshot and model give the same bytes,
and a backfill can be read by everything that reads the inference log (live performance).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core import layout
from mlops_assets.core.contract import Contract
from mlops_assets.core.features import build_features
from mlops_assets.core.ingest import SnapshotEntry, manifest_entries, read_snapshot
from mlops_assets.core.io import DataError, write_parquet_atomic
from mlops_assets.core.monitoring.files import output_path
from mlops_assets.core.pinned_model import PinnedModel, load_production_model
from mlops_assets.core.train import score
from mlops_assets.core.validate import validate_frame

META_COLUMNS = ["request_id", "request_time", "record_index", "served_by", "model_version",
                "threshold"]
SERVED_BY = "batch"
NO_MODEL = ("the registry has no production model to score with; promote one first "
            "(mlops-assets registry promote ...)")


def output_columns(contract: Contract) -> list[str]:
    """The columns of a scored frame: the inference log's, in its order."""
    return [*META_COLUMNS, contract.id_column, contract.timestamp_column,
            *contract.feature_names, "score", "decision"]


def score_frame(raw: pd.DataFrame, contract: Contract, pipeline: Any, version: str,
                threshold: float, request_id: str, source: str = "snapshot") -> pd.DataFrame:
    """Validate, featurise and score `raw` (rows shaped like the contract, label optional)
    with one model; the result has `output_columns(contract)`, in the input's row order."""
    if not version:
        raise DataError("batch scoring needs the model's version hash", expected="an md5")
    frame, _ = validate_frame(raw, contract, source, require_label=False, sort=False)
    feats = build_features(frame, contract)
    scores = score(pipeline, feats, contract)
    n = len(scores)
    cols: dict[str, Any] = {
        "request_id": np.full(n, request_id, dtype=object),
        "request_time": feats[contract.timestamp_column].to_numpy(dtype="datetime64[ns]"),
        "record_index": np.arange(n, dtype=np.int64),
        "served_by": np.full(n, SERVED_BY, dtype=object),
        "model_version": np.full(n, version, dtype=object),
        "threshold": np.full(n, float(threshold), dtype=np.float64),
        contract.id_column: feats[contract.id_column].to_numpy(),
        contract.timestamp_column: feats[contract.timestamp_column].to_numpy(),
    }
    for name in contract.feature_names:
        cols[name] = feats[name].to_numpy()
    cols["score"] = scores
    cols["decision"] = scores >= float(threshold)  # the service's rule (and core.evaluate's)
    return pd.DataFrame(cols, columns=output_columns(contract))


def summary(scored: pd.DataFrame) -> dict[str, Any]:
    """Plain facts of a scored frame for metadata: rows, alerts, score quantiles."""
    s = scored["score"].to_numpy()
    n = len(s)
    out: dict[str, Any] = {"rows": n, "alerts": int(scored["decision"].sum()),
                           "alert_rate": float(scored["decision"].mean()) if n else None}
    if n:
        q = np.quantile(s, [0.5, 0.9, 0.99])
        out.update({"score_mean": float(s.mean()), "score_p50": float(q[0]),
                    "score_p90": float(q[1]), "score_p99": float(q[2])})
    return out


def score_snapshot(root: Path, settings: Mapping[str, Any], contract: Contract, key: str
                   ) -> tuple[pd.DataFrame, Path, SnapshotEntry, PinnedModel]:
    """Batch `key`'s snapshot scored by the production model (pinned by its md5) and
    written as batch_predictions/<key>.parquet under the monitoring output folder.
    Returns (scored frame, written path, snapshot entry, model)."""
    snapshots = root / layout.SNAPSHOTS
    entry = next((e for e in manifest_entries(snapshots) if e.batch == key), None)
    if entry is None:
        raise DataError(f"batch {key!r} has no snapshot", path=root / layout.MANIFEST,
                        expected="a materialised raw_snapshots partition")
    raw = read_snapshot(snapshots, entry)
    model = load_production_model(root, contract, NO_MODEL)
    scored = score_frame(raw, contract, model.pipeline, model.version, model.threshold,
                         f"batch:{key}:{entry.md5}", source=entry.snapshot_file)
    dest = write_parquet_atomic(output_path(root, settings, "batch_predictions", f"{key}.parquet"),
                                scored)
    return scored, dest, entry, model
