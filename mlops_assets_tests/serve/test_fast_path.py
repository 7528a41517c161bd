"""The service's fast scoring path (serve.fast_path) against the general path it replaces:
bit-identical scores over many random records, an accept-only validator that never lets
through what the full validator rejects, and timestamps parsed as pandas parses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_assets_tests.serve.helpers import request_records
from mlops_assets_tests.serve.test_service import REJECTIONS


def _contract(root: Path) -> Any:
    from mlops_assets.core.contract import load_contract

    return load_contract(root / "mlops_assets/contracts/fraud.yaml")


@pytest.fixture(scope="module")
def loaded(project: tuple[Path, str]) -> tuple[Path, Any, Any]:
    from mlops_assets.core.train import load_model

    root, version = project
    return root, _contract(root), load_model(root / "registry/models" / version / "model.skops")


def test_fast_scores_are_bit_identical_to_the_general_path_on_many_random_records(loaded):
    from mlops_assets.serve.fast_path import FastScorer, parity_check

    root, contract, pipeline = loaded
    scorer = FastScorer.build(pipeline, contract)
    holdout, _ = request_records(root, 2000, where="all")
    for seed in range(3):
        assert parity_check(scorer, pipeline, contract, n=3000, seed=seed,
                            extra=holdout if seed == 0 else None) == 0.0


def test_both_tree_paths_and_thread_counts_agree_with_predict_proba(loaded):
    from mlops_assets.core.features import build_features
    from mlops_assets.core.train import feature_matrix
    from mlops_assets.serve.fast_path import FastColumns, FastScorer, random_records
    from mlops_assets.serve.validation import records_to_frame

    root, contract, pipeline = loaded
    records = random_records(contract, 1200, seed=7)
    expected = pipeline.predict_proba(feature_matrix(
        build_features(records_to_frame(records, contract), contract), contract))[:, 1]
    cols = FastColumns(contract).columns(records)
    for threads in (1, 2):
        scorer = FastScorer.build(pipeline, contract, threads=threads, threads_from=512)
        X = scorer.encoder.matrix(scorer.encoder.features(cols))
        for lo, hi in ((0, 1), (0, 24), (24, 300), (0, 1200)):  # vectorised, 1 thread, n
            assert np.array_equal(scorer.trees.scores(X[lo:hi]), expected[lo:hi])


@pytest.mark.parametrize("size", [1, 3, 20])
@pytest.mark.parametrize("name,breaker,field,check", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_fast_validator_refuses_whatever_the_full_validator_rejects(project, size, name,
                                                                     breaker, field, check):
    from mlops_assets.serve.fast_path import FastColumns
    from mlops_assets.serve.validation import RequestInvalid, RequestValidator

    root, _ = project
    contract = _contract(root)
    records = request_records(root, size, start=11)[0]
    breaker(records[size // 2])
    assert FastColumns(contract).columns(records) is None
    with pytest.raises(RequestInvalid):
        RequestValidator(contract).validate(records)


EXTRA_BREAKERS = [
    ("nan_amount", lambda r: r.update(amount=float("nan"))),
    ("inf_distance", lambda r: r.update(distance_from_home_km=float("inf"))),
    ("huge_int", lambda r: r.update(card_age_days=2 ** 70)),
    ("bool_for_float", lambda r: r.update(amount=True)),
    ("list_value", lambda r: r.update(country=["DE"])),
    ("feb_30", lambda r: r.update(ts="2025-02-30T10:00:00Z")),
    ("hour_24", lambda r: r.update(ts="2025-02-03T24:00:00Z")),
    ("bad_offset", lambda r: r.update(ts="2025-02-03T10:00:00+25:00")),
    ("date_words", lambda r: r.update(ts="now")),
    ("not_an_object", lambda r: r.clear()),
]


@pytest.mark.parametrize("size", [1, 20])
@pytest.mark.parametrize("name,breaker", EXTRA_BREAKERS, ids=[b[0] for b in EXTRA_BREAKERS])
def test_fast_validator_is_accept_only_on_edge_values(project, size, name, breaker):
    from mlops_assets.serve.fast_path import FastColumns
    from mlops_assets.serve.validation import RequestInvalid, RequestValidator

    root, _ = project
    contract = _contract(root)
    records = request_records(root, size, start=21)[0]
    breaker(records[size - 1])
    assert FastColumns(contract).columns(records) is None
    with pytest.raises(RequestInvalid):
        RequestValidator(contract).validate(records)


def test_duplicate_ids_in_a_batch_go_to_the_full_validator(project):
    from mlops_assets.serve.fast_path import FastColumns

    root, _ = project
    contract = _contract(root)
    for size in (3, 20):
        records = request_records(root, size)[0]
        records[-1]["transaction_id"] = records[0]["transaction_id"]
        assert FastColumns(contract).columns(records) is None


def test_iso_timestamps_parse_as_pandas_parses_them_each_on_its_own():
    from mlops_assets.serve.fast_path import parse_iso_ns
    from mlops_assets.serve.validation import _parse_iso

    rng = np.random.default_rng(3)
    texts = []
    for _ in range(500):
        s = str(np.datetime64(int(rng.integers(0, 2 ** 31)), "s"))
        frac = ["", ".5", ".123", ".123456", ".123456789"][int(rng.integers(0, 5))]
        tz = ["", "Z", "+02:00", "-05:30", "+00:00"][int(rng.integers(0, 5))]
        sep = "T" if rng.random() < 0.8 else " "
        texts.append(s.replace("T", sep) + frac + tz)
    for t in texts:
        expected = pd.Timestamp(pd.to_datetime(t, format="ISO8601", utc=True)
                                ).tz_localize(None).as_unit("ns").value
        assert parse_iso_ns(t) == expected, t
    # a batch parses each value on its own: a naive value after an offset one stays UTC
    got = _parse_iso(np.array(["2024-01-01T00:00:00+03:30", "2026-02-26T13:05:44"],
                              dtype=object))
    assert got.tolist() == [pd.Timestamp("2023-12-31 20:30:00"),
                            pd.Timestamp("2026-02-26 13:05:44")]


def test_a_model_the_fast_path_does_not_know_is_served_by_the_general_path(project, tmp_path):
    """Service.predict with and without a fast scorer: same answers, same log columns."""
    from sklearn.linear_model import LogisticRegression

    from mlops_assets.core.monitoring.inference_log import read_inference_log
    from mlops_assets.serve.app import ServeConfig, Service
    from mlops_assets.serve.fast_path import FastPathUnsupported, FastScorer
    from mlops_assets.serve.model_holder import ModelHolder, build_fast_scorer, load_pinned

    root, version = project
    contract = _contract(root)
    path = root / "registry/models" / version / "model.skops"
    fast = load_pinned(root, contract, path, version, None)
    slow = load_pinned(root, contract, path, version, None, fast=False)
    assert fast.fast is not None and slow.fast is None
    other = type(fast.pipeline)([fast.pipeline.steps[0], ("classifier", LogisticRegression())])
    with pytest.raises(FastPathUnsupported):
        FastScorer.build(other, contract)
    assert build_fast_scorer(other, contract) is None
    records = request_records(root, 50, start=40)[0]
    answers = []
    for model, sub in ((fast, "fast"), (slow, "slow")):
        svc = Service(tmp_path / sub, contract, ModelHolder(model),
                      ServeConfig(watch=False, log_dir="log"))
        svc.start()
        try:
            single = svc.predict(records[0])
            batch = svc.predict({"records": records})
        finally:
            svc.stop()
        assert single[0] == batch[0] == 200
        answers.append((single[1], batch[1], read_inference_log(tmp_path / sub / "log")))
    (s1, b1, log1), (s2, b2, log2) = answers
    assert s1 == s2 and b1 == b2
    assert list(log1.columns) == list(log2.columns)
    assert (log1.dtypes == log2.dtypes).all()
    cols = [c for c in log1.columns if c not in ("request_id", "request_time")]
    pd.testing.assert_frame_equal(log1[cols], log2[cols])
