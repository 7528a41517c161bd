"""Live drift: one day of answered traffic (the consolidated inference log) against the
reference profile of the model that serves, by the same engine as the drift stage.

The reference is pinned: the production model's record names the md5 of the profile it was
trained with, and that exact profile is read (the working tree's copy when it has those
bytes, else the DVC cache's), never "whatever profile is newest". Functional core: the
Dagster asset (defs/monitoring_assets.py live_drift_report) only shapes metadata and checks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_assets.core import drift, layout
from mlops_assets.core.io import DataError, md5_file, read_table, write_json_atomic, write_text_atomic
from mlops_assets.core.monitoring.files import consolidated_log_path, output_path, rel
from mlops_assets.core.pinned_model import require_production
from mlops_assets.core.store import dvc_cache_object

NO_REFERENCE = "no production model: its reference profile is the drift reference"


def _pinned_file(root: Path, rel_path: str, md5: str | None) -> Path | None:
    """`rel_path` if its bytes have this md5, else the DVC cache's copy of these bytes."""
    live = root / rel_path
    if md5 is None:
        return live if live.is_file() else None
    if live.is_file() and md5_file(live) == md5:
        return live
    cached = dvc_cache_object(root, md5)
    return cached if cached.is_file() else None


def pinned_reference_profile(root: Path, record: Mapping[str, Any],
                             profile_rel: str = layout.REFERENCE_PROFILE,
                             values_rel: str = layout.REFERENCE_VALUES) -> dict[str, Any]:
    """The reference profile a model was trained with, pinned by the md5 its record names
    (`reference_profile_md5`): drift is measured against the reference of the model that
    serves, so a newer training run's profile must not be picked up."""
    want = record.get("reference_profile_md5")
    if not want:
        raise DataError(f"model record of {record.get('model_md5')} names no reference profile",
                        column="reference_profile_md5",
                        expected="a model trained by the train stage (it pins its profile)")
    prof = _pinned_file(root, profile_rel, want)
    if prof is None:
        raise DataError(f"the reference profile of model {record.get('model_md5')} (md5 {want}) "
                        "is neither in the working tree nor in the DVC cache",
                        path=root / profile_rel, expected=f"md5 {want} (dvc pull / dvc checkout)")
    meta = json.loads(prof.read_text())
    vmd5 = (meta.get("values_file") or {}).get("md5")
    values = _pinned_file(root, values_rel, vmd5)
    if values is None:
        raise DataError(f"the reference values of model {record.get('model_md5')} (md5 {vmd5}) "
                        "are neither in the working tree nor in the DVC cache",
                        path=root / values_rel, expected=f"md5 {vmd5}")
    return drift.load_reference_profile(prof, values)


def current_traffic(log: pd.DataFrame, version: str) -> tuple[pd.DataFrame, Any]:
    """The records to compare and their scores: the answered (not shadow) records of the
    production version with its scores; if it answered none that day, all answered records
    without scores (another model's scores say nothing about this model's drift)."""
    answered = log[log["served_by"] != "shadow"]
    mine = answered[answered["model_version"] == version]
    current, scores = (mine, mine["score"].to_numpy()) if len(mine) else (answered, None)
    return current.reset_index(drop=True), scores


def _lineage(root: Path, src: Path, day: str, version: str, current: pd.DataFrame,
             record: Mapping[str, Any], drift_params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "inputs": {rel(root, src): md5_file(src)},
        "model_version": version,
        "current_batch": f"inference_log:{day}",
        "current_window": [str(current["request_time"].min()), str(current["request_time"].max())],
        "current_rows": len(current),
        "current_model_versions": sorted(set(current["model_version"])),
        "reference_window": record.get("train_window"),
        "reference_rows": record.get("n_rows"),
        "params": drift_params,
    }


def live_drift(root: Path, day: str, settings: Mapping[str, Any],
               drift_params: Mapping[str, Any]) -> tuple[dict[str, Any], Path, Path]:
    """The drift report of one consolidated day against the production model's pinned
    reference profile, written as JSON + HTML. Returns (report, json path, html path)."""
    src = consolidated_log_path(root, settings, day)
    if not src.is_file():
        raise DataError(f"the inference log of {day} is not consolidated yet", path=src,
                        expected="a materialised inference_log partition")
    pointer = require_production(root, NO_REFERENCE)
    record = json.loads((root / pointer["record_path"]).read_text())
    version = pointer["version"]
    profile = pinned_reference_profile(root, record)
    current, scores = current_traffic(read_table(src), version)
    lineage = _lineage(root, src, day, version, current, record, drift_params)
    report = drift.drift_report(profile, current, scores, drift_params, lineage,
                                record.get("feature_importance") or None)
    jpath = output_path(root, settings, "drift", f"date={day}.json")
    hpath = jpath.with_suffix(".html")
    write_json_atomic(jpath, report)
    write_text_atomic(hpath, drift.render_html(report, None, record.get("feature_importance")))
    return report, jpath, hpath


def drifted_feature_names(report: Mapping[str, Any]) -> list[str]:
    """The drifted features' names (the report lists names or {name, ...} entries)."""
    return [f if isinstance(f, str) else f.get("name")
            for f in (report.get("drifted_features") or [])]
