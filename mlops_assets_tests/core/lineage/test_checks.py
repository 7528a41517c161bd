"""core.lineage.checks: the leakage scan."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlops_assets.core.lineage.checks import scan_leakage


def test_scan_leakage_counts_rows_at_or_after_the_cutoff(tmp_path: Path) -> None:
    p = tmp_path / "train.parquet"
    pd.DataFrame({"ts": pd.to_datetime(["2025-11-09 23:59:59", "2025-11-10 00:00:00",
                                        "2025-11-01 00:00:00", "2025-12-01 00:00:00"]),
                  "x": [1, 2, 3, 4]}).to_parquet(p)
    res = scan_leakage(p, "ts", "2025-11-10")
    assert res == {"rows": 4, "late": 2, "ts_max": "2025-12-01T00:00:00"}
    assert scan_leakage(p, "ts", "2025-12-02")["late"] == 0
    assert "error" in scan_leakage(p, "no_such_column", "2025-11-10")
