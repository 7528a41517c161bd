"""core.train: the pipeline, the operating threshold, byte-deterministic skops files, the
trusted-types allow-list and the model record."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlops_assets.core.contract import Contract, load_contract
from mlops_assets.core.io import DataError, canonical_json, md5_bytes, md5_file
from mlops_assets.core.train import (
    TRUSTED_TYPES,
    TrainParams,
    TrainResult,
    build_pipeline,
    canonicalize_skops,
    load_model,
    model_bytes,
    model_record,
    save_model,
    score,
    train_model,
)
from mlops_assets_tests.conftest import committed_text

REPO = Path(__file__).resolve().parents[2]
FRAUD = REPO / "mlops_assets" / "contracts" / "fraud.yaml"
FAST = TrainParams(max_iter=25, min_samples_leaf=20)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return load_contract(FRAUD)


def make_feature_frame(n: int = 3000, seed: int = 0, contract: Contract | None = None
                       ) -> pd.DataFrame:
    """A synthetic feature table shaped like core.features.build_features output for the
    fraud contract: id, ts, _batch, is_fraud, then the features in declaration order
    (categorical = str objects, numeric = float64 with some NaN)."""
    contract = contract or load_contract(FRAUD)
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2025-09-01") + pd.to_timedelta(rng.integers(0, 70 * 86400, n), unit="s")
    amount = rng.lognormal(3.5, 1.0, n)
    avg = rng.lognormal(3.5, 0.5, n)
    channel = rng.choice(["pos", "online", "atm"], n, p=[0.6, 0.3, 0.1])
    card_age = rng.integers(1, 4000, n).astype(float)
    txn = rng.poisson(2, n).astype(float)
    logit = (-4.5 + 1.5 * np.log1p(amount / avg) + 1.0 * (channel == "online")
             - 0.4 * np.log1p(card_age) / 2 + 0.3 * txn)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    dist = rng.exponential(50, n)
    dist[rng.random(n) < 0.1] = np.nan
    cols = {
        "transaction_id": [f"t{seed}-{i:06d}" for i in range(n)],
        "ts": ts.astype("datetime64[ns]"),
        "_batch": [f"week_{d:%Y-%m-%d}" for d in (ts - pd.to_timedelta(ts.dayofweek, unit="D"))],
        "is_fraud": label,
        "log_amount": np.log1p(amount),
        "amount_vs_avg": amount / avg,
        "hour": ts.hour.astype(float),
        "is_weekend": (ts.dayofweek >= 5).astype(float),
        "merchant_category": rng.choice(["grocery", "fuel", "travel", "electronics"], n).astype(
            object),
        "country": rng.choice(["DE", "FR", "US", "other"], n).astype(object),
        "channel": channel.astype(object),
        "card_age_days": card_age,
        "customer_tenure_days": rng.integers(1, 9000, n).astype(float),
        "txn_count_24h": txn,
        "log_distance": np.log1p(dist),
    }
    df = pd.DataFrame(cols)
    assert list(df.columns[4:]) == contract.feature_names
    return df.sort_values(["ts", "transaction_id"], kind="mergesort").reset_index(drop=True)


def _train_and_save(path: str, n: int = 4000) -> str:
    """Used in a subprocess by the cross-process determinism test."""
    c = load_contract(FRAUD)
    params = TrainParams.from_params(yaml.safe_load(committed_text("params.yaml")))
    result = train_model(make_feature_frame(n, seed=7, contract=c), c, params)
    save_model(result.pipeline, path)
    return md5_file(path)


# --------------------------------------------------------------------------- params


def test_params_from_params_yaml_whole_file_or_section() -> None:
    raw = yaml.safe_load(committed_text("params.yaml"))
    p = TrainParams.from_params(raw)
    assert p == TrainParams.from_params(raw["train"])
    assert p.seed == raw["train"]["seed"]
    assert p.operating_fpr == raw["train"]["operating_fpr"]
    assert isinstance(p.max_iter, int) and isinstance(p.learning_rate, float)


@pytest.mark.parametrize("bad, word", [
    ({"max_iters": 10}, "max_iters"),
    ({"max_iter": "many"}, "max_iter"),
    ({"max_iter": 2.5}, "max_iter"),
    ({"operating_fpr": 1.5}, "operating_fpr"),
    ({"learning_rate": 0}, "learning_rate"),
])
def test_params_reject_bad_values(bad: dict, word: str) -> None:
    with pytest.raises(DataError, match=word):
        TrainParams.from_params(bad)


# --------------------------------------------------------------------------- pipeline


def test_build_pipeline_columns_and_estimator(contract: Contract) -> None:
    params = TrainParams(seed=3, learning_rate=0.05, max_iter=17, max_leaf_nodes=15,
                         min_samples_leaf=11, l2_regularization=0.5)
    pipe = build_pipeline(contract, params)
    pre, clf = pipe.named_steps["preprocess"], pipe.named_steps["classifier"]
    by_name = {name: (t, cols) for name, t, cols in pre.transformers}
    assert by_name["cat"][1] == ["merchant_category", "country", "channel"]
    assert by_name["num"] == ("passthrough", ["log_amount", "amount_vs_avg", "hour",
                                              "is_weekend", "card_age_days",
                                              "customer_tenure_days", "txn_count_24h",
                                              "log_distance"])
    enc = by_name["cat"][0]
    assert enc.handle_unknown == "ignore" and enc.sparse_output is False
    assert enc.dtype is np.float64
    got = clf.get_params()
    assert (got["random_state"], got["early_stopping"], got["learning_rate"], got["max_iter"],
            got["max_leaf_nodes"], got["min_samples_leaf"], got["l2_regularization"]) == (
        3, False, 0.05, 17, 15, 11, 0.5)
    # the docs/ARCHITECTURE.md spelling: feature specs instead of the contract
    other = build_pipeline(contract.features, params).named_steps["preprocess"]
    assert [(n, cols) for n, _, cols in other.transformers] == \
        [(n, cols) for n, _, cols in pre.transformers]


# --------------------------------------------------------------------------- training


def test_train_model_threshold_meets_operating_fpr(contract: Contract) -> None:
    df = make_feature_frame(4000, seed=1)
    result = train_model(df, contract, FAST)
    y = df["is_fraud"].to_numpy()
    assert isinstance(result, TrainResult)
    assert result.n_rows == 4000 and result.positives == int(y.sum()) > 20
    assert result.scores.shape == (4000,)
    np.testing.assert_array_equal(result.scores, score(result.pipeline, df, contract))
    neg = result.scores[y == 0]
    fpr = float(np.mean(neg >= result.threshold))
    allowed = int(np.floor(FAST.operating_fpr * len(neg)))
    assert fpr <= FAST.operating_fpr
    # the lowest such threshold: the highest negative below it would exceed the budget
    assert int(np.sum(neg >= neg[neg < result.threshold].max())) > allowed
    m = result.train_metrics
    assert m["fp"] == int(np.sum(neg >= result.threshold))
    assert m["fpr"] == pytest.approx(fpr)
    assert m["n"] == 4000 and m["roc_auc"] > 0.7


def test_training_is_deterministic_and_row_order_invariant(contract: Contract) -> None:
    df = make_feature_frame(2500, seed=2)
    a = train_model(df, contract, FAST)
    b = train_model(df, contract, FAST)
    shuffled = df.sample(frac=1.0, random_state=5)
    c = train_model(shuffled, contract, FAST)
    assert model_bytes(a.pipeline) == model_bytes(b.pipeline) == model_bytes(c.pipeline)
    assert a.threshold == b.threshold == c.threshold
    np.testing.assert_array_equal(a.scores, b.scores)
    # c's scores follow the shuffled input's rows
    np.testing.assert_array_equal(c.scores, a.scores[shuffled.index.to_numpy()])


def test_save_load_roundtrip_identical_predictions(contract: Contract, tmp_path: Path) -> None:
    df = make_feature_frame(2500, seed=3)
    result = train_model(df, contract, FAST)
    p1 = save_model(result.pipeline, tmp_path / "a" / "model.skops")
    p2 = save_model(result.pipeline, tmp_path / "b" / "model.skops")
    assert p1.read_bytes() == p2.read_bytes()
    loaded = load_model(p1)
    np.testing.assert_array_equal(score(loaded, df, contract), result.scores)
    # a loaded model re-saves to the very same bytes
    assert model_bytes(loaded) == p1.read_bytes()
    assert not list(p1.parent.glob(".*.tmp")), "atomic write left a temp file"


def test_model_file_is_canonical(contract: Contract, tmp_path: Path) -> None:
    result = train_model(make_feature_frame(1500, seed=4), contract, FAST)
    path = save_model(result.pipeline, tmp_path / "model.skops")
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        schema = z.read("schema.json").decode()
    assert names == sorted(names)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}
    arrays = sorted(int(n.split(".")[0]) for n in names if n != "schema.json")
    ids = [int(v) for v in __import__("re").findall(r'"__id__": (\d+)', schema)]
    assert max(ids) < len(set(ids)) + len(arrays)  # small sequential ids, not id()s
    assert set(arrays) <= set(ids)
    # canonicalising twice is a no-op, and a raw skops dump canonicalises to the file
    assert canonicalize_skops(path.read_bytes()) == path.read_bytes()
    assert canonicalize_skops(sio.dumps(result.pipeline)) == path.read_bytes()


def test_model_md5_identical_across_processes(tmp_path: Path) -> None:
    """Two fresh interpreters, different hash seeds and thread counts: same model bytes."""
    md5s = []
    for i, (hash_seed, threads) in enumerate((("1", "1"), ("2", "4"))):
        out = tmp_path / f"model{i}.skops"
        env = dict(os.environ, PYTHONHASHSEED=hash_seed, OMP_NUM_THREADS=threads)
        code = ("import sys; from mlops_assets_tests.core.test_train import _train_and_save; "
                "print(_train_and_save(sys.argv[1]))")
        proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        md5s.append(proc.stdout.strip().splitlines()[-1])
        assert md5s[-1] == md5_file(out)
    assert md5s[0] == md5s[1]
    # and the same as training here, in this process
    assert _train_and_save(str(tmp_path / "here.skops")) == md5s[0]


# --------------------------------------------------------------------------- trusted types


def _double(x):  # a custom function: skops must not trust it
    return x * 2


def test_trusted_types_cover_every_pipeline_shape(contract: Contract, tmp_path: Path) -> None:
    numeric_only = tmp_path / "numeric.yaml"
    numeric_only.write_text(yaml.safe_dump({
        "name": "numbers", "id_column": "id", "timestamp_column": "ts", "label_column": "y",
        "columns": {"id": {"type": "string"}, "ts": {"type": "datetime"},
                    "a": {"type": "float"}, "b": {"type": "float"}, "y": {"type": "int"}},
        "features": [{"name": "a", "transform": "identity", "source": "a"},
                     {"name": "b", "transform": "identity", "source": "b"}],
    }))
    c2 = load_contract(numeric_only)
    rng = np.random.default_rng(0)
    df2 = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    df2["y"] = (df2["a"] + rng.normal(size=500) > 0.5).astype(int)
    for c, df in ((contract, make_feature_frame(1500, seed=5)), (c2, df2)):
        pipe = train_model(df, c, FAST).pipeline
        untrusted = sio.get_untrusted_types(data=sio.dumps(pipe))
        assert set(untrusted) <= set(TRUSTED_TYPES), untrusted
        save_model(pipe, tmp_path / f"{c.name}.skops")
        load_model(tmp_path / f"{c.name}.skops")


def test_load_model_refuses_untrusted_types(tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(100, 2))
    y = (X[:, 0] > 0).astype(int)
    evil = Pipeline([("f", FunctionTransformer(_double)), ("m", LogisticRegression())]).fit(X, y)
    canonical = save_model(evil, tmp_path / "evil.skops")
    raw = tmp_path / "raw.skops"
    raw.write_bytes(sio.dumps(evil))
    for path in (canonical, raw):
        with pytest.raises(DataError) as err:
            load_model(path)
        msg = str(err.value)
        assert str(path) in msg and err.value.path == str(path)
        assert f"{__name__}._double" in msg
        assert "not trusted" in msg


def test_load_model_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_model(tmp_path / "nope.skops")
    junk = tmp_path / "junk.skops"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(DataError, match="junk.skops"):
        load_model(junk)
    not_a_pipeline = tmp_path / "lr.skops"
    not_a_pipeline.write_bytes(canonicalize_skops(sio.dumps(
        LogisticRegression().fit(np.eye(4), [0, 1, 0, 1]))))
    with pytest.raises(DataError, match="not a Pipeline"):
        load_model(not_a_pipeline)


# --------------------------------------------------------------------------- bad input


def test_missing_feature_column_names_it(contract: Contract) -> None:
    df = make_feature_frame(800, seed=6)
    result = train_model(df, contract, FAST)
    with pytest.raises(DataError) as err:
        score(result.pipeline, df.drop(columns=["card_age_days"]), contract)
    assert err.value.column == "card_age_days" and "card_age_days" in str(err.value)
    with pytest.raises(DataError) as err:
        train_model(df.drop(columns=["channel"]), contract, FAST)
    assert err.value.column == "channel"


def test_bad_labels_and_bad_features(contract: Contract) -> None:
    df = make_feature_frame(600, seed=8)
    with pytest.raises(DataError, match="is_fraud"):
        train_model(df.drop(columns=["is_fraud"]), contract, FAST)
    bad = df.copy()
    bad.loc[5, "is_fraud"] = 2
    with pytest.raises(DataError) as err:
        train_model(bad, contract, FAST)
    assert err.value.rows == [5]
    with pytest.raises(DataError, match="one class"):
        train_model(df.assign(is_fraud=0), contract, FAST)
    text = df.copy()
    text["hour"] = text["hour"].astype(str).where(text.index != 3, "noon")
    with pytest.raises(DataError, match="'hour'"):
        train_model(text, contract, FAST)
    with pytest.raises(DataError, match="empty"):
        train_model(df.iloc[:0], contract, FAST)


def test_score_selects_by_name_and_tolerates_unseen(contract: Contract) -> None:
    df = make_feature_frame(1500, seed=9)
    result = train_model(df, contract, FAST)
    reordered = df[list(reversed(df.columns))].assign(extra_column=1.0)
    np.testing.assert_array_equal(score(result.pipeline, reordered, contract), result.scores)
    new = df.head(50).copy()
    new["merchant_category"] = "crypto_exchange"  # a category never seen in training
    new.loc[new.index[:5], "log_distance"] = np.nan
    new.loc[new.index[5], "channel"] = None
    s = score(result.pipeline, new, contract)
    assert s.shape == (50,) and np.all((s >= 0) & (s <= 1))
    assert score(result.pipeline, df.iloc[:0], contract).shape == (0,)


# --------------------------------------------------------------------------- record


def test_model_record_is_deterministic_and_portable(contract: Contract, tmp_path: Path) -> None:
    df = make_feature_frame(1200, seed=10)
    result = train_model(df, contract, FAST)
    model_path = save_model(result.pipeline, tmp_path / "model" / "model.skops")
    hashes = {"data/split/train.parquet": "0" * 32, "data/features/feature_meta.json": "1" * 32}
    kw = dict(model_path=model_path, result=result, contract=contract, params=FAST,
              data_hashes=hashes, cutoff="2025-11-10")
    rec = model_record(**kw)
    text = canonical_json(rec)
    assert canonical_json(model_record(**kw)) == text
    assert str(tmp_path) not in text and str(REPO) not in text
    assert rec["model_md5"] == md5_file(model_path)
    assert rec["model"] == {
        "file": "model.skops", "md5": md5_file(model_path), "serialisation": "skops",
        "estimator": "HistGradientBoostingClassifier", "trusted_types": list(TRUSTED_TYPES)}
    assert rec["contract"]["schema_hash"] == contract.schema_hash()
    assert rec["contract"]["feature_definitions_hash"] == contract.feature_definitions_hash()
    assert rec["data"] == dict(sorted(hashes.items()))
    assert rec["params"]["max_iter"] == FAST.max_iter
    assert rec["threshold"] == result.threshold and rec["cutoff"] == "2025-11-10"
    assert rec["rows"] == {"train": 1200, "train_positives": result.positives}
    assert set(rec["libraries"]) == {"python", "numpy", "pandas", "pyarrow", "scikit-learn",
                                     "scipy", "skops"}
    assert rec["libraries"]["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    for word in ("time", "date", "git", "host", "user"):
        assert not any(word in k for k in _all_keys(rec)), word
    with pytest.raises(ValueError, match="project-relative"):
        model_record(**{**kw, "data_hashes": {str(tmp_path / "x.parquet"): "0" * 32}})
    json.loads(text)  # valid JSON, no NaN


def _all_keys(obj) -> list[str]:
    if isinstance(obj, dict):
        return [k for k in obj] + [k2 for v in obj.values() for k2 in _all_keys(v)]
    if isinstance(obj, list):
        return [k for v in obj for k in _all_keys(v)]
    return []


def test_params_change_changes_model(contract: Contract) -> None:
    df = make_feature_frame(1500, seed=11)
    a = model_bytes(train_model(df, contract, FAST).pipeline)
    b = model_bytes(train_model(df, contract, replace(FAST, seed=FAST.seed + 1,
                                                      learning_rate=0.2)).pipeline)
    assert md5_bytes(a) != md5_bytes(b)


def test_canonicalize_rejects_unreferenced_entries() -> None:
    raw = sio.dumps(LogisticRegression().fit(np.eye(4), [0, 1, 0, 1]))
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as zin, zipfile.ZipFile(buf, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, zin.read(name))
        zout.writestr("123.npy", b"stray")
    with pytest.raises(DataError, match="123.npy"):
        canonicalize_skops(buf.getvalue())
