"""Cost of the BLAS-free multivariate signal (docs/determinism.md): the old BLAS/LAPACK
implementation (kept below, verbatim) against the current one, in the same process on the
same data, interleaved so machine load hits both sides alike.

Measured on the fraud features (the embedded generator + the contract's feature
definitions):
- the PCA step alone (`_fit_pca`: covariance, eigen-decomposition, reconstruction errors);
- the whole reference-profile build (`build_reference_profile`, what the train stage calls);
- the train stage's compute (`train_model` + profile build + permutation importance).

The budget is +10% on the profile build and on the train stage. Prints the median of
``--repeats`` runs per side and the ratio new/old.

    .venv/bin/python benchmarks/determinism_bench.py                       # 50k and 500k rows
    .venv/bin/python benchmarks/determinism_bench.py --rows 50000 --repeats 3 --train-rows 0
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.contract import load_contract
from mlops_assets.core.drift import profile as prof
from mlops_assets.core.features import build_features
from mlops_assets.core.generate import FraudScenario, generate_week
from mlops_assets.core.importance import permutation_importance_auc
from mlops_assets.core.train import TrainParams, train_model

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "mlops_assets" / "contracts" / "fraud.yaml"


# ------------------------------------------------- the old implementation (before i11)
def old_fit_pca(z: np.ndarray, names: list[str], chunk_of_row: np.ndarray | None,
                p: Mapping[str, Any], means: list[float], stds: list[float]) -> dict[str, Any]:
    """profile._fit_pca as it was: BLAS covariance, LAPACK eigh, BLAS projections."""
    fit, ev = z[0::2], z[1::2]
    cov = fit.T @ fit / max(len(fit), 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals, vecs = np.clip(vals[order], 0, None), vecs[:, order]
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    vecs = vecs * np.where(signs == 0, 1, signs)
    ratio = np.cumsum(vals) / vals.sum() if vals.sum() > 0 else np.ones_like(vals)
    q = int(min(len(names) - 1, np.searchsorted(ratio, float(p["mv_explained_variance"])) + 1))
    resid = vecs[:, q:]
    err = old_recon_errors(ev, resid)
    out: dict[str, Any] = {
        "available": True, "method": "pca_reconstruction", "columns": names,
        "mean": means, "std": stds, "residual_components": resid.T.tolist(), "n_components": q,
        "explained_variance": float(ratio[q - 1]), "n_rows": int(len(ev)),
        "error_mean": float(err.mean()), "error_std": float(err.std(ddof=1)) if len(err) > 1 else 0.0,
        "error_q95": float(np.quantile(err, 0.95)) if len(err) else 0.0,
    }
    chunks: dict[str, list] = {"rows": [], "mv": []}
    if chunk_of_row is not None:
        ev_chunks = chunk_of_row[1::2]
        for c in np.unique(ev_chunks):
            e = err[ev_chunks == c]
            if len(e) < int(p["min_chunk_rows"]) or len(err) - len(e) < int(p["min_chunk_rows"]):
                continue
            rest_mean = (err.sum() - e.sum()) / (len(err) - len(e))
            chunks["rows"].append(int(len(e)))
            chunks["mv"].append(abs(e.mean() - rest_mean) / max(out["error_mean"], 1e-12))
    out["chunks"] = chunks
    return out


def old_recon_errors(z: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """profile.recon_errors as it was (BLAS gemm + einsum)."""
    proj = resid.T @ z.T
    return np.einsum("ij,ij->j", proj, proj)


@contextlib.contextmanager
def implementation(which: str) -> Iterator[None]:
    """Run the profile build with the old or the new PCA step."""
    new = prof._fit_pca
    if which == "old":
        prof._fit_pca = old_fit_pca
    try:
        yield
    finally:
        prof._fit_pca = new


# ---------------------------------------------------------------------------- data
def fraud_features(rows: int) -> pd.DataFrame:
    """``rows`` generated transactions (16 weekly batches) with the contract's features."""
    contract = load_contract(CONTRACT)
    scenario = FraudScenario(rows_per_week=math.ceil(rows / 16), holiday_start=None)
    raw = pd.concat([generate_week(scenario, w) for w in range(16)], ignore_index=True)
    return build_features(raw.iloc[:rows].reset_index(drop=True), contract)


def _mv_inputs(feats: pd.DataFrame) -> tuple:
    """The standardised sample matrix `_fit_pca` receives inside a profile build."""
    contract = load_contract(CONTRACT)
    p = prof.resolve_params({})
    names = [f.name for f in contract.features if not f.is_categorical]
    sample = prof._sample_index(len(feats), p["mv_max_rows"])
    src = prof.FrameSource(feats)
    z = np.zeros((sample.size, len(names)), order="F")
    means, stds = [], []
    for j, n in enumerate(names):
        x = src.numeric(n)
        ok = x[np.isfinite(x)]
        means.append(float(ok.mean()))
        stds.append(float(ok.std()))
        z[:, j] = prof.standardise(x[sample], means[-1], stds[-1])
    chunks = prof.chunk_slices(len(feats), p)
    chunk_of_row = np.empty(len(feats), dtype=np.int32)
    for i, sel in enumerate(chunks):
        chunk_of_row[sel] = i
    return z, names, chunk_of_row[sample], p, means, stds


# ------------------------------------------------------------------------ measuring
def timed(fn: Callable[[], Any], repeats: int) -> dict[str, list[float]]:
    """Wall seconds of ``fn`` under each implementation, interleaved old/new."""
    out: dict[str, list[float]] = {"old": [], "new": []}
    for i in range(repeats):
        for which in (("old", "new") if i % 2 == 0 else ("new", "old")):
            with implementation(which):
                t = time.perf_counter()
                fn()
                out[which].append(time.perf_counter() - t)
    return out


def bench_rows(rows: int, repeats: int) -> list[tuple[str, dict[str, list[float]]]]:
    feats = fraud_features(rows)
    contract = load_contract(CONTRACT)
    scores = np.random.default_rng(0).random(len(feats))
    args = _mv_inputs(feats)
    return [
        (f"PCA step ({rows:,} rows)", timed(lambda: prof._fit_pca(*args), repeats)),
        (f"profile build ({rows:,} rows)", timed(
            lambda: prof.build_reference_profile(feats, contract, scores=scores, threshold=0.9),
            repeats)),
    ]


def bench_train(rows: int, repeats: int) -> tuple[str, dict[str, list[float]]]:
    feats = fraud_features(rows)
    contract = load_contract(CONTRACT)
    params = TrainParams()

    def stage() -> None:
        result = train_model(feats, contract, params)
        prof.build_reference_profile(feats, contract, scores=result.scores,
                                     threshold=result.threshold)
        permutation_importance_auc(result.pipeline, feats, contract, params.seed)

    return f"train stage compute ({rows:,} rows)", timed(stage, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="50000,500000", help="profile sizes, comma-separated")
    ap.add_argument("--train-rows", type=int, default=100000, help="0 skips the train stage")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-repeats", type=int, default=2)
    a = ap.parse_args()
    results = []
    for rows in (int(r) for r in a.rows.split(",") if r):
        results += bench_rows(rows, a.repeats)
    if a.train_rows:
        results.append(bench_train(a.train_rows, a.train_repeats))
    print(f"load average {os.getloadavg()[0]:.2f}; median of runs, seconds")
    print(f"{'measurement':<34} {'old (BLAS)':>11} {'new':>11} {'new/old':>8}")
    for name, t in results:
        old, new = statistics.median(t["old"]), statistics.median(t["new"])
        print(f"{name:<34} {old:>11.3f} {new:>11.3f} {new / old:>8.2f}")


if __name__ == "__main__":
    main()
