"""The monitoring assets against a real Dagster instance and a real trained project copy.

The service (serve/app.py Service, in process: validation, features, model, the real
InferenceLog writing real segments) logs normal holdout traffic on today's date and replays
holiday traffic on 2025-12-02; the assets consolidate the log, report drift on it, join the
label files, evaluate live quality, and the sensor asks for exactly one retrain per failed
evaluation. batch_predictions is compared with the service's scores for the same records."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.io import md5_file, read_table, write_parquet_atomic
from mlops_assets.core.monitoring import batch_scoring
from mlops_assets.core.monitoring.files import consolidated_log_path
from mlops_assets.defs import monitoring_assets as ma
from mlops_assets_tests.conftest import run, tool_env
from mlops_assets_tests.serve.helpers import to_record, trained_project

HOLIDAY_DAY = "2025-12-02"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root, version = trained_project(tmp_path_factory.mktemp("monitoring") / "project")
    run([sys.executable, "-m", "mlops_assets.stages", "evaluate", "--root", str(root)], root,
        tool_env(root))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_ASSETS_ROOT", str(root))
        yield root, version


def _service(root: Path, log_dir: str = "data/inference_log"):
    from mlops_assets.core.contract import load_contract
    from mlops_assets.pipeline import load_params
    from mlops_assets.serve.app import ServeConfig, Service
    from mlops_assets.serve.model_holder import ModelHolder, load_production

    contract = load_contract(root / load_params(root)["dataset"]["contract"])
    return Service(root, contract, ModelHolder(load_production(root, contract)),
                   ServeConfig(watch=False, log_enabled=True, log_dir=log_dir))


def _validated(root: Path) -> pd.DataFrame:
    return read_table(root / "data/validated/dataset.parquet")


def _settle(root: Path) -> None:
    old = time.time() - 3600
    for p in (root / "data/inference_log").glob("date=*/seg-*.parquet"):
        os.utime(p, (old, old))


@pytest.fixture(scope="module")
def logged(project: tuple[Path, str]) -> dict[str, pd.DataFrame]:
    """Normal holdout traffic through Service.predict (logged today), and holiday traffic
    replayed on HOLIDAY_DAY through the service's own log frame; all labels landed."""
    root, _ = project
    svc = _service(root)
    df = _validated(root)
    normal = df[(df["ts"] >= "2025-11-10") & (df["ts"] < "2025-11-24")].iloc[:3000]
    holiday = df[df["ts"] >= "2025-11-24"].iloc[:3000].reset_index(drop=True)
    for start in range(0, len(normal), 500):
        recs = [to_record(r) for r in normal.iloc[start:start + 500].to_dict("records")]
        status, payload, _ = svc.predict({"records": recs})
        assert status == 200, payload
    # the holiday traffic replayed on its own day: the same scoring code (core), written
    # through the service's InferenceLog with the log's columns
    model = svc.holder.current
    replay = batch_scoring.score_frame(holiday.drop(columns=["_batch"]), svc.contract,
                                       model.pipeline, model.version, model.threshold, "replay")
    replay["request_time"] = pd.Timestamp(f"{HOLIDAY_DAY} 12:00:00")
    replay["served_by"] = "production"
    svc.log.append(replay)
    svc.log.flush()
    _settle(root)
    labels_dir = root / "data/labels"
    for name, part in (("labels_normal.parquet", normal), ("labels_holiday.parquet", holiday)):
        write_parquet_atomic(labels_dir / name, pd.DataFrame({
            "transaction_id": part["transaction_id"].to_numpy(),
            "is_fraud": part["is_fraud"].to_numpy(),
            "label_time": part["ts"].to_numpy() + np.timedelta64(30, "D")}))
    today = pd.Timestamp.now("UTC").strftime("%Y-%m-%d")
    return {"today": today, "normal": normal, "holiday": holiday}


def _materialize(instance: dg.DagsterInstance, assets: list, partition: str | None = None
                 ) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, instance=instance, partition_key=partition,
                          raise_on_error=True)


def _check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    (ev,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return ev


@pytest.mark.slow
def test_inference_log_round_trips_through_the_drift_report(
        project: tuple[Path, str], logged: dict[str, pd.DataFrame]) -> None:
    root, version = project
    today = logged["today"]
    with dg.instance_for_test() as instance:
        # a fresh sensor tick registers both dates as partitions and asks for their runs
        tick = ma.monitoring_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(tick, dg.SensorResult)
        (req,) = tick.dynamic_partitions_requests
        assert sorted(req.partition_keys) == sorted([HOLIDAY_DAY, today])
        assert sorted(r.partition_key for r in tick.run_requests) == sorted([HOLIDAY_DAY, today])
        instance.add_dynamic_partitions(ma.LOG_DAYS.name, list(req.partition_keys))
        again = ma.monitoring_sensor(dg.build_sensor_context(instance=instance,
                                                             cursor=tick.cursor))
        assert not again.run_requests  # same segments: nothing to do

        verdicts = {}
        for day, expect_rows in ((today, len(logged["normal"])),
                                 (HOLIDAY_DAY, len(logged["holiday"]))):
            res = _materialize(instance, [ma.inference_log, ma.live_drift_report], day)
            mats = {m.asset_key.to_user_string(): m
                    for m in res.get_asset_materialization_events()}
            log_mat = mats["inference_log"].materialization
            assert log_mat.metadata["dagster/row_count"].value == expect_rows
            consolidated = consolidated_log_path(root, ma.lp.monitoring_settings({}), day)
            assert log_mat.tags["dagster/data_version"] == md5_file(consolidated)
            assert log_mat.metadata["model_versions"].value == {version: expect_rows}
            report = json.loads((root / f"data/monitoring/drift/date={day}.json").read_text())
            assert report["lineage"]["current_batch"] == f"inference_log:{day}"
            assert report["lineage"]["model_version"] == version
            assert report["lineage"]["current_rows"] == expect_rows
            verdicts[day] = (report["severity"], _check(res, "no_significant_drift").passed)
        # consolidating the same segments again gives the same bytes and data version
        res = _materialize(instance, [ma.inference_log], today)
        (m,) = res.get_asset_materialization_events()
        assert m.materialization.tags["dagster/data_version"] == md5_file(
            consolidated_log_path(root, ma.lp.monitoring_settings({}), today))
    assert verdicts[HOLIDAY_DAY] == ("significant", False), verdicts
    assert verdicts[today][0] != "significant" and verdicts[today][1], verdicts


@pytest.mark.slow
def test_live_performance_check_fails_and_the_sensor_requests_one_retrain(
        project: tuple[Path, str], logged: dict[str, pd.DataFrame]) -> None:
    root, version = project
    with dg.instance_for_test() as instance:
        days = [logged["today"], HOLIDAY_DAY]
        instance.add_dynamic_partitions(ma.LOG_DAYS.name, days)
        for day in days:
            _materialize(instance, [ma.inference_log], day)
        # the sensor asks for labels + live_performance once the days are consolidated,
        # once per (label files, newest consolidation)
        first = ma.monitoring_sensor(dg.build_sensor_context(instance=instance))
        assert first.run_requests and all(r.partition_key for r in first.run_requests)
        perf = ma.monitoring_sensor(dg.build_sensor_context(instance=instance,
                                                            cursor=first.cursor))
        (req,) = perf.run_requests
        assert req.run_key.startswith("live_performance:") and req.partition_key is None
        assert set(req.asset_selection) == {dg.AssetKey("labels"), dg.AssetKey("live_performance")}
        assert not ma.monitoring_sensor(dg.build_sensor_context(
            instance=instance, cursor=perf.cursor)).run_requests

        res = _materialize(instance, [ma.labels, ma.live_performance])
        check = _check(res, ma.QUALITY_CHECK)
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        report = json.loads((root / "data/monitoring/live_performance.json").read_text())
        assert report["check"]["reasons"] and "FPR" in report["check"]["reasons"][0]

        # the FPR of each day equals a hand count over the log and the label files
        log = pd.concat([read_table(consolidated_log_path(root, ma.lp.monitoring_settings({}),
                                                             d)) for d in days])
        labels = pd.concat([read_table(p) for p in sorted((root / "data/labels").glob("*"))])
        joined = log.merge(labels, on="transaction_id")
        for day, want in (("today", logged["normal"]), ("holiday", logged["holiday"])):
            d = joined[joined["transaction_id"].isin(want["transaction_id"])]
            fp = int(((d["decision"]) & (d["is_fraud"] == 0)).sum())
            neg = int((d["is_fraud"] == 0).sum())
            period = logged["today"] if day == "today" else HOLIDAY_DAY
            (row,) = [r for r in report["rows"] if r["period"] == period and not r["estimated"]]
            assert (row["fp"], row["fp"] + row["tn"]) == (fp, neg)
            assert row["fpr"] == fp / neg
        holiday_row = next(r for r in report["rows"] if r["period"] == HOLIDAY_DAY)
        normal_row = next(r for r in report["rows"] if r["period"] == logged["today"])
        assert holiday_row["fpr"] > 2 * normal_row["fpr"]  # the incident, seen live
        (mat,) = [m for m in res.get_asset_materialization_events()
                  if m.asset_key == dg.AssetKey("live_performance")]
        md = mat.materialization.metadata
        assert md["fpr"].value == report["check"]["versions"][version]["fpr"]
        assert md["alert_volume"].value == int(log["decision"].sum())
        dv = mat.materialization.tags["dagster/data_version"]

        # exactly one retrain per failed evaluation, keyed on the data version
        ctx = dg.build_sensor_context(instance=instance)
        first = ma.live_quality_retrain_sensor(ctx)
        assert [r.run_key for r in first.run_requests] == [f"live_quality:{dv}"]
        assert first.run_requests[0].tags["mlops_assets/trigger"] == "live_quality"
        second = ma.live_quality_retrain_sensor(
            dg.build_sensor_context(instance=instance, cursor=first.cursor))
        assert not second.run_requests
        # the same content evaluated again (a re-run) is the same event: no second retrain
        _materialize(instance, [ma.live_performance])
        third = ma.live_quality_retrain_sensor(
            dg.build_sensor_context(instance=instance, cursor=second.cursor))
        assert not third.run_requests and "already handled" in third.skip_reason.skip_message
        # labels for only the normal traffic: the check passes and nothing is requested
        (root / "data/labels/labels_holiday.parquet").unlink()
        _materialize(instance, [ma.labels, ma.live_performance])
        report = json.loads((root / "data/monitoring/live_performance.json").read_text())
        assert report["check"]["passed"], report["check"]
        assert any(r["estimated"] and r["period"] == HOLIDAY_DAY for r in report["rows"])
        fourth = ma.live_quality_retrain_sensor(
            dg.build_sensor_context(instance=instance, cursor=third.cursor))
        assert not fourth.run_requests


@pytest.mark.slow
def test_batch_predictions_equal_the_service_scores(project: tuple[Path, str]) -> None:
    from mlops_assets.core.ingest import manifest_entries, read_snapshot

    root, version = project
    entry = next(e for e in manifest_entries(root / "data/snapshots")
                 if e.batch == "week_2025-12-01")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("batches", [entry.batch])
        res = _materialize(instance, [ma.batch_predictions], entry.batch)
        (m,) = res.get_asset_materialization_events()
        assert m.materialization.metadata["model_version"].value == version
    out = read_table(root / f"data/monitoring/batch_predictions/{entry.batch}.parquet")
    raw = read_snapshot(root / "data/snapshots", entry)
    assert len(out) == len(raw) and out["transaction_id"].tolist() == raw["transaction_id"].tolist()
    svc = _service(root, "data/inference_log_parity")  # not the monitored log
    recs = [to_record(r) for r in raw.iloc[:1500].to_dict("records")]
    status, payload, served_version = svc.predict({"records": recs})
    assert status == 200 and served_version == version
    np.testing.assert_allclose(out["score"].to_numpy()[:1500],
                               [p["score"] for p in payload["predictions"]], rtol=0, atol=1e-12)
    assert out["decision"].tolist()[:1500] == [p["decision"] for p in payload["predictions"]]
    svc.log.flush()
    from mlops_assets.core.monitoring.inference_log import read_inference_log

    assert list(out.columns) == list(read_inference_log(root / "data/inference_log_parity").columns)


def test_sensors_skip_on_a_fresh_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No inference log and no check results yet: both sensors skip (safe to run by default)."""
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a project, freshly made
    monkeypatch.setenv("MLOPS_ASSETS_ROOT", str(tmp_path))
    with dg.instance_for_test() as instance:
        tick = ma.monitoring_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(tick, dg.SkipReason) and "no inference log" in tick.skip_message
        quality = ma.live_quality_retrain_sensor(dg.build_sensor_context(instance=instance))
        assert not quality.run_requests and "no new live-quality" in quality.skip_reason.skip_message


def test_a_day_still_being_written_waits_until_it_settles(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_assets.core.monitoring.inference_log import InferenceLog

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a project, freshly made
    monkeypatch.setenv("MLOPS_ASSETS_ROOT", str(tmp_path))
    log = InferenceLog(tmp_path / "data/inference_log")
    log.append(pd.DataFrame({"request_id": ["r"], "request_time": [pd.Timestamp("2025-12-03 10:00")],
                             "record_index": [0], "served_by": ["production"],
                             "model_version": ["v"], "threshold": [0.5],
                             "transaction_id": ["t"], "score": [0.1], "decision": [False]}))
    log.flush()
    with dg.instance_for_test() as instance:
        fresh = ma.monitoring_sensor(dg.build_sensor_context(instance=instance))
        assert not fresh.run_requests and "waiting for ['2025-12-03']" in \
            fresh.skip_reason.skip_message
        (req,) = fresh.dynamic_partitions_requests  # the partition exists at once
        assert list(req.partition_keys) == ["2025-12-03"]
        _settle(tmp_path)
        settled = ma.monitoring_sensor(dg.build_sensor_context(instance=instance,
                                                               cursor=fresh.cursor))
        (run_req,) = settled.run_requests
        assert run_req.partition_key == "2025-12-03"
        assert run_req.run_key.startswith("inference_log:2025-12-03:")
