"""Linear algebra for the drift engine whose bits do not depend on the machine.

Nothing here calls BLAS or LAPACK: every result is a fixed sequence of IEEE 754 `+ - * /
sqrt` operations, in an order set by the code and the array's shape alone, never by the CPU
kernel, the thread count or the memory layout (docs/determinism.md). The multivariate
signal (a PCA reconstruction error) and the dot products of the statistics are built on it,
so the reference profile and every drift report are byte-identical on any machine.
"""

from __future__ import annotations

import math

import numpy as np


def fixed_sum(a: np.ndarray, overwrite: bool = False) -> np.ndarray | float:
    """Sum along axis 0 by repeated halving: rows ``[0, h)`` += rows ``[h, 2h)`` (an odd last
    row is first added to row 0), until one row is left. Every step is an elementwise IEEE
    add, and the order depends only on the number of rows, so the result is the same bits
    on any CPU, thread count or BLAS (``np.dot``/``@`` are not: their summation order is the
    kernel's). Pairwise, so as accurate as ``np.sum``. ``overwrite`` lets it use ``a`` as
    scratch space. A 1-D input returns a float, a 2-D one a row."""
    a = np.asarray(a, dtype=np.float64)
    m = a.shape[0]
    if m == 0:
        return 0.0 if a.ndim == 1 else np.zeros(a.shape[1:])
    buf = a if overwrite and a.flags.writeable else a.copy()
    while m > 1:
        h = m // 2
        if m % 2:
            buf[0] += buf[m - 1]
        np.add(buf[:h], buf[h:2 * h], out=buf[:h])
        m = h
    return float(buf[0]) if buf.ndim == 1 else buf[0].copy()


def fixed_dot(a: np.ndarray, b: np.ndarray) -> float:
    """``np.dot`` of two vectors without BLAS: elementwise products, then ``fixed_sum``."""
    prod = np.multiply(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return float(fixed_sum(prod, overwrite=True))


def fixed_mean_std(x: np.ndarray, ddof: int = 0) -> tuple[float, float]:
    """Mean and standard deviation (two-pass) with ``fixed_sum``: kernel-independent bits."""
    n = x.size
    if n == 0:
        return math.nan, 0.0
    mean = float(fixed_sum(x)) / n
    dev = np.subtract(x, mean)
    np.multiply(dev, dev, out=dev)
    var = float(fixed_sum(dev, overwrite=True)) / (n - ddof) if n > ddof else 0.0
    return mean, math.sqrt(var)


# --------------------------------------------------------------------------- reference form


def second_moment(x: np.ndarray) -> np.ndarray:
    """``x.T @ x / rows`` without BLAS: for each feature i the elementwise products with
    features i..d-1, summed by ``stats.fixed_sum`` (order fixed by the row count)."""
    n, d = x.shape
    out = np.zeros((d, d))
    for i in range(d):
        row = fixed_sum(np.multiply(x[:, i:i + 1], x[:, i:]), overwrite=True) / max(n, 1)
        out[i, i:] = row
        out[i:, i] = row
    return out


JACOBI_MAX_SWEEPS = 60


def jacobi_eigh(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors (columns) of a small symmetric matrix by the cyclic
    Jacobi method (Golub & Van Loan 8.5). Only +, -, *, / and sqrt, each correctly rounded
    by IEEE 754, in a fixed order: LAPACK's ``eigh`` gives kernel-dependent last bits.
    An off-diagonal entry below eps * sqrt(|a_pp a_qq|) is treated as zero (converged)."""
    a = np.array(a, dtype=np.float64)
    d = a.shape[0]
    v = np.eye(d)
    eps = np.finfo(np.float64).eps
    for _ in range(JACOBI_MAX_SWEEPS):
        rotated = False
        for i in range(d - 1):
            for j in range(i + 1, d):
                aij = float(a[i, j])
                if abs(aij) <= eps * math.sqrt(abs(float(a[i, i]) * float(a[j, j]))):
                    continue
                c, s = _jacobi_rotation(float(a[i, i]), float(a[j, j]), aij)
                _rotate(a, v, i, j, c, s)
                rotated = True
        if not rotated:
            break
    return np.diag(a).copy(), v


def _jacobi_rotation(aii: float, ajj: float, aij: float) -> tuple[float, float]:
    """(cos, sin) of the rotation that zeroes a_ij (the smaller-angle root)."""
    theta = (ajj - aii) / (2.0 * aij)
    if abs(theta) > 1e150:  # theta**2 would overflow: t ~ 1 / (2 theta)
        t = 0.5 / theta
    else:
        t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
        t = -t if theta < 0 else t
    c = 1.0 / math.sqrt(t * t + 1.0)
    return c, t * c


def _rotate(a: np.ndarray, v: np.ndarray, i: int, j: int, c: float, s: float) -> None:
    """a <- J^T a J and v <- v J for the rotation J in the (i, j) plane (elementwise ops)."""
    ai, aj = a[:, i].copy(), a[:, j].copy()
    a[:, i], a[:, j] = c * ai - s * aj, s * ai + c * aj
    ai, aj = a[i, :].copy(), a[j, :].copy()
    a[i, :], a[j, :] = c * ai - s * aj, s * ai + c * aj
    a[i, j] = a[j, i] = 0.0  # zero by construction; rounding would leave a tiny residue
    vi, vj = v[:, i].copy(), v[:, j].copy()
    v[:, i], v[:, j] = c * vi - s * vj, s * vi + c * vj


def pca_components(fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending, clipped at 0) and unit eigenvectors (columns, each with its
    largest-magnitude entry positive) of the second-moment matrix of ``fit``."""
    vals, vecs = jacobi_eigh(second_moment(fit))
    order = np.argsort(-vals, kind="stable")
    vals, vecs = np.clip(vals[order], 0, None), vecs[:, order]
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    return vals, vecs * np.where(signs == 0, 1, signs)


def recon_errors(z: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """Squared reconstruction error per row: the squared norm of z's projection on the
    discarded principal directions ``resid`` (d x (d - q), orthonormal columns). Computed
    as fixed-order elementwise multiply-adds over the features (no BLAS), so every row's
    error is the same bits on any kernel, thread count or layout of ``z``."""
    n, d = z.shape
    err = np.zeros(n)
    proj = np.empty(n)
    tmp = np.empty(n)
    for k in range(resid.shape[1]):
        proj.fill(0.0)
        for j in range(d):
            np.multiply(z[:, j], float(resid[j, k]), out=tmp)
            np.add(proj, tmp, out=proj)
        np.multiply(proj, proj, out=tmp)
        np.add(err, tmp, out=err)
    return err
