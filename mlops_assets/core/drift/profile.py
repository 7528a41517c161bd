"""The reference profile: what the training data contributes to every later drift report.

Two files, both deterministic (DVC outputs, pinned with the model):
- ``reference_profile.json``: per feature the bin edges and shares, category frequencies,
  summary statistics, the statistics of reference chunks (for chunk-based thresholds), the
  PCA of the standardised numeric features (for the multivariate signal), the score
  distribution and the predicted-positive rate at the operating threshold.
- ``reference_profile.parquet``: the sorted unique values (and their counts when there are
  ties) of every numeric feature and of the score, so that a report reads only the current
  batch and the KS test stays exact. Long layout (``values.ValuesWriter``): columns ``u`` and ``n``,
  one contiguous run of row groups per feature, written and read one feature at a time.

Columns are processed one at a time; a Parquet reference is read column by column, and a
large build spills each column's sorted values to disk at once (bounded memory).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlops_assets.core.drift import stats as st
from mlops_assets.core.drift.linalg import fixed_mean_std, fixed_sum, pca_components, recon_errors
from mlops_assets.core.drift.values import (
    PROFILE_FORMAT,
    SCORE,
    SPILL_ABOVE_BYTES,
    SpillSink,
)
from mlops_assets.core.io import DataError

OTHER, UNSEEN, MISSING = "__other__", "__unseen__", "__missing__"
METHODS = ("auto", "ks", "psi", "js", "wasserstein", "chi2")
NUMERIC_METHODS = ("ks", "psi", "js", "wasserstein", "chi2")
CATEGORICAL_METHODS = ("chi2", "psi", "js")

# Every key of params.yaml `drift:`, with its default. docs/drift.md gives the reason for each.
DEFAULTS: dict[str, Any] = {
    "method_numeric": "auto",        # auto = ks
    "method_categorical": "auto",    # auto = chi2 (effect size Cohen's w)
    "alpha": 0.01,                   # Benjamini-Hochberg level of the p-value gate
    "psi_bins": 10,
    "psi_epsilon": 0.0001,
    "ks_moderate": 0.025,
    "ks_significant": 0.1,
    "psi_moderate": 0.1,
    "psi_significant": 0.25,
    "js_moderate": 0.1,
    "js_significant": 0.2,
    "wasserstein_moderate": 0.1,
    "wasserstein_significant": 0.25,
    "chi2_moderate": 0.1,            # Cohen's w
    "chi2_significant": 0.3,
    "threshold_source": "auto",      # auto | defaults | chunks
    "chunk_by": "size",              # size | period
    "chunk_size": "auto",            # rows per reference chunk; auto = reference rows / 10
    "chunk_period": "W",             # pandas period alias, with chunk_by: period
    "chunk_k": 3.0,
    "min_chunks": 8,
    "min_chunk_rows": 50,
    "missing_share_change": 0.05,
    "positive_rate_change": 0.25,    # relative change of the predicted-positive rate
    "positive_rate_significant": 1.0,
    "multivariate": True,
    "mv_explained_variance": 0.9,
    "mv_max_rows": 500000,
    "mv_moderate": 0.1,              # relative change of the mean reconstruction error
    "mv_significant": 0.5,
    "drift_share_moderate": 0.0,     # moderate when the drift share is above this
    "drift_share_significant": 0.5,  # significant when it is at least this
    "max_categories": 200,
    "hist_bins": 20,
    "stream_above_rows": 20000000,   # current batches larger than this are streamed
    "stream_batch_rows": 1000000,
}


def resolve_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `drift:` section merged over the defaults; unknown keys and bad values raise."""
    out = dict(DEFAULTS)
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULTS))
    if unknown:
        raise DataError(f"unknown drift parameter(s) {unknown}", path="params.yaml",
                        expected=", ".join(sorted(DEFAULTS)))
    out.update(params)
    if out["method_numeric"] not in METHODS:
        raise DataError(f"drift.method_numeric {out['method_numeric']!r} is not supported",
                        expected=" | ".join(METHODS))
    if out["method_categorical"] not in ("auto", *CATEGORICAL_METHODS):
        raise DataError(f"drift.method_categorical {out['method_categorical']!r} is not "
                        "supported", expected="auto | chi2 | psi | js")
    if out["threshold_source"] not in ("auto", "defaults", "chunks"):
        raise DataError("drift.threshold_source must be auto, defaults or chunks")
    if out["chunk_by"] not in ("size", "period"):
        raise DataError("drift.chunk_by must be size or period")
    if int(out["psi_bins"]) < 2:
        raise DataError("drift.psi_bins must be at least 2")
    return out


# ------------------------------------------------------------------------- column types
def column_types(spec: Any, columns: Iterable[str] | None = None,
                 dtypes: Mapping[str, Any] | None = None) -> dict[str, str]:
    """{name: 'numeric' | 'categorical'} from a Contract (its features), a mapping of names
    to types, or a list of names whose types are inferred from ``dtypes``."""
    if spec is not None and hasattr(spec, "features") and hasattr(spec, "columns"):
        return {f.name: ("categorical" if f.is_categorical else "numeric") for f in spec.features}
    if isinstance(spec, Mapping):
        out = {}
        for name, t in spec.items():
            t = str(t).lower()
            if t in ("numeric", "float", "int", "number"):
                out[str(name)] = "numeric"
            elif t in ("categorical", "category", "string", "bool", "str"):
                out[str(name)] = "categorical"
            else:
                raise DataError(f"unknown column type {t!r}", column=str(name),
                                expected="numeric | categorical")
        return out
    names = list(spec) if spec is not None else ([] if columns is None else list(columns))
    out = {str(n): infer_type(dtypes[n]) if dtypes and n in dtypes else "numeric" for n in names}
    if spec is None:  # inferred from the data: datetimes are not features
        out = {n: t for n, t in out.items() if t != "datetime"}
    return out


def infer_type(dtype: Any) -> str:
    """Numbers are numeric; strings, booleans and categories are categorical."""
    if isinstance(dtype, pa.DataType):
        if pa.types.is_boolean(dtype) or pa.types.is_dictionary(dtype):
            return "categorical"
        if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
            return "numeric"
        if pa.types.is_temporal(dtype):
            return "datetime"
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "categorical"


# ------------------------------------------------------------------------ column sources
class FrameSource:
    """Columns of a pandas DataFrame."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df
        self.n_rows = len(df)

    def names(self) -> list[str]:
        return [str(c) for c in self.df.columns]

    def numeric(self, name: str) -> np.ndarray:
        s = self.df[name]
        if pd.api.types.is_bool_dtype(s.dtype):
            s = s.astype("float64")
        return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    def categorical(self, name: str) -> pa.Array | pa.ChunkedArray:
        s = self.df[name]
        try:
            return pa.array(s, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return pa.array(s.astype("string"), from_pandas=True)


class ParquetSource:
    """Columns of a Parquet file, read one at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise DataError("input file does not exist", path=self.path,
                            expected="an existing Parquet file")
        try:
            self.file = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"cannot read Parquet file ({str(e).splitlines()[0][:200]})",
                            path=self.path) from None
        self.n_rows = self.file.metadata.num_rows
        self.schema = self.file.schema_arrow
        self._local = threading.local()

    def names(self) -> list[str]:
        return list(self.schema.names)

    def column(self, name: str) -> pa.ChunkedArray:
        if name not in self.schema.names:
            raise DataError("column missing from the current batch", path=self.path, column=name)
        return self._reader().read(columns=[name], use_threads=True).column(0)

    def numeric(self, name: str) -> np.ndarray:
        """The column as float64 (nulls as NaN). With several row groups they are read one
        at a time into one preallocated array (no whole-column Arrow copy alongside). A
        writable result is always a fresh array that the caller may sort in place."""
        reader = self._reader()
        groups = reader.num_row_groups
        if name not in self.schema.names:
            raise DataError("column missing from the current batch", path=self.path, column=name)
        if groups <= 1 or pa.types.is_dictionary(self.schema.field(name).type):
            return arrow_to_float(self.column(name))
        out = np.empty(self.n_rows, dtype=np.float64)
        off = 0
        for g in range(groups):
            a = arrow_to_float(reader.read_row_group(g, columns=[name], use_threads=True).column(0))
            out[off:off + a.size] = a
            off += a.size
            del a
        return out[:off] if off != self.n_rows else out

    def _reader(self) -> pq.ParquetFile:
        if threading.current_thread() is threading.main_thread():
            return self.file
        reader = getattr(self._local, "file", None)  # a ParquetFile is not safe to share
        if reader is None:                             # between threads: one per thread
            reader = self._local.file = pq.ParquetFile(self.path)
        return reader

    def categorical(self, name: str) -> pa.ChunkedArray:
        """String columns are read as dictionaries (the codes Parquet stores), which is
        faster to read and to count than materialised strings."""
        if name in self.schema.names and _stringish(self.schema.field(name).type):
            f = pq.ParquetFile(self.path, read_dictionary=[name])
            return f.read(columns=[name], use_threads=True).column(0)
        return self.column(name)


def arrow_to_float(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_floating(col.type) and col.type.bit_width == 64):
        try:
            col = pc.cast(col, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            col = pc.cast(pc.cast(col, pa.string()), pa.float64(), safe=False)
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 1:
            col = col.chunk(0)
        elif col.num_chunks == 0:
            return np.zeros(0, dtype=np.float64)
        else:
            return col.to_numpy()  # one allocation, nulls as NaN (no combine_chunks copy)
    return col.to_numpy(zero_copy_only=False)


def category_counts(col: pa.Array | pa.ChunkedArray) -> tuple[dict[str, int], int]:
    """({category as string: count}, null count). Booleans read as 'true'/'false', numbers
    as their shortest decimal form; the same mapping on both sides keeps them comparable."""
    if isinstance(col, pa.ChunkedArray) and col.num_chunks == 0:
        return {}, 0
    if pa.types.is_dictionary(col.type) and _stringish(col.type.value_type):
        return _dictionary_counts(col)
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = pc.cast(col, pa.string())
    vc = pc.value_counts(col)
    values = vc.field("values").to_pylist()
    counts = vc.field("counts").to_numpy()
    out = {str(v): int(c) for v, c in zip(values, counts, strict=False) if v is not None}
    return out, int(col.null_count)


def _stringish(t: pa.DataType) -> bool:
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_large_binary(t))


def _dictionary_counts(col: pa.Array | pa.ChunkedArray) -> tuple[dict[str, int], int]:
    """``category_counts`` of a dictionary column: a bincount of the integer codes of each
    chunk, mapped to its (small) dictionary; the strings are never materialised."""
    out: dict[str, int] = {}
    n_null = 0
    for ch in (col.chunks if isinstance(col, pa.ChunkedArray) else [col]):
        n_null += ch.null_count
        idx = ch.indices.drop_null() if ch.null_count else ch.indices
        if len(idx) == 0:
            continue
        counts = np.bincount(idx.to_numpy(), minlength=len(ch.dictionary))
        dictionary = ch.dictionary
        if not (pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)):
            dictionary = pc.cast(dictionary, pa.string())
        for v, c in zip(dictionary.to_pylist(), counts.tolist(), strict=False):
            if c and v is not None:
                out[v] = out.get(v, 0) + c
    return out, int(n_null)


# ---------------------------------------------------------------------------- chunking
def chunk_slices(n_rows: int, p: Mapping[str, Any], timestamps: Any = None) -> list[np.ndarray | slice]:
    """Row selections of the reference chunks (by size, or by period of ``timestamps``)."""
    if p["chunk_by"] == "period" and timestamps is not None:
        ts = pd.to_datetime(pd.Series(np.asarray(timestamps)), utc=True, errors="coerce")
        codes = ts.dt.tz_localize(None).dt.to_period(str(p["chunk_period"])).astype(str).to_numpy()
        uniq, inv = np.unique(codes, return_inverse=True)
        order = np.argsort(inv, kind="stable")
        bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
        return [order[bounds[i]:bounds[i + 1]] for i in range(len(uniq))]
    size = p["chunk_size"]
    size = max(1, math.ceil(n_rows / 10)) if size in ("auto", None) else int(size)
    return [slice(i, min(n_rows, i + size)) for i in range(0, n_rows, size)]


def _select(x: Any, sel: np.ndarray | slice) -> Any:
    return x[sel]


# ------------------------------------------------------------------- profile building
def _numeric_profile(x: np.ndarray, chunks: list, p: Mapping[str, Any],
                     stats: tuple[str, ...]) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    n_rows = x.size
    s = st.clean_sorted(x)
    n = s.size
    prof: dict[str, Any] = {"type": "numeric", "n_rows": int(n_rows), "n": int(n),
                            "n_missing": int(n_rows - n),
                            "missing_share": (n_rows - n) / n_rows if n_rows else 0.0}
    if n == 0:
        prof.update(n_unique=0, edges=[], counts=[])
        return prof, s, np.zeros(0, dtype=np.int64)
    u, counts = st.unique_or_none(s)  # counts None: no ties, u is s itself (no copy)
    cum = None if counts is None else np.cumsum(counts)
    edges = st.quantile_edges(s, int(p["psi_bins"]), unique=u)
    ref_counts = st.bin_counts_sorted(s, edges)
    lo, hi = s[int(0.005 * (n - 1))], s[int(math.ceil(0.995 * (n - 1)))]
    if hi <= lo:
        lo, hi = float(s[0]), float(s[-1])
    hist_edges = np.unique(np.linspace(lo, hi, int(p["hist_bins"]) + 1)) if hi > lo else np.array([lo])
    std = float(s.std())
    prof.update(
        n_unique=int(u.size), mean=float(s.mean()), std=std, min=float(s[0]), max=float(s[-1]),
        quantiles={str(q): float(s[int(round(q / 100 * (n - 1)))]) for q in (1, 5, 25, 50, 75, 95, 99)},
        edges=[float(e) for e in edges], counts=[int(c) for c in ref_counts],
        hist_edges=[float(e) for e in hist_edges],
        hist_counts=[int(c) for c in st.bin_counts_sorted(s, hist_edges)],
    )
    prof["chunks"] = _numeric_chunk_stats(x, chunks, s, u, cum, edges, ref_counts, std, p, stats)
    return prof, u, counts  # counts None: no ties, every count is 1


def _numeric_chunk_stats(x, chunks, s, u, cum, edges, ref_counts, std, p, stats) -> dict[str, Any]:
    n = s.size
    out: dict[str, list] = {"rows": [], "ks": [], "psi": [], "js": [], "chi2": []}
    if "wasserstein" in stats:
        out["wasserstein"] = []
    for sel in chunks:
        sc = st.clean_sorted(_select(x, sel))
        m = sc.size
        if m < int(p["min_chunk_rows"]) or n - m < int(p["min_chunk_rows"]):
            continue
        shrink = 1.0 - m / n  # F_chunk - F_all = (1 - m/n)(F_chunk - F_rest), exactly
        c_counts = st.bin_counts_sorted(sc, edges)
        rest = ref_counts - c_counts
        out["rows"].append(int(m))
        out["ks"].append(st.ks_statistic(u, cum, sc) / shrink)
        out["psi"].append(st.psi(rest, c_counts, float(p["psi_epsilon"]))[0])
        out["js"].append(st.js_distance(rest, c_counts))
        out["chi2"].append(st.cohens_w(rest, c_counts, float(p["psi_epsilon"])))
        if "wasserstein" in out:
            w = st.wasserstein_sorted(s, sc) / shrink
            out["wasserstein"].append(w / std if std > 0 else 0.0)
    return out


def _categorical_profile(col: Any, chunks: list, p: Mapping[str, Any]) -> dict[str, Any]:
    counts, n_null = category_counts(col)
    n_rows = len(col)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    keep = ordered[: int(p["max_categories"])]
    other = sum(c for _, c in ordered[int(p["max_categories"]):])
    prof: dict[str, Any] = {
        "type": "categorical", "n_rows": int(n_rows), "n": int(n_rows - n_null),
        "n_missing": int(n_null), "missing_share": n_null / n_rows if n_rows else 0.0,
        "categories": [k for k, _ in keep], "counts": [int(c) for _, c in keep],
        "other_count": int(other), "n_unique": len(counts), "truncated": other > 0,
    }
    ref_bins = categorical_bins(prof, counts, n_null)
    stats: dict[str, list] = {"rows": [], "chi2": [], "psi": [], "js": []}
    for sel in chunks:
        sub = _select(col, sel) if isinstance(sel, slice) else col.take(pa.array(sel))
        c_counts, c_null = category_counts(sub)
        m = len(sub)
        if m < int(p["min_chunk_rows"]) or n_rows - m < int(p["min_chunk_rows"]):
            continue
        cb = categorical_bins(prof, c_counts, c_null)
        rest = ref_bins - cb
        stats["rows"].append(int(m))
        stats["chi2"].append(st.cohens_w(rest, cb, float(p["psi_epsilon"])))
        stats["psi"].append(st.psi(rest, cb, float(p["psi_epsilon"]))[0])
        stats["js"].append(st.js_distance(rest, cb))
    prof["chunks"] = stats
    return prof


def categorical_labels(prof: Mapping[str, Any]) -> list[str]:
    labels = list(prof["categories"])
    if prof.get("truncated"):
        labels.append(OTHER)
    return labels + [UNSEEN, MISSING]


def categorical_bins(prof: Mapping[str, Any], counts: Mapping[str, int], n_null: int,
                     unseen: list | None = None) -> np.ndarray:
    """Counts aligned to the profile's bins: its categories, [other], unseen, missing."""
    index = {c: i for i, c in enumerate(prof["categories"])}
    k = len(index)
    truncated = bool(prof.get("truncated"))
    out = np.zeros(k + (1 if truncated else 0) + 2, dtype=np.int64)
    for v, c in counts.items():
        i = index.get(v)
        if i is not None:
            out[i] += c
        elif truncated:
            out[k] += c
        else:
            out[-2] += c
            if unseen is not None:
                unseen.append((v, c))
    out[-1] += n_null
    return out


def _sample_index(n_rows: int, max_rows: int) -> np.ndarray:
    step = max(1, math.ceil(n_rows / max(int(max_rows), 1)))
    return np.arange(0, n_rows, step, dtype=np.int64)


def standardise(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    z = (x - mean) / std
    z[~np.isfinite(z)] = 0.0  # missing -> the reference mean
    return z


def _fit_pca(z: np.ndarray, names: list[str], chunk_of_row: np.ndarray | None,
             p: Mapping[str, Any], means: list[float], stds: list[float]) -> dict[str, Any]:
    """PCA on the even sample rows; the reconstruction-error baseline on the odd rows, so
    the baseline is out of sample like every current batch. No BLAS or LAPACK: the
    covariance, eigenvectors and errors are fixed-order elementwise arithmetic, so the
    written numbers are the same bits on any CPU kernel and thread count
    (docs/determinism.md)."""
    fit, ev = z[0::2], z[1::2]
    vals, vecs = pca_components(fit)
    total = math.fsum(vals.tolist())
    ratio = (np.array([math.fsum(vals[:k + 1].tolist()) / total for k in range(vals.size)])
             if total > 0 else np.ones_like(vals))
    q = int(min(len(names) - 1, np.searchsorted(ratio, float(p["mv_explained_variance"])) + 1))
    resid = vecs[:, q:]  # the discarded directions: the reconstruction error lives there
    err = recon_errors(ev, resid)
    err_mean, err_std = fixed_mean_std(err, ddof=1) if len(err) > 1 else (
        float(fixed_sum(err)) / max(len(err), 1), 0.0)
    out: dict[str, Any] = {
        "available": True, "method": "pca_reconstruction", "columns": names,
        "mean": means, "std": stds, "residual_components": resid.T.tolist(), "n_components": q,
        "explained_variance": float(ratio[q - 1]), "n_rows": int(len(ev)),
        "error_mean": err_mean, "error_std": err_std,
        # tail quantile for a robust exceedance test (errors are heavy-tailed, so a mean test
        # alone loses power exactly when a few rows break the correlation structure)
        "error_q95": float(np.quantile(err, 0.95)) if len(err) else 0.0,
    }
    out["chunks"] = _mv_chunk_stats(err, chunk_of_row, err_mean, p)
    return out


def _mv_chunk_stats(err: np.ndarray, chunk_of_row: np.ndarray | None, err_mean: float,
                    p: Mapping[str, Any]) -> dict[str, list]:
    """Per reference chunk: |chunk mean - rest mean| / overall mean of the errors."""
    chunks: dict[str, list] = {"rows": [], "mv": []}
    if chunk_of_row is None:
        return chunks
    ev_chunks = chunk_of_row[1::2]
    total = float(fixed_sum(err))
    for c in np.unique(ev_chunks):
        e = err[ev_chunks == c]
        if len(e) < int(p["min_chunk_rows"]) or len(err) - len(e) < int(p["min_chunk_rows"]):
            continue
        e_sum = float(fixed_sum(e))
        rest_mean = (total - e_sum) / (len(err) - len(e))
        chunks["rows"].append(int(len(e)))
        chunks["mv"].append(abs(e_sum / len(e) - rest_mean) / max(err_mean, 1e-12))
    return chunks


def build_profile_from_source(src: Any, types: Mapping[str, str], params: Mapping[str, Any] | None,
                              scores: np.ndarray | None = None, threshold: float | None = None,
                              timestamps: Any = None, spill: bool | None = None) -> dict[str, Any]:
    """The profile, one column at a time. With ``spill`` (default: when the sorted values of
    all numeric columns exceed ``SPILL_ABOVE_BYTES``) each column's sorted values go to a
    temporary values file as soon as they are computed, so memory stays at about one column
    whatever the number of columns; ``save_reference_profile`` then copies that file."""
    p = resolve_params(params)
    n_rows = src.n_rows
    if n_rows == 0:
        raise DataError("the reference has no rows", expected="at least one row")
    chunks = chunk_slices(n_rows, p, timestamps)
    chunk_of_row = np.empty(n_rows, dtype=np.int32)
    for i, sel in enumerate(chunks):
        chunk_of_row[sel] = i
    stats = ("wasserstein",) if p["method_numeric"] == "wasserstein" else ()
    sample = _sample_index(n_rows, p["mv_max_rows"])
    features: dict[str, Any] = {}
    n_num = sum(1 for k in types.values() if k == "numeric")
    if spill is None:  # the sorted values of every column would not fit the budget
        spill = 8 * n_rows * (n_num + (scores is not None)) > SPILL_ABOVE_BYTES
    values: Any = SpillSink() if spill else {}
    z_all = np.zeros((sample.size, n_num), order="F") if p["multivariate"] else None
    z_names, z_means, z_stds = [], [], []
    for name, kind in types.items():
        if kind == "numeric":
            x = src.numeric(name)
            prof, u, counts = _numeric_profile(x, chunks, p, stats)
            if prof["n"] == 0:
                raise DataError("reference column has no values (all null)", column=name,
                                expected="at least one non-null value")
            features[name] = prof
            values[name] = (u, counts)
            del u, counts
            if p["multivariate"] and prof["std"] > 0:
                z_all[:, len(z_names)] = standardise(x[sample], prof["mean"], prof["std"])
                z_names.append(name)
                z_means.append(prof["mean"])
                z_stds.append(prof["std"])
            del x
        elif kind == "categorical":
            features[name] = _categorical_profile(src.categorical(name), chunks, p)
        else:
            raise DataError(f"unsupported drift column type {kind!r}", column=name,
                            expected="numeric | categorical")
    profile: dict[str, Any] = {
        "format": PROFILE_FORMAT, "n_rows": int(n_rows),
        "settings": {k: p[k] for k in ("psi_bins", "psi_epsilon", "hist_bins", "chunk_by",
                                       "chunk_size", "chunk_period", "max_categories",
                                       "mv_explained_variance", "mv_max_rows")},
        "n_chunks": len(chunks), "features": features,
        "feature_order": list(features),  # JSON objects are written with sorted keys
    }
    if len(z_names) >= 2:
        z = z_all[:, :len(z_names)]
        profile["multivariate"] = _fit_pca(z, z_names, chunk_of_row[sample], p, z_means, z_stds)
    else:
        profile["multivariate"] = {"available": False,
                                   "reason": "needs at least two numeric features with spread"}
    if scores is not None:
        sc = np.asarray(scores, dtype=np.float64)
        if sc.size != n_rows:
            raise DataError(f"{sc.size} scores for {n_rows} reference rows",
                            expected="one score per reference row")
        prof, u, counts = _numeric_profile(sc, chunks, p, stats)
        if threshold is not None:
            valid = sc[np.isfinite(sc)]
            prof["threshold"] = float(threshold)
            prof["positive_count"] = int((valid >= threshold).sum())
            prof["positive_rate"] = prof["positive_count"] / max(valid.size, 1)
        profile["scores"] = prof
        values[SCORE] = (u, counts)
    profile["_values"] = values.finish() if spill else values
    return profile


def build_reference_profile(reference_df: pd.DataFrame, columns: Any = None,
                            scores: np.ndarray | None = None, threshold: float | None = None,
                            params: Mapping[str, Any] | None = None,
                            timestamp_column: str | None = None) -> dict[str, Any]:
    """Profile of a reference frame. ``columns``: a Contract (its features), a mapping of
    name -> 'numeric'|'categorical', or a list of names (types inferred from dtypes).

    The result is a dict; its ``_values`` entry holds the sorted reference values (numpy)
    that ``save_reference_profile`` writes to the Parquet side file."""
    if reference_df is None or len(reference_df) == 0:
        raise DataError("the reference frame is empty", expected="at least one row")
    types = column_types(columns, reference_df.columns, dict(reference_df.dtypes))
    missing = [c for c in types if c not in reference_df.columns]
    if missing:
        raise DataError(f"reference frame lacks feature column(s) {missing}")
    if timestamp_column is None and hasattr(columns, "timestamp_column"):
        timestamp_column = columns.timestamp_column
    ts = None
    if timestamp_column and timestamp_column in reference_df.columns:
        ts = reference_df[timestamp_column].to_numpy()
    return build_profile_from_source(FrameSource(reference_df), types, params, scores,
                                     threshold, ts)


def build_reference_profile_from_parquet(path: str | Path, columns: Any = None,
                                         scores: np.ndarray | None = None,
                                         scores_column: str | None = None,
                                         threshold: float | None = None,
                                         params: Mapping[str, Any] | None = None,
                                         timestamp_column: str | None = None) -> dict[str, Any]:
    """The same profile from a Parquet file, read one column at a time."""
    src = ParquetSource(path)
    dtypes = {f.name: f.type for f in src.schema}
    names = [n for n in src.names() if n != scores_column]
    types = column_types(columns, names, dtypes)
    for c in types:
        if c not in dtypes:
            raise DataError("reference file lacks a feature column", path=path, column=c)
    if scores is None and scores_column:
        scores = src.numeric(scores_column)
    ts = src.column(timestamp_column).to_numpy() if timestamp_column else None
    return build_profile_from_source(src, types, params, scores, threshold, ts)


# --------------------------------------------------------------------- save and load
