"""The drift engine: a report of the current batch against the training reference profile.

Functional core, no Dagster. Entry points:
- ``build_reference_profile`` / ``build_reference_profile_from_parquet`` (drift_profile),
  ``save_reference_profile`` / ``load_reference_profile``, ``write_reference_profile``;
- ``drift_report(profile, current_df, current_scores, params, lineage)`` for a frame;
- ``compute_drift_from_parquet(profile, current_path, ...)`` reads one column at a time, or
  streams row groups for batches above ``stream_above_rows``;
- ``drift_report_from_files`` (the drift stage), ``render_html``, ``markdown_table``.

Decision rule (docs/drift.md): a feature drifts when its Benjamini-Hochberg adjusted
p-value is at most ``alpha`` AND its effect size reaches the threshold, which is the larger
of a documented default and (when the reference has enough chunks) mean + k*sd of the same
statistic across reference chunks, rescaled to the current batch size. p-values guard
small batches against noise; effect sizes guard large batches against trivial shifts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core import versions
from mlops_assets.core.drift import stats as st
from mlops_assets.core.drift.linalg import fixed_mean_std, recon_errors
from mlops_assets.core.drift.profile import (
    MISSING,
    OTHER,
    SCORE,
    UNSEEN,
    FrameSource,
    ParquetSource,
    arrow_to_float,
    build_reference_profile,
    categorical_bins,
    categorical_labels,
    category_counts,
    resolve_params,
    standardise,
)
from mlops_assets.core.drift.values import load_reference_profile, save_reference_profile
from mlops_assets.core.io import DataError

REPORT_FORMAT = "mlops_assets.drift.report/1"
# report key -> distribution, for the drift CLI's lineage header (order kept: it is output)
DRIFT_LIBRARIES = {"numpy": "numpy", "scipy": "scipy", "pandas": "pandas", "pyarrow": "pyarrow",
                   "mlops_assets": "mlops_assets"}
EFFECT_NAMES = {"ks": "ks_d", "psi": "psi", "js": "js_distance",
                "wasserstein": "wasserstein_norm", "chi2": "cohens_w"}
TEST_OF = {"ks": "ks", "wasserstein": "ks", "psi": "chi2", "js": "chi2", "chi2": "chi2"}
COLUMN_MEMORY_BUDGET = 1 << 30  # bytes of column arrays in flight across worker threads
BYTES_PER_ROW_IN_FLIGHT = 48  # per column: values, sorted copy, reference, read buffers


# ------------------------------------------------------------------------ public API
def write_reference_profile(reference_df: pd.DataFrame, contract: Any, scores: Any,
                            threshold: float | None, params: Mapping[str, Any] | None,
                            json_path: str | Path, values_path: str | Path | None = None
                            ) -> dict[str, Any]:
    """Build and save the profile (the train stage). Returns the profile."""
    profile = build_reference_profile(reference_df, contract, scores=scores,
                                      threshold=threshold, params=params)
    save_reference_profile(profile, json_path, values_path)
    return profile


def drift_report(profile: Mapping[str, Any], current_df: pd.DataFrame,
                 current_scores: Any = None, params: Mapping[str, Any] | None = None,
                 lineage: Mapping[str, Any] | None = None,
                 importance: Mapping[str, float] | None = None,
                 workers: int | None = None) -> dict[str, Any]:
    """The drift report of a current frame against a reference profile (pure function).
    ``workers``: columns processed at once (default: by CPUs and memory, see ``_workers``);
    the report is the same whatever the number."""
    if current_df is None or len(current_df) == 0:
        raise DataError("the current batch is empty", expected="at least one row")
    missing = [c for c in profile["features"] if c not in current_df.columns]
    if missing:
        raise DataError(f"current batch lacks feature column(s) {missing}")
    return _report(profile, FrameSource(current_df), current_scores, params, lineage,
                   importance, stream=False, workers=workers)


def compute_drift_from_parquet(profile: Mapping[str, Any], current_path: str | Path,
                               current_scores: Any = None, scores_column: str | None = None,
                               params: Mapping[str, Any] | None = None,
                               lineage: Mapping[str, Any] | None = None,
                               importance: Mapping[str, float] | None = None,
                               stream: bool | None = None,
                               workers: int | None = None) -> dict[str, Any]:
    """The same report from a Parquet batch, one column at a time (bounded memory); batches
    with more than ``stream_above_rows`` rows (or ``stream=True``) stream in row batches."""
    src = ParquetSource(current_path)
    if src.n_rows == 0:
        raise DataError("the current batch has no rows", path=current_path)
    missing = [c for c in profile["features"] if c not in src.names()]
    if missing:
        raise DataError(f"current batch lacks feature column(s) {missing}", path=current_path)
    p = resolve_params(params)
    if stream is None:
        stream = src.n_rows > int(p["stream_above_rows"])
    if current_scores is None and scores_column:
        current_scores = src.numeric(scores_column) if not stream else scores_column
    return _report(profile, src, current_scores, params, lineage, importance, stream=stream,
                   workers=workers)


def drift_report_from_files(profile_json: str | Path, values_path: str | Path | None,
                            current_df: pd.DataFrame, current_scores: Any,
                            params: Mapping[str, Any] | None,
                            lineage: Mapping[str, Any] | None = None, contract: Any = None,
                            importance: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The drift stage: load the pinned profile, report on the current frame."""
    profile = load_reference_profile(profile_json, values_path)
    return drift_report(profile, current_df, current_scores, params, lineage, importance)


def library_versions() -> dict[str, str | None]:
    """Versions for the report's lineage header (the caller adds them)."""
    return versions.library_versions(DRIFT_LIBRARIES, python=False)


# ------------------------------------------------------------------------ per feature
def _method_for(kind: str, p: Mapping[str, Any]) -> str:
    if kind == "numeric":
        m = p["method_numeric"]
        return "ks" if m == "auto" else m
    m = p["method_categorical"]
    return "chi2" if m == "auto" else m


def _numeric_stats(prof: Mapping[str, Any], u: np.ndarray, counts: np.ndarray,
                   s: np.ndarray | None, p: Mapping[str, Any], acc: Any = None,
                   cur_bins: np.ndarray | None = None,
                   cur_hist: np.ndarray | None = None) -> dict[str, Any]:
    """Every numeric statistic of one feature from the sorted current values ``s`` (column
    mode) or from a finished streaming accumulator ``acc``."""
    n1 = int(prof["n"])
    edges = np.asarray(prof["edges"], dtype=np.float64)
    hist_edges = np.asarray(prof.get("hist_edges", []), dtype=np.float64)
    if acc is None:
        n2 = int(s.size)
        cur_bins = st.bin_counts_sorted(s, edges)
        cur_hist = st.bin_counts_sorted(s, hist_edges)
    else:
        n2 = int(acc.n)
    out: dict[str, Any] = {"n_ref": n1, "n_cur": n2}
    if n2 == 0:
        return out
    if acc is None:
        cum = None if counts is None else np.cumsum(counts)  # None: no ties
        d = st.ks_statistic(u, cum, s)
        w = st.wasserstein_sorted(u if counts is None else np.repeat(u, counts), s)
    else:
        d = acc.statistic()
        w = acc.wasserstein()
    d, ks_p = st.ks_pvalue(d, n1, n2)
    ref_bins = np.asarray(prof["counts"], dtype=np.int64)
    eps = float(p["psi_epsilon"])
    psi, contrib = st.psi(ref_bins, cur_bins, eps)
    chi, chi_p, _ = st.chi2_test(ref_bins, cur_bins)
    std = float(prof.get("std") or 0.0)
    out.update(
        ks_d=d, ks_p=ks_p, psi=psi, contrib=contrib, ref_bins=ref_bins, cur_bins=cur_bins,
        psi_expected=st.psi_expected(len(ref_bins), n1, n2),
        js=st.js_distance(ref_bins, cur_bins), chi2=chi, chi2_p=chi_p,
        cohens_w=st.cohens_w(ref_bins, cur_bins, eps),
        wasserstein=w, wasserstein_norm=(w / std) if std > 0 else None,
        cur_mean=None, cur_hist=cur_hist,
    )
    return out


def _numeric_bin_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["all"]
    fmt = [_fmt(e) for e in edges]
    labels = [f"<= {fmt[0]}"]
    labels += [f"({fmt[i - 1]}, {fmt[i]}]" for i in range(1, len(fmt))]
    labels.append(f"> {fmt[-1]}")
    return labels


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _entry(name: str, kind: str, prof: Mapping[str, Any], stats: Mapping[str, Any],
           method: str, p: Mapping[str, Any], cur_rows: int, cur_missing: int,
           unseen: list | None = None) -> dict[str, Any]:
    """The report entry of one feature before the dataset-wide BH step."""
    n1 = int(prof["n"])
    n2 = int(stats.get("n_cur", 0))
    ref_missing = float(prof["missing_share"])
    cur_missing_share = cur_missing / cur_rows if cur_rows else 0.0
    e: dict[str, Any] = {
        "name": name, "type": kind, "method": method,
        "effect_name": EFFECT_NAMES[method], "test": TEST_OF[method],
        "n_ref": n1, "n_cur": n2,
        "missing_share_ref": ref_missing, "missing_share_cur": cur_missing_share,
        "missing_share_change": cur_missing_share - ref_missing,
        "unseen_categories": [], "unseen_share": 0.0,
    }
    # missing-share change: two-proportion test plus an absolute floor
    miss_p = st.two_proportion_pvalue(int(prof["n_missing"]), int(prof["n_rows"]),
                                      cur_missing, cur_rows)
    e["missing_p_value"] = miss_p
    e["missing_drifted"] = bool(abs(e["missing_share_change"]) >= float(p["missing_share_change"])
                                and miss_p <= float(p["alpha"]))
    if n2 == 0:
        e.update(statistic=None, p_value=None, effect_size=None, threshold=None,
                 threshold_source=None, note="no values in the current batch",
                 psi=None, psi_expected=None, ks_d=None, wasserstein_norm=None, js=None,
                 bins=[], histogram=None)
        e["_p"] = None
        return e
    if kind == "numeric":
        labels = _numeric_bin_labels(prof["edges"])
        e.update(ks_d=stats["ks_d"], ks_p_value=stats["ks_p"],
                 wasserstein_norm=stats["wasserstein_norm"])
        stat_of = {"ks": stats["ks_d"], "psi": stats["psi"], "js": stats["js"],
                   "wasserstein": stats["wasserstein_norm"], "chi2": stats["chi2"]}
        eff_of = {"ks": stats["ks_d"], "psi": stats["psi"], "js": stats["js"],
                  "wasserstein": stats["wasserstein_norm"], "chi2": stats["cohens_w"]}
        he = prof.get("hist_edges", [])
        e["histogram"] = {"edges": he,
                          "ref": st.shares(np.asarray(prof.get("hist_counts", []))).tolist(),
                          "cur": st.shares(stats["cur_hist"]).tolist()}
    else:
        labels = categorical_labels(prof)
        e.update(ks_d=None, wasserstein_norm=None)
        stat_of = {"chi2": stats["chi2"], "psi": stats["psi"], "js": stats["js"]}
        eff_of = {"chi2": stats["cohens_w"], "psi": stats["psi"], "js": stats["js"]}
        e["histogram"] = None
        if unseen:
            unseen = sorted(unseen, key=lambda kv: (-kv[1], kv[0]))
            e["unseen_categories"] = [v for v, _ in unseen[:50]]
            e["unseen_share"] = sum(c for _, c in unseen) / max(n2, 1)
    e["psi"] = stats["psi"]
    e["psi_expected"] = stats["psi_expected"]
    e["js"] = stats["js"]
    e["chi2"] = stats["chi2"]
    e["cohens_w"] = stats["cohens_w"]
    ref_sh = st.shares(stats["ref_bins"])
    cur_sh = st.shares(stats["cur_bins"])
    e["bins"] = [{"label": lab, "ref": float(a), "cur": float(b), "psi": float(c)}
                 for lab, a, b, c in zip(labels, ref_sh, cur_sh, stats["contrib"], strict=False)]
    e["statistic"] = stat_of[method]
    e["effect_size"] = eff_of[method]
    e["p_value"] = stats["ks_p"] if TEST_OF[method] == "ks" else stats["chi2_p"]
    thr, source = _threshold(prof, method, p, n1, n2)
    e["threshold"] = thr
    e["threshold_source"] = source
    e["threshold_significant"] = max(float(p[f"{method}_significant"]), thr)
    e["_p"] = e["p_value"]
    return e


def _threshold(prof: Mapping[str, Any], method: str, p: Mapping[str, Any], n1: int,
               n2: int) -> tuple[float, str]:
    floor = float(p[f"{method}_moderate"])
    chunks = prof.get("chunks") or {}
    vals = chunks.get(method)
    use = p["threshold_source"]
    enough = vals is not None and len(vals) >= (2 if use == "chunks" else int(p["min_chunks"]))
    if use == "defaults" or not enough:
        return floor, "default"
    t = st.chunk_threshold(vals, chunks["rows"], n1, n2, float(p["chunk_k"]),
                           power=2 if method == "psi" else 1)
    if t is None or t <= floor:
        return floor, "default"
    return t, f"reference chunks (mean + {float(p['chunk_k']):g} sd)"


def _decide(entries: list[dict[str, Any]], p: Mapping[str, Any]) -> None:
    adj = st.bh_adjust([e["_p"] for e in entries])
    alpha = float(p["alpha"])
    for e, a in zip(entries, adj, strict=False):
        e["p_value_adjusted"] = a
        eff = e.get("effect_size")
        dist = bool(a is not None and eff is not None and a <= alpha and eff >= e["threshold"])
        e["distribution_drifted"] = dist
        e["drifted"] = bool(dist or e["missing_drifted"])
        if not e["drifted"]:
            level = "none"
        elif (dist and eff >= e["threshold_significant"]) or e["missing_share_cur"] >= 1.0:
            level = "significant"
        else:
            level = "moderate"
        e["level"] = level
        e["drift_ratio"] = (eff / e["threshold"]) if (eff is not None and e.get("threshold")) else 0.0
        del e["_p"]


# ------------------------------------------------------------------------ the report
def _report(profile: Mapping[str, Any], src: Any, current_scores: Any,
            params: Mapping[str, Any] | None, lineage: Mapping[str, Any] | None,
            importance: Mapping[str, float] | None, stream: bool,
            workers: int | None = None) -> dict[str, Any]:
    p = resolve_params(params)
    feats = profile["features"]
    values = profile["_values"]
    n_rows = src.n_rows
    mv = profile.get("multivariate") or {"available": False}
    mv_cols = list(mv.get("columns", [])) if mv.get("available") and p["multivariate"] else []
    step = max(1, math.ceil(n_rows / int(p["mv_max_rows"])))
    sample = np.arange(0, n_rows, step)  # the multivariate rows: every step-th row
    z = np.zeros((sample.size, len(mv_cols)), order="F") if mv_cols else None
    score_is_column = isinstance(current_scores, str)
    order = list(profile.get("feature_order") or feats)
    if stream:
        per = _stream_pass(profile, src, p, mv_cols, sample, z,
                           current_scores if score_is_column else None)
        entries = [_streamed_entry(name, feats[name], per[name], p, n_rows) for name in order]
    else:
        def one(name: str) -> dict[str, Any]:
            return _column_entry(profile, src, name, p, n_rows, mv_cols, step, z)

        n_workers = _workers(workers, n_rows, len(order))
        if n_workers > 1:  # numpy and Arrow release the GIL: columns overlap on the cores
            with ThreadPoolExecutor(n_workers, thread_name_prefix="drift") as pool:
                entries = list(pool.map(one, order))  # in feature order: deterministic
        else:
            entries = [one(name) for name in order]
    _decide(entries, p)
    n_drifted = sum(e["drifted"] for e in entries)
    share = n_drifted / len(entries) if entries else 0.0
    multivariate = _multivariate(mv, z, p) if mv_cols else {
        "available": False, "reason": mv.get("reason", "disabled")}
    prediction = None
    if profile.get("scores") is not None and current_scores is not None:
        if stream and score_is_column:
            acc, bins, hist, n_miss, pos = per[SCORE]
            stats = _numeric_stats(profile["scores"], acc.u, None, None, p, acc, bins, hist)
            prediction = _prediction(profile["scores"], stats, p, n_miss, acc.n + n_miss, pos)
        else:
            sc = np.asarray(current_scores, dtype=np.float64)
            if sc.size != n_rows:
                raise DataError(f"{sc.size} scores for {n_rows} current rows",
                                expected="one score per current row")
            s = st.clean_sorted(sc)
            u, counts = values[SCORE]
            stats = _numeric_stats(profile["scores"], u, counts, s, p)
            thr = profile["scores"].get("threshold")
            pos = int(s.size - np.searchsorted(s, thr, side="left")) if thr is not None else None
            prediction = _prediction(profile["scores"], stats, p, sc.size - s.size, sc.size, pos)
    severity = _severity(entries, share, multivariate, prediction, p)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "lineage": dict(lineage or {}),
        "reference": {"rows": int(profile["n_rows"]), "chunks": int(profile.get("n_chunks", 0))},
        "current": {"rows": int(n_rows), "streamed": bool(stream)},
        "settings": {k: p[k] for k in sorted(p)},
        "features": entries,
        "n_features": len(entries),
        "n_drifted": int(n_drifted),
        "drifted_features": [e["name"] for e in entries if e["drifted"]],
        "drift_share": share,
        "severity": severity,
        "multivariate": multivariate,
        "prediction": prediction,
    }
    if importance:
        report["importance"] = {str(k): float(v) for k, v in sorted(importance.items())}
    report["recommendation"] = _recommendation(report)
    return _round(report)


def _workers(requested: int | None, n_rows: int, n_cols: int) -> int:
    """Columns processed at once: the CPUs available, at most 4, fewer when one column's
    arrays (its values, their sorted copy, the reference values and Arrow's read buffers,
    about ``BYTES_PER_ROW_IN_FLIGHT`` per row) would overrun ``COLUMN_MEMORY_BUDGET``.
    ``MLOPS_ASSETS_DRIFT_THREADS`` overrides; small batches stay on one thread."""
    if requested is None and os.environ.get("MLOPS_ASSETS_DRIFT_THREADS"):
        requested = int(os.environ["MLOPS_ASSETS_DRIFT_THREADS"])
    if requested is not None:
        return max(1, int(requested))
    if n_rows < 100_000 or n_cols < 2:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    by_memory = COLUMN_MEMORY_BUDGET // max(BYTES_PER_ROW_IN_FLIGHT * n_rows, 1)
    return int(max(1, min(cpus, 4, n_cols, by_memory)))


def _column_entry(profile: Mapping[str, Any], src: Any, name: str, p: Mapping[str, Any],
                  n_rows: int, mv_cols: list[str], step: int, z: np.ndarray | None) -> dict[str, Any]:
    """One feature of a column-mode report: read it once, sort it once, every statistic
    from the sorted arrays; its multivariate column is written into ``z`` in place."""
    prof = profile["features"][name]
    kind = prof["type"]
    method = _method_for(kind, p)
    if kind == "numeric":
        x = src.numeric(name)
        if name in mv_cols:  # before sorting: the sample is every step-th row in file order
            j = mv_cols.index(name)
            mv = profile["multivariate"]
            _standardise_into(z[:, j], x[::step], mv["mean"][j], mv["std"][j])
        n_total = x.size
        # a writable array from Parquet is the engine's own copy: sort it in place
        s = st.clean_sorted(x, overwrite=isinstance(src, ParquetSource))
        n_miss = n_total - s.size
        del x
        u, counts = profile["_values"][name]
        stats = _numeric_stats(prof, u, counts, s, p)
        return _entry(name, kind, prof, stats, method, p, n_rows, n_miss)
    cnt, n_null = category_counts(src.categorical(name))
    unseen: list = []
    cur_bins = categorical_bins(prof, cnt, n_null, unseen)
    stats = _categorical_stats(prof, cur_bins, p)
    return _entry(name, kind, prof, stats, method, p, n_rows, n_null, unseen)


def _streamed_entry(name: str, prof: Mapping[str, Any], rec: list, p: Mapping[str, Any],
                    n_rows: int) -> dict[str, Any]:
    kind = prof["type"]
    method = _method_for(kind, p)
    if kind == "numeric":
        acc, bins, hist, n_miss = rec
        stats = _numeric_stats(prof, acc.u, None, None, p, acc, bins, hist)
        return _entry(name, kind, prof, stats, method, p, n_rows, n_miss)
    cnt, n_null = rec
    unseen: list = []
    cur_bins = categorical_bins(prof, cnt, n_null, unseen)
    stats = _categorical_stats(prof, cur_bins, p)
    return _entry(name, kind, prof, stats, method, p, n_rows, n_null, unseen)


def _standardise_into(out: np.ndarray, x: np.ndarray, mean: float, std: float) -> None:
    """``standardise`` written into a column of the multivariate matrix (same arithmetic,
    no temporaries)."""
    np.subtract(x, mean, out=out)
    np.divide(out, std, out=out)
    if not np.isfinite(out).all():
        out[~np.isfinite(out)] = 0.0


def _categorical_stats(prof: Mapping[str, Any], cur_bins: np.ndarray,
                       p: Mapping[str, Any]) -> dict[str, Any]:
    ref_bins = categorical_bins(prof, dict(zip(prof["categories"], prof["counts"], strict=False)),
                                int(prof["n_missing"]))
    if prof.get("truncated"):
        ref_bins[len(prof["categories"])] = int(prof["other_count"])
    eps = float(p["psi_epsilon"])
    psi, contrib = st.psi(ref_bins, cur_bins, eps)
    chi, chi_p, _ = st.chi2_test(ref_bins, cur_bins)
    n1 = int(ref_bins.sum())
    n2 = int(cur_bins.sum())
    used = int(np.count_nonzero((ref_bins + cur_bins) > 0))
    return {"n_ref": int(prof["n"]), "n_cur": n2, "psi": psi, "contrib": contrib,
            "ref_bins": ref_bins, "cur_bins": cur_bins,
            "psi_expected": st.psi_expected(used, n1, n2),
            "js": st.js_distance(ref_bins, cur_bins), "chi2": chi, "chi2_p": chi_p,
            "cohens_w": st.cohens_w(ref_bins, cur_bins, eps)}


def _stream_pass(profile, src, p, mv_cols, sample, z, score_column):
    """One pass over row batches: exact KS D and bin counts per numeric column, category
    counts, and the multivariate sample rows; memory bounded by the batch size."""
    feats = profile["features"]
    values = profile["_values"]
    per: dict[str, Any] = {}
    numeric = [n for n, f in feats.items() if f["type"] == "numeric"]
    if score_column:
        numeric.append(SCORE)
    for name in numeric:
        prof = profile["scores"] if name == SCORE else feats[name]
        u, counts = values[name]
        acc = st.KSAccumulator(u, None if counts is None else np.cumsum(counts))
        per[name] = [acc, np.zeros(len(prof["edges"]) + 1, np.int64),
                     np.zeros(len(prof.get("hist_edges", [])) + 1, np.int64), 0]
        if name == SCORE:
            per[name].append(0)
    for name, f in feats.items():
        if f["type"] == "categorical":
            per[name] = [{}, 0]
    cols = list(profile.get("feature_order") or feats) + ([score_column] if score_column else [])
    offset = 0
    for batch in src.file.iter_batches(batch_size=int(p["stream_batch_rows"]), columns=cols):
        m = batch.num_rows
        in_batch = sample[(sample >= offset) & (sample < offset + m)]
        for i, name in enumerate(cols):
            key = SCORE if (score_column and name == score_column and i == len(cols) - 1) else name
            col = batch.column(i)
            if key in per and (key == SCORE or feats[key]["type"] == "numeric"):
                prof = profile["scores"] if key == SCORE else feats[key]
                x = arrow_to_float(col)
                s = st.clean_sorted(x)
                rec = per[key]
                rec[0].add(s)
                rec[1] += st.bin_counts_sorted(s, np.asarray(prof["edges"], np.float64))
                rec[2] += st.bin_counts_sorted(s, np.asarray(prof.get("hist_edges", []), np.float64))
                rec[3] += x.size - s.size
                if key == SCORE and prof.get("threshold") is not None:
                    rec[4] += int(s.size - np.searchsorted(s, prof["threshold"], side="left"))
                if key in mv_cols and in_batch.size:
                    j = mv_cols.index(key)
                    rows = np.searchsorted(sample, in_batch)
                    z[rows, j] = standardise(x[in_batch - offset], profile["multivariate"]["mean"][j],
                                             profile["multivariate"]["std"][j])
            else:
                cnt, n_null = category_counts(col)
                rec = per[key]
                for v, c in cnt.items():
                    rec[0][v] = rec[0].get(v, 0) + c
                rec[1] += n_null
        offset += m
    return per


def _multivariate(mv: Mapping[str, Any], z: np.ndarray, p: Mapping[str, Any]) -> dict[str, Any]:
    resid = np.asarray(mv["residual_components"], dtype=np.float64).T
    err = recon_errors(z, resid)
    ref_mean, ref_sd, n_ref = float(mv["error_mean"]), float(mv["error_std"]), int(mv["n_rows"])
    # fixed-order sums (linalg.fixed_sum): the same bits on any BLAS kernel or thread count
    cur_mean, cur_sd = fixed_mean_std(err, ddof=1)
    if err.size == 1:
        cur_sd = 0.0
    denom = max(ref_mean, 1e-12)
    rel = (cur_mean - ref_mean) / denom
    se = math.sqrt(ref_sd ** 2 / max(n_ref, 1) + cur_sd ** 2 / max(err.size, 1))
    pval = float(2 * st.norm.sf(abs(cur_mean - ref_mean) / se)) if se > 0 else (
        0.0 if cur_mean != ref_mean else 1.0)
    if "error_q95" in mv and err.size:
        # exceedance test: under no drift 5% of current errors exceed the reference q95;
        # Bonferroni-combined with the mean test (robust to heavy tails in either direction)
        from scipy.stats import binom

        k = int((err > float(mv["error_q95"])).sum())
        p_tail = float(binom.sf(k - 1, err.size, 0.05)) if k > 0 else 1.0
        pval = min(1.0, 2 * min(pval, p_tail))
    floor = float(p["mv_moderate"])
    thr, source = floor, "default"
    chunks = mv.get("chunks") or {}
    vals = chunks.get("mv") or []
    if p["threshold_source"] != "defaults" and len(vals) >= (
            2 if p["threshold_source"] == "chunks" else int(p["min_chunks"])):
        t = st.chunk_threshold(vals, chunks["rows"], n_ref, err.size, float(p["chunk_k"]))
        if t is not None and t > floor:
            thr, source = t, f"reference chunks (mean + {float(p['chunk_k']):g} sd)"
    drifted = bool(pval <= float(p["alpha"]) and abs(rel) >= thr)
    level = "none" if not drifted else (
        "significant" if abs(rel) >= max(float(p["mv_significant"]), thr) else "moderate")
    return {"available": True, "method": "pca_reconstruction", "columns": list(mv["columns"]),
            "n_components": int(mv["n_components"]),
            "explained_variance": float(mv["explained_variance"]),
            "reference_error": ref_mean, "current_error": cur_mean, "statistic": cur_mean,
            "effect_size": rel, "effect_name": "relative_change_of_reconstruction_error",
            "p_value": pval, "threshold": thr, "threshold_source": source,
            "drifted": drifted, "level": level, "rows_used": int(err.size)}


def _prediction(prof: Mapping[str, Any], stats: Mapping[str, Any], p: Mapping[str, Any],
                n_missing: int, n_rows: int, positives: int | None) -> dict[str, Any]:
    entry = _entry("score", "numeric", prof, stats, "ks", p, n_rows, n_missing)
    _decide([entry], p)
    out: dict[str, Any] = {"score": entry, "positive_rate": None}
    thr = prof.get("threshold")
    level = entry["level"]
    if thr is not None and positives is not None and stats.get("n_cur"):
        n1, n2 = int(prof["n"]), int(stats["n_cur"])
        x1 = int(prof["positive_count"])
        r1, r2 = x1 / n1, positives / n2
        rel = (r2 / r1 - 1.0) if r1 > 0 else (math.inf if r2 > 0 else 0.0)
        pval = st.two_proportion_pvalue(x1, n1, positives, n2)
        drifted = bool(pval <= float(p["alpha"]) and abs(rel) >= float(p["positive_rate_change"]))
        ratio = (r2 / r1) if r1 > 0 else math.inf
        sig = drifted and (ratio >= 1 + float(p["positive_rate_significant"])
                           or ratio <= 1 / (1 + float(p["positive_rate_significant"])))
        prl = "significant" if sig else ("moderate" if drifted else "none")
        out["positive_rate"] = {"threshold": thr, "reference": r1, "current": r2,
                                "change": r2 - r1, "relative_change": rel if math.isfinite(rel) else None,
                                "p_value": pval, "drifted": drifted, "level": prl}
        level = max(level, prl, key=_LEVELS.index)
    out["drifted"] = level != "none"
    out["level"] = level
    return out


_LEVELS = ["none", "moderate", "significant"]


def _severity(entries, share, multivariate, prediction, p) -> str:
    levels = [e["level"] for e in entries]
    if multivariate.get("available"):
        levels.append(multivariate["level"])
    if prediction is not None:
        levels.append(prediction["level"])
    if "significant" in levels or (entries and share >= float(p["drift_share_significant"])):
        return "significant"
    if share > float(p["drift_share_moderate"]) or "moderate" in levels:
        return "moderate"
    return "none"


def _recommendation(r: Mapping[str, Any]) -> str:
    sev = r["severity"]
    drifted = sorted((e for e in r["features"] if e["drifted"]),
                     key=lambda e: (-(e.get("drift_ratio") or 0), e["name"]))
    names = ", ".join(e["name"] for e in drifted[:5]) + (" ..." if len(drifted) > 5 else "")
    new_cats = [f"{e['name']}: {', '.join(map(str, e['unseen_categories'][:5]))}"
                for e in r["features"] if e.get("unseen_categories")]
    parts = []
    if sev == "none":
        return ("No action needed: every feature, the joint structure and the score "
                "distribution are within their thresholds of the reference.")
    if drifted:
        parts.append(f"{len(drifted)} of {r['n_features']} features drifted ({names}).")
    if new_cats:
        parts.append("New categories not seen in training: " + "; ".join(new_cats) + ".")
    mv = r.get("multivariate") or {}
    if mv.get("drifted"):
        parts.append("The correlation structure of the numeric features changed "
                     f"(reconstruction error {mv['effect_size']:+.0%}).")
    pr = r.get("prediction") or {}
    rate = pr.get("positive_rate") or {}
    if rate.get("drifted"):
        parts.append(f"The predicted-positive rate moved from {rate['reference']:.2%} to "
                     f"{rate['current']:.2%} at the operating threshold: expect the alert "
                     "volume and false-positive rate to change.")
    elif (pr.get("score") or {}).get("drifted"):
        parts.append("The model's score distribution shifted.")
    if sev == "significant":
        parts.append("Act: check the upstream data for a pipeline or schema change first; if "
                     "the change is real, retrain on recent data (or recalibrate the operating "
                     "threshold) and review the alert volume before the next batch.")
    else:
        parts.append("Investigate the listed features and watch the next batch; no retraining "
                     "is needed yet.")
    return " ".join(parts)


def _round(obj: Any, sig: int = 10) -> Any:
    """Round floats to ``sig`` significant digits and turn NaN/inf into None, so the JSON is
    stable across platforms."""
    if isinstance(obj, float | np.floating):
        f = float(obj)
        if not math.isfinite(f):
            return None
        return float(f"{f:.{sig}g}")
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, Mapping):
        return {str(k): _round(v, sig) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_round(v, sig) for v in obj]
    return obj


# Names re-exported for callers that import everything from core.drift
_ = (OTHER, UNSEEN, MISSING)
