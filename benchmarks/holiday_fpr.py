"""How far a model trained before the holidays drifts on holiday batches.

Generates the scenario of params.yaml's ``sample_data``, builds features with
`core.features.build_features`, trains the same pipeline `core.train` builds
(one-hot categoricals + HistGradientBoostingClassifier) on the weeks before
``split.cutoff``, puts the operating threshold at FPR = 2 % on the training negatives and
prints per week: rows, fraud rate, FPR and recall at that threshold, ROC AUC; then the mean
FPR of normal weeks vs holiday weeks and their ratio.

    .venv/bin/python benchmarks/holiday_fpr.py [--params params.yaml] [--rows-per-week N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mlops_assets.core.contract import Contract, load_contract  # noqa: E402
from mlops_assets.core.features import build_features  # noqa: E402
from mlops_assets.core.generate import FraudScenario, generate_week  # noqa: E402
from mlops_assets.core.split import temporal_split  # noqa: E402

OPERATING_FPR = 0.02


def build_pipeline(contract: Contract) -> Pipeline:
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), contract.categorical_features),
         ("num", "passthrough", contract.numeric_features)],
        remainder="drop",
    )
    clf = HistGradientBoostingClassifier(
        random_state=42, learning_rate=0.1, max_iter=200, max_leaf_nodes=31,
        min_samples_leaf=40, early_stopping=False)
    return Pipeline([("pre", pre), ("clf", clf)])


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def measure(scenario: FraudScenario, contract: Contract, cutoff: str) -> dict[str, Any]:
    """Train before `cutoff`, then score every week. Returns per-week rows and a summary."""
    weeks = [generate_week(scenario, i) for i in range(scenario.weeks)]
    feats = [build_features(w, contract) for w in weeks]
    cut = pd.Timestamp(cutoff)
    label, ts = contract.label_column, contract.timestamp_column
    train, _ = temporal_split(pd.concat(feats, ignore_index=True), contract, cut)
    x_cols = contract.feature_names
    pipe = build_pipeline(contract).fit(train[x_cols], train[label])
    train_scores = pipe.predict_proba(train[x_cols])[:, 1]
    threshold = float(np.quantile(train_scores[train[label].to_numpy() == 0],
                                  1.0 - OPERATING_FPR))
    rows = []
    for i, f in enumerate(feats):
        y = f[label].to_numpy()
        s = pipe.predict_proba(f[x_cols])[:, 1]
        alert = s > threshold
        rows.append({
            "week": scenario.week_start(i).isoformat(),
            "period": ("holiday" if scenario.is_holiday_week(i)
                       else "train" if f[ts].max() < cut else "normal"),
            "rows": len(f),
            "fraud_rate": float(y.mean()),
            "fpr": float(alert[y == 0].mean()),
            "recall": float(alert[y == 1].mean()) if (y == 1).any() else float("nan"),
            "roc_auc": float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan"),
        })
    normal = [r["fpr"] for r in rows if r["period"] != "holiday"]
    after_cut = [r["fpr"] for r in rows if r["period"] == "normal"]
    holiday = [r["fpr"] for r in rows if r["period"] == "holiday"]
    return {
        "threshold": threshold,
        "weeks": rows,
        "normal_fpr": _mean(normal),
        "holdout_normal_fpr": _mean(after_cut),
        "holiday_fpr": _mean(holiday),
        "ratio": _mean(holiday) / _mean(normal) if normal and holiday else float("nan"),
        "ratio_vs_holdout": (_mean(holiday) / _mean(after_cut)
                             if after_cut and holiday else float("nan")),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--rows-per-week", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    params = yaml.safe_load(Path(args.params).read_text())
    section = dict(params["sample_data"])
    if args.rows_per_week:
        section["rows_per_week"] = args.rows_per_week
    if args.seed is not None:
        section["seed"] = args.seed
    scenario = FraudScenario.from_params(section)
    contract = load_contract(ROOT / params["dataset"]["contract"])
    t0 = time.perf_counter()
    result = measure(scenario, contract, params["split"]["cutoff"])
    elapsed = time.perf_counter() - t0
    print(f"threshold (FPR {OPERATING_FPR:.0%} on training negatives): {result['threshold']:.4f}")
    print(f"{'week':<12}{'period':<9}{'rows':>7}{'fraud':>8}{'FPR':>8}{'recall':>8}{'AUC':>8}")
    for r in result["weeks"]:
        print(f"{r['week']:<12}{r['period']:<9}{r['rows']:>7}{r['fraud_rate']:>8.3%}"
              f"{r['fpr']:>8.2%}{r['recall']:>8.2%}{r['roc_auc']:>8.3f}")
    print(f"normal-week mean FPR (train + holdout weeks): {result['normal_fpr']:.2%}")
    print(f"normal-week mean FPR (post-cutoff weeks only): {result['holdout_normal_fpr']:.2%}")
    print(f"holiday-week mean FPR:                        {result['holiday_fpr']:.2%}")
    print(f"ratio holiday / normal: {result['ratio']:.1f}x  "
          f"(vs post-cutoff normal: {result['ratio_vs_holdout']:.1f}x)   [{elapsed:.1f}s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
