"""Live performance: label files, the join to the inference log, measured metrics against a
hand count, the CBPE estimate, the quality check, and the holiday incident's FPR rise."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.contract import Contract, load_contract
from mlops_assets.core.features import build_features
from mlops_assets.core.generate import FraudScenario, generate_week
from mlops_assets.core.io import DataError, write_parquet_atomic
from mlops_assets.core.monitoring import batch_scoring
from mlops_assets.core.monitoring import live_performance as lp
from mlops_assets.core.train import TrainParams, train_model
from mlops_assets.core.validate import validate_frame

REPO = Path(__file__).resolve().parents[3]
SETTINGS = lp.monitoring_settings({})


@functools.lru_cache(maxsize=1)
def contract() -> Contract:
    return load_contract(REPO / "mlops_assets/contracts/fraud.yaml")


# Small scenario: 8 normal weeks to train on (Sep 1 .. Oct 26), week 8 (Oct 27) normal
# traffic, week 9 (Nov 3) the holiday weeks begin.
SCENARIO = FraudScenario(rows_per_week=4000, weeks=11, holiday_start=dt.date(2025, 11, 3))


@functools.lru_cache(maxsize=1)
def trained() -> tuple[Any, float]:
    """A model trained in-process on the 8 normal weeks; (pipeline, threshold)."""
    c = contract()
    raw = pd.concat([generate_week(SCENARIO, w) for w in range(8)], ignore_index=True)
    frame, _ = validate_frame(raw, c, "train")
    result = train_model(build_features(frame, c), c, TrainParams(max_iter=60))
    return result.pipeline, result.threshold


def scored_week(week: int, version: str = "m1") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(log frame as the service logs it, replayed at the records' own times; labels)."""
    pipeline, threshold = trained()
    raw = generate_week(SCENARIO, week)
    log = batch_scoring.score_frame(raw, contract(), pipeline, version, threshold, f"w{week}")
    log["served_by"] = "production"
    labels = pd.DataFrame({"transaction_id": raw["transaction_id"], "is_fraud": raw["is_fraud"],
                           "label_time": raw["ts"] + pd.Timedelta(days=30)})
    return log, labels


def _log(rows: list[tuple[str, str, float, bool, str]]) -> pd.DataFrame:
    """(id, request day, score, decision, model version) -> a minimal inference-log frame."""
    return pd.DataFrame({
        "request_id": [f"r{i}" for i in range(len(rows))],
        "request_time": pd.to_datetime([f"{r[1]} 12:00:00" for r in rows]),
        "record_index": 0, "served_by": "production",
        "model_version": [r[4] for r in rows], "threshold": 0.5,
        "transaction_id": [r[0] for r in rows],
        "score": [r[2] for r in rows], "decision": [r[3] for r in rows]})


def _labels(pairs: dict[str, int], when: str = "2025-12-20") -> pd.DataFrame:
    return pd.DataFrame({"id": list(pairs), "label": np.array(list(pairs.values()), np.int8),
                         "label_time": pd.Timestamp(when)})


# ------------------------------------------------------------------ label files


def test_label_files_are_validated_with_file_column_and_rows(tmp_path: Path) -> None:
    good = tmp_path / "labels_a.parquet"
    write_parquet_atomic(good, pd.DataFrame({"transaction_id": ["a", "b"], "is_fraud": [0, 1],
                                             "label_time": ["2025-12-01T00:00:00Z"] * 2}))
    df, summary = lp.read_labels([good], contract())
    assert list(df.columns) == ["id", "label", "label_time", "_file"]
    assert summary["ids"] == 2 and summary["positives"] == 1

    bad = tmp_path / "labels_b.csv"
    bad.write_text("id,label,label_time\nx,0,2025-12-01\ny,2,2025-12-01\nz,1,2025-12-01\n")
    with pytest.raises(DataError) as e:
        lp.read_labels([good, bad], contract())
    msg = str(e.value)
    assert "labels_b.csv" in msg and "column: label" in msg and "rows: 1" in msg

    no_time = tmp_path / "labels_c.csv"
    no_time.write_text("id,label\nx,0\n")
    with pytest.raises(DataError, match="no label_time column"):
        lp.read_label_file(no_time, contract())

    torn = tmp_path / "labels_d.csv"
    torn.write_text("id,label,label_time\nx,0,2025-12-01\ny,1,not-a-date\n")
    with pytest.raises(DataError) as e:
        lp.read_label_file(torn, contract())
    assert "column: label_time" in str(e.value) and "rows: 1" in str(e.value)


def test_a_later_label_corrects_an_earlier_one_and_a_tie_is_an_error(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,label,label_time\nt1,0,2025-12-01\nt2,0,2025-12-01\n")
    b.write_text("id,label,label_time\nt1,1,2025-12-05\n")
    df, summary = lp.read_labels([a, b], contract())
    assert dict(zip(df["id"], df["label"], strict=True)) == {"t1": 1, "t2": 0}
    assert summary["corrections"] == 1 and summary["rows"] == 3
    b.write_text("id,label,label_time\nt1,1,2025-12-01\n")
    with pytest.raises(DataError, match="conflicting labels"):
        lp.read_labels([a, b], contract())


# ------------------------------------------------------------------ metrics


def test_fpr_precision_recall_and_alerts_equal_a_hand_count() -> None:
    # day 1, model m1: 6 records, 5 labelled (2 positives, 3 negatives), 1 unlabelled
    #   decisions: p1 alert (TP), p2 none (FN), n1 alert (FP), n2 none (TN), n3 none (TN)
    #   u1 alert (unlabelled)   -> FPR 1/3, recall 1/2, precision 1/2, alerts 3 of 6
    # day 2, model m1: n4 alert (FP), n5 alert (FP), p3 alert (TP) -> FPR 2/2, precision 1/3
    # day 2, model m2: n6 none -> FPR 0/1
    # n1 is scored twice on day 1 (a retry): counted once
    log = _log([("p1", "2025-12-01", 0.9, True, "m1"), ("p2", "2025-12-01", 0.4, False, "m1"),
                ("n1", "2025-12-01", 0.7, True, "m1"), ("n1", "2025-12-01", 0.7, True, "m1"),
                ("n2", "2025-12-01", 0.1, False, "m1"), ("n3", "2025-12-01", 0.2, False, "m1"),
                ("u1", "2025-12-01", 0.8, True, "m1"),
                ("n4", "2025-12-02", 0.6, True, "m1"), ("n5", "2025-12-02", 0.55, True, "m1"),
                ("p3", "2025-12-02", 0.95, True, "m1"), ("n6", "2025-12-02", 0.3, False, "m2")])
    labels = _labels({"p1": 1, "p2": 1, "p3": 1, "n1": 0, "n2": 0, "n3": 0, "n4": 0, "n5": 0,
                      "n6": 0})
    rep = lp.live_performance(log, labels, contract())
    rows = {(r["period"], r["model_version"], r["estimated"]): r for r in rep["rows"]}
    d1 = rows[("2025-12-01", "m1", False)]
    assert (d1["tp"], d1["fp"], d1["fn"], d1["tn"]) == (1, 1, 1, 2)
    assert d1["fpr"] == 1 / 3 and d1["recall"] == 1 / 2 and d1["precision"] == 1 / 2
    assert d1["n"] == 5 and d1["alerts"] == 2 and d1["n_total"] == 6 and d1["labelled_n"] == 5
    u1 = rows[("2025-12-01", "m1", True)]
    assert u1["estimated"] is True and u1["n"] == 1 and u1["alerts"] == 1
    d2 = rows[("2025-12-02", "m1", False)]
    assert d2["fpr"] == 1.0 and d2["precision"] == 1 / 3 and d2["alert_rate"] == 1.0
    assert rows[("2025-12-02", "m2", False)]["fpr"] == 0.0
    assert ("2025-12-02", "m1", True) not in rows  # everything labelled: no estimate row
    m1 = rep["versions"]["m1"]
    assert m1["measured"]["fpr"] == 3 / 5 and m1["alerts"] == 6 and m1["n"] == 9


def test_cbpe_estimate_from_calibrated_scores() -> None:
    s = np.array([0.9, 0.6, 0.2, 0.1])
    d = np.array([True, True, False, False])
    m = lp.estimated_metrics(s, d)
    # expected FP = (1-0.9) + (1-0.6) = 0.5 ; expected TN = 0.8 + 0.9 = 1.7
    assert m["fp"] == pytest.approx(0.5) and m["tn"] == pytest.approx(1.7)
    assert m["fpr"] == pytest.approx(0.5 / 2.2)
    assert m["recall"] == pytest.approx(1.5 / 1.8) and m["precision"] == pytest.approx(1.5 / 2.0)
    # and the estimate is near the truth when the scores are calibrated (labels drawn from p)
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 8, 200_000)
    y = rng.random(p.size) < p
    dec = p >= 0.2
    est, true = lp.estimated_metrics(p, dec), lp.confusion_metrics(y, dec)
    assert est["fpr"] == pytest.approx(true["fpr"], rel=0.03)
    assert est["recall"] == pytest.approx(true["recall"], rel=0.03)


def test_quality_check_thresholds() -> None:
    rows = [{"period": f"2025-12-0{i}", "model_version": "m1", "served_by": "production",
             "estimated": False, "tp": 30, "fn": 10, "fp": fp, "tn": 1000 - fp}
            for i, fp in ((1, 20), (2, 25))]
    report = {"rows": rows}
    base = {"m1": {"fpr": 0.02, "recall": 0.8, "source": "test"}}
    ok = lp.quality_check(report, base, SETTINGS)
    assert ok["passed"] and ok["versions"]["m1"]["fpr"] == 45 / 2000
    worse = {"rows": [dict(r, fp=r["fp"] + 30, tn=r["tn"] - 30) for r in rows]}
    bad = lp.quality_check(worse, base, SETTINGS)
    assert not bad["passed"] and "FPR" in bad["reasons"][0]
    lost = {"rows": [dict(r, tp=10, fn=30) for r in rows]}
    bad = lp.quality_check(lost, base, SETTINGS)
    assert not bad["passed"] and "recall" in bad["reasons"][0]
    few = lp.quality_check(worse, base, dict(SETTINGS, min_labelled_negatives=10_000,
                                                    min_labelled_positives=10_000))
    assert few["passed"] and few["versions"]["m1"]["note"]


def test_unknown_monitoring_key_is_an_error() -> None:
    with pytest.raises(DataError, match="unknown monitoring keys"):
        lp.monitoring_settings({"monitoring": {"max_fpr_raise": 0.1}})
    assert lp.monitoring_settings({"monitoring": {"period": "W"}})["period"] == "W"


# ------------------------------------------------------------------ the holiday incident


def test_holiday_scenario_shows_the_fpr_rise() -> None:
    normal_log, normal_labels = scored_week(8)
    holiday_log, holiday_labels = scored_week(9)
    log = pd.concat([normal_log, holiday_log], ignore_index=True)
    files = pd.concat([normal_labels, holiday_labels], ignore_index=True)
    labels = files.rename(columns={"transaction_id": "id", "is_fraud": "label"})
    rep = lp.live_performance(log, labels, contract())
    measured = [r for r in rep["rows"] if not r["estimated"]]
    assert len(measured) == 14 and all(r["labelled_n"] == r["n_total"] for r in measured)

    def pooled(rows: list[dict[str, Any]]) -> float:
        fp, tn = sum(r["fp"] for r in rows), sum(r["tn"] for r in rows)
        return fp / (fp + tn)

    normal = [r for r in measured if r["period"] < "2025-11-03"]
    holiday = [r for r in measured if r["period"] >= "2025-11-03"]
    fpr_normal, fpr_holiday = pooled(normal), pooled(holiday)
    assert fpr_holiday > 2.5 * fpr_normal, (fpr_normal, fpr_holiday)
    assert np.median([r["fpr"] for r in holiday]) > np.max([r["fpr"] for r in normal])
    # the alert volume rises with it
    assert sum(r["alerts"] for r in holiday) > 2 * sum(r["alerts"] for r in normal)
    # the check, with the normal week as the holdout baseline: passes on the normal week,
    # fails on the holiday week
    base = {"m1": {"fpr": fpr_normal, "recall": rep["versions"]["m1"]["measured"]["recall"],
                   "source": "normal week"}}
    s = dict(SETTINGS, window_periods=7)
    only_normal = lp.live_performance(normal_log, labels, contract())
    assert lp.quality_check(only_normal, base, s)["passed"]
    verdict = lp.quality_check(rep, base, s)
    assert not verdict["passed"] and verdict["window"][0] == "2025-11-03"
    # before labels arrive, the CBPE estimate is shown (and marked) for every day
    blind = lp.live_performance(log, labels.iloc[:0], contract())
    assert blind["rows"] and all(r["estimated"] for r in blind["rows"])


def test_reference_profile_is_pinned_by_the_record_md5(tmp_path: Path) -> None:
    """The profile of the serving model: the working tree's when its bytes match the record,
    else the DVC cache's copy; a missing one is a DataError naming the md5."""
    import shutil

    from mlops_assets.core.drift import write_reference_profile
    from mlops_assets.core.io import md5_file

    c = contract()
    pipeline, threshold = trained()
    log, _ = scored_week(8)
    prof_rel, values_rel = "data/model/reference_profile.json", "data/model/reference_profile.parquet"
    write_reference_profile(log, c, log["score"].to_numpy(), threshold, {},
                            tmp_path / prof_rel, tmp_path / values_rel)
    record = {"model_md5": "m1", "reference_profile_md5": md5_file(tmp_path / prof_rel)}
    assert lp.pinned_reference_profile(tmp_path, record)["features"]
    # a newer training run replaced the working tree's profile: the cache has the pinned bytes
    for rel in (prof_rel, values_rel):
        md5 = md5_file(tmp_path / rel)
        cached = tmp_path / ".dvc/cache/files/md5" / md5[:2] / md5[2:]
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / rel, cached)
    other, _ = scored_week(9)
    write_reference_profile(other, c, other["score"].to_numpy(), threshold, {},
                            tmp_path / prof_rel, tmp_path / values_rel)
    pinned = lp.pinned_reference_profile(tmp_path, record)
    assert ".dvc" in str(pinned["_values"].path)
    with pytest.raises(DataError, match="neither in the working tree nor in the DVC cache"):
        lp.pinned_reference_profile(tmp_path, {"model_md5": "m2", "reference_profile_md5": "0" * 32})
