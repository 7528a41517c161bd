"""Monitoring throughput (issue 6): batch scoring of a 100k-row snapshot with the service's
scoring code, and `live_performance` over a 1M-row inference log with 500k labels. In
process, core functions only (no Dagster), with a model trained by the tests' helper.

    python benchmarks/monitoring_bench.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mlops_assets.core.generate import FraudScenario, generate_week  # noqa: E402
from mlops_assets.core.monitoring import batch_scoring  # noqa: E402
from mlops_assets.core.monitoring import live_performance as lp  # noqa: E402
from mlops_assets_tests.core.monitoring.test_live_performance import contract, trained  # noqa: E402


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    pipeline, threshold = trained()
    raw = generate_week(FraudScenario(rows_per_week=100_000, weeks=10), 9)
    t = time.perf_counter()
    scored = batch_scoring.score_frame(raw, contract(), pipeline, "v", threshold, "b")
    score_s = time.perf_counter() - t
    log = pd.concat([scored.assign(model_version=f"m{i % 2}",
                                   request_time=scored["request_time"] + pd.Timedelta(days=7 * i),
                                   transaction_id=scored["transaction_id"] + f"-{i}")
                     for i in range(10)], ignore_index=True)
    labels = pd.DataFrame({
        "id": log["transaction_id"],
        "label": np.resize(raw["is_fraud"].to_numpy(), len(log)).astype(np.int8),
        "label_time": log["request_time"]}).iloc[: len(log) // 2]
    t = time.perf_counter()
    rep = lp.live_performance(log, labels, contract())
    perf_s = time.perf_counter() - t
    print("| measure | rows | seconds | rows/s |")
    print("|---|---:|---:|---:|")
    print(f"| batch scoring, in process (batch_predictions' core) | {len(raw):,} | {score_s:.2f} | "
          f"{len(raw) / score_s:,.0f} |")
    print(f"| live_performance ({len(labels):,} labels, {len(rep['rows'])} table rows) | "
          f"{len(log):,} | {perf_s:.2f} | {len(log) / perf_s:,.0f} |")


if __name__ == "__main__":
    main()
