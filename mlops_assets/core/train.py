"""Training: the model pipeline, its operating threshold, and its byte-deterministic skops file.

The model is one scikit-learn Pipeline, so the exact preprocessing travels with the trees:

    ColumnTransformer
      cat: OneHotEncoder(handle_unknown="ignore", dense float64)  <- contract.categorical_features
      num: passthrough (NaN kept; the trees route missing values)  <- contract.numeric_features
    HistGradientBoostingClassifier(random_state=seed, early_stopping=False, ...params)

Inputs are feature tables from core.features.build_features (id, timestamp, `_batch`, label,
then the contract's features). Determinism: the rows are put in (timestamp, id) order before
fitting, there is no early-stopping split and the seed is fixed, so the same rows give
identical trees; `save_model` then canonicalises the skops zip (see its docstring) so the same
trees give the same file bytes in any process. Models are never pickled: `load_model` reads
skops and trusts only skops's defaults plus TRUSTED_TYPES below.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from mlops_assets.core.contract import Contract, FeatureSpec
from mlops_assets.core.evaluate import classification_metrics, operating_threshold
from mlops_assets.core.features import MISSING_CATEGORY
from mlops_assets.core.io import DataError, md5_file, write_bytes_atomic
from mlops_assets.core.versions import library_versions

# OpenMP threads used while fitting. One thread makes the result independent of the host's
# core count by construction (no parallel reduction can round differently), and on a busy
# machine it is also the fastest: measured on this shared 2-core host with 125k rows x 200
# iterations, 3 s with one thread vs 9-130 s with OpenMP threads competing for the cores.
# Only train_model is limited; `score` elsewhere uses the default thread pool.
FIT_THREADS = 1

MODEL_FORMAT = "skops"
RECORD_FORMAT = "mlops_assets.model_record/1"

# Types a model file may contain beyond skops's built-in trusted defaults (scikit-learn
# estimators, numpy/builtin containers). Derived once with
#   skops.io.get_untrusted_types(data=skops.io.dumps(fitted_pipeline))
# on pipelines built by build_pipeline (categorical + numeric, numeric only, categorical
# only, with NaN): HistGradientBoosting's fitted trees are its only non-default type. Kept
# here in code on purpose: the list a file *claims* is never trusted.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

# Fixed zip metadata for canonical model files. Entries are STORED (not deflated) so the
# bytes do not depend on the zlib build either.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE = 0o100644 << 16  # regular file, rw-r--r--
_SCHEMA = "schema.json"
_ENTRY_RE = re.compile(r"^(\d+)\.([A-Za-z0-9]+)$")


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class TrainParams:
    """The `train` section of params.yaml (defaults equal the committed params.yaml)."""

    seed: int = 42
    learning_rate: float = 0.1
    max_iter: int = 200
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 40
    l2_regularization: float = 0.0
    operating_fpr: float = 0.02

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TrainParams:
        """From the `train` mapping, or from the whole params.yaml mapping (its `train` key).

        An unknown key (a typo) or a value of the wrong type / out of range is a DataError
        naming the key; a key left out takes the default above."""
        if not isinstance(params, Mapping):
            raise DataError("train params must be a mapping", path="params.yaml",
                            expected="a 'train:' section")
        section = params["train"] if isinstance(params.get("train"), Mapping) else params
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise DataError(f"unknown train parameter(s) {unknown}", path="params.yaml",
                            expected=f"keys among {sorted(known)}")
        values: dict[str, Any] = {}
        for name, value in section.items():
            kind = int if known[name].type in ("int", int) else float
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                    kind is int and isinstance(value, float) and not value.is_integer()):
                raise DataError(f"train parameter {name!r} is {value!r}", path="params.yaml",
                                expected=f"a{'n integer' if kind is int else ' number'}")
            values[name] = kind(value)
        p = cls(**values)
        p.validate()
        return p

    def validate(self) -> None:
        checks = [
            ("learning_rate", self.learning_rate > 0, "> 0"),
            ("max_iter", self.max_iter >= 1, ">= 1"),
            ("max_leaf_nodes", self.max_leaf_nodes >= 2, ">= 2"),
            ("min_samples_leaf", self.min_samples_leaf >= 1, ">= 1"),
            ("l2_regularization", self.l2_regularization >= 0, ">= 0"),
            ("operating_fpr", 0 <= self.operating_fpr < 1, "in [0, 1)"),
            ("seed", 0 <= self.seed < 2**32, "in [0, 2**32)"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise DataError(f"train parameter {name!r} is {getattr(self, name)!r}",
                                path="params.yaml", expected=expected)


# --------------------------------------------------------------------------- pipeline


def _split_features(features: Contract | Iterable[FeatureSpec]) -> tuple[list[str], list[str]]:
    specs = list(getattr(features, "features", features))
    cat = [f.name for f in specs if f.is_categorical]
    num = [f.name for f in specs if not f.is_categorical]
    return cat, num


def build_pipeline(contract: Contract | Iterable[FeatureSpec], params: TrainParams) -> Pipeline:
    """The unfitted model pipeline for a contract (or its feature specs, the signature in
    docs/ARCHITECTURE.md). Categorical features are one-hot encoded (unknown categories at
    scoring time encode as all zeros), numeric ones pass through in declaration order."""
    cat, num = _split_features(contract)
    if not cat and not num:
        raise DataError("the contract declares no features", expected="at least one feature")
    transformers: list[tuple[str, Any, list[str]]] = []
    if cat:
        transformers.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False,
                                                  dtype=np.float64), cat))
    if num:
        transformers.append(("num", "passthrough", num))
    pre = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0,
                            verbose_feature_names_out=True)
    clf = HistGradientBoostingClassifier(
        learning_rate=params.learning_rate,
        max_iter=params.max_iter,
        max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf,
        l2_regularization=params.l2_regularization,
        early_stopping=False,
        random_state=params.seed,
    )
    return Pipeline([("preprocess", pre), ("classifier", clf)])


def feature_matrix(features_df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The model's input: the contract's feature columns, by name and in contract order,
    categorical ones as str objects (missing -> MISSING_CATEGORY) and numeric ones as float64
    (missing -> NaN). A missing or non-numeric column is a DataError naming it."""
    if not isinstance(features_df, pd.DataFrame):
        raise DataError(f"expected a feature table (DataFrame), got {type(features_df).__name__}")
    missing = [c for c in contract.feature_names if c not in features_df.columns]
    if missing:
        raise DataError(f"the feature table lacks the feature column {missing[0]!r}"
                        + (f" (and {len(missing) - 1} more: {missing[1:]})" if len(missing) > 1
                           else ""),
                        column=missing[0], expected=f"feature columns {contract.feature_names}")
    cols: dict[str, Any] = {}
    for spec in contract.features:
        s = features_df[spec.name]
        if spec.is_categorical:
            cols[spec.name] = s.astype("string").fillna(MISSING_CATEGORY).astype(object).to_numpy()
        else:
            if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                try:
                    s = pd.to_numeric(s, errors="raise")
                except (TypeError, ValueError):
                    raise DataError(f"feature column {spec.name!r} is not numeric "
                                    f"(dtype {features_df[spec.name].dtype})", column=spec.name,
                                    expected="float64 values (NaN for missing)") from None
            arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
            bad = np.flatnonzero(np.isinf(arr)).tolist()
            if bad:
                raise DataError(f"feature column {spec.name!r} holds infinite values",
                                column=spec.name, rows=bad, expected="finite numbers or NaN")
            cols[spec.name] = arr
    return pd.DataFrame(cols, index=pd.RangeIndex(len(features_df)))


def _labels(df: pd.DataFrame, contract: Contract) -> np.ndarray:
    label = contract.label_column
    if label is None:
        raise DataError(f"contract {contract.name!r} has no label column, so it cannot train",
                        path=contract.path or None, expected="label_column in the contract")
    if label not in df.columns:
        raise DataError(f"the training table lacks the label column {label!r}", column=label,
                        expected="0/1 labels")
    s = df[label]
    bad = np.flatnonzero(s.isna().to_numpy()).tolist()
    if bad:
        raise DataError("the label column holds missing values", column=label, rows=bad,
                        expected="0 or 1 in every row")
    try:
        num = pd.to_numeric(s, errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise DataError("the label column is not numeric", column=label,
                        expected="0 or 1") from None
    bad = np.flatnonzero(~np.isin(num, (0.0, 1.0))).tolist()
    if bad:
        raise DataError(f"the label column holds {num[bad[0]]!r}", column=label, rows=bad,
                        expected="0 or 1 in every row")
    return num.astype(np.int64)


# --------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    """A fitted model and what training measured.

    threshold: the operating threshold (alert when score >= threshold): the exact score
      quantile at which the false-positive rate on the *training* negatives is as close to
      params.operating_fpr as possible without exceeding it (evaluate.operating_threshold).
      In-sample, so the FPR on new data is usually higher.
    train_metrics: evaluate.classification_metrics on the training rows at that threshold.
    scores: training scores, aligned with the rows of the frame passed to train_model."""

    pipeline: Pipeline
    threshold: float
    train_metrics: dict[str, Any]
    n_rows: int
    positives: int
    scores: np.ndarray = field(repr=False)
    params: TrainParams = field(default_factory=TrainParams)


def _training_order(df: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    keys = [c for c in (contract.timestamp_column, contract.id_column) if c in df.columns]
    if not keys:
        return df.reset_index(drop=True)
    return df.sort_values(keys, kind="mergesort").reset_index(drop=True)


def train_model(train_df: pd.DataFrame, contract: Contract, params: TrainParams) -> TrainResult:
    """Fit build_pipeline on `train_df` (a feature table) and set the operating threshold.

    Deterministic: rows are fitted in (timestamp, id) order whatever order they arrive in,
    with FIT_THREADS OpenMP threads, and host facts are stripped (strip_machine_state).
    Needs both classes in the labels (DataError otherwise)."""
    if not isinstance(train_df, pd.DataFrame) or len(train_df) == 0:
        raise DataError("the training table is empty", expected="at least one labelled row")
    params.validate()
    y_input = _labels(train_df, contract)
    feature_matrix(train_df.iloc[:0], contract)  # fail fast on a missing column
    positives = int(y_input.sum())
    if positives == 0 or positives == len(y_input):
        raise DataError(f"the training labels hold one class only ({positives} positives in "
                        f"{len(y_input)} rows)", column=contract.label_column,
                        expected="both 0 and 1 labels")
    ordered = _training_order(train_df, contract)
    pipeline = build_pipeline(contract, params)
    with threadpool_limits(limits=FIT_THREADS, user_api="openmp"):
        pipeline.fit(feature_matrix(ordered, contract), _labels(ordered, contract))
        strip_machine_state(pipeline)
        scores = score(pipeline, train_df, contract)
    threshold = operating_threshold(scores, y_input, params.operating_fpr)
    return TrainResult(
        pipeline=pipeline,
        threshold=threshold,
        train_metrics=classification_metrics(y_input, scores, threshold),
        n_rows=len(train_df),
        positives=positives,
        scores=scores,
        params=params,
    )


def score(pipeline: Pipeline, features_df: pd.DataFrame, contract: Contract) -> np.ndarray:
    """Probability of the positive class (label 1) for each row of a feature table, in row
    order. Feature columns are selected by name in contract order; other columns (id,
    timestamp, label, ...) are ignored."""
    X = feature_matrix(features_df, contract)
    if len(X) == 0:
        return np.zeros(0, dtype=np.float64)
    classes = list(getattr(pipeline, "classes_", []))
    if 1 not in classes:
        raise DataError(f"the model's classes are {classes}, without the positive class 1",
                        expected="a binary classifier trained on 0/1 labels")
    proba = pipeline.predict_proba(X)
    return np.ascontiguousarray(proba[:, classes.index(1)], dtype=np.float64)


# --------------------------------------------------------------------------- model files


def strip_machine_state(pipeline: Pipeline) -> Pipeline:
    """Remove what a fitted model records about the machine that trained it, in place.

    HistGradientBoosting's fitted `_bin_mapper` keeps `n_threads` = the OpenMP thread count
    of the training process (2 on one host, 8 on another), which would make the same trees
    serialise to different bytes. It is reset to None ("decide at run time"), which is also
    right for the process that later loads the model; the trees and the predictions do not
    depend on it."""
    for _, step in pipeline.steps:
        mapper = getattr(step, "_bin_mapper", None)
        if mapper is not None and hasattr(mapper, "n_threads"):
            mapper.n_threads = None
    return pipeline



def _remap_ids(node: Any, ids: dict[int, int]) -> Any:
    """Walk the skops schema in document order, renumbering `__id__` values and the ids in
    `file` names ("<id>.npy") by first appearance. The same id (a shared object) keeps one
    new number, so skops's object memo still links the same nodes."""
    def new_id(old: int) -> int:
        if old not in ids:
            ids[old] = len(ids)
        return ids[old]

    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "__id__" and isinstance(value, int) and not isinstance(value, bool):
                out[key] = new_id(value)
            elif key == "file" and isinstance(value, str) and _ENTRY_RE.match(value):
                m = _ENTRY_RE.match(value)
                out[key] = f"{new_id(int(m.group(1)))}.{m.group(2)}"
            else:
                out[key] = _remap_ids(value, ids)
        return out
    if isinstance(node, list):
        return [_remap_ids(v, ids) for v in node]
    return node


def canonicalize_skops(data: bytes) -> bytes:
    """Rewrite a skops zip so the same model gives the same bytes in every process.

    skops writes Python `id()`s into schema.json (`"__id__": N`) and into the array entry
    names (`N.npy`), and stamps every zip entry with the current time. Here every such id is
    renumbered 0, 1, 2, ... by first appearance in schema.json, the entries are renamed to
    match, and the zip is rebuilt with entries in sorted name order, a fixed 1980-01-01
    timestamp, fixed permissions and no compression."""
    with zipfile.ZipFile(io.BytesIO(data)) as zin:
        names = zin.namelist()
        if _SCHEMA not in names:
            raise DataError("not a skops file: no schema.json", expected="a skops model file")
        schema = json.loads(zin.read(_SCHEMA))
        ids: dict[int, int] = {}
        schema = _remap_ids(schema, ids)
        entries: dict[str, bytes] = {_SCHEMA: json.dumps(schema, indent=2).encode("utf-8")}
        for name in names:
            if name == _SCHEMA:
                continue
            m = _ENTRY_RE.match(name)
            if not m or int(m.group(1)) not in ids:
                raise DataError(f"unexpected entry {name!r} in the skops file (not referenced "
                                "by its schema)", expected="entries named <id>.<ext>")
            entries[f"{ids[int(m.group(1))]}.{m.group(2)}"] = zin.read(name)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zout:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = _ZIP_MODE
            zout.writestr(info, entries[name])
    return buf.getvalue()


def model_bytes(pipeline: Pipeline) -> bytes:
    """The canonical skops bytes of a model (what save_model writes); applies
    strip_machine_state to the pipeline first."""
    import skops.io as sio

    return canonicalize_skops(sio.dumps(strip_machine_state(pipeline)))


def save_model(pipeline: Pipeline, path: str | Path) -> Path:
    """Write the model as a canonical skops file, atomically (a reader never sees half a
    file). Same fitted model -> same bytes -> same md5 in dvc.lock."""
    return write_bytes_atomic(path, model_bytes(pipeline))


def load_model(path: str | Path) -> Pipeline:
    """Load a skops model file, trusting skops's defaults plus TRUSTED_TYPES only.

    A file that needs any other type (a custom function, an arbitrary class) is refused with
    a DataError naming the file and the untrusted types; nothing in it is executed."""
    import skops.io as sio

    path = Path(path)
    if not path.exists():
        raise DataError("model file does not exist", path=path, expected="a skops model file")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except (zipfile.BadZipFile, json.JSONDecodeError, KeyError, OSError) as e:
        raise DataError(f"cannot read the model file ({type(e).__name__}: {e})", path=path,
                        expected="a skops model file written by save_model") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise DataError(f"model file needs types that are not trusted: {refused}", path=path,
                        expected=f"only skops defaults and {list(TRUSTED_TYPES)}")
    try:
        model = sio.load(path, trusted=list(TRUSTED_TYPES))
    except Exception as e:  # noqa: BLE001 - any loader failure is a bad file
        raise DataError(f"cannot load the model file ({type(e).__name__}: {e})", path=path,
                        expected="a skops model file written by save_model") from None
    if not isinstance(model, Pipeline):
        raise DataError(f"model file holds a {type(model).__name__}, not a Pipeline", path=path,
                        expected="a scikit-learn Pipeline")
    return model


# --------------------------------------------------------------------------- metadata


def _is_absolute(p: str) -> bool:
    return PurePosixPath(p).is_absolute() or PureWindowsPath(p).is_absolute()


def model_record(*, model_path: str | Path, result: TrainResult, contract: Contract,
                 params: TrainParams, data_hashes: Mapping[str, str],
                 cutoff: str | None = None, extra: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The metadata stored beside the model (model.json).

    Deterministic by construction: no wall-clock time, git sha, hostname or absolute path
    (it is a DVC output hashed into dvc.lock). `data_hashes` maps each input (a path
    relative to the project root, e.g. "data/split/train.parquet") to its md5; an absolute
    path is refused. Only the model file's *name* is recorded, with its md5 (also at the top
    level as "model_md5", the key the stages and the registry read)."""
    model_path = Path(model_path)
    abs_keys = sorted(k for k in data_hashes if _is_absolute(str(k)))
    if abs_keys:
        raise ValueError(f"data_hashes keys must be project-relative paths, got {abs_keys}")
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "model_md5": md5_file(model_path),
        "model": {
            "file": model_path.name,
            "md5": md5_file(model_path),
            "serialisation": MODEL_FORMAT,
            "estimator": type(result.pipeline[-1]).__name__,
            "trusted_types": list(TRUSTED_TYPES),
        },
        "contract": {
            "name": contract.name,
            "md5": contract.md5,
            "schema_hash": contract.schema_hash(),
            "feature_definitions_hash": contract.feature_definitions_hash(),
            "label_column": contract.label_column,
        },
        "features": {
            "names": contract.feature_names,
            "categorical": contract.categorical_features,
            "numeric": contract.numeric_features,
        },
        "data": {str(k): str(v) for k, v in sorted(data_hashes.items())},
        "params": asdict(params),
        "cutoff": None if cutoff is None else str(cutoff),
        "threshold": float(result.threshold),
        "operating_fpr": float(params.operating_fpr),
        "train_metrics": result.train_metrics,
        "rows": {"train": int(result.n_rows), "train_positives": int(result.positives)},
        "libraries": library_versions(),
    }
    if extra:
        clash = sorted(set(extra) & set(record))
        if clash:
            raise ValueError(f"extra keys clash with the record: {clash}")
        record.update(extra)
    return record
