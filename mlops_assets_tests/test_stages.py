"""The stage functions themselves (what `dvc repro` and the Dagster assets both run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from mlops_assets.core.generate import FraudScenario, land_batches
from mlops_assets.core.ingest import landing_order, snapshot_batches
from mlops_assets.core.io import DataError
from mlops_assets.core.layout import DRIFT_JSON, SNAPSHOTS
from mlops_assets.stages import TREND_BATCHES, StageContext, drift_batches, run_stage
from mlops_assets_tests.conftest import committed_text
from mlops_assets_tests.core import fraud_frame, write_parquet

REPO = Path(__file__).resolve().parent.parent


def _land(landing: Path, week: int, name: str) -> None:
    write_parquet(landing / f"{name}.parquet", fraud_frame(20, week=week, start_id=100 * week))


def test_drift_reports_the_batch_that_landed_last_not_the_newest_dates(tmp_path: Path) -> None:
    """A late batch (older dates, landed after newer ones) is the one reported; the batches
    that landed before it are its trend, in landing order."""
    landing, store = tmp_path / "landing", tmp_path / SNAPSHOTS
    for w in (1, 2, 3):
        _land(landing, w, f"week_{w}")
    snapshot_batches(landing, store)
    _land(landing, 0, "week_0")  # the late one: the oldest dates, landed last
    snapshot_batches(landing, store)
    assert landing_order(store) == ["week_1", "week_2", "week_3", "week_0"]

    ctx = StageContext(root=tmp_path, params={})
    present = ["week_0", "week_1", "week_2", "week_3"]
    assert drift_batches(ctx, present) == ("week_0", ["week_1", "week_2", "week_3"])
    # a run for one batch partition reports on that batch, with what landed before as trend
    ctx.partition_keys = ["week_2"]
    assert drift_batches(ctx, present) == ("week_2", ["week_1"])
    ctx.partition_keys = ["week_9"]
    with pytest.raises(DataError, match="week_9"):
        drift_batches(ctx, present)


def test_changed_content_moves_a_batch_to_the_end_of_the_landing_order(tmp_path: Path) -> None:
    landing, store = tmp_path / "landing", tmp_path / SNAPSHOTS
    for w in (0, 1):
        _land(landing, w, f"week_{w}")
    snapshot_batches(landing, store)
    write_parquet(landing / "week_0.parquet", fraud_frame(21, week=0))  # a corrected batch
    snapshot_batches(landing, store)
    assert landing_order(store) == ["week_1", "week_0"]
    ctx = StageContext(root=tmp_path, params={})
    assert drift_batches(ctx, ["week_0", "week_1"])[0] == "week_0"


def test_trend_is_at_most_the_earlier_batches(tmp_path: Path) -> None:
    landing, store = tmp_path / "landing", tmp_path / SNAPSHOTS
    n = TREND_BATCHES + 3
    for w in range(n):
        _land(landing, w, f"week_{w:02d}")
    snapshot_batches(landing, store)
    current, trend = drift_batches(StageContext(root=tmp_path, params={}),
                                   [f"week_{w:02d}" for w in range(n)])
    assert current == f"week_{n - 1:02d}"
    assert trend == [f"week_{w:02d}" for w in range(n - 1 - TREND_BATCHES, n - 1)]


@pytest.mark.slow
def test_drift_stage_reports_a_late_batch_end_to_end(tmp_path: Path) -> None:
    """The real stages in-process on small generated weeks: week 0 lands after weeks 1-5."""
    root = tmp_path / "project"
    for rel in ("mlops_assets/contracts/fraud.yaml",):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, root / rel)
    (root / "params.yaml").write_text(committed_text("params.yaml"))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["sample_data"].update(generator="none", weeks=6, rows_per_week=1500)
    params["split"] = {"cutoff": "2025-09-29", "holdout_end": "2025-10-06"}
    params["train"]["max_iter"] = 30
    landing = root / params["dataset"]["landing_dir"]
    files = land_batches(FraudScenario.from_params(params["sample_data"]), tmp_path / "all")
    landing.mkdir(parents=True)
    for f in files[1:]:
        shutil.copy(f, landing / f.name)
    run_stage("snapshot", root, params=params)
    shutil.copy(files[0], landing / files[0].name)  # the late batch, with the oldest dates
    for stage in ("snapshot", "validate", "features", "split", "train", "drift"):
        run_stage(stage, root, params=params)
    report = json.loads((root / DRIFT_JSON).read_text())
    late = files[0].stem
    assert report["lineage"]["current_batch"] == late
    assert [t["batch"] for t in report["trend"]] == [f.stem for f in files[1:]]
