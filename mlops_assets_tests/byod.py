"""Bring your own data: scikit-learn's bundled breast-cancer dataset as landing batches.

`write_breast_cancer_landing(landing_dir)` writes the 569 rows as one CSV file per week
(`week_YYYY-MM-DD.csv`, timestamps as ISO 8601 strings as a CSV export would carry them) and
returns the path of its dataset contract, `mlops_assets_tests/data/breast_cancer_contract.yaml`.
Nothing is downloaded (the data ships with scikit-learn) and the output is deterministic."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.core.io import write_text_atomic
from mlops_assets.repo.params_edit import update_params_section

CONTRACT = Path(__file__).resolve().parent / "data" / "breast_cancer_contract.yaml"
COLUMNS = {  # sklearn name -> contract name
    "mean radius": "mean_radius",
    "mean texture": "mean_texture",
    "mean area": "mean_area",
    "mean smoothness": "mean_smoothness",
    "worst concave points": "worst_concave_points",
}


def breast_cancer_frame(n_batches: int = 4, start: str = "2025-01-06",
                        seed: int = 0) -> pd.DataFrame:
    """The dataset shaped like the contract, with a `week` column (the batch's Monday)."""
    from sklearn.datasets import load_breast_cancer

    if n_batches < 1:
        raise ValueError("n_batches must be at least 1")
    data = load_breast_cancer(as_frame=True)
    raw = data.frame
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(raw))
    raw = raw.iloc[order].reset_index()  # keeps the original row number in "index"
    week = np.arange(len(raw)) % n_batches
    monday = pd.Timestamp(start).normalize()
    offset = pd.to_timedelta(rng.integers(0, 7 * 86400, len(raw)), unit="s")
    ts = monday + pd.to_timedelta(week * 7, unit="D") + offset
    df = pd.DataFrame({
        "sample_id": [f"bc-{i:04d}" for i in raw["index"]],
        "ts": ts,
        **{new: raw[old].astype("float64") for old, new in COLUMNS.items()},
        # sklearn's target is 0 = malignant, 1 = benign
        "malignant": (raw["target"] == 0).astype("int64"),
    })
    df["week"] = (monday + pd.to_timedelta(week * 7, unit="D")).strftime("%Y-%m-%d")
    return df.sort_values(["ts", "sample_id"], kind="mergesort").reset_index(drop=True)


def write_breast_cancer_landing(landing_dir: str | os.PathLike[str], n_batches: int = 4, *,
                                start: str = "2025-01-06", seed: int = 0) -> Path:
    """Write `n_batches` weekly CSV files into `landing_dir`; return the contract path."""
    landing = Path(landing_dir)
    landing.mkdir(parents=True, exist_ok=True)
    df = breast_cancer_frame(n_batches, start, seed)
    for week, part in df.groupby("week", sort=True):
        out = part.drop(columns=["week"]).copy()
        out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S")
        write_text_atomic(landing / f"week_{week}.csv", out.to_csv(index=False))
    return CONTRACT


def use_breast_cancer_project(root: Path, n_batches: int = 6) -> None:
    """Turn a project copy into a bring-your-own-data project: the batches in its landing
    area, the contract beside params.yaml, the generator off and a split inside the data."""
    contract = write_breast_cancer_landing(root / "data/landing", n_batches=n_batches)
    shutil.copy(contract, root / "byod_contract.yaml")
    update_params_section(root / "params.yaml", "dataset", {"contract": "byod_contract.yaml"})
    update_params_section(root / "params.yaml", "sample_data", {"generator": "none"})
    update_params_section(root / "params.yaml", "split",
                          {"cutoff": "2025-02-03", "holdout_end": "2025-02-17"})
