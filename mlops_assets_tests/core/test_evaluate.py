"""core.evaluate: metrics against hand counts, the operating threshold, the promotion gate,
the rule baseline on two different contracts, and byte-deterministic plot files."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_assets.core.contract import Contract, load_contract
from mlops_assets.core.evaluate import (
    FRAUD_RULE_WEIGHTS,
    classification_metrics,
    evaluate,
    evaluate_candidate,
    operating_threshold,
    rule_baseline_reference,
    rule_baseline_scores,
)
from mlops_assets.core.io import DataError, canonical_json
from mlops_assets.core.plots import (
    CONFUSION_COUNTS_TEMPLATE,
    confusion_rows,
    pr_points,
    roc_points,
    write_confusion_template,
    write_plots,
)
from mlops_assets_tests.core.test_train import FRAUD, make_feature_frame

REPO = Path(__file__).resolve().parents[2]

# A case small enough to count by hand (threshold 0.5, alert when score >= 0.5):
#   label  1    1    1    0    0    0    0    0     0    0
#   score .90  .80  .30  .85  .20  .10  .40  .05  .60  .70
LABELS = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
SCORES = [0.90, 0.80, 0.30, 0.85, 0.20, 0.10, 0.40, 0.05, 0.60, 0.70]


def test_metrics_match_a_hand_count() -> None:
    m = classification_metrics(LABELS, SCORES, 0.5)
    # alerted: .90(1) .80(1) .85(0) .60(0) .70(0) -> tp 2, fp 3; missed .30(1) -> fn 1
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 3, 1, 4)
    assert (m["n"], m["positives"], m["negatives"], m["alerts"]) == (10, 3, 7, 5)
    assert m["precision"] == pytest.approx(2 / 5)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["fpr"] == pytest.approx(3 / 7)
    assert m["alert_rate"] == pytest.approx(5 / 10)
    assert m["f1"] == pytest.approx(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))
    # ROC AUC = share of (positive, negative) pairs ranked right: .90 beats 7, .80 beats 6
    # (not .85), .30 beats 3 (.20 .10 .05) -> 16 of 21
    assert m["roc_auc"] == pytest.approx(16 / 21)
    # average precision: positives at ranks 1, 3, 7 -> (1/1 + 2/3 + 3/7) / 3
    assert m["pr_auc"] == pytest.approx((1 + 2 / 3 + 3 / 7) / 3)
    assert m["threshold"] == 0.5


def _brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def _brute_ap(y: np.ndarray, s: np.ndarray) -> float:
    """AP over distinct thresholds: sum of (R_t - R_prev) * P_t, highest threshold first."""
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(s.tolist()), reverse=True):
        alert = s >= t
        tp = int(np.sum(alert & (y == 1)))
        recall = tp / int(np.sum(y == 1))
        ap += (recall - prev_recall) * tp / int(np.sum(alert))
        prev_recall = recall
    return ap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_brute_force_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.2).astype(int)
    s = np.round(rng.random(300) * 0.6 + 0.4 * y * rng.random(300), 2)  # many ties
    thr = 0.5
    m = classification_metrics(y, s, thr)
    alert = s >= thr
    assert m["tp"] == sum(1 for a, t in zip(alert, y, strict=True) if a and t == 1)
    assert m["fp"] == sum(1 for a, t in zip(alert, y, strict=True) if a and t == 0)
    assert m["fpr"] == pytest.approx(m["fp"] / int(np.sum(y == 0)))
    assert m["roc_auc"] == pytest.approx(_brute_auc(y, s))
    assert m["pr_auc"] == pytest.approx(_brute_ap(y, s))


def test_score_equal_to_threshold_is_an_alert() -> None:
    m = classification_metrics([1, 0], [0.5, 0.5], 0.5)
    assert (m["tp"], m["fp"]) == (1, 1)


def test_degenerate_cases_are_null_not_nan() -> None:
    m = classification_metrics([0, 0, 0], [0.1, 0.2, 0.3], 0.5)
    assert m["roc_auc"] is None and m["pr_auc"] is None
    assert m["precision"] is None  # no alerts
    assert m["recall"] is None  # no positives
    assert m["fpr"] == 0.0 and m["alerts"] == 0
    canonical_json(m)  # serialisable, no NaN
    m = classification_metrics([1, 1], [0.9, 0.1], 0.5)
    assert m["roc_auc"] is None and m["fpr"] is None and m["recall"] == 0.5
    assert roc_points([1, 1], [0.9, 0.1]) == [] and pr_points([0, 0], [0.9, 0.1]) == []
    assert evaluate([0.9, 0.1], [1, 0], 0.5)["confusion"] == {"tp": 1, "fp": 0, "tn": 1, "fn": 0}


@pytest.mark.parametrize("labels, scores, word", [
    ([0, 1, 2], [0.1, 0.2, 0.3], "0/1"),
    ([0, 1, None], [0.1, 0.2, 0.3], "missing"),
    ([0, 1, 1], [0.1, float("nan"), 0.3], "non-finite"),
    ([0, 1], [0.1, 0.2, 0.3], "rows"),
])
def test_bad_inputs_raise_data_error(labels, scores, word) -> None:
    with pytest.raises(DataError, match=word):
        classification_metrics(labels, scores, 0.5)


# --------------------------------------------------------------------------- threshold


@pytest.mark.parametrize("target", [0.0, 0.02, 0.1, 0.29, 0.5])
def test_operating_threshold_is_the_lowest_within_budget(target: float) -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(1000) < 0.1).astype(int)
    s = np.round(rng.random(1000), 3)  # ties
    t = operating_threshold(s, y, target)
    neg = s[y == 0]
    allowed = int(np.floor(target * len(neg) + 1e-9))
    assert int(np.sum(neg >= t)) <= allowed
    lower = neg[neg < t]
    if len(lower):  # any lower threshold that admits one more negative score is over budget
        assert int(np.sum(neg >= lower.max())) > allowed
    assert classification_metrics(y, s, t)["fpr"] <= target


def test_operating_threshold_needs_negatives() -> None:
    with pytest.raises(DataError, match="no negative"):
        operating_threshold([0.3, 0.4], [1, 1], 0.02)
    with pytest.raises(DataError, match="outside"):
        operating_threshold([0.3, 0.4], [0, 1], 1.0)


# --------------------------------------------------------------------------- gate


def _scores(y: np.ndarray, strength: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 1 / (1 + np.exp(-(strength * (y - 0.5) * 2 + rng.normal(size=len(y)))))


def test_gate_accepts_a_better_candidate_and_refuses_a_worse_one() -> None:
    y = (np.random.default_rng(0).random(4000) < 0.05).astype(int)
    good, weak = _scores(y, 2.0, 1), _scores(y, 0.3, 2)
    ok = evaluate_candidate(good, y, 0.6, weak, "production", 0.6, tolerance=0.01)
    assert ok["gate"]["eligible"] is True
    assert all(r.startswith("PASS") for r in ok["gate"]["reasons"])
    assert ok["deltas"]["pr_auc"] == pytest.approx(ok["candidate"]["pr_auc"]
                                                   - ok["reference"]["pr_auc"])
    assert ok["reference"]["name"] == "production"

    bad = evaluate_candidate(weak, y, 0.6, good, "production", 0.6, tolerance=0.01)
    assert bad["gate"]["eligible"] is False
    assert any(r.startswith("FAIL PR AUC") and "production" in r for r in bad["gate"]["reasons"])
    assert [c["passed"] for c in bad["gate"]["checks"]] == [False, False]
    canonical_json(bad)


def test_gate_tolerance_boundary() -> None:
    y = (np.random.default_rng(5).random(3000) < 0.1).astype(int)
    ref = _scores(y, 1.0, 6)
    ref_m = classification_metrics(y, ref, 0.5)
    # the same scores are never worse than themselves
    same = evaluate_candidate(ref, y, 0.5, ref, "production", 0.5, tolerance=0.0)
    assert same["gate"]["eligible"] is True
    cand = _scores(y, 0.9, 7)
    cand_m = classification_metrics(y, cand, 0.5)
    gap = max(ref_m["pr_auc"] - cand_m["pr_auc"], ref_m["roc_auc"] - cand_m["roc_auc"])
    assert gap > 0
    assert not evaluate_candidate(cand, y, 0.5, ref, "p", 0.5, gap * 0.99)["gate"]["eligible"]
    assert evaluate_candidate(cand, y, 0.5, ref, "p", 0.5, gap * 1.01)["gate"]["eligible"]


def test_reference_without_threshold_compares_aucs_only() -> None:
    y = (np.random.default_rng(4).random(2000) < 0.1).astype(int)
    out = evaluate_candidate(_scores(y, 2.0, 1), y, 0.6, _scores(y, 0.5, 2), "rule_baseline",
                             None, 0.01)
    assert out["gate"]["eligible"] is True
    ref = out["reference"]
    assert ref["roc_auc"] is not None and ref["threshold"] is None and ref["tp"] is None
    assert out["deltas"]["precision"] is None and out["deltas"]["pr_auc"] is not None
    canonical_json(out)


def test_gate_refuses_when_labels_have_one_class() -> None:
    y = np.zeros(50, dtype=int)
    out = evaluate_candidate(np.linspace(0, 1, 50), y, 0.5, np.linspace(0, 1, 50), "rule_baseline",
                             0.5, 0.01)
    assert out["gate"]["eligible"] is False
    assert "one class" in out["gate"]["reasons"][0]
    canonical_json(out)


# --------------------------------------------------------------------------- baseline


def test_rule_baseline_fraud_contract_beats_chance() -> None:
    contract = load_contract(FRAUD)
    train = make_feature_frame(4000, seed=20)
    holdout = make_feature_frame(2000, seed=21)
    s = rule_baseline_scores(holdout, contract, reference=train)
    assert s.shape == (2000,) and np.all(np.isfinite(s))
    assert classification_metrics(holdout["is_fraud"], s, 0.0)["roc_auc"] > 0.6
    # holdout scored with training statistics, not its own
    assert not np.array_equal(s, rule_baseline_scores(holdout, contract))
    # only the hand-picked columns matter
    shuffled = holdout.assign(hour=holdout["hour"].sample(frac=1, random_state=0).to_numpy())
    np.testing.assert_array_equal(s, rule_baseline_scores(shuffled, contract, reference=train))
    assert {"amount_vs_avg", "log_amount", "card_age_days"} <= {c for c, _, _ in FRAUD_RULE_WEIGHTS}
    with pytest.raises(DataError) as err:
        rule_baseline_scores(holdout.drop(columns=["amount_vs_avg"]), contract)
    assert err.value.column == "amount_vs_avg"


def _breast_cancer(tmp_path: Path) -> tuple[Contract, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" ", "_"))
    names = list(X.columns)
    spec = {
        "name": "breast_cancer", "id_column": "id", "timestamp_column": "ts",
        "label_column": "malignant",
        "columns": {"id": {"type": "string"}, "ts": {"type": "datetime"},
                    **{n: {"type": "float"} for n in names}, "malignant": {"type": "int"}},
        "features": [{"name": n, "transform": "identity", "source": n} for n in names],
    }
    path = tmp_path / "breast_cancer.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    df = X.assign(malignant=(data.target == 0).astype(int))
    return load_contract(path), df


def test_rule_baseline_generic_fallback_on_another_contract(tmp_path: Path) -> None:
    contract, df = _breast_cancer(tmp_path)
    assert not set(contract.feature_names) & {c for c, _, _ in FRAUD_RULE_WEIGHTS}
    s = rule_baseline_scores(df, contract)
    assert s.shape == (len(df),) and np.all(s >= 0)
    auc = classification_metrics(df["malignant"], s, float(np.median(s)))["roc_auc"]
    assert auc > 0.75  # "unusual" rows are mostly the malignant ones here
    # and the whole chain runs on it: train, score, compare with the baseline
    from mlops_assets.core.train import TrainParams, score, train_model

    train, test = df.iloc[::2], df.iloc[1::2]
    result = train_model(train, contract, TrainParams(max_iter=30, min_samples_leaf=10))
    cand = score(result.pipeline, test, contract)
    base, base_thr = rule_baseline_reference(train, test, contract, 0.05)
    np.testing.assert_array_equal(base, rule_baseline_scores(test, contract, reference=train))
    assert base_thr == operating_threshold(rule_baseline_scores(train, contract),
                                           train["malignant"], 0.05)
    out = evaluate_candidate(cand, test["malignant"], result.threshold, base, "rule_baseline",
                             base_thr, 0.01)
    assert out["gate"]["eligible"] is True


# --------------------------------------------------------------------------- curves / plots


def test_curves_are_downsampled_monotone_and_keep_endpoints() -> None:
    rng = np.random.default_rng(8)
    y = (rng.random(20000) < 0.1).astype(int)
    s = rng.random(20000) + 0.3 * y
    roc = roc_points(y, s)
    assert 50 < len(roc) <= 200
    assert (roc[0]["fpr"], roc[0]["tpr"], roc[0]["threshold"]) == (0.0, 0.0, None)
    assert (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    assert all(a["fpr"] <= b["fpr"] and a["tpr"] <= b["tpr"] for a, b in itertools.pairwise(roc))
    pr = pr_points(y, s)
    assert 50 < len(pr) <= 200
    assert (pr[0]["recall"], pr[0]["precision"], pr[0]["threshold"]) == (0.0, 1.0, None)
    assert pr[-1]["recall"] == 1.0
    assert all(a["recall"] <= b["recall"] for a, b in itertools.pairwise(pr))
    assert roc == roc_points(y, s) and pr == pr_points(y, s)
    assert len(roc_points(y, s, max_points=10)) <= 10
    small = roc_points(LABELS, SCORES)  # few points: all kept
    assert len(small) <= 11 and small[-1]["fpr"] == 1.0


def test_confusion_rows_count_every_record() -> None:
    rows = confusion_rows(LABELS, SCORES, 0.5)
    assert rows == [
        {"actual": 0, "predicted": 0, "count": 4},
        {"actual": 0, "predicted": 1, "count": 3},
        {"actual": 1, "predicted": 0, "count": 1},
        {"actual": 1, "predicted": 1, "count": 2},
    ]
    assert sum(r["count"] for r in rows) == len(LABELS)


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def _plot_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    y = (rng.random(5000) < 0.05).astype(int)
    return y, rng.random(5000) + 0.4 * y, rng.random(5000) + 0.2 * y


def _write(d: str) -> dict[str, str]:
    y, s, r = _plot_inputs()
    write_plots(d, y, s, 0.9, reference_scores=r, reference_name="rule_baseline",
                reference_threshold=0.95)
    return _digest(Path(d))


def test_write_plots_is_byte_deterministic(tmp_path: Path) -> None:
    first = _write(str(tmp_path / "a"))
    assert set(first) == {"roc.csv", "pr.csv", "confusion.csv", "evaluation.svg"}
    assert _write(str(tmp_path / "b")) == first
    assert _write(str(tmp_path / "a")) == first  # rewriting in place: same bytes
    # and in a fresh interpreter with another hash seed
    code = ("import sys, json; from mlops_assets_tests.core.test_evaluate import _write; "
            "print(json.dumps(_write(sys.argv[1])))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c")], cwd=REPO,
                          env=dict(os.environ, PYTHONHASHSEED="7"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == first

    d = tmp_path / "a"
    conf = (d / "confusion.csv").read_text()
    assert conf.splitlines()[0] == "actual,predicted,count" and len(conf.splitlines()) == 5
    roc = (d / "roc.csv").read_text().splitlines()
    assert roc[0] == "fpr,tpr,threshold" and roc[1] == "0.000000,0.000000,"
    assert len(roc) <= 201 and all(len(x.split(",")[0]) == 8 for x in roc[1:])
    svg = (d / "evaluation.svg").read_text()
    assert svg.startswith("<?xml") and "<dc:date>" not in svg
    y, s, _ = _plot_inputs()
    counts = {(int(a), int(p)): int(c) for a, p, c in
              (line.split(",") for line in conf.splitlines()[1:])}
    m = classification_metrics(y, s, 0.9)
    assert counts == {(0, 0): m["tn"], (0, 1): m["fp"], (1, 0): m["fn"], (1, 1): m["tp"]}


def test_confusion_counts_template_renders_with_dvc(tmp_path: Path) -> None:
    vega = pytest.importorskip("dvc_render.vega")
    templates = pytest.importorskip("dvc_render.vega_templates")
    path = write_confusion_template(tmp_path / "confusion_counts.json")
    assert json.loads(path.read_text()) == CONFUSION_COUNTS_TEMPLATE
    rows = [{**{k: str(v) for k, v in r.items()}, "rev": "workspace"}
            for r in confusion_rows(LABELS, SCORES, 0.5)]  # DVC reads CSV values as strings
    renderer = vega.VegaRenderer(rows, "confusion.csv",
                                 template=templates.get_template(str(path)),
                                 x="predicted", y="actual")
    spec = renderer.get_filled_template()
    text = json.dumps(spec)
    assert "<DVC_METRIC" not in text
    assert spec["data"]["values"] == rows
    agg = spec["spec"]["transform"][1]["aggregate"][0]
    assert agg["op"] == "sum" and agg["field"] == "cell_count"
