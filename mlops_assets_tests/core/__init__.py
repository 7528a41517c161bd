"""Tests of the functional core. Shared helpers for them live here: small frames shaped by
the fraud contract, built directly (independent of the data generator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlops_assets.core.contract import Contract, load_contract

REPO = Path(__file__).resolve().parents[2]
FRAUD_CONTRACT = REPO / "mlops_assets" / "contracts" / "fraud.yaml"


def fraud_contract() -> Contract:
    return load_contract(FRAUD_CONTRACT)


def fraud_frame(n: int = 40, *, week: int = 0, start_id: int = 0, seed: int = 0) -> pd.DataFrame:
    """`n` valid rows for the fraud contract in week `week` (from Monday 2025-09-01), with ids
    t<start_id>.., in column order, shuffled in time (so sorting is exercised)."""
    rng = np.random.default_rng(seed + 1000 * week)
    monday = pd.Timestamp("2025-09-01") + pd.Timedelta(days=7 * week)
    return pd.DataFrame({
        "transaction_id": [f"t{start_id + i:07d}" for i in range(n)],
        "ts": monday + pd.to_timedelta(rng.integers(0, 7 * 86400, n), unit="s"),
        "amount": rng.gamma(2.0, 30.0, n).round(2),
        "merchant_category": rng.choice(["grocery", "fuel", "travel", "health"], n),
        "country": rng.choice(["DE", "FR", "NL"], n),
        "channel": rng.choice(["pos", "online", "atm"], n),
        "card_age_days": rng.integers(0, 3000, n),
        "customer_tenure_days": rng.integers(0, 5000, n),
        "txn_count_24h": rng.integers(0, 30, n),
        "avg_amount_30d": rng.gamma(2.0, 30.0, n).round(2),
        "distance_from_home_km": np.where(rng.random(n) < 0.2, np.nan,
                                          rng.gamma(1.0, 15.0, n).round(3)),
        "is_fraud": (rng.random(n) < 0.1).astype("int64"),
    })


def write_csv(path: Path, df: pd.DataFrame) -> Path:
    """A CSV as an export would write it: timestamps as ISO 8601 strings."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%S")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def write_parquet(path: Path, df: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return path
