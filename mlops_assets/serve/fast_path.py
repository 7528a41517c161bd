"""The service's fast scoring path: dict records -> numpy columns -> feature matrix -> trees.

Why: the general path (a pandas frame per request, `build_features`, the sklearn Pipeline's
ColumnTransformer, HistGradientBoosting's per-tree Cython calls) costs ~7 ms for ONE record,
almost all of it per-call overhead; the work itself is a few microseconds. This module does
the same computation without those layers:

  fast_columns     checks records against the contract and builds typed numpy columns. It
                   only ACCEPTS: anything it is unsure about (a type, a range, a timestamp
                   form, a duplicate id) returns None and the request goes through the full
                   `RequestValidator`, which remains the one place that words 422 errors;
  FeatureEncoder   the contract's feature transforms over numpy arrays, giving the columns
                   `core.features.build_features` gives and the model matrix the fitted
                   ColumnTransformer gives (one-hot blocks and passthrough, in its order);
  CompiledTrees    the fitted HistGradientBoosting trees as flat arrays, traversed for all
                   trees at once (small inputs) or through sklearn's own predictors (large
                   inputs, with an explicit OpenMP thread count); leaf values are summed in
                   sklearn's order and mapped through the model's own link, so scores are
                   bit-identical, not merely close.

Training-serving parity is not assumed: `FastScorer.build` refuses a pipeline whose shape it
does not know (then the service uses the general path), and `parity_check` scores a set of
random contract-shaped records both ways and must find them equal to 1e-12 before the fast
path serves a single request (the service checks every model it loads; a test does too).
`core.features` stays the single source of truth: this module is verified against it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.contract import Contract
from mlops_assets.core.features import MISSING_CATEGORY, build_features
from mlops_assets.core.train import feature_matrix, score
from mlops_assets.serve.records import parse_iso_ns
from mlops_assets.serve.validation import records_to_frame

_STR, _INT, _FLOAT, _BOOL, _DATETIME = range(5)
_KINDS = {"string": _STR, "category": _STR, "int": _INT, "float": _FLOAT, "bool": _BOOL,
          "datetime": _DATETIME}
_EXACT_INT = 2 ** 53
SMALL_REQUEST = 8  # records: at most this many are checked value by value
_NS_PER_DAY = 86_400 * 10 ** 9
_NS_PER_HOUR = 3_600 * 10 ** 9
# The ISO 8601 subset numpy parses itself (years well inside datetime64[ns], no offset).
_ISO_SIMPLE = re.compile(r"(?:1[7-9]|2[01])\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z?\Z")


class FastPathUnsupported(Exception):
    """The model or contract has a shape the fast path does not implement."""


@dataclass(frozen=True)
class _FieldPlan:
    name: str
    kind: int
    nullable: bool
    lo: float
    hi: float
    cats: frozenset[str] | None
    unique: bool


class FastColumns:
    """Accept-only validation of request records into typed numpy columns."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        always = {contract.id_column, contract.timestamp_column}
        plans = []
        for name, spec in contract.columns.items():
            if name == contract.label_column:
                continue
            plans.append(_FieldPlan(
                name=name, kind=_KINDS[spec.type],
                nullable=bool(spec.nullable) and name not in always,
                lo=-math.inf if spec.min is None else float(spec.min),
                hi=math.inf if spec.max is None else float(spec.max),
                cats=frozenset(spec.categories or ()) if spec.type == "category" and spec.strict
                else None,
                unique=bool(spec.unique)))
        self.plans = tuple(plans)
        self.names = frozenset(p.name for p in plans)

    def columns(self, records: list[Any]) -> dict[str, np.ndarray] | None:
        """Typed columns (contract order) when every record is valid; None when the full
        validator must decide (an error, or a form this path does not parse). Checks run
        a column at a time in C (type sets, numpy ranges), not value by value."""
        n = len(records)
        names = self.names
        for r in records:
            if type(r) is not dict or not names.issuperset(r):
                return None
        if n <= SMALL_REQUEST:
            return self._columns_small(records)
        out: dict[str, np.ndarray] = {}
        for p in self.plans:
            vals = [r.get(p.name) for r in records]
            arr = self._column(p, vals, n)
            if arr is None:
                return None
            out[p.name] = arr
        return out

    def _columns_small(self, records: list[dict[str, Any]]) -> dict[str, np.ndarray] | None:
        """`columns` for a few records: value by value in Python, which for one record is
        several times cheaper than a numpy call per column."""
        n = len(records)
        out: dict[str, np.ndarray] = {}
        for p in self.plans:
            name, kind = p.name, p.kind
            vals = [r.get(name) for r in records]
            if kind == _STR:
                for v in vals:
                    if type(v) is not str:
                        if v is None and p.nullable:
                            continue
                        return None
                    if p.cats is not None and v not in p.cats:
                        return None
                if p.unique and n > 1 and len(set(vals)) != n:
                    return None
                arr = np.empty(n, dtype=object)
                arr[:] = vals
            elif kind == _INT or kind == _FLOAT:
                nums = []
                for v in vals:
                    tv = type(v)
                    if tv is int:
                        if not -_EXACT_INT < v < _EXACT_INT:
                            return None
                        f = float(v)
                    elif tv is float:
                        if not math.isfinite(v) or not -_EXACT_INT < v < _EXACT_INT or (
                                kind == _INT and not v.is_integer()):
                            return None  # NaN, inf, or a fraction for an int
                        f = v
                    elif v is None and p.nullable:
                        nums.append(math.nan)
                        continue
                    else:
                        return None
                    if not p.lo <= f <= p.hi:
                        return None
                    nums.append(f)
                arr = np.array(nums, dtype=np.float64)
                if kind == _INT and not p.nullable:
                    arr = arr.astype(np.int64)  # as the full validator types it
            elif kind == _BOOL:
                if any(type(v) is not bool for v in vals if not (v is None and p.nullable)):
                    return None
                arr = np.empty(n, dtype=object)
                arr[:] = vals
                if not p.nullable:
                    arr = arr.astype(bool)
            else:  # datetime
                ns = []
                for v in vals:
                    x = parse_iso_ns(v) if type(v) is str else None
                    if x is None:
                        return None
                    ns.append(x)
                arr = np.array(ns, dtype=np.int64).view("datetime64[ns]")
            out[name] = arr
        return out

    @staticmethod
    def _column(p: _FieldPlan, vals: list[Any], n: int) -> np.ndarray | None:
        types = set(map(type, vals))
        has_none = type(None) in types
        if has_none:
            if not p.nullable:
                return None
            types.discard(type(None))
        kind = p.kind
        if kind == _STR:
            if types - {str}:
                return None
            if p.cats is not None and not p.cats.issuperset(
                    vals if not has_none else [v for v in vals if v is not None]):
                return None
            if p.unique and n > 1 and len(set(vals)) != n:
                return None
            arr = np.empty(n, dtype=object)
            arr[:] = vals
            return arr
        if kind == _INT or kind == _FLOAT:
            if types - {int, float}:  # bool is its own type: refused
                return None
            try:
                arr = np.array(vals, dtype=np.float64)  # None -> NaN
            except (OverflowError, TypeError, ValueError):
                return None
            missing = np.isnan(arr)
            if missing.any() and int(missing.sum()) != (vals.count(None) if has_none else 0):
                return None  # a NaN sent as a value
            present = arr[~missing] if has_none else arr
            if not np.all(np.isfinite(present)) or np.any(np.abs(present) >= _EXACT_INT):
                return None
            if np.any(present < p.lo) or np.any(present > p.hi):
                return None
            if kind == _INT and float in types and np.any(np.floor(present) != present):
                return None  # a fraction for an int
            return arr.astype(np.int64) if kind == _INT and not p.nullable else arr
        if kind == _BOOL:
            if types - {bool}:
                return None
            arr = np.empty(n, dtype=object)
            arr[:] = vals
            return arr if p.nullable else arr.astype(bool)
        # datetime: never nullable here (id and timestamp are required)
        if has_none or types - {str}:
            return None
        if all(map(_ISO_SIMPLE.match, vals)):
            try:  # numpy parses these forms in C; naive = UTC, as pandas reads them
                return np.array([v[:-1] if v[-1] == "Z" else v for v in vals],
                                dtype="datetime64[ns]")
            except ValueError:
                return None  # e.g. Feb 30: the full validator words it
        ns = []
        for v in vals:
            x = parse_iso_ns(v)
            if x is None:
                return None
            ns.append(x)
        return np.array(ns, dtype=np.int64).view("datetime64[ns]")


def frame_columns(frame: pd.DataFrame, contract: Contract) -> dict[str, np.ndarray]:
    """The validator's frame as the same numpy columns `FastColumns.columns` gives."""
    out = {}
    for name in frame.columns:
        s = frame[name]
        if name == contract.timestamp_column:
            out[name] = s.to_numpy(dtype="datetime64[ns]")
        else:
            out[name] = s.to_numpy()
    return out


# --------------------------------------------------------------------------- features


def _as_float(a: np.ndarray) -> np.ndarray:
    if a.dtype == object:
        return np.array([math.nan if v is None else float(v) for v in a], dtype=np.float64)
    return a.astype(np.float64)


class FeatureEncoder:
    """The contract's features over numpy columns, and the fitted preprocessor's matrix."""

    _NUMERIC = ("identity", "log1p", "ratio", "hour_of_day", "day_of_week", "is_weekend",
                "clip")

    def __init__(self, contract: Contract, preprocess: Any) -> None:
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

        self.contract = contract
        for spec in contract.features:
            if spec.transform != "category" and spec.transform not in self._NUMERIC:
                raise FastPathUnsupported(f"transform {spec.transform!r}")
        if not isinstance(preprocess, ColumnTransformer):
            raise FastPathUnsupported(f"preprocessor {type(preprocess).__name__}")
        # blocks of the model matrix, in the ColumnTransformer's output order
        self.blocks: list[tuple[str, str, Any]] = []  # (kind, feature, categories->index)
        width = 0
        for name, trans, cols in preprocess.transformers_:
            if trans == "drop" or name == "remainder" and not len(cols):
                continue
            sl = preprocess.output_indices_[name]
            if sl.start != width:
                raise FastPathUnsupported("non-contiguous preprocessor output")
            if isinstance(trans, OneHotEncoder):
                if trans.handle_unknown != "ignore" or trans.drop_idx_ is not None or \
                        getattr(trans, "_infrequent_enabled", False):
                    raise FastPathUnsupported("one-hot encoder options")
                for col, cats in zip(cols, trans.categories_, strict=True):
                    lookup = {c: i for i, c in enumerate(cats.tolist())}
                    if not all(type(c) is str for c in lookup):
                        raise FastPathUnsupported("non-string categories")
                    self.blocks.append(("onehot", col, lookup))
                    width += len(lookup)
            elif trans == "passthrough" or (isinstance(trans, FunctionTransformer)
                                            and trans.func is None):
                for col in cols:
                    self.blocks.append(("num", col, None))
                    width += 1
            else:
                raise FastPathUnsupported(f"transformer {type(trans).__name__}")
            if sl.stop != width:
                raise FastPathUnsupported("preprocessor output width")
        self.width = width
        kinds = {f.name: f.is_categorical for f in contract.features}
        for kind, col, _ in self.blocks:
            if col not in kinds or kinds[col] != (kind == "onehot"):
                raise FastPathUnsupported(f"preprocessor column {col!r}")

    def features(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feature columns as build_features makes them (float64; str objects for
        categories, MISSING_CATEGORY for a missing value)."""
        c = self.contract
        ts_ns = cols[c.timestamp_column].view(np.int64)
        out: dict[str, np.ndarray] = {}
        for spec in c.features:
            t = spec.transform
            if t in ("hour_of_day", "day_of_week", "is_weekend"):
                a = cols[spec.source[0]]
                ns = ts_ns if spec.source[0] == c.timestamp_column else a.view(np.int64)
                nat = np.isnat(a)
                days = ns // _NS_PER_DAY
                if t == "hour_of_day":
                    v = ((ns - days * _NS_PER_DAY) // _NS_PER_HOUR).astype(np.float64)
                else:
                    dow = (days + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
                    v = dow.astype(np.float64) if t == "day_of_week" else \
                        (dow >= 5).astype(np.float64)
                if nat.any():
                    v[nat] = np.nan
                out[spec.name] = v
            elif t == "category":
                a = cols[spec.source[0]]
                o = np.empty(len(a), dtype=object)
                o[:] = [MISSING_CATEGORY if v is None else v if type(v) is str else str(v)
                        for v in a]
                out[spec.name] = o
            else:
                x = _as_float(cols[spec.source[0]])
                if t == "identity":
                    out[spec.name] = x
                elif t == "log1p":
                    out[spec.name] = np.log1p(np.where(x < 0.0, 0.0, x))
                elif t == "ratio":
                    b = _as_float(cols[spec.source[1]])
                    with np.errstate(divide="ignore", invalid="ignore"):
                        r = x / np.where(b != 0, b, np.nan)
                    r[~np.isfinite(r)] = np.nan
                    out[spec.name] = r
                else:  # clip
                    lo = -np.inf if spec.min is None else spec.min
                    hi = np.inf if spec.max is None else spec.max
                    out[spec.name] = np.where(x < lo, lo, np.where(x > hi, hi, x))
        return out

    def matrix(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """The model's input matrix (what the fitted ColumnTransformer would output)."""
        n = len(next(iter(feats.values())))
        X = np.zeros((n, self.width), dtype=np.float64)
        j = 0
        for kind, col, lookup in self.blocks:
            if kind == "num":
                X[:, j] = feats[col]
                j += 1
            else:  # one-hot; an unknown category stays all zeros (handle_unknown="ignore")
                get = lookup.get
                if n <= SMALL_REQUEST:
                    for i, v in enumerate(feats[col]):
                        c = get(v)
                        if c is not None:
                            X[i, j + c] = 1.0
                    j += len(lookup)
                    continue
                k = np.fromiter((get(v, -1) for v in feats[col]), dtype=np.intp, count=n)
                rows = np.flatnonzero(k >= 0)
                X[rows, j + k[rows]] = 1.0
                j += len(lookup)
        return X


# --------------------------------------------------------------------------- trees


class CompiledTrees:
    """A fitted binary HistGradientBoostingClassifier as flat node arrays."""

    def __init__(self, clf: Any, small: int = 24, threads_from: int = 512,
                 threads: int = 1) -> None:
        from sklearn._loss.loss import HalfBinomialLoss
        from sklearn.ensemble import HistGradientBoostingClassifier

        if not isinstance(clf, HistGradientBoostingClassifier):
            raise FastPathUnsupported(f"classifier {type(clf).__name__}")
        if list(clf.classes_) != [0, 1] or clf.n_trees_per_iteration_ != 1 or \
                not isinstance(clf._loss, HalfBinomialLoss) or clf.is_categorical_ is not None:
            raise FastPathUnsupported("not a plain binary HistGradientBoosting model")
        self.clf = clf
        self.small, self.threads_from, self.threads = small, threads_from, max(1, threads)
        nodes = [it[0].nodes for it in clf._predictors]
        if any(nd["is_categorical"].any() for nd in nodes):
            raise FastPathUnsupported("categorical splits")
        t, w = len(nodes), max(len(nd) for nd in nodes)
        feat = np.zeros((t, w), dtype=np.intp)
        thr = np.zeros((t, w), dtype=np.float64)
        left = np.tile(np.arange(w, dtype=np.intp), (t, 1))  # padding/leaves: stay put
        right = left.copy()
        miss_left = np.zeros((t, w), dtype=bool)
        value = np.zeros((t, w), dtype=np.float64)
        leaf = np.ones((t, w), dtype=bool)
        for i, nd in enumerate(nodes):
            k = len(nd)
            is_leaf = nd["is_leaf"].astype(bool)
            idx = np.arange(k)
            feat[i, :k] = np.where(is_leaf, 0, nd["feature_idx"])
            thr[i, :k] = nd["num_threshold"]
            left[i, :k] = np.where(is_leaf, idx, nd["left"])
            right[i, :k] = np.where(is_leaf, idx, nd["right"])
            miss_left[i, :k] = nd["missing_go_to_left"].astype(bool)
            value[i, :k] = nd["value"]
            leaf[i, :k] = is_leaf
        base = np.arange(t, dtype=np.intp) * w
        self.n_trees = t
        self.base = base
        self.feat, self.thr = feat.ravel(), thr.ravel()
        self.left = (left + base[:, None]).ravel()
        self.right = (right + base[:, None]).ravel()
        self.miss_left, self.value, self.leaf = miss_left.ravel(), value.ravel(), leaf.ravel()
        self.depth = int(max(int(nd["depth"].max()) for nd in nodes))
        self.baseline = float(np.asarray(clf._baseline_prediction).ravel()[0])
        self.n_features = int(clf.n_features_in_)
        # sklearn's own per-tree Cython loop, called without the per-tree allocation and
        # wrapper of HistGradientBoosting._raw_predict (~1 ms of 7 for 1,000 rows)
        try:
            from sklearn.ensemble._hist_gradient_boosting._predictor import (
                _predict_from_raw_data,
            )

            known, f_idx_map = clf._bin_mapper.make_known_categories_bitsets()
            self._cython = (_predict_from_raw_data, known, f_idx_map,
                            [(it[0].nodes, it[0].raw_left_cat_bitsets)
                             for it in clf._predictors])
        except (ImportError, AttributeError):  # another sklearn: its public-ish path
            self._cython = None

    def scores(self, X: np.ndarray) -> np.ndarray:
        """P(label 1) per row of the model matrix; bit-identical to pipeline.predict_proba."""
        n = X.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        threads = self.threads if n >= self.threads_from else 1
        if n <= self.small:
            raw = self._raw_vectorised(X)
        elif self._cython is not None:
            raw = self._raw_trees(X, threads)
        else:
            raw = self.clf._raw_predict(X, n_threads=threads)
        return np.ascontiguousarray(self.clf._loss.predict_proba(raw)[:, 1], dtype=np.float64)

    def _raw_trees(self, X: np.ndarray, threads: int) -> np.ndarray:
        """As HistGradientBoosting._raw_predict: baseline, then each tree added in order."""
        predict, known, f_idx_map, trees = self._cython
        X = np.ascontiguousarray(X, dtype=np.float64)
        raw = np.full(X.shape[0], self.baseline)
        out = np.empty(X.shape[0])
        for nodes, left_cat_bitsets in trees:
            predict(nodes, X, left_cat_bitsets, known, f_idx_map, threads, out)
            raw += out
        return raw.reshape(-1, 1)

    def _raw_vectorised(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        pos = np.broadcast_to(self.base, (n, self.n_trees)).copy()
        rows = np.arange(n)[:, None]
        feat, thr, miss_left, left, right = (self.feat, self.thr, self.miss_left, self.left,
                                             self.right)
        for d in range(self.depth):
            x = X[rows, feat[pos]]
            go_left = np.where(np.isnan(x), miss_left[pos], x <= thr[pos])
            pos = np.where(go_left, left[pos], right[pos])
            if d % 4 == 3 and self.leaf[pos].all():
                break
        leaves = self.value[pos]
        # sklearn adds the trees one by one to the baseline: cumsum keeps that exact order
        acc = np.cumsum(np.concatenate([np.full((n, 1), self.baseline), leaves], axis=1),
                        axis=1)
        return np.ascontiguousarray(acc[:, -1:])


# --------------------------------------------------------------------------- scorer


@dataclass(frozen=True)
class FastScorer:
    encoder: FeatureEncoder
    trees: CompiledTrees

    @classmethod
    def build(cls, pipeline: Any, contract: Contract, threads: int = 1,
              threads_from: int = 512) -> FastScorer:
        steps = getattr(pipeline, "steps", None)
        if not steps or len(steps) != 2:
            raise FastPathUnsupported("not a (preprocess, classifier) Pipeline")
        encoder = FeatureEncoder(contract, steps[0][1])
        trees = CompiledTrees(steps[1][1], threads=threads, threads_from=threads_from)
        if encoder.width != trees.n_features:
            raise FastPathUnsupported("matrix width differs from the model's inputs")
        return cls(encoder, trees)

    def score_columns(self, cols: dict[str, np.ndarray]
                      ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        feats = self.encoder.features(cols)
        return feats, self.trees.scores(self.encoder.matrix(feats))


def random_records(contract: Contract, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Contract-shaped valid records spread over the input space (nulls where allowed,
    unseen values of non-strict categories, range ends, zero denominators, every hour and
    weekday), for the parity check."""
    rng = np.random.default_rng(seed)
    t0 = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    out = []
    for i in range(n):
        rec: dict[str, Any] = {}
        for name, spec in contract.columns.items():
            if name == contract.label_column:
                continue
            nullable = spec.nullable and name not in (contract.id_column,
                                                      contract.timestamp_column)
            if nullable and rng.random() < 0.1:
                rec[name] = None
                continue
            if name == contract.id_column:
                rec[name] = f"parity-{seed}-{i}"
            elif spec.type == "datetime":
                secs = int(t0 + rng.integers(0, 3 * 365 * 86400))
                s = str(np.datetime64(secs, "s"))
                form = rng.integers(0, 4)
                if form == 1:
                    s += f".{int(rng.integers(0, 10 ** 6)):06d}Z"
                elif form == 2:
                    s += f"+0{int(rng.integers(0, 9))}:30"
                elif form == 3:
                    s += "Z"
                rec[name] = s
            elif spec.type == "category":
                cats = list(spec.categories or ("a",))
                if not spec.strict and rng.random() < 0.1:
                    rec[name] = f"unseen-{int(rng.integers(0, 3))}"
                else:
                    rec[name] = cats[int(rng.integers(0, len(cats)))]
            elif spec.type == "string":
                rec[name] = f"s{int(rng.integers(0, 100))}"
            elif spec.type == "bool":
                rec[name] = bool(rng.random() < 0.5)
            else:
                lo = 0.0 if spec.min is None else float(spec.min)
                hi = lo + 1e4 if spec.max is None else float(spec.max)
                u = rng.random()
                if u < 0.05:
                    v = lo
                elif u < 0.08:
                    v = hi
                else:  # log-uniform-ish: most mass at small values, as in real traffic
                    v = lo + (hi - lo) * float(rng.random()) ** 4
                rec[name] = int(round(v)) if spec.type == "int" else round(v, 2)
        out.append(rec)
    return out


def parity_check(scorer: FastScorer, pipeline: Any, contract: Contract, n: int = 2000,
                 seed: int = 0, extra: list[dict[str, Any]] | None = None) -> float:
    """Largest |fast - general| over random records (and `extra`), scored both ways: the
    general path is the validator's frame -> core.features.build_features ->
    core.train.score. Also checks the feature columns are equal. Raises AssertionError on
    a mismatch; returns the largest score difference (0.0 when bit-identical)."""
    records = random_records(contract, n, seed) + list(extra or [])
    fc = FastColumns(contract)
    cols = fc.columns(records)
    if cols is None:
        raise AssertionError("the fast validator refused valid records")
    frame = records_to_frame(records, contract)
    ref_feats = build_features(frame, contract)
    feats, fast = scorer.score_columns(cols)
    for name in contract.feature_names:
        a, b = feats[name], ref_feats[name].to_numpy()
        if a.dtype == object:
            if a.tolist() != b.tolist():
                raise AssertionError(f"feature {name!r} differs from build_features")
        elif not np.array_equal(a, b.astype(np.float64), equal_nan=True):
            raise AssertionError(f"feature {name!r} differs from build_features")
    ts = cols[contract.timestamp_column]
    if not np.array_equal(ts, ref_feats[contract.timestamp_column].to_numpy()):
        raise AssertionError("timestamps differ from build_features")
    ref = score(pipeline, ref_feats, contract)
    diff = float(np.max(np.abs(fast - ref))) if len(ref) else 0.0
    if not diff <= 1e-12:
        raise AssertionError(f"fast scores differ from core.train.score by {diff}")
    # the compiled trees on the pipeline's own matrix, both inner paths
    X = scorer.encoder.matrix(feats)
    ref_x = pipeline.steps[0][1].transform(feature_matrix(ref_feats, contract))
    if not np.array_equal(X, np.asarray(ref_x, dtype=np.float64), equal_nan=True):
        raise AssertionError("model matrix differs from the fitted preprocessor's")
    small = np.concatenate([scorer.trees.scores(X[i:i + 8]) for i in range(0, len(X), 8)])
    if not float(np.max(np.abs(small - ref))) <= 1e-12:
        raise AssertionError("vectorised tree traversal differs from the model")
    # the value-by-value validator (requests of a few records) gives the same columns
    for i in range(0, min(len(records), 400), 4):
        part = fc.columns(records[i:i + 4])
        if part is None:
            raise AssertionError(f"the fast validator refused valid records {i}..{i + 3}")
        for name, a in part.items():
            b = cols[name][i:i + 4]
            same = a.tolist() == b.tolist() if a.dtype == object else np.array_equal(
                a, b, equal_nan=a.dtype.kind == "f")
            if not same or a.dtype != b.dtype:
                raise AssertionError(f"column {name!r} differs between the validator paths")
    return diff
