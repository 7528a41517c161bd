"""The real service: `mlops-assets serve` in a subprocess on a free loopback port, against a
small project copy trained by the stage commands, with the model registered as production."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from mlops_assets_tests.conftest import make_project_copy
from mlops_assets_tests.serve.helpers import (
    Server,
    point_production,
    request_records,
    serving,
    start_server,
    train_alternative,
)

pytestmark = pytest.mark.slow
MAX_BATCH = 500


@pytest.fixture(scope="module")
def server(project: tuple[Path, str]) -> Any:
    root, _ = project
    with serving(root, "--max-batch", str(MAX_BATCH), "--poll-interval", "0.2",
                 "--log-max-seconds", "0.5") as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _contract(root: Path) -> Any:
    from mlops_assets.core.contract import load_contract

    return load_contract(root / "mlops_assets/contracts/fraud.yaml")


def _expected_scores(root: Path, version: str, rows: pd.DataFrame) -> np.ndarray:
    """The training/batch-scoring path: the pinned model, build_features, core.train.score."""
    from mlops_assets.core.features import build_features
    from mlops_assets.core.train import load_model, score

    contract = _contract(root)
    model = load_model(root / "registry" / "models" / version / "model.skops")
    return score(model, build_features(rows, contract), contract)


# ------------------------------------------------------------------ health and metadata

def test_health_reports_live_and_ready_with_the_pinned_version(client, project):
    root, version = project
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["live"] is True and body["ready"] is True
    assert body["model_version"] == version


def test_metadata_names_version_lineage_features_threshold_fields_and_a_valid_example(
        client, project):
    root, version = project
    contract = _contract(root)
    record = json.loads((root / "registry/models" / version / "model.json").read_text())
    meta = client.get("/metadata").json()
    assert meta["model_version"] == version and meta["lineage_id"] == version
    assert meta["feature_definitions_hash"] == contract.feature_definitions_hash()
    assert meta["threshold"] == record["threshold"]
    names = [f["name"] for f in meta["input_fields"]]
    assert names == [c for c in contract.columns if c != contract.label_column]
    types = {f["name"]: f["type"] for f in meta["input_fields"]}
    assert types["amount"] == "float" and types["ts"] == "datetime"
    assert types["channel"] == "category"
    r = client.post("/predict", json=meta["example"])
    assert r.status_code == 200, r.text
    assert r.json()["model_version"] == version


def test_refuses_to_start_without_a_production_model_unless_given_a_model(tmp_path, project):
    trained_root, _ = project
    root = make_project_copy(tmp_path / "empty")
    point_production(root, None)
    srv = start_server(root, wait=False)
    assert srv.proc.wait(120) == 2
    assert "no production model" in srv.log_tail()
    # development: an explicit model file
    with serving(root, "--model", str(trained_root / "data/model/model.skops"), "--no-log",
                 log_name="serve-dev.log") as dev:
        assert httpx.get(f"{dev.url}/health").json()["ready"] is True


def test_refuses_a_model_whose_bytes_do_not_match_the_version(tmp_path, project):
    trained_root, version = project
    root = make_project_copy(tmp_path / "tampered")
    d = root / "registry/models" / version
    d.mkdir(parents=True)
    (d / "model.skops").write_bytes((trained_root / "data/model/model.skops").read_bytes()
                                    + b"x")
    (d / "model.json").write_text((trained_root / "data/model/model.json").read_text())
    point_production(root, version)
    srv = start_server(root, wait=False)
    assert srv.proc.wait(120) == 2
    assert "do not match the pinned version hash" in srv.log_tail()


# ------------------------------------------------------------------ predictions and parity

def test_single_and_batch_predictions_equal_batch_scoring_to_1e12(client, project):
    root, version = project
    records, rows = request_records(root, 300)
    expected = _expected_scores(root, version, rows)
    threshold = client.get("/metadata").json()["threshold"]

    r = client.post("/predict", json={"records": records})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n"] == 300 and body["model_version"] == version
    got = np.array([p["score"] for p in body["predictions"]])
    assert [p["id"] for p in body["predictions"]] == rows["transaction_id"].tolist()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert [p["decision"] for p in body["predictions"]] == (expected >= threshold).tolist()
    assert {p["model_version"] for p in body["predictions"]} == {version}

    for i in range(0, 300, 37):  # single records: one at a time, same scores
        r = client.post("/predict", json=records[i])
        assert r.status_code == 200, r.text
        one = r.json()
        assert one["id"] == records[i]["transaction_id"] and one["model_version"] == version
        assert abs(one["score"] - expected[i]) <= 1e-12
        assert one["decision"] == bool(expected[i] >= threshold)


def test_service_scores_equal_the_holdout_feature_table_scores(client, project):
    """Parity with the stored feature table made by the features stage (training's path)."""
    from mlops_assets.core.io import read_table
    from mlops_assets.core.train import load_model, score

    root, version = project
    contract = _contract(root)
    records, rows = request_records(root, 200, start=500)
    holdout = read_table(root / "data/split/holdout.parquet").set_index("transaction_id")
    feats = holdout.loc[rows["transaction_id"]].reset_index()
    model = load_model(root / "registry/models" / version / "model.skops")
    expected = score(model, feats, contract)
    got = np.array([p["score"] for p in
                    client.post("/predict", json={"records": records}).json()["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ rejections

def _base(root: Path) -> dict[str, Any]:
    return request_records(root, 1, start=7)[0][0]


REJECTIONS = [
    # (name, how to break record 1 of a 3-record batch, field, check)
    ("null_not_allowed", lambda r: r.update(amount=None), "amount", "not_null"),
    ("missing_required", lambda r: r.pop("channel"), "channel", "not_null"),
    ("missing_id", lambda r: r.pop("transaction_id"), "transaction_id", "not_null"),
    ("missing_timestamp", lambda r: r.update(ts=None), "ts", "not_null"),
    ("string_for_float", lambda r: r.update(amount="12.5"), "amount", "type"),
    ("float_for_int", lambda r: r.update(card_age_days=3.5), "card_age_days", "type"),
    ("bool_for_int", lambda r: r.update(txn_count_24h=True), "txn_count_24h", "type"),
    ("number_for_category", lambda r: r.update(country=7), "country", "type"),
    ("number_for_id", lambda r: r.update(transaction_id=123), "transaction_id", "type"),
    ("bad_timestamp", lambda r: r.update(ts="yesterday"), "ts", "type"),
    ("unknown_field", lambda r: r.update(colour="red"), "colour", "unknown_field"),
    ("label_is_not_an_input", lambda r: r.update(is_fraud=0), "is_fraud", "unknown_field"),
    ("below_min", lambda r: r.update(amount=-0.01), "amount", "min"),
    ("above_max", lambda r: r.update(card_age_days=20001), "card_age_days", "max"),
    ("nullable_still_range_checked", lambda r: r.update(distance_from_home_km=-5.0),
     "distance_from_home_km", "min"),
    ("unknown_strict_category", lambda r: r.update(channel="fax"), "channel", "category"),
]


@pytest.mark.parametrize("name,breaker,field,check", REJECTIONS,
                         ids=[r[0] for r in REJECTIONS])
def test_invalid_record_is_rejected_with_field_and_record(client, project, name, breaker,
                                                          field, check):
    root, _ = project
    base = _base(root)
    recs = [dict(base, transaction_id=f"{name}-{i}") for i in range(3)]
    breaker(recs[1])
    before = _scored(client)
    r = client.post("/predict", json={"records": recs})
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert {(e["record"], e["field"], e["check"]) for e in errors} == {(1, field, check)}
    assert field in errors[0]["message"] and "record 1" in errors[0]["message"]
    # the single-record form is rejected the same way (record 0)
    r = client.post("/predict", json=recs[1])
    assert r.status_code == 422
    assert [(e["record"], e["field"], e["check"]) for e in r.json()["errors"]] == [
        (0, field, check)]
    assert _scored(client) == before  # nothing reached the model


def test_non_strict_category_accepts_a_new_value(client, project):
    root, _ = project
    r = client.post("/predict", json=dict(_base(root), merchant_category="gift_cards"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body,field,check", [
    (b"{not json", "body", "json"),
    (b'{"amount": NaN}', "body", "json"),
    (b"[1, 2]", "body", "type"),
    (b'{"records": {}}', "records", "type"),
    (b'{"records": []}', "records", "size"),
    (b'{"records": [1]}', None, "type"),
    (b'{"records": [], "extra": 1}', "extra", "unknown_field"),
], ids=["not_json", "nan", "list_body", "records_not_list", "empty_batch", "record_not_object",
        "extra_batch_key"])
def test_malformed_bodies_are_422_never_500(client, body, field, check):
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    e = r.json()["errors"][0]
    assert (e["field"], e["check"]) == (field, check)


def test_oversized_batch_is_rejected_before_validation(client, project):
    root, _ = project
    base = _base(root)
    recs = [dict(base, transaction_id=f"big-{i}") for i in range(MAX_BATCH + 1)]
    r = client.post("/predict", json={"records": recs})
    assert r.status_code == 422
    e = r.json()["errors"][0]
    assert (e["field"], e["check"]) == ("records", "max_batch")
    assert str(MAX_BATCH) in e["message"]
    ok = client.post("/predict", json={"records": recs[:MAX_BATCH]})
    assert ok.status_code == 200 and ok.json()["n"] == MAX_BATCH


def test_duplicate_ids_in_a_batch_and_several_errors_are_all_reported(client, project):
    root, _ = project
    base = _base(root)
    recs = [dict(base, transaction_id="dup"), dict(base, transaction_id="dup", amount=-1),
            dict(base, transaction_id="x", channel="fax", ts="bad")]
    r = client.post("/predict", json={"records": recs})
    assert r.status_code == 422
    found = {(e["record"], e["field"], e["check"]) for e in r.json()["errors"]}
    assert found == {(1, "transaction_id", "unique"), (1, "amount", "min"),
                     (2, "channel", "category"), (2, "ts", "type")}


# ------------------------------------------------------------------ metrics

def _metric_lines(client: httpx.Client) -> list[str]:
    r = client.get("/metrics")
    assert r.status_code == 200
    return [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")]


def _scored(client: httpx.Client) -> float:
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in _metric_lines(client)
               if ln.startswith("mlops_serve_records_scored_total"))


def test_prometheus_metrics_by_version_field_and_score(client, project):
    root, version = project
    client.post("/predict", json=dict(_base(root), amount=-3))
    client.post("/predict", json=_base(root))
    text = "\n".join(_metric_lines(client))
    assert (f'mlops_serve_requests_total{{endpoint="/predict",model_version="{version}",'
            f'status="200"}}') in text
    assert f'mlops_serve_request_latency_seconds_bucket{{endpoint="/predict",le="0.02",' \
           f'model_version="{version}"}}' in text
    assert 'mlops_serve_validation_failures_total{check="min",field="amount"}' in text
    assert f'mlops_serve_score_bucket{{le="+Inf",model_version="{version}"}}' in text
    assert f'mlops_serve_model_info{{role="production",version="{version}"}} 1.0' in text


# ------------------------------------------------------------------ inference log

def test_inference_log_round_trips_into_the_drift_report(client, project):
    from mlops_assets.core import drift
    from mlops_assets.core.monitoring.inference_log import read_inference_log
    from mlops_assets.pipeline import load_params

    root, version = project
    contract = _contract(root)
    records, _ = request_records(root, 400, start=1000)
    for i in range(4):
        body = {"records": [dict(r, transaction_id=f"log-{r['transaction_id']}")
                            for r in records[i * 100:(i + 1) * 100]]}
        resp = client.post("/predict", json=body)
        assert resp.status_code == 200
    served = {p["id"]: p["score"] for p in resp.json()["predictions"]}
    deadline = time.monotonic() + 20
    log = pd.DataFrame()
    while time.monotonic() < deadline:
        log = read_inference_log(root / "data/inference_log")
        if len(log) and log["transaction_id"].str.startswith("log-").sum() >= 400:
            break
        time.sleep(0.2)
    mine = log[log["transaction_id"].str.startswith("log-")].reset_index(drop=True)
    assert len(mine) == 400
    for col in ["request_id", "request_time", "model_version", "score", "decision",
                *contract.feature_names]:
        assert col in mine.columns
    assert set(mine["model_version"]) == {version}
    logged = dict(zip(mine["transaction_id"], mine["score"], strict=True))
    assert all(logged[k] == v for k, v in served.items())
    assert mine["request_time"].notna().all()
    profile = drift.load_reference_profile(root / "data/model/reference_profile.json",
                                           root / "data/model/reference_profile.parquet")
    report = drift.drift_report(profile, mine, mine["score"].to_numpy(),
                                load_params(root).get("drift", {}),
                                {"current_batch": "inference_log"})
    assert {e["name"] if isinstance(e, dict) else e for e in report["features"]} == set(
        profile["features"])
    assert report["severity"] in ("none", "moderate", "significant")
    assert report["prediction"] is not None  # the logged scores were used


# ------------------------------------------------------------------ hot swap (last: it swaps)

def test_hot_swap_under_load_drops_nothing_and_names_the_answering_model(client, project,
                                                                         server):
    root, version_a = project
    version_b = train_alternative(root)
    assert version_b != version_a
    records, rows = request_records(root, 1, start=3)
    expected = {v: float(_expected_scores(root, v, rows)[0]) for v in (version_a, version_b)}
    assert expected[version_a] != expected[version_b]

    results: list[tuple[int, str | None, float | None]] = []
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    sent = [0] * 4

    def worker(k: int, n: int) -> None:
        # bounded (n requests at most), but running until both swaps are seen: a fast
        # service answers a fixed small number of requests before the first swap lands
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for _ in range(n):
                if stop.is_set():
                    break
                sent[k] += 1
                try:
                    r = c.post("/predict", json=records[0])
                    body = r.json()
                    with lock:
                        results.append((r.status_code, body.get("model_version"),
                                        body.get("score")))
                except Exception as e:  # noqa: BLE001
                    with lock:
                        failures.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k, 20_000)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    point_production(root, version_b)  # promotion
    _wait_version(client, version_b)
    time.sleep(0.5)
    point_production(root, version_a)  # rollback
    _wait_version(client, version_a)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(120)
    assert not failures
    assert len(results) == sum(sent) >= 400
    assert all(code == 200 for code, _, _ in results)
    versions = [v for _, v, _ in results]
    assert set(versions) <= {version_a, version_b}
    assert version_b in versions  # the stream really saw the swap
    for _, v, s in results:  # the named version is the model that computed the score
        assert abs(s - expected[v]) <= 1e-12
    health = client.get("/health").json()
    assert health["model_version"] == version_a and health["swaps"] >= 2


def test_a_pointer_to_a_broken_model_keeps_the_current_one(client, project):
    root, version_a = project
    bad = "0" * 32
    d = root / "registry/models" / bad
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.skops").write_bytes(b"not a model")
    (d / "model.json").write_text("{}")
    point_production(root, bad)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        h = client.get("/health").json()
        if h["watcher_error"]:
            break
        time.sleep(0.1)
    assert h["model_version"] == version_a and bad in h["watcher_error"]
    assert client.post("/predict", json=_base(root)).json()["model_version"] == version_a
    point_production(root, version_a)


def _wait_version(client: httpx.Client, version: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/health").json()["model_version"] == version:
            return
        time.sleep(0.05)
    raise AssertionError(f"the service did not switch to {version} in {timeout}s")
