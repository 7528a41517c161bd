"""The multivariate signal's arithmetic is BLAS-free and fixed-order (docs/determinism.md):
same bits whatever the memory layout, the OpenBLAS kernel or the thread count, and the
same statistics as LAPACK/BLAS up to rounding."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from mlops_assets.core.drift import linalg


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 1000, 4097])
def test_fixed_sum_is_accurate_and_layout_independent(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, 3)) * 10.0 ** rng.integers(-3, 4, (n, 3))
    total = linalg.fixed_sum(x)
    for j in range(3):
        exact = math.fsum(x[:, j].tolist())
        assert abs(total[j] - exact) <= 1e-13 * math.fsum(np.abs(x[:, j]).tolist())
        assert linalg.fixed_sum(np.ascontiguousarray(x[:, j])) == total[j]  # 1-D = a column
    assert np.array_equal(linalg.fixed_sum(np.asfortranarray(x)), total)
    wide = np.zeros((n, 7))
    wide[:, ::3] = x
    assert np.array_equal(linalg.fixed_sum(wide[:, ::3]), total)  # strided view
    assert linalg.fixed_sum(np.zeros(0)) == 0.0


def test_fixed_dot_and_mean_std_match_numpy() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(10001), rng.standard_normal(10001)
    assert linalg.fixed_dot(a, b) == pytest.approx(float(np.dot(a, b)), rel=1e-12)
    mean, sd = linalg.fixed_mean_std(a, ddof=1)
    assert mean == pytest.approx(a.mean(), rel=1e-12, abs=1e-15)
    assert sd == pytest.approx(a.std(ddof=1), rel=1e-12)


@pytest.mark.parametrize("d", [2, 3, 8, 20])
def test_jacobi_matches_lapack(d: int) -> None:
    rng = np.random.default_rng(d)
    x = rng.standard_normal((400, d))
    x[:, 1] = 0.95 * x[:, 0] + 0.05 * x[:, 1]  # strong correlation: a small eigenvalue
    a = x.T @ x / 400
    vals, vecs = linalg.jacobi_eigh(a)
    assert np.allclose(np.sort(vals), np.linalg.eigh(a)[0], rtol=0, atol=1e-13 * d)
    assert np.allclose(vecs.T @ vecs, np.eye(d), atol=1e-13)
    assert np.allclose(a @ vecs, vecs * vals, atol=1e-13)


def test_jacobi_on_diagonal_and_degenerate_matrices() -> None:
    vals, vecs = linalg.jacobi_eigh(np.diag([3.0, 1.0, 2.0]))
    assert vals.tolist() == [3.0, 1.0, 2.0] and np.array_equal(vecs, np.eye(3))
    vals, vecs = linalg.jacobi_eigh(np.ones((4, 4)))  # rank one: eigenvalues 4, 0, 0, 0
    assert np.allclose(np.sort(vals), [0, 0, 0, 4], atol=1e-14)
    assert np.allclose(vecs.T @ vecs, np.eye(4), atol=1e-14)


def test_pca_components_are_lapacks_up_to_sign_and_recon_errors_match_blas() -> None:
    rng = np.random.default_rng(11)
    z = rng.standard_normal((5001, 6)) @ rng.standard_normal((6, 6))
    vals, vecs = linalg.pca_components(z)
    ref_vals, ref_vecs = np.linalg.eigh(z.T @ z / len(z))
    ref_vals, ref_vecs = ref_vals[::-1], ref_vecs[:, ::-1]
    assert np.allclose(vals, ref_vals, rtol=1e-12)
    assert np.allclose(np.abs(np.sum(vecs * ref_vecs, axis=0)), 1.0, atol=1e-10)
    assert (vecs[np.argmax(np.abs(vecs), axis=0), np.arange(6)] > 0).all()  # sign convention
    resid = vecs[:, 3:]
    err = linalg.recon_errors(z, resid)
    proj = resid.T @ z.T
    assert np.allclose(err, np.einsum("ij,ij->j", proj, proj), rtol=1e-12, atol=1e-12)
    assert np.array_equal(linalg.recon_errors(np.asfortranarray(z), resid), err)


_PROBE = """
import json, numpy as np
from mlops_assets.core.drift import profile as pr
rng = np.random.default_rng(5)
x = rng.standard_normal((60001, 7))
z = np.asfortranarray(x)  # correlated columns, built elementwise (an input made with @
z[:, 1:] += 0.8 * x[:, :-1]  # would itself differ by kernel)
p = pr.resolve_params({})
out = pr._fit_pca(z, list("abcdefg"), np.arange(60001) % 10, p, [0.0] * 7, [1.0] * 7)
print(json.dumps(out))
"""


def test_fit_pca_same_bits_under_other_openblas_kernels_and_threads() -> None:
    """The same `_fit_pca` JSON in processes with other OpenBLAS kernels and thread counts
    (a kernel this CPU cannot run is skipped; at least two configurations must run)."""
    outs = {}
    for core, threads in (("unset", "1"), ("Prescott", "2"), ("Haswell", "2"), ("unset", "2")):
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        if core != "unset":
            env["OPENBLAS_CORETYPE"] = core
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = threads
        proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                              text=True, timeout=300)
        if proc.returncode == 0:
            outs[(core, threads)] = json.loads(proc.stdout)
    assert len(outs) >= 2, outs
    first = next(iter(outs.values()))
    assert first["n_components"] < 7
    for key, out in outs.items():
        assert out == first, key
