"""The drift statistics against scipy and hand-computed values (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops_assets.core.drift import stats as st


def _ref(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, c = st.unique_counts(st.clean_sorted(a))
    return u, np.cumsum(c)


def _ks(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    u, cum = _ref(a)
    d = st.ks_statistic(u, cum, st.clean_sorted(b))
    return st.ks_pvalue(d, a.size, b.size)


CASES = [  # (n1, n2, shift, rounding): exact (<= 10k) and asymptotic, equal/unequal, ties
    (5, 7, 0.0, None), (40, 40, 0.5, None), (100, 100, 0.0, 1), (300, 1000, 0.1, None),
    (1000, 700, 0.0, None), (2000, 2000, 0.05, 2), (5000, 7000, 0.03, None),
    (10000, 10000, 0.02, None), (10000, 9999, 0.0, 1), (10001, 5000, 0.05, None),
    (20000, 15000, 0.0, None), (50000, 50000, 0.01, 2), (200000, 100000, 0.01, None),
    (300000, 300000, 0.0, 3), (1000000, 1000000, 0.004, None),
]


@pytest.mark.parametrize("n1,n2,shift,rnd", CASES)
def test_ks_matches_scipy(n1: int, n2: int, shift: float, rnd: int | None) -> None:
    rng = np.random.default_rng(n1 * 7 + n2)
    a, b = rng.normal(size=n1), rng.normal(shift, 1, size=n2)
    if rnd is not None:
        a, b = np.round(a, rnd), np.round(b, rnd)
    d, p = _ks(a, b)
    ref = stats.ks_2samp(a, b)
    assert abs(d - ref.statistic) <= 1e-12
    assert abs(p - ref.pvalue) <= 1e-9


def test_ks_matches_scipy_across_the_p_value_range() -> None:
    """Shifts that put the asymptotic p-value everywhere from ~1 to ~0 (incl. the band where
    scipy sums the finite-n Smirnov series) at n = 100k."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=100_000)
    for shift in np.linspace(0, 0.04, 12):
        b = rng.normal(shift, 1, size=100_000)
        d, p = _ks(a, b)
        ref = stats.ks_2samp(a, b)
        assert abs(d - ref.statistic) <= 1e-12
        assert abs(p - ref.pvalue) <= 1e-9, (shift, p, ref.pvalue)


def test_kstwo_sf_fast_path_matches_scipy() -> None:
    from scipy.stats import distributions

    for n in (150, 1000, 10001, 123457, 500000):
        for nx2 in (2.2, 2.5, 3, 5, 8, 12, 20, 50, 200, 369):
            x = math.sqrt(nx2 / n)
            assert abs(st._kstwo_sf(x, float(n)) - distributions.kstwo.sf(x, n)) <= 1e-11


def test_ks_streaming_accumulator_is_exact() -> None:
    rng = np.random.default_rng(11)
    a = np.round(rng.normal(size=30000), 2)
    b = np.round(rng.normal(0.05, 1.1, size=25000), 2)
    u, cum = _ref(a)
    acc = st.KSAccumulator(u, cum)
    for chunk in np.array_split(b, 7):
        acc.add(st.clean_sorted(chunk))
    assert acc.statistic() == stats.ks_2samp(a, b).statistic
    w = stats.wasserstein_distance(a, b)
    assert abs(acc.wasserstein() - w) / w < 0.02  # documented approximation


@pytest.mark.parametrize("n1,n2,rnd", [(1000, 1000, None), (1000, 700, None), (999, 1500, 1),
                                       (12345, 6789, None), (50000, 30000, 2), (7, 3, None)])
def test_wasserstein_matches_scipy(n1: int, n2: int, rnd: int | None) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.lognormal(size=n1), rng.lognormal(0.1, 1, size=n2)
    if rnd is not None:
        a, b = np.round(a, rnd), np.round(b, rnd)
    got = st.wasserstein_sorted(np.sort(a), np.sort(b), block=1000)
    assert got == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_psi_hand_computed_with_empty_bins() -> None:
    ref = np.array([50, 30, 20, 0])   # shares .5 .3 .2 0
    cur = np.array([25, 25, 0, 50])   # shares .25 .25 0 .5
    total, contrib = st.psi(ref, cur, eps=1e-4)
    expected = [(0.25 - 0.5) * math.log(0.25 / 0.5),
                (0.25 - 0.3) * math.log(0.25 / 0.3),
                (1e-4 - 0.2) * math.log(1e-4 / 0.2),
                (0.5 - 1e-4) * math.log(0.5 / 1e-4)]
    assert contrib.tolist() == pytest.approx(expected, rel=1e-12)
    assert total == pytest.approx(sum(expected), rel=1e-12)
    assert total == pytest.approx(0.17329 + 0.00912 + 1.51942 + 4.25774, abs=1e-4)


def test_psi_quantile_bins_and_expected_value() -> None:
    rng = np.random.default_rng(5)
    r = np.sort(rng.normal(size=10000))
    edges = st.quantile_edges(r, 10)
    assert edges.size == 9
    np.testing.assert_allclose(edges, np.quantile(r, np.arange(1, 10) / 10), rtol=0, atol=1e-15)
    counts = st.bin_counts_sorted(r, edges)
    assert counts.tolist() == [1000] * 10
    x = rng.normal(size=5000)
    assert st.bin_counts(x, edges).tolist() == st.bin_counts_sorted(np.sort(x), edges).tolist()
    assert st.psi_expected(10, 10000, 5000) == pytest.approx(9 * (1 / 10000 + 1 / 5000))
    # few distinct values: one bin per value
    assert st.quantile_edges(np.array([0, 0, 1, 1, 1, 2.0]), 10).tolist() == [0.5, 1.5]


def test_js_chi2_bh_and_proportions_match_references() -> None:
    a, b = np.array([10, 20, 30, 0]), np.array([15, 10, 30, 5])
    assert st.js_distance(a, b) == pytest.approx(jensenshannon(a / a.sum(), b / b.sum()), rel=1e-12)
    stat, p, dof = st.chi2_test(a, b)
    ref = stats.chi2_contingency(np.vstack([a, b])[:, :], correction=False)
    assert stat == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-9)
    assert dof == 3
    ps = [0.01, 0.04, None, 0.03, 0.5]
    adj = st.bh_adjust(ps)
    assert adj[2] is None
    assert adj[0] == pytest.approx(0.04) and adj[3] == pytest.approx(0.04 * 4 / 3 * 3 / 4 * 4 / 3)
    ref_bh = stats.false_discovery_control([0.01, 0.04, 0.03, 0.5])
    assert [adj[0], adj[1], adj[3], adj[4]] == pytest.approx(list(ref_bh))
    # Cohen's w: 10% -> 15% of one category, the rest scaled
    e, c = np.array([10, 90]), np.array([15, 85])
    assert st.cohens_w(e, c) == pytest.approx(math.sqrt(0.05**2 / 0.1 + 0.05**2 / 0.9))
    assert st.two_proportion_pvalue(50, 1000, 50, 1000) == pytest.approx(1.0)


def test_chunk_threshold_scales_with_size() -> None:
    vals, sizes = [0.01, 0.012, 0.009, 0.011], [1000] * 4
    t_small = st.chunk_threshold(vals, sizes, 4000, 1000, 3.0)
    t_large = st.chunk_threshold(vals, sizes, 4000, 100000, 3.0)
    assert t_small is not None and t_large is not None and t_large < t_small
    assert st.chunk_threshold([0.1], [10], 100, 10, 3.0) is None


def test_ks_without_ties_needs_no_counts_and_matches_scipy() -> None:
    """The profile stores no counts for tie-free columns (cum None): same D, same p."""
    rng = np.random.default_rng(21)
    for n1, n2, shift in ((5000, 3000, 0.0), (200_000, 150_000, 0.01), (1_000_000, 400_000, 0.0)):
        a, b = rng.normal(size=n1), rng.normal(shift, 1, size=n2)
        u, counts = st.unique_or_none(st.clean_sorted(a))
        assert counts is None and u.size == n1
        d = st.ks_statistic(u, None, st.clean_sorted(b))
        d, p = st.ks_pvalue(d, n1, n2)
        ref = stats.ks_2samp(a, b)
        assert abs(d - ref.statistic) <= 1e-12 and abs(p - ref.pvalue) <= 1e-9
        acc = st.KSAccumulator(u, None)
        for part in np.array_split(b, 3):
            acc.add(st.clean_sorted(part))
        assert abs(acc.statistic() - ref.statistic) <= 1e-12


def test_clean_sorted_drops_non_finite_and_can_sort_in_place() -> None:
    x = np.array([np.nan, 3.0, -np.inf, -0.0, 1.0, np.inf, np.nan, 0.0, -2.0])
    s = st.clean_sorted(x)
    assert s.tolist() == [-2.0, 0.0, 0.0, 1.0, 3.0] and not np.signbit(s[s == 0]).any()
    assert np.isnan(x[0]) and x[1] == 3.0  # the input is untouched by default
    y = x.copy()
    s2 = st.clean_sorted(y, overwrite=True)
    assert s2.tolist() == s.tolist() and np.shares_memory(s2, y)
    assert st.clean_sorted(np.full(4, np.nan)).size == 0
    ro = x.copy()
    ro.flags.writeable = False  # a read-only (e.g. zero-copy Arrow) array is copied instead
    assert st.clean_sorted(ro, overwrite=True).tolist() == s.tolist()
