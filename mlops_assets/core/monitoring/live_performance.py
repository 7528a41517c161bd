"""Live quality once the delayed labels land: the inference log joined to label files.

Functional core (no Dagster). `merge_labels` and `compute_live_performance` read the label
files and the consolidated inference log and write their results; the Dagster layer
(defs/monitoring_assets.py) calls them and turns the report's `check` (`quality_check`)
into the `live_quality_within_bounds` asset check.

Label files (params `monitoring.labels_dir`, default data/labels) land like data batches:
`*.parquet` / `*.csv` (temporary and hidden names are ignored, core.ingest rules), one row
per labelled record with the record id (the contract's id column, or `id`), the label (the
contract's label column, or `label`: 0/1) and `label_time` (when the label became known).
The same id in several files is a correction: the label with the newest `label_time` wins;
two different labels for one id at the same `label_time` are an error (no silent choice).

Per period (a day by default, `monitoring.period`) of the request time, per model version
and per `served_by` (production / canary / shadow / batch), two rows:
  * estimated = false: the labelled records: precision, recall and false-positive rate of
    the logged decisions (decision = score >= the model's operating threshold, as served),
    with the confusion counts;
  * estimated = true: the not-yet-labelled records, a CBPE-style estimate from the scores
    read as calibrated probabilities: expected TP = sum(p * d), FP = sum((1 - p) * d),
    FN = sum(p * (1 - d)), TN = sum((1 - p) * (1 - d)) for score p and decision d. It is an
    estimate that is only as good as the calibration, and is marked as such everywhere.
Both rows carry the alert volume (decisions = 1) and alert rate of their records.

A record scored twice by the same model and route (a client retry) counts once (the last
scoring), so a retry storm cannot inflate the alert volume or the FPR.

`quality_check` pools the labelled rows of the newest `monitoring.window_periods` periods per
model version (shadow scoring excluded: it answered nobody) and fails when the FPR rose more
than `monitoring.max_fpr_increase` above, or the recall fell more than
`monitoring.max_recall_drop` below, that version's holdout numbers (evaluation.json or the
registry's copy of its evaluation). Both thresholds are absolute differences of rates. A
version with fewer than `min_labelled_negatives` (FPR) / `min_labelled_positives` (recall)
labelled records is not judged on that metric (too few to tell noise from change).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core import layout
from mlops_assets.core.contract import Contract
from mlops_assets.core.io import DataError, md5_file, read_table, write_json_atomic, write_parquet_atomic
from mlops_assets.core.monitoring.files import consolidated_days, label_files, output_path, rel
from mlops_assets.core.registry import Registry, Settings

REPORT_FORMAT = "mlops_assets.live_performance/1"
LABEL_COLUMNS = ["id", "label", "label_time"]

MONITORING_DEFAULTS: dict[str, Any] = {
    "labels_dir": layout.LABELS,             # label files land here (like data batches)
    "inference_log_dir": layout.INFERENCE_LOG,  # the service's append-only segments
    "output_dir": layout.MONITORING,         # consolidated log, labels, reports, predictions
    "period": "D",                           # pandas period alias of the performance table
    "window_periods": 7,                     # newest periods pooled by the quality check
    "history_days": 90,                      # newest consolidated log days in the table
    "max_fpr_increase": 0.02,                # absolute rise of the FPR over the holdout FPR
    "max_recall_drop": 0.15,                 # absolute fall of recall below holdout recall
    "min_labelled_negatives": 500,           # fewer: the FPR is not judged
    "min_labelled_positives": 20,            # fewer: the recall is not judged
    "sensor_interval_seconds": 60,
    "log_settle_seconds": 30,                # a day is consolidated once no segment is newer
}


def monitoring_settings(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """MONITORING_DEFAULTS overlaid with params.yaml's `monitoring:` section."""
    section = (params or {}).get("monitoring") or {}
    unknown = sorted(set(section) - set(MONITORING_DEFAULTS))
    if unknown:
        raise DataError(f"unknown monitoring keys {unknown}",
                        expected=f"some of {sorted(MONITORING_DEFAULTS)}")
    return {**MONITORING_DEFAULTS, **section}


# ------------------------------------------------------------------------ labels


def _pick(df: pd.DataFrame, names: list[str], what: str, path: Path) -> str:
    for n in names:
        if n in df.columns:
            return n
    raise DataError(f"label file has no {what} column", path=path, column=" or ".join(names),
                    expected=f"columns {' / '.join(names)} (record id), label (0/1), label_time")


def read_label_file(path: str | os.PathLike[str], contract: Contract) -> pd.DataFrame:
    """One label file as [id, label, label_time, _file], validated (DataError names the
    file, the column and the rows)."""
    path = Path(path)
    raw = read_table(path)
    id_col = _pick(raw, [contract.id_column, "id"], "id", path)
    label_col = _pick(raw, [contract.label_column, "label"], "label", path)
    time_col = _pick(raw, ["label_time"], "label_time", path)
    ids = raw[id_col]
    bad = np.flatnonzero(ids.isna().to_numpy()).tolist()
    if bad:
        raise DataError("label file has rows without a record id", path=path, column=id_col,
                        rows=bad, expected="a record id in every row")
    lab = pd.to_numeric(raw[label_col], errors="coerce")
    bad = np.flatnonzero(~lab.isin([0, 1]).to_numpy()).tolist()
    if bad:
        raise DataError(f"label file has labels other than 0/1 (e.g. {raw[label_col].iloc[bad[0]]!r})",
                        path=path, column=label_col, rows=bad, expected="0 or 1 in every row")
    t = raw[time_col]
    if pd.api.types.is_datetime64_any_dtype(t):
        times = t.dt.tz_convert("UTC").dt.tz_localize(None) if t.dt.tz is not None else t
    else:
        times = pd.to_datetime(t, errors="coerce", utc=True, format="ISO8601").dt.tz_localize(None)
    bad = np.flatnonzero(times.isna().to_numpy()).tolist()
    if bad:
        raise DataError("label file has missing or unparseable label times", path=path,
                        column=time_col, rows=bad, expected="an ISO 8601 timestamp in every row")
    return pd.DataFrame({"id": ids.astype(str).to_numpy(), "label": lab.astype(np.int8).to_numpy(),
                         "label_time": times.astype("datetime64[ns]").to_numpy(),
                         "_file": path.name})


def read_labels(paths: list[Path], contract: Contract) -> tuple[pd.DataFrame, dict[str, Any]]:
    """All label files as one table [id, label, label_time, _file], one row per id (the
    newest label wins); and a summary {files, rows, ids, corrections, positives}."""
    frames = [read_label_file(p, contract) for p in sorted(paths, key=lambda p: p.name)]
    files = [{"file": p.name, "md5": md5_file(p), "rows": len(f)}
             for p, f in zip(sorted(paths, key=lambda p: p.name), frames, strict=True)]
    if not frames:
        empty = pd.DataFrame({"id": pd.Series([], dtype=object), "label": pd.Series([], dtype=np.int8),
                              "label_time": pd.Series([], dtype="datetime64[ns]"),
                              "_file": pd.Series([], dtype=object)})
        return empty, {"files": [], "rows": 0, "ids": 0, "corrections": 0, "positives": 0}
    df = pd.concat(frames, ignore_index=True)
    df = df.sort_values(["id", "label_time", "_file"], kind="stable").reset_index(drop=True)
    same_time = df.duplicated(["id", "label_time"], keep=False)
    if same_time.any():
        clash = df[same_time].groupby(["id", "label_time"])["label"].nunique()
        clash = clash[clash > 1]
        if len(clash):
            rid, when = clash.index[0]
            where = df[(df["id"] == rid) & (df["label_time"] == when)]
            raise DataError(f"record {rid!r} has conflicting labels at the same label_time "
                            f"{when}: {sorted(where['label'].tolist())}",
                            path=", ".join(sorted(set(where["_file"]))), column="label",
                            expected="one label per record and label time (a later label_time "
                                     "corrects an earlier one)")
    n_rows = len(df)
    last = df.drop_duplicates("id", keep="last").reset_index(drop=True)
    changed = df.groupby("id")["label"].nunique()
    summary = {"files": files, "rows": n_rows, "ids": len(last),
               "corrections": int((changed > 1).sum()), "positives": int(last["label"].sum())}
    if len(last):
        summary["label_time_range"] = [str(last["label_time"].min()), str(last["label_time"].max())]
    return last, summary


# ------------------------------------------------------------------------ join and metrics


def join_labels(log: pd.DataFrame, labels: pd.DataFrame, id_column: str) -> pd.DataFrame:
    """The log (one row per record, model version and route; the last scoring of a retried
    record) with `label` (NaN until labelled) and `label_time`."""
    need = [id_column, "request_time", "model_version", "served_by", "score", "decision"]
    missing = [c for c in need if c not in log.columns]
    if missing:
        raise DataError(f"the inference log lacks column(s) {missing}", column=missing[0],
                        expected=f"the service's log columns ({need})")
    df = log.copy()
    df["_key"] = df[id_column].astype(str)
    df = df.sort_values(["request_time"], kind="stable")
    df = df.drop_duplicates(["_key", "model_version", "served_by"], keep="last")
    lab = labels[["id", "label", "label_time"]].rename(columns={"id": "_key"})
    out = df.merge(lab, on="_key", how="left", validate="many_to_one")
    return out.drop(columns=["_key"]).reset_index(drop=True)


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else float(a) / float(b)


def confusion_metrics(labels: np.ndarray, decisions: np.ndarray) -> dict[str, Any]:
    """Measured metrics of logged decisions against labels (both 0/1 arrays)."""
    y = labels.astype(bool)
    d = decisions.astype(bool)
    tp, fp = int(np.sum(d & y)), int(np.sum(d & ~y))
    fn, tn = int(np.sum(~d & y)), int(np.sum(~d & ~y))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "positives": tp + fn, "negatives": fp + tn,
            "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "fpr": _ratio(fp, fp + tn)}


def estimated_metrics(scores: np.ndarray, decisions: np.ndarray) -> dict[str, Any]:
    """CBPE-style expected confusion counts from calibrated scores (an estimate)."""
    p = np.clip(scores.astype(np.float64), 0.0, 1.0)
    d = decisions.astype(np.float64)
    tp, fp = float(np.sum(p * d)), float(np.sum((1 - p) * d))
    fn, tn = float(np.sum(p * (1 - d))), float(np.sum((1 - p) * (1 - d)))
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "positives": tp + fn, "negatives": fp + tn,
            "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "fpr": _ratio(fp, fp + tn)}


def period_of(times: pd.Series, period: str) -> pd.Series:
    """The period label of each request time ('2025-11-24' for days)."""
    t = pd.to_datetime(times)
    if str(period).upper() == "D":
        return t.dt.strftime("%Y-%m-%d")
    return t.dt.to_period(period).astype(str)


def live_performance(log: pd.DataFrame, labels: pd.DataFrame, contract: Contract,
                     period: str = "D") -> dict[str, Any]:
    """The performance table: per period, model version and route, a measured row
    (labelled records) and an estimated row (the others); deterministic, no wall clock."""
    joined = join_labels(log, labels, contract.id_column) if len(log) else None
    rows: list[dict[str, Any]] = []
    if joined is not None:
        joined["period"] = period_of(joined["request_time"], period)
        keys = ["period", "model_version", "served_by"]
        for (per, version, route), g in joined.groupby(keys, sort=True):
            dec = g["decision"].astype(bool).to_numpy()
            labelled = g["label"].notna().to_numpy()
            base = {"period": per, "model_version": version, "served_by": route,
                    "n_total": len(g), "labelled_n": int(labelled.sum()),
                    "threshold": float(g["threshold"].iloc[0]) if "threshold" in g else None}
            for est in (False, True):
                part = ~labelled if est else labelled
                if not part.any():
                    continue
                d = dec[part]
                m = (estimated_metrics(g["score"].to_numpy()[part], d) if est
                     else confusion_metrics(g["label"].to_numpy()[part], d))
                rows.append({**base, "estimated": est, "n": int(part.sum()),
                             "alerts": int(d.sum()), "alert_rate": float(d.mean()), **m})
    return {"format": REPORT_FORMAT, "period": period, "rows": rows,
            "n_log_records": 0 if joined is None else len(joined),
            "n_labelled": 0 if joined is None else int(joined["label"].notna().sum()),
            "versions": _version_totals(joined)}


def _version_totals(joined: pd.DataFrame | None) -> dict[str, Any]:
    """Per model version (shadow excluded), all periods pooled: measured and estimated."""
    out: dict[str, Any] = {}
    if joined is None:
        return out
    answered = joined[joined["served_by"] != "shadow"]
    for version, g in answered.groupby("model_version", sort=True):
        dec = g["decision"].astype(bool).to_numpy()
        labelled = g["label"].notna().to_numpy()
        out[str(version)] = {
            "n": len(g), "labelled_n": int(labelled.sum()), "alerts": int(dec.sum()),
            "alert_rate": float(dec.mean()),
            "periods": sorted(set(g["period"])),
            "measured": confusion_metrics(g["label"].to_numpy()[labelled], dec[labelled]),
            "estimated": estimated_metrics(g["score"].to_numpy()[~labelled], dec[~labelled]),
        }
    return out


# ------------------------------------------------------------------------ the check


def quality_check(report: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]],
                  settings: Mapping[str, Any]) -> dict[str, Any]:
    """Judge the newest `window_periods` periods per model version against its baseline
    ({fpr, recall, source}). Returns {passed, reasons, window, versions: {v: {...}}}."""
    rows = [r for r in report.get("rows", []) if not r["estimated"] and r["served_by"] != "shadow"]
    periods = sorted({r["period"] for r in rows})
    window = periods[-int(settings["window_periods"]):] if periods else []
    versions: dict[str, Any] = {}
    reasons: list[str] = []
    for version in sorted({r["model_version"] for r in rows if r["period"] in window}):
        sel = [r for r in rows if r["model_version"] == version and r["period"] in window]
        tp, fp, fn, tn = (sum(r[k] for r in sel) for k in ("tp", "fp", "fn", "tn"))
        fpr, recall = _ratio(fp, fp + tn), _ratio(tp, tp + fn)
        base = baselines.get(version) or {}
        v = {"periods": sorted({r["period"] for r in sel}), "labelled_n": tp + fp + fn + tn,
             "negatives": fp + tn, "positives": tp + fn, "fpr": fpr, "recall": recall,
             "baseline_fpr": base.get("fpr"), "baseline_recall": base.get("recall"),
             "baseline_source": base.get("source"), "fpr_judged": False,
             "recall_judged": False, "passed": True}
        if base.get("fpr") is not None and fp + tn >= int(settings["min_labelled_negatives"]):
            v["fpr_judged"] = True
            v["max_fpr"] = float(base["fpr"]) + float(settings["max_fpr_increase"])
            if fpr is not None and fpr > v["max_fpr"]:
                v["passed"] = False
                reasons.append(f"model {version[:12]}: live FPR {fpr:.4f} > {v['max_fpr']:.4f} "
                               f"(holdout {float(base['fpr']):.4f} + "
                               f"{settings['max_fpr_increase']}) over {', '.join(window)}")
        if base.get("recall") is not None and tp + fn >= int(settings["min_labelled_positives"]):
            v["recall_judged"] = True
            v["min_recall"] = float(base["recall"]) - float(settings["max_recall_drop"])
            if recall is not None and recall < v["min_recall"]:
                v["passed"] = False
                reasons.append(f"model {version[:12]}: live recall {recall:.4f} < "
                               f"{v['min_recall']:.4f} (holdout {float(base['recall']):.4f} - "
                               f"{settings['max_recall_drop']}) over {', '.join(window)}")
        if not (v["fpr_judged"] or v["recall_judged"]):
            v["note"] = "too few labelled records (or no baseline) to judge"
        versions[version] = v
    return {"passed": all(v["passed"] for v in versions.values()), "reasons": reasons,
            "window": window, "versions": versions,
            "thresholds": {k: settings[k] for k in ("max_fpr_increase", "max_recall_drop",
                                                     "min_labelled_negatives",
                                                     "min_labelled_positives", "window_periods")}}


def baseline_for(root: Path, version: str, evaluation_path: str = layout.EVALUATION
                 ) -> dict[str, Any]:
    """A model version's holdout FPR and recall: data/reports/evaluation.json when it is this
    model's evaluation, else the registry's copy of its evaluation, else the operating FPR
    of its record (recall unknown). {fpr, recall, source}."""
    ev_path = root / evaluation_path
    if ev_path.is_file():
        ev = json.loads(ev_path.read_text())
        if ev.get("model_md5") == version and ev.get("candidate"):
            c = ev["candidate"]
            return {"fpr": c.get("fpr"), "recall": c.get("recall"), "source": evaluation_path}
    registry = Registry(root, Settings())  # read only: no approval settings needed
    info = registry.versions().get(version) or {}
    metrics = ((info.get("evaluation") or {}).get("metrics")) or {}
    if metrics.get("fpr") is not None:
        return {"fpr": metrics.get("fpr"), "recall": metrics.get("recall"),
                "source": layout.REGISTRY_INDEX}
    rec_path = (root / info["record_path"] if info.get("record_path")
                else registry.model_dir(version) / layout.RECORD_FILE)
    if rec_path.is_file():
        rec = json.loads(rec_path.read_text())
        if rec.get("operating_fpr") is not None:
            return {"fpr": float(rec["operating_fpr"]), "recall": None,
                    "source": f"{rec_path.relative_to(root)} operating_fpr"}
    return {"fpr": None, "recall": None, "source": None}


def markdown_table(report: Mapping[str, Any], max_rows: int = 60) -> str:
    """The newest rows of the performance table as markdown."""
    cols = ["period", "model_version", "served_by", "estimated", "n", "alerts", "alert_rate",
            "precision", "recall", "fpr"]

    def fmt(k: str, v: Any) -> str:
        if v is None:
            return ""
        if k == "model_version":
            return str(v)[:12]
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v)

    rows = list(report.get("rows", []))[-max_rows:]
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(fmt(c, r.get(c)) for c in cols) + " |\n" for r in rows)


# ------------------------------------------------------------------------ on files


def merge_labels(root: Path, settings: Mapping[str, Any], contract: Contract
                 ) -> tuple[Path, dict[str, Any], list[Path]]:
    """The landed label files merged (`read_labels`) into labels.parquet under the output
    folder. Returns (written path, summary, label files)."""
    files = label_files(root, settings)
    table, summary = read_labels(files, contract)
    dest = write_parquet_atomic(output_path(root, settings, "labels.parquet"),
                                table.drop(columns=["_file"]))
    return dest, summary, files


def compute_live_performance(root: Path, settings: Mapping[str, Any], contract: Contract
                             ) -> tuple[dict[str, Any], Path]:
    """Every consolidated day joined to the merged labels; the report (with its `check`
    and input md5s) written as live_performance.json. Returns (report, path)."""
    days = consolidated_days(root, settings)
    if not days:
        raise DataError("no consolidated inference-log day yet",
                        path=output_path(root, settings, "inference_log"),
                        expected="materialised inference_log partitions")
    log = pd.concat([read_table(p) for p in days], ignore_index=True)
    lab_path = output_path(root, settings, "labels.parquet")
    labels_df = read_table(lab_path) if lab_path.is_file() else read_labels([], contract)[0]
    report = live_performance(log, labels_df, contract, settings["period"])
    baselines = {v: baseline_for(root, v) for v in report["versions"]}
    report["check"] = quality_check(report, baselines, settings)
    report["inputs"] = {rel(root, p): md5_file(p) for p in [*days, lab_path] if p.is_file()}
    dest = write_json_atomic(output_path(root, settings, "live_performance.json"), report)
    return report, dest


def headline(report: Mapping[str, Any], production_version: str | None
             ) -> tuple[str | None, dict[str, Any]]:
    """The version the report is summarised by: production when it has records, else the
    busiest version. Returns (version, its window numbers from the check)."""
    versions = report["check"]["versions"]
    v = production_version if production_version in report["versions"] else None
    if v is None and report["versions"]:
        v = max(report["versions"], key=lambda k: report["versions"][k]["n"])
    return v, versions.get(v, {}) if v else {}
