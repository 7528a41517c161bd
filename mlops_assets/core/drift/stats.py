"""Drift statistics on plain numpy arrays (no pandas, no Dagster).

The reference side of every numeric statistic is given as *sorted unique values* ``u`` with
*cumulative counts* ``cum`` (``cum[j]`` = number of reference values <= ``u[j]``). That is
what the reference profile stores, so a report never re-sorts the reference. The current
side is a sorted array ``s`` (NaN removed).

Exactness:
- ``ks_statistic`` returns the same float as ``scipy.stats.ks_2samp`` (it evaluates the
  same integer pairs ``cnt_ref/n1 - cnt_cur/n2``), found by branch-and-bound over the
  reference grid instead of a full merge; ``ks_pvalue`` calls scipy's own exact routine
  and ``kstwo`` distribution exactly as ``ks_2samp(method='auto')`` does.
- ``wasserstein_sorted`` is the exact 1-Wasserstein distance (integral of the absolute
  difference of the quantile functions over the merged probability grid).
- ``KSAccumulator`` streams current chunks against the reference: the KS D is still exact
  (it accumulates counts at every reference value); its Wasserstein is a documented
  approximation (see docs/drift.md).

Determinism (docs/determinism.md): nothing here calls BLAS. Dot products and the sums that
feed the multivariate signal use ``linalg.fixed_sum``, a pairwise sum whose order is fixed by the
array's length alone, so the bits do not depend on the CPU kernel, the thread count or the
memory layout.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy.stats import chi2 as _chi2
from scipy.stats import distributions, norm

from mlops_assets.core.drift.linalg import fixed_dot

try:  # scipy's own exact two-sample KS routine (the one ks_2samp calls)
    from scipy.stats._stats_py import _attempt_exact_2kssamp as _scipy_exact_2kssamp
except ImportError:  # pragma: no cover - scipy moved it; fall back to the asymptotic form
    _scipy_exact_2kssamp = None

TINY_P = 1e-12  # below this a KS p-value is reported from the asymptotic distribution
MAX_AUTO_N = 10000  # scipy's ks_2samp: exact p-value when both samples have <= this many rows
_BNB_FANOUT = 64  # branch-and-bound: sub-cells per refined cell
_BNB_LEAF = 256  # cells this small are evaluated in full


def unique_counts(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values and their counts, from an already sorted array."""
    s = np.asarray(sorted_values, dtype=np.float64)
    if s.size == 0:
        return s, np.zeros(0, dtype=np.int64)
    change = s[1:] != s[:-1]
    if change.all():  # no ties (continuous data): every count is 1
        return s, np.ones(s.size, dtype=np.int64)
    starts = np.empty(int(change.sum()) + 1, dtype=np.int64)
    starts[0] = 0
    starts[1:] = np.flatnonzero(change) + 1
    counts = np.empty_like(starts)
    counts[:-1] = starts[1:] - starts[:-1]
    counts[-1] = s.size - starts[-1]
    return s[starts], counts


def unique_or_none(s: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``unique_counts`` without the all-ones array when there are no ties (the usual case
    for continuous data): returns (s, None) then, so no copy and no counts are allocated."""
    if s.size < 2 or bool(np.all(s[1:] != s[:-1])):
        return s, None
    return unique_counts(s)


def clean_sorted(values: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Finite values only, as float64, sorted; -0.0 becomes 0.0 (they compare equal).

    One sort of a copy (or, with ``overwrite`` and a writable float64 array, of the array
    itself): NaN sorts last and -inf/+inf to the ends, so the finite values are a
    contiguous slice found by two binary searches (no mask, no second copy)."""
    x = np.asarray(values, dtype=np.float64)
    if overwrite and x.flags.writeable and x.flags.c_contiguous:
        x.sort()
        s = x
    else:
        s = np.sort(x)
    lo = int(np.searchsorted(s, -np.inf, side="right"))
    hi = int(np.searchsorted(s, np.inf, side="left"))  # numpy orders NaN after +inf
    s = s[lo:hi]
    if s.size < (x.size >> 1):  # mostly missing: do not keep the large buffer alive
        s = s.copy()
    np.add(s, 0.0, out=s)
    return s


def _cum_at(cum: np.ndarray | None, idx: np.ndarray) -> np.ndarray:
    """cum[idx], where cum None means no ties (cum[j] = j + 1)."""
    return idx + 1 if cum is None else cum[idx]


# --------------------------------------------------------------------------------- KS
def _pair_diffs(cum: np.ndarray, n1: int, n2: int, idx: np.ndarray, pos_r: np.ndarray,
                pos_l: np.ndarray) -> float:
    """max |F_ref - F_cur| over the candidate pairs at reference indices ``idx``.

    At u[j]: (cum[j], #cur <= u[j]); just below u[j]: (cum[j-1], #cur < u[j])."""
    if idx.size == 0:
        return 0.0
    if cum is None:
        c_at, c_before = idx + 1, idx
    else:
        c_at = cum[idx]
        c_before = np.where(idx > 0, cum[np.maximum(idx - 1, 0)], 0)
    d1 = np.abs(c_at / n1 - pos_r / n2)
    d2 = np.abs(c_before / n1 - pos_l / n2)
    return float(max(d1.max(), d2.max()))


def ks_statistic(u: np.ndarray, cum: np.ndarray | None, s: np.ndarray) -> float:
    """The two-sample KS D between a reference (unique values ``u``, cumulative counts
    ``cum``, or None when there are no ties) and a sorted current sample ``s``;
    bit-identical to scipy's ks_2samp.

    Branch and bound: both ECDFs are monotone, so inside a cell of the reference grid
    |F_ref - F_cur| is bounded by the cell's corner values; only cells whose bound beats
    the best exact value so far are refined. Typically a few percent of the reference
    values are ever searched."""
    k, n2 = u.size, s.size
    if k == 0 or n2 == 0:
        raise ValueError("KS needs non-empty samples")
    n1 = k if cum is None else int(cum[-1])

    def exact(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vals = u[idx]
        return np.searchsorted(s, vals, side="right"), np.searchsorted(s, vals, side="left")

    if k <= 4 * _BNB_LEAF:
        idx = np.arange(k)
        pr, pl = exact(idx)
        return _pair_diffs(cum, n1, n2, idx, pr, pl)
    grid = np.linspace(0, k - 1, min(k, 4096)).astype(np.int64)
    if np.any(grid[1:] <= grid[:-1]):  # spacing >= 1, so only rounding could repeat one
        grid = np.unique(grid)
    pr, pl = exact(grid)
    best = _pair_diffs(cum, n1, n2, grid, pr, pl)
    lo, hi = grid[:-1], grid[1:]
    lo_pr, hi_pl = pr[:-1], pl[1:]
    while lo.size:
        # interior j in (lo, hi): cum in [cum[lo], cum[hi]], positions in [pr[lo], pl[hi]]
        ub = np.maximum(_cum_at(cum, hi) / n1 - lo_pr / n2, hi_pl / n2 - _cum_at(cum, lo) / n1)
        keep = (ub > best) & (hi - lo > 1)
        lo, hi, lo_pr, hi_pl = lo[keep], hi[keep], lo_pr[keep], hi_pl[keep]
        if not lo.size:
            break
        width = hi - lo
        leaf = width <= _BNB_LEAF
        if leaf.any():
            idx = _ranges(lo[leaf] + 1, hi[leaf])
            r, l_ = exact(idx)
            best = max(best, _pair_diffs(cum, n1, n2, idx, r, l_))
        lo, hi, lo_pr, hi_pl = lo[~leaf], hi[~leaf], lo_pr[~leaf], hi_pl[~leaf]
        if not lo.size:
            break
        # split each remaining cell into _BNB_FANOUT sub-cells
        steps = np.arange(_BNB_FANOUT + 1)
        pts = lo[:, None] + (width[~leaf][:, None] * steps[None, :]) // _BNB_FANOUT
        inner = pts[:, 1:-1].ravel()
        r, l_ = exact(inner)
        best = max(best, _pair_diffs(cum, n1, n2, inner, r, l_))
        r = r.reshape(len(lo), _BNB_FANOUT - 1)
        l_ = l_.reshape(len(lo), _BNB_FANOUT - 1)
        all_pr = np.concatenate([lo_pr[:, None], r], axis=1)
        all_pl = np.concatenate([l_, hi_pl[:, None]], axis=1)
        lo, hi = pts[:, :-1].ravel(), pts[:, 1:].ravel()
        lo_pr, hi_pl = all_pr.ravel(), all_pl.ravel()
        nonempty = hi > lo
        lo, hi, lo_pr, hi_pl = lo[nonempty], hi[nonempty], lo_pr[nonempty], hi_pl[nonempty]
    return best


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of arange(starts[i], stops[i]) without a Python loop."""
    lens = np.maximum(stops - starts, 0)
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens)
    return np.arange(total, dtype=np.int64) + offsets


def ks_pvalue(d: float, n1: int, n2: int) -> tuple[float, float]:
    """(statistic, p-value) exactly as ``scipy.stats.ks_2samp(method='auto')`` computes them
    from D: exact when both samples have <= 10,000 values (scipy then reports D rounded to
    the lattice h/lcm), else the asymptotic ``kstwo`` distribution at round(n1*n2/(n1+n2))."""
    g = math.gcd(n1, n2)
    mode = "exact" if max(n1, n2) <= MAX_AUTO_N else "asymp"
    prob = np.nan
    if mode == "exact":
        if _scipy_exact_2kssamp is None:
            mode = "asymp"
        else:
            success, d, prob = _scipy_exact_2kssamp(n1, n2, g, d, "two-sided")
            if not success:
                mode = "asymp"
    if mode == "asymp":
        m, n = sorted([float(n1), float(n2)], reverse=True)
        en = np.round(m * n / (m + n))
        if 2.0 * math.exp(-2.0 * en * d * d) < TINY_P:
            # Deep in the tail scipy's finite-n series (smirnov) takes ~0.3 s per call at
            # n = 500k. The DKW-Massart bound puts scipy's value below TINY_P, so the limiting
            # Kolmogorov value is within TINY_P of it (absolute).
            prob = min(distributions.kstwobign.sf(d * math.sqrt(en)), TINY_P)
        else:
            prob = _kstwo_sf(d, en)
    return float(d), float(np.clip(prob, 0, 1))


def _kstwo_sf(x: float, n: float) -> float:
    """scipy's ``kstwo.sf(x, n)``. Where scipy evaluates 2 * smirnov(n, x) by its exact
    finite sum (2.2 <= n x^2 < 370, 140 < n <= 500,000), that sum is slow (~0.4 s at
    n = 500k); the same Birnbaum-Tingey sum is computed here in numpy from exact log
    increments, matching scipy to ~1e-12 absolute (checked in the tests)."""
    nx2 = n * x * x
    if 140 < n <= 500000 and 0 < x < 0.5 and 1 < n * x < n - 1 and 2.2 <= nx2 < 370:
        v = _smirnov_sum(int(n), float(x))
        if math.isfinite(v):
            return min(max(2.0 * v, 0.0), 1.0)
    return float(distributions.kstwo.sf(x, n))


def _smirnov_sum(n: int, e: float, block: int = 1 << 16) -> float:
    """P(D_n^+ >= e) = e * sum_j C(n, j) (1 - e - j/n)^(n-j) (e + j/n)^(j-1), j <= n(1-e),
    with each log-term built from the previous one by an increment computed with log1p,
    stopped once the (log-concave) terms fall 60 nats below their peak."""
    last = int(math.floor(n * (1 - e)))
    cur = n * math.log1p(-e) - math.log(e)  # the j = 0 term
    ref, acc, start = -math.inf, 0.0, 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        while start <= last:
            stop = min(last, start + block)
            j = np.arange(start, stop, dtype=np.float64)
            a = 1 - e - j / n
            b = e + j / n
            inc = (np.log((n - j) / (j + 1)) + (n - j - 1) * np.log1p(-1.0 / (n * a))
                   - np.log(a) + j * np.log1p(1.0 / (n * b)) + np.log(b))
            logs = np.empty(stop - start + 1)
            logs[0] = cur
            np.cumsum(inc, out=logs[1:])
            logs[1:] += cur
            seg = logs if stop == last else logs[:-1]
            seg = seg[np.isfinite(seg)]
            if seg.size:
                m = float(seg.max())
                if m > ref:
                    acc = acc * math.exp(ref - m) if acc else 0.0
                    ref = m
                acc += float(np.exp(seg - ref).sum())
                if m < ref - 60 and inc.size and inc[-1] < 0:
                    break
            if stop == last:
                break
            cur = float(logs[-1])
            start = stop
    return e * math.exp(ref) * acc if acc else 0.0


class KSAccumulator:
    """Streams sorted current chunks against a reference: exact KS D and exact bin counts,
    with memory O(reference unique values), whatever the size of the current batch.

    Wasserstein in streaming mode integrates |F_ref - F_cur| on the reference grid with
    F_cur between two adjacent reference values taken as the mean of its two ends; the
    parts below the reference minimum and above its maximum are exact."""

    def __init__(self, u: np.ndarray, cum: np.ndarray | None) -> None:
        self.u, self.cum = u, cum
        self.n1 = u.size if cum is None else int(cum[-1])
        self.pos_r = np.zeros(u.size, dtype=np.int64)
        self.pos_l = np.zeros(u.size, dtype=np.int64)
        self.n = 0
        self.below_sum = 0.0  # sum of (u[0] - x) for current x < u[0]
        self.above_sum = 0.0  # sum of (x - u[-1]) for current x > u[-1]

    def add(self, s: np.ndarray) -> None:
        if s.size == 0:
            return
        self.pos_r += np.searchsorted(s, self.u, side="right")
        self.pos_l += np.searchsorted(s, self.u, side="left")
        lo = int(np.searchsorted(s, self.u[0], side="left"))
        hi = int(np.searchsorted(s, self.u[-1], side="right"))
        self.below_sum += float(np.sum(self.u[0] - s[:lo]))
        self.above_sum += float(np.sum(s[hi:] - self.u[-1]))
        self.n += s.size

    def statistic(self) -> float:
        return _pair_diffs(self.cum, self.n1, self.n, np.arange(self.u.size), self.pos_r, self.pos_l)

    def wasserstein(self) -> float:
        n1, n2 = float(self.n1), float(self.n)
        f_ref = (np.arange(1, self.u.size) if self.cum is None else self.cum[:-1]) / n1
        f_cur = (self.pos_r[:-1] + self.pos_l[1:]) / (2.0 * n2)
        inner = fixed_dot(np.abs(f_ref - f_cur), np.diff(self.u))
        return inner + (self.below_sum + self.above_sum) / n2


# ------------------------------------------------------------------------ Wasserstein
def wasserstein_sorted(r: np.ndarray, s: np.ndarray, block: int = 1 << 21) -> float:
    """Exact 1-Wasserstein distance between two sorted samples.

    W1 = integral over p of |Q_r(p) - Q_s(p)|. The quantile functions are step functions on
    the grids i/n1 and j/n2; in units of 1/lcm(n1, n2) the merged grid is the union of the
    multiples of n2/g and n1/g, whose merged order has a closed form, so no sort is needed.
    Processed in blocks of ``block`` reference positions to bound memory."""
    n1, n2 = r.size, s.size
    if n1 == 0 or n2 == 0:
        raise ValueError("Wasserstein needs non-empty samples")
    if n1 == n2:
        total = 0.0
        buf = np.empty(min(n1, block))
        for i in range(0, n1, block):
            m = min(block, n1 - i)
            np.subtract(r[i:i + m], s[i:i + m], out=buf[:m])
            np.abs(buf[:m], out=buf[:m])
            total += float(buf[:m].sum())
        return total / n1
    g = math.gcd(n1, n2)
    a, b = n1 // g, n2 // g  # A_i = i*b (i = 1..n1), B_j = j*a (j = 1..n2); lcm = n1*b
    lcm = n1 * b
    total = 0.0
    for i0 in range(0, n1, block):
        i1 = min(n1, i0 + block)
        ii = np.arange(i0 + 1, i1 + 1, dtype=np.int64)
        j0, j1 = (i0 * b) // a, (i1 * b) // a
        jj = np.arange(j0 + 1, j1 + 1, dtype=np.int64)
        av, bv = ii * b, jj * a
        pos_a = (ii - i0 - 1) + ((av - 1) // a - j0)
        pos_b = (jj - j0 - 1) + (bv // b - i0)
        merged = np.empty(ii.size + jj.size, dtype=np.int64)
        merged[pos_a] = av
        merged[pos_b] = bv
        lengths = np.diff(merged, prepend=i0 * b).astype(np.float64)
        qr = (merged - 1) // b
        qs = (merged - 1) // a
        total += fixed_dot(lengths, np.abs(r[qr] - s[qs]))
    return total / lcm


# ------------------------------------------------------------------- binned statistics
def quantile_edges(sorted_values: np.ndarray, bins: int, n_unique: int | None = None,
                   unique: np.ndarray | None = None) -> np.ndarray:
    """Inner bin edges from reference quantiles (outer edges are -inf/+inf).

    With at most ``bins`` distinct values, one bin per value (edges at midpoints).
    Duplicate quantiles (heavy atoms) are merged, so a column can have fewer bins."""
    s = np.asarray(sorted_values, dtype=np.float64)
    if unique is None:
        unique, _ = unique_counts(s)
    u = unique
    if u.size <= 1:
        return np.zeros(0)
    if u.size <= bins:
        return (u[:-1] + (u[1:] - u[:-1]) / 2.0).astype(np.float64)
    # numpy's 'linear' quantile on the sorted array, without another partition
    h = (s.size - 1) * (np.arange(1, bins) / bins)
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, s.size - 1)
    edges = s[lo] + (h - lo) * (s[hi] - s[lo])
    return np.unique(edges)


def bin_counts_sorted(s: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in the right-closed bins (-inf, e0], (e0, e1], ..., (e_last, inf) of a sorted
    array."""
    cuts = np.searchsorted(s, edges, side="right")
    return np.diff(np.concatenate([[0], cuts, [s.size]])).astype(np.int64)


def bin_counts(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in the same right-closed bins for an unsorted array."""
    idx = np.searchsorted(edges, x, side="left")
    return np.bincount(idx, minlength=edges.size + 1).astype(np.int64)


def shares(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else np.zeros_like(counts)


def psi(ref_counts: np.ndarray, cur_counts: np.ndarray,
        eps: float = 1e-4) -> tuple[float, np.ndarray]:
    """PSI = sum (a - e) ln(a / e) with both shares clipped below at ``eps`` (never at float
    min, which makes an empty bin explode). Returns (psi, per-bin contributions)."""
    e = np.maximum(shares(ref_counts), eps)
    a = np.maximum(shares(cur_counts), eps)
    contrib = (a - e) * np.log(a / e)
    return float(contrib.sum()), contrib


def psi_expected(n_bins: int, n1: int, n2: int) -> float:
    """PSI's mean under no drift, about (B - 1)(1/N + 1/M): PSI is the symmetric chi-square
    divergence to second order, and (NM/(N+M)) times that is chi-square with B - 1 dof."""
    if n1 <= 0 or n2 <= 0:
        return float("nan")
    return (max(n_bins, 1) - 1) * (1.0 / n1 + 1.0 / n2)


def js_distance(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log, as scipy.spatial.distance.jensenshannon and
    Evidently use), on the unclipped shares."""
    p, q = shares(ref_counts), shares(cur_counts)
    m = (p + q) / 2.0
    left = special.rel_entr(p, m).sum()
    right = special.rel_entr(q, m).sum()
    return float(np.sqrt(max(left + right, 0.0) / 2.0))


def chi2_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, int]:
    """Pearson chi-square test of homogeneity on the 2 x K table (bins empty on both sides
    dropped); the same statistic as scipy.stats.chi2_contingency(correction=False)."""
    o = np.vstack([np.asarray(ref_counts, float), np.asarray(cur_counts, float)])
    o = o[:, o.sum(axis=0) > 0]
    if o.shape[1] < 2 or (o.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    expected = np.outer(o.sum(axis=1), o.sum(axis=0)) / o.sum()
    stat = float(((o - expected) ** 2 / expected).sum())
    dof = o.shape[1] - 1
    return stat, float(_chi2.sf(stat, dof)), dof


def cohens_w(ref_counts: np.ndarray, cur_counts: np.ndarray, eps: float = 1e-4) -> float:
    """Cohen's w = sqrt(sum (a - e)^2 / e), the effect size of a chi-square test, with the
    reference shares e clipped at ``eps`` so a category new in the current batch counts
    (and does not divide by zero). Conventional bands: 0.1 small, 0.3 medium, 0.5 large."""
    e = np.maximum(shares(ref_counts), eps)
    a = shares(cur_counts)
    return float(np.sqrt(((a - e) ** 2 / e).sum()))


def two_proportion_pvalue(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided pooled z-test for p1 == p2."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x2 / n2 - x1 / n1) / se
    return float(2 * norm.sf(abs(z)))


def bh_adjust(pvalues: list[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values (None stays None)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = list(pvalues)
    if not idx:
        return out
    p = np.array([pvalues[i] for i in idx], dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    adj = np.clip(adj, 0, 1)
    res = np.empty(m)
    res[order] = adj
    for k, i in enumerate(idx):
        out[i] = float(res[k])
    return out


# ------------------------------------------------------------- chunk-based thresholds
def noise_scale(n_a: float, n_b: float, power: int = 1) -> float:
    """How sampling noise scales a two-sample statistic: sqrt(1/n_a + 1/n_b) for KS D,
    Wasserstein, JS and Cohen's w; its square for PSI (a chi-square-like divergence)."""
    base = math.sqrt(1.0 / max(n_a, 1) + 1.0 / max(n_b, 1))
    return base ** (2 if power == 2 else 1)


def chunk_threshold(values: list[float], sizes: list[int], n_ref: int, n_cur: int, k: float,
                    power: int = 1) -> float | None:
    """mean + k*sd of a statistic across reference chunks, rescaled to the current size.

    Each chunk value (chunk against the rest of the reference) is divided by its own noise
    scale, the mean + k*sd is taken on that normalised scale and multiplied by the noise
    scale of (current rows, reference rows). Chunks of the size of the current batch (period
    chunking) are left almost unscaled, so real period-to-period variation is kept."""
    vals = np.asarray(values, dtype=float)
    if vals.size < 2 or not np.isfinite(vals).all():
        return None
    norm_vals = np.array([v / noise_scale(m, n_ref - m, power) for v, m in zip(vals, sizes, strict=False)])
    t = float(norm_vals.mean() + k * norm_vals.std(ddof=1))
    return t * noise_scale(n_cur, n_ref, power)
