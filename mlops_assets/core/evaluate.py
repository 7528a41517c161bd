"""Evaluation: metrics at the operating threshold, the promotion gate and the rule baseline.
The curves and figures written for `dvc plots` are in core.plots.

Everything here is a plain function of labels and scores, so the same code computes the
training metrics (core.train), the holdout evaluation (the evaluate stage) and the realised
metrics once labels arrive (drift).

Conventions
  * labels are 0/1 (bools accepted); 1 is the positive class (fraud).
  * scores are floats, higher = more likely positive; a row is *alerted* (predicted positive)
    when ``score >= threshold``.
  * a ratio whose denominator is zero (precision with no alerts, recall with no positives,
    FPR with no negatives) is ``None``, and so are ROC AUC / PR AUC when the labels hold one
    class only: an undefined number is shown as undefined, never as NaN or a made-up 0.
  * everything written to disk is deterministic (same inputs -> same bytes), because the
    files are DVC outputs hashed into dvc.lock.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from mlops_assets.core.contract import Contract
from mlops_assets.core.io import DataError

# --------------------------------------------------------------------------- inputs


def as_labels(labels: Any, what: str = "labels") -> np.ndarray:
    """Labels as an int8 0/1 array; anything else is a DataError naming the bad rows."""
    arr = np.asarray(labels.to_numpy() if isinstance(labels, pd.Series) else labels)
    if arr.ndim != 1:
        raise DataError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if arr.dtype == object:
        bad = [i for i, v in enumerate(arr) if v is None or v is pd.NA
               or (isinstance(v, float) and math.isnan(v))]
        if bad:
            raise DataError(f"{what} hold missing values", rows=bad, expected="0 or 1 in every row")
        try:
            arr = arr.astype(float)
        except (TypeError, ValueError):
            raise DataError(f"{what} are not numeric", expected="0 or 1") from None
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{what} have dtype {arr.dtype}", expected="0 or 1")
    num = arr.astype(float)
    bad = np.flatnonzero(~np.isin(num, (0.0, 1.0))).tolist()
    if bad:
        shown = num[bad[0]]
        raise DataError(f"{what} hold a value other than 0/1 ({shown!r})", rows=bad,
                        expected="0 or 1 in every row")
    return num.astype(np.int8)


def as_scores(scores: Any, n: int | None = None, what: str = "scores") -> np.ndarray:
    arr = np.asarray(scores.to_numpy() if isinstance(scores, pd.Series) else scores, dtype=float)
    if arr.ndim != 1:
        raise DataError(f"{what} must be one-dimensional, got shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise DataError(f"{what} have {len(arr)} rows but the labels have {n}",
                        expected="one score per labelled row")
    bad = np.flatnonzero(~np.isfinite(arr)).tolist()
    if bad:
        raise DataError(f"{what} hold non-finite values", rows=bad, expected="finite numbers")
    return arr


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


# --------------------------------------------------------------------------- metrics


def classification_metrics(labels: Any, scores: Any, threshold: float | None) -> dict[str, Any]:
    """Metrics of `scores` against `labels` at `threshold` (alert when score >= threshold).

    Keys: n, positives, negatives, threshold, alerts (predicted positives), alert_rate,
    tp, fp, tn, fn, precision (tp/alerts), recall (tp/positives), fpr (fp/negatives),
    f1, roc_auc, pr_auc (average precision). Undefined ratios and AUCs are None. With
    threshold None (a scorer without an operating point) only the threshold-free values
    (n, positives, negatives, roc_auc, pr_auc) are computed; the rest are None."""
    y = as_labels(labels)
    s = as_scores(scores, len(y))
    n = len(y)
    positives = int(np.sum(y == 1))
    negatives = n - positives
    both = positives > 0 and negatives > 0
    out: dict[str, Any] = {
        "n": n, "positives": positives, "negatives": negatives, "threshold": None,
        "alerts": None, "alert_rate": None, "tp": None, "fp": None, "tn": None, "fn": None,
        "precision": None, "recall": None, "fpr": None, "f1": None,
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "pr_auc": float(average_precision_score(y, s)) if both else None,
    }
    if threshold is None:
        return out
    if isinstance(threshold, bool) or not math.isfinite(float(threshold)):
        raise DataError(f"threshold {threshold!r} is not a finite number", expected="a number")
    pred = s >= threshold
    pos = y == 1
    tp = int(np.sum(pred & pos))
    fp = int(np.sum(pred & ~pos))
    fn = positives - tp
    tn = negatives - fp
    alerts = tp + fp
    precision = _ratio(tp, alerts)
    recall = _ratio(tp, positives)
    f1 = (None if precision is None or recall is None
          else (0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)))
    out.update({
        "threshold": float(threshold), "alerts": alerts, "alert_rate": _ratio(alerts, n),
        "tp": tp, "fp": fp, "tn": tn, "fn": fn, "precision": precision, "recall": recall,
        "fpr": _ratio(fp, negatives), "f1": f1,
    })
    return out


def evaluate(scores: Any, labels: Any, threshold: float) -> dict[str, Any]:
    """`classification_metrics` with the argument order of docs/ARCHITECTURE.md
    (scores first), plus the confusion counts nested under "confusion"."""
    m = classification_metrics(labels, scores, threshold)
    m["confusion"] = {k: m[k] for k in ("tp", "fp", "tn", "fn")}
    return m


def operating_threshold(scores: Any, labels: Any, target_fpr: float) -> float:
    """The operating threshold: it alerts as many rows as possible while the false-positive
    rate on these rows stays at most `target_fpr` (an exact (1 - target_fpr) quantile of the
    negatives' scores; on these rows it alerts exactly what the lowest such threshold does).

    With k = floor(target_fpr * negatives) false positives allowed and the negatives' scores
    sorted descending s[0] >= s[1] >= ..., every threshold <= s[k] alerts at least k+1
    negatives, so the threshold must lie above s[k]. It is put midway between s[k] and the
    next higher distinct negative score (so a score a hair above s[k] through tiny numerical
    noise does not flip), or just above s[k] when no higher negative score exists. Ties can
    make the achieved FPR lower than the target; it is never higher."""
    y = as_labels(labels)
    s = as_scores(scores, len(y))
    if not 0.0 <= float(target_fpr) < 1.0:
        raise DataError(f"operating FPR {target_fpr!r} is outside [0, 1)",
                        expected="a false-positive rate such as 0.02")
    neg = np.sort(s[y == 0])[::-1]
    if len(neg) == 0:
        raise DataError("cannot set an operating threshold: there are no negative rows",
                        expected="labels with both classes")
    k = int(math.floor(float(target_fpr) * len(neg) + 1e-9))
    if k >= len(neg):
        return float(neg[-1])
    below = float(neg[k])
    higher = neg[neg > below]
    if len(higher) == 0:
        return float(np.nextafter(below, np.inf))
    return float((below + float(higher.min())) / 2.0)


# --------------------------------------------------------------------------- rule baseline

# The hand-weighted rule for the fraud contract: (feature, weight, transform before scaling).
# Large amounts relative to the card's own average, large amounts, young cards and bursts of
# transactions are the classic manual fraud rules.
FRAUD_RULE_WEIGHTS: tuple[tuple[str, float, str], ...] = (
    ("amount_vs_avg", 2.0, "log1p"),
    ("log_amount", 1.0, "identity"),
    ("card_age_days", -1.0, "log1p"),
    ("txn_count_24h", 0.5, "log1p"),
)


def rule_baseline_scores(df: pd.DataFrame, contract: Contract,
                         reference: pd.DataFrame | None = None) -> np.ndarray:
    """A simple rule-based score, the yardstick the FIRST model must beat (there is no
    production model yet, so "better than nothing" is measured against hand rules).

    * If the feature table has any of the hand-picked fraud columns (FRAUD_RULE_WEIGHTS:
      amount_vs_avg +2, log_amount +1, card_age_days -1, txn_count_24h +0.5, each after a
      log1p where noted), the score is the weighted sum of their robust z-scores.
    * Otherwise (any other contract, e.g. a medical dataset) it falls back to the mean
      absolute robust z-score over all numeric features: "how unusual is this row", a
      label-free outlier rule that works for any contract.

    Robust z-score: (x - median) / (1.4826 * MAD), with the scale falling back to the
    standard deviation and then to 1 for a constant column. The median/scale come from
    `reference` (pass the training features so the holdout is scored with training
    statistics) or, when it is None, from `df` itself. A missing value contributes 0
    (typical). Categorical features are not used. Returns float64, one score per row."""
    ref = df if reference is None else reference
    numeric = [c for c in contract.numeric_features]
    named = [(c, w, t) for c, w, t in FRAUD_RULE_WEIGHTS if c in numeric]
    for frame, where in ((df, "the scored frame"), (ref, "the reference frame")):
        cols = [c for c, _, _ in named] if named else numeric
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise DataError(f"rule baseline: {where} lacks the feature column {missing[0]!r}",
                            column=missing[0], expected=f"feature columns {cols}")
    if named:
        total = np.zeros(len(df), dtype=float)
        for col, weight, transform in named:
            total += weight * _robust_z(_rule_values(df, col, transform),
                                        _rule_values(ref, col, transform))
        return total
    if not numeric:
        return np.zeros(len(df), dtype=float)
    zs = [np.abs(_robust_z(_rule_values(df, c, "identity"), _rule_values(ref, c, "identity")))
          for c in numeric]
    return np.mean(np.vstack(zs), axis=0)


def rule_baseline_reference(train_df: pd.DataFrame, eval_df: pd.DataFrame, contract: Contract,
                            operating_fpr: float) -> tuple[np.ndarray, float]:
    """The rule baseline as a reference for evaluate_candidate: its scores on `eval_df`
    (with the training frame's statistics) and its threshold, set on the training rows the
    same way as the model's (operating_threshold at `operating_fpr`)."""
    label = contract.label_column
    if label is None or label not in train_df.columns:
        raise DataError(f"rule baseline: the training frame lacks the label column {label!r}",
                        column=label, expected="0/1 labels")
    train_scores = rule_baseline_scores(train_df, contract, reference=train_df)
    threshold = operating_threshold(train_scores, train_df[label], operating_fpr)
    return rule_baseline_scores(eval_df, contract, reference=train_df), threshold


def _rule_values(df: pd.DataFrame, col: str, transform: str) -> np.ndarray:
    try:
        x = pd.to_numeric(df[col], errors="raise").to_numpy(dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"rule baseline: feature column {col!r} is not numeric", column=col,
                        expected="float64 values") from None
    if transform == "log1p":
        x = np.log1p(np.clip(x, 0.0, None))
    return x


def _robust_z(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    finite = ref[np.isfinite(ref)]
    if len(finite) == 0:
        return np.zeros(len(x))
    med = float(np.median(finite))
    scale = 1.4826 * float(np.median(np.abs(finite - med)))
    if not scale > 0:
        scale = float(np.std(finite))
    if not scale > 0:
        scale = 1.0
    z = (x - med) / scale
    return np.where(np.isfinite(z), z, 0.0)


# --------------------------------------------------------------------------- gate

GATE_METRICS = (("pr_auc", "PR AUC"), ("roc_auc", "ROC AUC"))


def evaluate_candidate(candidate_scores: Any, labels: Any, threshold: float,
                       reference_scores: Any, reference_name: str,
                       reference_threshold: float | None, tolerance: float) -> dict[str, Any]:
    """Compare a candidate model with a reference (the production model, or the rule
    baseline for the first model) on the same labelled rows.

    Returns {"candidate": metrics, "reference": {"name", **metrics}, "deltas": candidate -
    reference for the headline metrics (None where either side is undefined), "gate":
    {"eligible", "tolerance", "reference", "checks", "reasons"}}.

    Gate: eligible when candidate PR AUC >= reference PR AUC - tolerance AND candidate ROC
    AUC >= reference ROC AUC - tolerance. If either AUC is undefined (one-class labels) the
    comparison cannot be made and the candidate is not eligible. `reference_threshold` may be
    None (a reference without an operating point): the gate only uses the AUCs, and the
    reference's threshold-dependent metrics are then None (see rule_baseline_reference to
    give the rule baseline an operating point)."""
    y = as_labels(labels)
    cand = classification_metrics(y, as_scores(candidate_scores, len(y), "candidate scores"),
                                  threshold)
    ref = classification_metrics(y, as_scores(reference_scores, len(y), "reference scores"),
                                 reference_threshold)
    tol = float(tolerance)
    if not (math.isfinite(tol) and tol >= 0):
        raise DataError(f"tolerance {tolerance!r} must be a finite number >= 0")
    deltas = {}
    for key in ("pr_auc", "roc_auc", "precision", "recall", "fpr", "alert_rate", "f1"):
        a, b = cand[key], ref[key]
        deltas[key] = None if a is None or b is None else a - b
    checks, reasons = [], []
    for key, label in GATE_METRICS:
        c, r = cand[key], ref[key]
        if c is None or r is None:
            checks.append({"metric": key, "candidate": c, "reference": r, "minimum": None,
                           "passed": False})
            reasons.append(f"FAIL {label}: undefined (the labels hold one class only), "
                           "so the candidate cannot be compared")
            continue
        minimum = r - tol
        passed = bool(c >= minimum)
        checks.append({"metric": key, "candidate": c, "reference": r, "minimum": minimum,
                       "passed": passed})
        if passed:
            reasons.append(f"PASS {label}: candidate {c:.4f} >= {reference_name} {r:.4f} "
                           f"- tolerance {tol:g}")
        else:
            reasons.append(f"FAIL {label}: candidate {c:.4f} < {reference_name} {r:.4f} "
                           f"- tolerance {tol:g} (worse by {r - c:.4f})")
    return {
        "candidate": cand,
        "reference": {"name": reference_name, **ref},
        "deltas": deltas,
        "gate": {
            "eligible": all(ch["passed"] for ch in checks),
            "tolerance": tol,
            "reference": reference_name,
            "checks": checks,
            "reasons": reasons,
        },
    }
