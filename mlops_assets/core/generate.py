"""Seeded generator of weekly card-transaction batches for the embedded fraud use case.

The rows match `mlops_assets/contracts/fraud.yaml` column for column (names, order, dtypes,
ranges, categories). Each week is drawn from its own generator,
``np.random.default_rng([seed, week_index])``, so a week does not depend on how many weeks
come before it, and the same parameters give the same rows (and the same Parquet bytes) in
any process.

Normal weeks. Legitimate spend follows each card's 30-day average amount, mostly at
point-of-sale terminals, in the day and evening, near home. Fraud ("stolen card") leans
towards: an amount far above the card's 30-day average, card-not-present (online), a new
card, far from home, night hours, a burst of transactions in the last 24 hours and
electronics/travel/online merchants. Each fraud row has each trait only with some
probability, and legitimate rows have them too at a lower rate, so the label is learnable
but noisy (ROC AUC about 0.9, not 1.0).

Holiday weeks (weeks starting on/after ``holiday_start``) reproduce the incident the
platform exists to catch:
  * legitimate amounts rise (x ``holiday_amount_shift``) while the trailing 30-day average
    only partly follows, so ``amount / avg_amount_30d`` rises for honest customers;
  * more shopping is online (``holiday_online_share``), and a share of it happens at night
    (midnight deals);
  * new merchant categories appear (``holiday_new_categories``, not in the contract's list;
    the contract has ``strict: false`` there so they are warnings, not failures);
  * newly issued cards (gift/seasonal cards, ``holiday_new_card_share``) shop at once, with
    almost no spend history;
  * a new fraud pattern appears (``holiday_fraud_pattern: card_testing``): bursts of tiny
    online payments at the new merchants with a very high 24-hour count, which a model
    trained before the holidays has never seen.
A model trained on the normal weeks sees its false-positive rate at the operating threshold
rise several-fold on holiday weeks (`benchmarks/holiday_fpr.py` measures it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.core.io import DataError, write_bytes_atomic, write_parquet_atomic

# The contract's categories, in the contract's order.
MERCHANT_CATEGORIES = ("grocery", "restaurants", "fuel", "travel", "electronics", "apparel",
                       "entertainment", "health", "utilities", "online_services")
COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "US", "PL", "SE", "other")
CHANNELS = ("pos", "online", "atm")
COLUMNS = ("transaction_id", "ts", "amount", "merchant_category", "country", "channel",
           "card_age_days", "customer_tenure_days", "txn_count_24h", "avg_amount_30d",
           "distance_from_home_km", "is_fraud")
FRAUD_PATTERNS = ("card_testing", "none")

# Legitimate and fraudulent merchant mixes, and each category's typical ticket relative to
# the card's 30-day average.
_LEGIT_CAT_P = np.array([0.24, 0.15, 0.10, 0.04, 0.04, 0.08, 0.07, 0.06, 0.08, 0.14])
_FRAUD_CAT_P = np.array([0.07, 0.05, 0.04, 0.14, 0.24, 0.12, 0.07, 0.03, 0.02, 0.22])
_CAT_AMOUNT = np.array([0.8, 0.9, 1.0, 3.0, 2.5, 1.3, 0.9, 0.8, 1.5, 0.6])
# Ticket multipliers of the holiday categories, in `holiday_new_categories` order (cycled).
_NEW_CAT_AMOUNT = np.array([1.6, 3.5, 1.3])
_LEGIT_COUNTRY_P = np.array([0.36, 0.14, 0.10, 0.08, 0.08, 0.08, 0.04, 0.05, 0.04, 0.03])
_FRAUD_COUNTRY_P = np.array([0.22, 0.08, 0.10, 0.05, 0.05, 0.06, 0.17, 0.06, 0.03, 0.18])
# Hour-of-day profile of legitimate card use (sums to 1 after normalising).
_LEGIT_HOUR_W = np.array([0.6, 0.3, 0.2, 0.15, 0.15, 0.3, 1.0, 2.2, 3.5, 4.2, 4.6, 5.2,
                          6.0, 5.6, 5.0, 4.9, 5.1, 5.8, 6.3, 5.9, 4.8, 3.6, 2.2, 1.2])
_LEGIT_HOUR_P = _LEGIT_HOUR_W / _LEGIT_HOUR_W.sum()
_ATM_SHARE = 0.04
# Stolen-card fraud: the probability that a fraud row shows each trait (noisy on purpose).
_FRAUD_TRAITS = {"high_amount": 0.4, "online": 0.45, "new_card": 0.2, "far": 0.25,
                 "night": 0.25, "burst": 0.3}
_FRAUD_HIGH_RATIO = 3.0        # median amount / 30-day average of a high-amount fraud
_LEGIT_AMOUNT_SIGMA = 0.55     # spread of a legitimate amount around the card's average
_HOLIDAY_AVG_FOLLOW = 0.25     # how much of the holiday amount shift the 30-day average shows
_HOLIDAY_NIGHT_SHARE = 0.15    # share of holiday online legit spend at 22:00-02:59
_HOLIDAY_EXTRA_TXN = 0.6       # extra card transactions per day in holiday weeks (Poisson mean)


@dataclass(frozen=True)
class FraudScenario:
    """Every knob of the generator. `from_params` reads params.yaml's ``sample_data``."""

    seed: int = 42
    start: dt.date = dt.date(2025, 9, 1)
    weeks: int = 16
    rows_per_week: int = 12500
    fraud_rate: float = 0.015
    holiday_start: dt.date | None = dt.date(2025, 11, 24)   # None: no holiday weeks
    holiday_amount_shift: float = 1.6
    online_share: float = 0.22
    holiday_online_share: float = 0.45
    holiday_new_categories: tuple[str, ...] = ("gift_cards", "luxury_goods", "toys")
    holiday_new_category_share: float = 0.18
    holiday_new_card_share: float = 0.06
    holiday_fraud_pattern: str = "card_testing"
    holiday_fraud_pattern_share: float = 0.5
    distance_null_rate: float = 0.03

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> DataError:
            return DataError(f"sample_data.{name} = {getattr(self, name)!r} is invalid",
                             expected=expected)

        if self.weeks < 1:
            raise bad("weeks", "an integer >= 1")
        if self.rows_per_week < 1:
            raise bad("rows_per_week", "an integer >= 1")
        if not 0.0 < self.fraud_rate < 0.5:
            raise bad("fraud_rate", "0 < fraud_rate < 0.5")
        if not self.holiday_amount_shift > 0:
            raise bad("holiday_amount_shift", "a positive factor")
        for name in ("online_share", "holiday_online_share"):   # the rest is pos + atm
            if not 0.0 <= getattr(self, name) <= 1.0 - _ATM_SHARE:
                raise bad(name, f"a share between 0 and {1.0 - _ATM_SHARE}")
        for name in ("holiday_new_category_share", "holiday_new_card_share",
                     "holiday_fraud_pattern_share", "distance_null_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(name, "a share between 0 and 1")
        if self.holiday_fraud_pattern not in FRAUD_PATTERNS:
            raise bad("holiday_fraud_pattern", " | ".join(FRAUD_PATTERNS))
        clash = set(self.holiday_new_categories) & set(MERCHANT_CATEGORIES)
        if clash:
            raise bad("holiday_new_categories", f"categories not already in the contract ({clash})")
        if self.holiday_new_category_share > 0 and not self.holiday_new_categories:
            raise bad("holiday_new_categories", "at least one category when the share is > 0")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> FraudScenario:
        """Build from params.yaml (the whole mapping, or just its ``sample_data`` section).

        Unknown keys are an error (a typo must not silently fall back to a default); the
        ``generator`` key is accepted and ignored."""
        section = params.get("sample_data", params)
        if not isinstance(section, dict):
            raise DataError("params sample_data must be a mapping", expected="generator knobs")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known - {"generator"})
        if unknown:
            raise DataError(f"unknown sample_data keys {unknown}",
                            expected=f"some of {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for key, value in section.items():
            if key == "generator":
                continue
            if key in ("start", "holiday_start"):
                value = None if value is None and key == "holiday_start" else _as_date(key, value)
            elif key in ("seed", "weeks", "rows_per_week"):
                value = _as_int(key, value)
            elif key == "holiday_new_categories":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, (list, tuple, type(None))):
                    raise DataError(f"sample_data.{key} = {value!r} is not a list",
                                    expected="a list of category names")
                value = tuple(str(v) for v in (value or ()))
            elif key == "holiday_fraud_pattern":
                value = "none" if value is None else str(value)
            else:
                value = _as_float(key, value)
            kwargs[key] = value
        return cls(**kwargs)

    def week_start(self, week_index: int) -> dt.date:
        return self.start + dt.timedelta(days=7 * week_index)

    def is_holiday_week(self, week_index: int) -> bool:
        return self.holiday_start is not None and self.week_start(week_index) >= self.holiday_start

    def file_name(self, week_index: int) -> str:
        return f"week_{self.week_start(week_index).isoformat()}.parquet"


def generate_week(scenario: FraudScenario, week_index: int) -> pd.DataFrame:
    """The rows of week `week_index` (0-based), sorted by (ts, transaction_id).

    Ids are ``tx-<week start>-<n>`` (unique across weeks); ts lies in
    [week start, week start + 7 days)."""
    if week_index < 0:
        raise ValueError(f"week_index must be >= 0, got {week_index}")
    rng = np.random.default_rng([scenario.seed, week_index])
    holiday = scenario.is_holiday_week(week_index)
    n = scenario.rows_per_week
    n_fraud = int(rng.binomial(n, scenario.fraud_rate))
    n_pattern = 0
    if holiday and scenario.holiday_fraud_pattern == "card_testing":
        n_pattern = int(rng.binomial(n_fraud, scenario.holiday_fraud_pattern_share))
    blocks = [
        _legit(rng, n - n_fraud, scenario, holiday),
        _stolen_card_fraud(rng, n_fraud - n_pattern, scenario, holiday),
        _card_testing_fraud(rng, n_pattern, scenario),
    ]
    cols = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}

    order = np.argsort(cols["seconds"], kind="stable")
    cols = {k: v[order] for k, v in cols.items()}
    start_ns = np.datetime64(scenario.week_start(week_index).isoformat(), "ns")
    ts = start_ns + cols["seconds"].astype("timedelta64[s]").astype("timedelta64[ns]")
    width = max(6, len(str(n)))
    prefix = f"tx-{scenario.week_start(week_index).isoformat()}-"
    ids = np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)

    distance = cols["distance"]
    distance[rng.random(n) < scenario.distance_null_rate] = np.nan
    cat_names = np.array(MERCHANT_CATEGORIES + scenario.holiday_new_categories, dtype=object)
    return pd.DataFrame({
        "transaction_id": ids,
        "ts": ts,
        "amount": np.round(np.clip(cols["amount"], 0.01, 50_000.0), 2),
        "merchant_category": cat_names[cols["category"]],
        "country": np.array(COUNTRIES, dtype=object)[cols["country"]],
        "channel": np.array(CHANNELS, dtype=object)[cols["channel"]],
        # a card is never older than the customer relationship
        "card_age_days": np.clip(np.minimum(cols["card_age"], cols["tenure"]), 0, 20_000)
        .astype(np.int64),
        "customer_tenure_days": np.clip(cols["tenure"], 0, 40_000).astype(np.int64),
        "txn_count_24h": np.clip(cols["txn_count"], 0, 1000).astype(np.int64),
        "avg_amount_30d": np.round(np.clip(cols["avg_amount"], 0.0, 50_000.0), 2),
        "distance_from_home_km": np.round(np.clip(distance, 0.0, 20_000.0), 1),
        "is_fraud": cols["is_fraud"].astype(np.int64),
    }, columns=list(COLUMNS))


def land_batches(scenario: FraudScenario, landing_dir: str | Path) -> list[Path]:
    """Write one Parquet per week, ``week_YYYY-MM-DD.parquet``, atomically.

    A file that already holds exactly these bytes is left untouched (mtime included); a file
    with other bytes is replaced atomically. Other files in `landing_dir` are never touched.
    Returns the paths of every week, in week order."""
    landing_dir = Path(landing_dir)
    landing_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for week in range(scenario.weeks):
        dest = landing_dir / scenario.file_name(week)
        df = generate_week(scenario, week)
        if not dest.exists():
            write_parquet_atomic(dest, df)
        else:
            data = parquet_bytes(df)
            if dest.read_bytes() != data:
                write_bytes_atomic(dest, data)
        paths.append(dest)
    return paths


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """The exact bytes `write_parquet_atomic` writes for `df`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlops-assets-") as tmp:
        path = write_parquet_atomic(Path(tmp) / "batch.parquet", df)
        return path.read_bytes()


# --------------------------------------------------------------------------- row blocks


def _cards(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Cardholder attributes shared by legitimate and stolen-card rows."""
    tenure = np.floor(rng.gamma(2.0, 900.0, n)) + 30
    card_age = np.minimum(tenure, np.floor(rng.exponential(750.0, n)))
    avg = rng.lognormal(np.log(45.0), 0.6, n)
    return {"tenure": tenure, "card_age": card_age, "avg_amount": avg}


def _channel(rng: np.random.Generator, n: int, p_online: np.ndarray | float) -> np.ndarray:
    u = rng.random(n)
    return np.where(u < p_online, 1, np.where(u > 1.0 - _ATM_SHARE, 2, 0))


def _seconds(rng: np.random.Generator, hours: np.ndarray) -> np.ndarray:
    day = rng.integers(0, 7, len(hours))
    return day * 86_400 + hours * 3_600 + rng.integers(0, 3_600, len(hours))


def _legit(rng: np.random.Generator, n: int, s: FraudScenario, holiday: bool) -> dict:
    c = _cards(rng, n)
    cat = rng.choice(len(MERCHANT_CATEGORIES), n, p=_LEGIT_CAT_P)
    cat_amount = _CAT_AMOUNT[cat]
    if holiday and s.holiday_new_category_share > 0:
        new = rng.random(n) < s.holiday_new_category_share
        k = len(s.holiday_new_categories)
        new_idx = rng.integers(0, k, n)
        cat = np.where(new, len(MERCHANT_CATEGORIES) + new_idx, cat)
        cat_amount = np.where(new, _NEW_CAT_AMOUNT[new_idx % len(_NEW_CAT_AMOUNT)], cat_amount)
    online_share = s.holiday_online_share if holiday else s.online_share
    p_online = np.where(cat == MERCHANT_CATEGORIES.index("online_services"), 0.9, online_share)
    channel = _channel(rng, n, p_online)
    amount = c["avg_amount"] * cat_amount * rng.lognormal(0.0, _LEGIT_AMOUNT_SIGMA, n)
    hours = rng.choice(24, n, p=_LEGIT_HOUR_P)
    txn_count = rng.poisson(1.8, n)
    distance = np.where(cat == MERCHANT_CATEGORIES.index("travel"),
                        rng.lognormal(np.log(350.0), 1.2, n), rng.lognormal(np.log(6.0), 1.0, n))
    if holiday:
        amount = amount * s.holiday_amount_shift
        c["avg_amount"] = c["avg_amount"] * (1.0 + (s.holiday_amount_shift - 1.0)
                                             * _HOLIDAY_AVG_FOLLOW)
        txn_count = txn_count + rng.poisson(_HOLIDAY_EXTRA_TXN, n)
        night = (channel == 1) & (rng.random(n) < _HOLIDAY_NIGHT_SHARE)
        hours = np.where(night, (22 + rng.integers(0, 5, n)) % 24, hours)
        # Newly issued (gift / seasonal) cards: days old, almost no spend history yet.
        new_card = rng.random(n) < s.holiday_new_card_share
        c["card_age"] = np.where(new_card, rng.integers(0, 21, n), c["card_age"])
        c["avg_amount"] = np.where(new_card, c["avg_amount"] * rng.uniform(0.15, 0.6, n),
                                   c["avg_amount"])
    return {
        "seconds": _seconds(rng, hours),
        "amount": amount,
        "category": cat,
        "country": rng.choice(len(COUNTRIES), n, p=_LEGIT_COUNTRY_P),
        "channel": channel,
        "card_age": c["card_age"],
        "tenure": c["tenure"],
        "txn_count": txn_count,
        "avg_amount": c["avg_amount"],
        "distance": distance,
        "is_fraud": np.zeros(n, dtype=np.int64),
    }


def _stolen_card_fraud(rng: np.random.Generator, n: int, s: FraudScenario, holiday: bool) -> dict:
    """The fraud of normal weeks: each trait present with some probability (noisy on purpose)."""
    c = _cards(rng, n)
    cat = rng.choice(len(MERCHANT_CATEGORIES), n, p=_FRAUD_CAT_P)
    t = _FRAUD_TRAITS
    high = rng.random(n) < t["high_amount"]
    ratio = np.where(high, rng.lognormal(np.log(_FRAUD_HIGH_RATIO), 0.7, n),
                     rng.lognormal(0.0, _LEGIT_AMOUNT_SIGMA, n))
    amount = c["avg_amount"] * _CAT_AMOUNT[cat] * ratio
    if holiday:   # fraudsters follow the season's ticket sizes too
        amount = amount * s.holiday_amount_shift
    channel = _channel(rng, n, t["online"])
    new_card = rng.random(n) < t["new_card"]
    card_age = np.where(new_card, np.floor(rng.exponential(40.0, n)), c["card_age"])
    far = rng.random(n) < t["far"]
    distance = np.where(far, rng.lognormal(np.log(800.0), 1.0, n),
                        rng.lognormal(np.log(8.0), 1.1, n))
    night = rng.random(n) < t["night"]
    hours = np.where(night, rng.integers(0, 6, n), rng.choice(24, n, p=_LEGIT_HOUR_P))
    txn_count = rng.poisson(1.8, n) + np.where(rng.random(n) < t["burst"],
                                                 rng.poisson(4.0, n), 0)
    return {
        "seconds": _seconds(rng, hours),
        "amount": amount,
        "category": cat,
        "country": rng.choice(len(COUNTRIES), n, p=_FRAUD_COUNTRY_P),
        "channel": channel,
        "card_age": card_age,
        "tenure": c["tenure"],
        "txn_count": txn_count,
        "avg_amount": c["avg_amount"],
        "distance": distance,
        "is_fraud": np.ones(n, dtype=np.int64),
    }


def _card_testing_fraud(rng: np.random.Generator, n: int, s: FraudScenario) -> dict:
    """The holiday pattern, card testing: bots push many stolen card numbers through tiny
    online payments at the new (gift card / toy / luxury) merchants, round the clock. Each
    card is tested once or twice, so per-card velocity stays low; nothing like the stolen-card
    fraud of the normal weeks (big amounts, bursts, new cards), so a model trained before the
    holidays scores it as legitimate."""
    c = _cards(rng, n)
    k = len(s.holiday_new_categories)
    if k:
        cat = len(MERCHANT_CATEGORIES) + rng.integers(0, k, n)
    else:
        cat = np.full(n, MERCHANT_CATEGORIES.index("online_services"))
    return {
        "seconds": _seconds(rng, rng.integers(0, 24, n)),
        "amount": rng.uniform(0.5, 4.0, n),
        "category": cat,
        "country": rng.choice(len(COUNTRIES), n, p=_LEGIT_COUNTRY_P),
        "channel": np.ones(n, dtype=np.int64),
        "card_age": c["card_age"],
        "tenure": c["tenure"],
        "txn_count": 1 + rng.poisson(1.0, n),
        "avg_amount": c["avg_amount"],
        "distance": rng.lognormal(np.log(6.0), 1.0, n),
        "is_fraud": np.ones(n, dtype=np.int64),
    }


# --------------------------------------------------------------------------- params parsing


def _as_date(key: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise DataError(f"sample_data.{key} = {value!r} is not a date",
                        expected="YYYY-MM-DD") from None


def _as_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise DataError(f"sample_data.{key} = {value!r} is not an integer", expected="an integer")
    return int(value)


def _as_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DataError(f"sample_data.{key} = {value!r} is not a number", expected="a number")
    return float(value)
