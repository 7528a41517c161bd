"""Byte-identical outputs whatever the BLAS kernel and thread count (docs/determinism.md).

OpenBLAS picks its kernels by CPU, so `OPENBLAS_CORETYPE` on one machine stands in for
other machines. The small project's chain runs once with `dvc repro` (kernel unset); then
the numeric stages (train, evaluate, drift) rerun under every configuration and every
output of those stages must keep the reference run's md5. A fresh clone then reproduces
the reference run's dvc.lock under a different kernel and thread count.

Configurations: `MLOPS_DETERMINISM_CORETYPES` (comma-separated, `unset` = the library's own
choice) and `MLOPS_DETERMINISM_THREADS`; a core type this CPU cannot run is skipped (it
crashes at start-up), at least three must run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_assets.core.io import md5_file
from mlops_assets_tests.conftest import SMALL, make_project_copy, run, tool_env

pytestmark = pytest.mark.slow

NUMERIC_STAGES = ("train", "evaluate", "drift")
CORETYPES = os.environ.get("MLOPS_DETERMINISM_CORETYPES", "unset,Prescott,Haswell")
THREADS = os.environ.get("MLOPS_DETERMINISM_THREADS", "1,2")
CLONE_CONFIG = ("Haswell", "2")  # the fresh clone's configuration (first runnable fallback)
SHOWN = ("data/model/reference_profile.json", "data/model/model.json", "data/reports/drift.json")


def blas_env(base: dict[str, str], coretype: str, threads: str | None) -> dict[str, str]:
    """``base`` with the OpenBLAS kernel and the BLAS/OpenMP thread counts set."""
    env = {k: v for k, v in base.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    if coretype != "unset":
        env["OPENBLAS_CORETYPE"] = coretype
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = threads
    return env


def kernel_of(env: dict[str, str]) -> str | None:
    """The OpenBLAS kernel a process started with ``env`` uses; None if it cannot start."""
    code = ("from threadpoolctl import threadpool_info; import numpy; "
            "print(*[i.get('architecture') for i in threadpool_info() "
            "if i['internal_api'] == 'openblas'])")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or "?"


def stage_outs(root: Path) -> list[str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    return [o["path"] for s in NUMERIC_STAGES for o in lock[s]["outs"]]


def out_md5s(root: Path, outs: list[str]) -> dict[str, str]:
    """md5 of every file of every out (directories file by file)."""
    found: dict[str, str] = {}
    for out in outs:
        p = root / out
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            found[f.relative_to(root).as_posix()] = md5_file(f)
    return found


def _table(rows: list[tuple[str, str, str, dict[str, str]]], ref: dict[str, str]) -> str:
    head = f"{'coretype':<12} {'kernel':<12} thr " + " ".join(f"{Path(s).name[:-5]:<18}" for s in SHOWN)
    lines = [head, f"{'reference':<12} {'':<12}     " + " ".join(f"{ref[s][:8]:<18}" for s in SHOWN)]
    for core, kernel, thr, md5s in rows:
        bad = sorted(k for k in ref if md5s.get(k) != ref[k])
        lines.append(f"{core:<12} {kernel:<12} {thr:<3} "
                     + " ".join(f"{md5s.get(s, '-')[:8]:<18}" for s in SHOWN)
                     + (f" DIFFERS: {', '.join(bad)}" if bad else " ok"))
    return "\n".join(lines)


def test_outputs_identical_across_blas_kernels_and_threads(tmp_path: Path) -> None:
    root = make_project_copy(tmp_path / "project", SMALL, with_lock=False)
    base = tool_env(root)
    configs = [(c, t) for c in CORETYPES.split(",") for t in THREADS.split(",")]
    kernels = {c: kernel_of(blas_env(base, c, "1")) for c in dict.fromkeys(c for c, _ in configs)}
    runnable = [c for c, k in kernels.items() if k is not None]
    assert len(runnable) >= 3, f"fewer than three OpenBLAS core types run here: {kernels}"
    run(["dvc", "repro"], root, blas_env(base, "unset", None))
    run(["git", "add", "dvc.lock"], root, base)
    run(["git", "commit", "-qm", "reference run"], root, base)
    outs = stage_outs(root)
    ref = out_md5s(root, outs)
    rows = []
    for core, thr in configs:
        if kernels[core] is None:
            continue
        env = blas_env(base, core, thr)
        for stage in NUMERIC_STAGES:
            run([sys.executable, "-m", "mlops_assets.stages", stage], root, env)
        rows.append((core, kernels[core] or "?", thr, out_md5s(root, outs)))
    table = _table(rows, ref)
    print("\n" + table)
    (tmp_path / "matrix.txt").write_text(table + "\n")
    assert all(md5s == ref for *_, md5s in rows), table
    _fresh_clone_reproduces(root, tmp_path / "clone", base, runnable)


def _fresh_clone_reproduces(root: Path, clone: Path, base: dict[str, str],
                            runnable: list[str]) -> None:
    """`git clone` + `dvc repro` under another kernel: the committed lock, byte for byte."""
    core = CLONE_CONFIG[0] if CLONE_CONFIG[0] in runnable else runnable[-1]
    run(["git", "clone", "-q", str(root), str(clone)], root, base)
    env = blas_env(tool_env(clone), core, CLONE_CONFIG[1])
    run(["dvc", "repro"], clone, env)
    diff = run(["git", "diff", "--exit-code", "--", "dvc.lock"], clone, env, check=False)
    assert diff.returncode == 0, f"fresh clone with OPENBLAS_CORETYPE={core}:\n{diff.stdout[-4000:]}"
