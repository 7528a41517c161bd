"""`mlops-assets serve --workers 2`: several processes on one port, each with its own model
copy; every one of them answers with the pinned model and follows a promotion."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from mlops_assets_tests.serve.helpers import (
    point_production,
    request_records,
    serving,
    train_alternative,
)

pytestmark = pytest.mark.slow


def test_a_watcher_started_after_a_promotion_still_swaps(project):
    """The race --workers exposed: one worker reports ready while another is still loading;
    a promotion in that gap must not be taken as the already-seen pointer."""
    from mlops_assets.core.contract import load_contract
    from mlops_assets.serve.model_holder import ModelHolder, ProductionWatcher, load_pinned

    root, version_a = project
    contract = load_contract(root / "mlops_assets/contracts/fraud.yaml")
    version_b = train_alternative(root, max_iter=20)
    holder = ModelHolder(load_pinned(root, contract,
                                     f"registry/models/{version_a}/model.skops", version_a,
                                     None))
    try:
        point_production(root, version_b)  # after the load, before the watcher exists
        watcher = ProductionWatcher(root, contract, holder, interval=0.1)
        assert watcher.check_once() is True
        assert holder.current.version == version_b
        assert watcher.check_once() is False  # seen now: no second swap
    finally:
        point_production(root, version_a)


def test_two_workers_answer_alike_and_both_follow_a_promotion(project):
    from mlops_assets.core.contract import load_contract
    from mlops_assets.core.features import build_features
    from mlops_assets.core.train import load_model, score

    root, version_a = project
    contract = load_contract(root / "mlops_assets/contracts/fraud.yaml")
    records, rows = request_records(root, 40, start=60)
    expected = score(load_model(root / "registry/models" / version_a / "model.skops"),
                     build_features(rows, contract), contract)
    version_b = train_alternative(root, max_iter=20)
    try:
        with serving(root, "--workers", "2", "--poll-interval", "0.2", "--no-log",
                     log_name="serve-workers.log") as srv, \
                httpx.Client(base_url=srv.url, timeout=30) as c:
            for _ in range(10):  # whichever worker answers: the pinned model's scores
                r = c.post("/predict", json={"records": records})
                assert r.status_code == 200, r.text
                got = np.array([p["score"] for p in r.json()["predictions"]])
                np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
            point_production(root, version_b)
            deadline = time.monotonic() + 60
            streak = 0
            while time.monotonic() < deadline and streak < 40:
                # new connections, so the kernel spreads them over both workers
                v = httpx.post(f"{srv.url}/predict", json=records[0]).json()["model_version"]
                assert v in (version_a, version_b)
                streak = streak + 1 if v == version_b else 0
            assert streak >= 40, "not every worker switched to the promoted model"
    finally:
        point_production(root, version_a)
