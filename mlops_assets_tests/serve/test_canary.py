"""Canary (a seeded share of requests scored by the staging model) and shadow mode."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest

from mlops_assets.core.io import write_json_atomic
from mlops_assets_tests.serve.helpers import request_records, serving, train_alternative

pytestmark = pytest.mark.slow


def _stage(root: Path, version: str) -> None:
    """A registry.json naming `version` as staging (the layout of docs/ARCHITECTURE.md)."""
    path = root / "registry/registry.json"
    state = json.loads(path.read_text()) if path.exists() else {"versions": {}}
    state.setdefault("versions", {})[version] = {
        "stage": "staging", "model_path": f"registry/models/{version}/model.skops",
        "record_path": f"registry/models/{version}/model.json"}
    write_json_atomic(path, state)


def _service(root: Path, share: float, seed: int, shadow: bool = False):
    from mlops_assets.core.contract import load_contract
    from mlops_assets.serve.app import ServeConfig, Service
    from mlops_assets.serve.model_holder import ModelHolder, load_pinned, load_production, staging_entry

    contract = load_contract(root / "mlops_assets/contracts/fraud.yaml")
    entry = staging_entry(root)
    staging = load_pinned(root, contract, entry["model_path"], entry["version"],
                          entry["record_path"])
    holder = ModelHolder(load_production(root, contract), staging)
    cfg = ServeConfig(canary_share=share, canary_seed=seed, shadow=shadow, log_enabled=False,
                      watch=False)
    return Service(root, contract, holder, cfg)


def test_canary_share_is_within_tolerance_over_10000_requests_with_a_fixed_seed(project):
    root, version_a = project
    version_b = train_alternative(root)
    _stage(root, version_b)
    svc = _service(root, 0.05, seed=1234)
    routed = [svc.route() for _ in range(10_000)]
    canary = [m.version for m, served_by, _ in routed if served_by == "canary"]
    assert set(canary) == {version_b}
    assert {m.version for m, s, _ in routed if s == "production"} == {version_a}
    share = len(canary) / 10_000
    sigma = math.sqrt(0.05 * 0.95 / 10_000)
    assert abs(share - 0.05) <= 4 * sigma, share
    again = _service(root, 0.05, seed=1234)  # same seed, same routing
    assert [s for _, s, _ in routed] == [again.route()[1] for _ in range(10_000)]


def test_canary_over_http_names_the_staging_version_and_its_scores(project):
    from mlops_assets.core.contract import load_contract
    from mlops_assets.core.features import build_features
    from mlops_assets.core.train import load_model, score

    root, version_a = project
    version_b = train_alternative(root)
    _stage(root, version_b)
    records, rows = request_records(root, 1, start=11)
    contract = load_contract(root / "mlops_assets/contracts/fraud.yaml")
    expected = {v: float(score(load_model(root / f"registry/models/{v}/model.skops"),
                               build_features(rows, contract), contract)[0])
                for v in (version_a, version_b)}
    n = 400
    with serving(root, "--canary-share", "0.25", "--canary-seed", "7", "--no-log",
                 log_name="serve-canary.log") as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/metadata").json()["staging_version"] == version_b
        out = [c.post("/predict", json=records[0]).json() for _ in range(n)]
    canary = [o for o in out if o["served_by"] == "canary"]
    assert {o["model_version"] for o in canary} == {version_b}
    assert {o["model_version"] for o in out if o["served_by"] == "production"} == {version_a}
    for o in out:
        assert abs(o["score"] - expected[o["model_version"]]) <= 1e-12
    sigma = math.sqrt(0.25 * 0.75 / n)
    assert abs(len(canary) / n - 0.25) <= 4 * sigma


def test_shadow_mode_answers_with_production_and_logs_both(project):
    from mlops_assets.core.monitoring.inference_log import read_inference_log

    root, version_a = project
    version_b = train_alternative(root)
    _stage(root, version_b)
    records, _ = request_records(root, 20, start=40)
    recs = [dict(r, transaction_id=f"shadow-{r['transaction_id']}") for r in records]
    with serving(root, "--shadow", "--log-max-seconds", "0.3",
                 log_name="serve-shadow.log") as srv, httpx.Client(base_url=srv.url) as c:
        body = c.post("/predict", json={"records": recs}).json()
        assert body["model_version"] == version_a and body["served_by"] == "production"
    # the server flushed its log at shutdown
    log = read_inference_log(root / "data/inference_log")
    mine = log[log["transaction_id"].str.startswith("shadow-")]
    assert sorted(mine.groupby("served_by")["model_version"].unique().map(list).items()) == [
        ("production", [version_a]), ("shadow", [version_b])]
    assert (mine["served_by"] == "shadow").sum() == 20
