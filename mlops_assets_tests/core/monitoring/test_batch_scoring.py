"""Batch scoring: the service's scores and the inference log's columns, offline.

The service is used in process (serve/app.py Service.predict: validation, features, model,
decision, log), so the parity is with the very code path a request takes, not a copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.generate import generate_week
from mlops_assets.core.io import DataError
from mlops_assets.core.monitoring import batch_scoring
from mlops_assets.core.monitoring.inference_log import read_inference_log
from mlops_assets.serve.app import ServeConfig, Service
from mlops_assets.serve.model_holder import LoadedModel, ModelHolder
from mlops_assets_tests.core.monitoring.test_live_performance import SCENARIO, contract, trained
from mlops_assets_tests.serve.helpers import to_record


def _service(root: Path) -> Service:
    pipeline, threshold = trained()
    model = LoadedModel(pipeline=pipeline, version="0" * 32, threshold=threshold, record={})
    return Service(root, contract(), ModelHolder(model),
                   ServeConfig(watch=False, log_enabled=True, log_dir="log"))


def test_batch_scores_equal_the_service_scores_and_log_columns(tmp_path: Path) -> None:
    raw = pd.concat([generate_week(SCENARIO, 8).iloc[:600], generate_week(SCENARIO, 9).iloc[:600]],
                    ignore_index=True)  # normal and holiday rows (unseen categories too)
    svc = _service(tmp_path)
    records = [to_record(r) for r in raw.to_dict("records")]
    status, payload, version = svc.predict({"records": records})
    assert status == 200, payload
    svc.log.flush()
    logged = read_inference_log(tmp_path / "log")

    pipeline, threshold = trained()
    batch = batch_scoring.score_frame(raw, contract(), pipeline, version, threshold, "batch:t")
    served = np.array([p["score"] for p in payload["predictions"]])
    assert [p["id"] for p in payload["predictions"]] == batch["transaction_id"].tolist()
    np.testing.assert_allclose(batch["score"].to_numpy(), served, rtol=0, atol=1e-12)
    assert batch["decision"].tolist() == [p["decision"] for p in payload["predictions"]]
    assert (batch["model_version"] == payload["model_version"]).all()
    # exactly the inference log's columns, order and dtypes
    assert list(batch.columns) == list(logged.columns) == batch_scoring.output_columns(contract())
    assert batch.dtypes.astype(str).tolist() == logged.dtypes.astype(str).tolist()
    feats = contract().feature_names
    pd.testing.assert_frame_equal(batch[feats], logged[feats])
    assert (batch["served_by"] == "batch").all() and (logged["served_by"] == "production").all()


def test_batch_scoring_is_deterministic_and_validates(tmp_path: Path) -> None:
    pipeline, threshold = trained()
    raw = generate_week(SCENARIO, 8).iloc[:300]
    a = batch_scoring.score_frame(raw, contract(), pipeline, "v", threshold, "batch:x")
    b = batch_scoring.score_frame(raw.sample(frac=1, random_state=1).sort_index(), contract(),
                                  pipeline, "v", threshold, "batch:x")
    pd.testing.assert_frame_equal(a, b)
    assert (a["request_time"] == a["ts"]).all()  # no wall clock inside
    s = batch_scoring.summary(a)
    assert s["rows"] == 300 and s["alerts"] == int(a["decision"].sum())
    bad = raw.copy()
    bad.loc[bad.index[3], "amount"] = -5.0
    with pytest.raises(DataError) as e:
        batch_scoring.score_frame(bad, contract(), pipeline, "v", threshold, "batch:x")
    assert "amount" in str(e.value)
