"""Drift engine benchmark: our engine (with and without the reference profile), a per-column
scipy.stats loop, the time to just read and sort the current batch, and Evidently 0.7's
DataDriftPreset (in its own venv, benchmarks/.venv-evidently, made by setup_evidently.sh).

Data: reference and current Parquet files, 20 numeric and 5 categorical columns; in the
current batch 5 numeric columns are shifted, 2 rescaled, one categorical column gains a new
category, and two numeric columns swap the sign of their correlation.

Every measurement runs in its own subprocess; peak RSS is that child's ru_maxrss. "wall" is
the time inside the child from the first read to the finished report (imports excluded);
"compute" is wall minus the time during which any thread was reading Parquet (the engine
reads on worker threads, so the read intervals are merged before subtracting). The profile
is built and saved once per size ("profile build", measured like the others) and the
"with profile" run loads it. The scipy loop and Evidently run at <= 1M rows only. The run
ends with PASS/FAIL against the issue's targets and prints the load average before and
after (the machine is shared; compare runs at similar loads).

    flock /tmp/bench.lock python benchmarks/drift_bench.py --rows 100000,1000000,10000000
    python benchmarks/drift_bench.py --rows 1000000 --only read_sort,ours_profile  # quick A/B
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EVIDENTLY_VENV = HERE / ".venv-evidently"
N_NUM, N_CAT = 20, 5


# ------------------------------------------------------------------------------ data
def make_data(rows: int, out: Path) -> tuple[Path, Path]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    ref_p, cur_p = out / f"ref_{rows}.parquet", out / f"cur_{rows}.parquet"
    if ref_p.exists() and cur_p.exists():
        return ref_p, cur_p
    cats = np.array(["grocery", "fuel", "travel", "online", "atm", "health", "other"])
    for path, seed, drift in ((ref_p, 1, False), (cur_p, 2, True)):
        rng = np.random.default_rng(seed)
        writer = None
        block = 1_000_000
        for start in range(0, rows, block):
            m = min(block, rows - start)
            cols = {}
            base = rng.normal(size=(m, 2))
            rho = -0.8 if drift else 0.8
            cols["num_00"] = base[:, 0]
            cols["num_01"] = rho * base[:, 0] + np.sqrt(1 - rho ** 2) * base[:, 1]
            for i in range(2, N_NUM):
                x = rng.normal(size=m) if i % 3 else rng.lognormal(size=m)
                if drift and i in (2, 3, 4, 5, 6):
                    x = x + 0.25
                if drift and i in (7, 8):
                    x = x * 1.3
                cols[f"num_{i:02d}"] = x
            for j in range(N_CAT):
                p = np.array([30, 20, 15, 12, 10, 8, 5], float)
                if drift and j == 0:
                    p = np.append(p, 6.0)
                    values = np.append(cats, "new_cat")
                else:
                    values = cats
                cols[f"cat_{j}"] = values[rng.choice(len(values), size=m, p=p / p.sum())]
            table = pa.table(cols)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=1 << 20)
        writer.close()
    return ref_p, cur_p


# ------------------------------------------------------------------------ contenders
class _IOClock:
    """Wraps the engine's Parquet reads (current batch and reference values). Reads may run
    in several threads at once, so the I/O time is the length of the union of the read
    intervals: compute = wall - (time during which any thread was reading)."""

    def __init__(self) -> None:
        import threading

        from mlops_assets.core.drift import profile as drift_profile
        from mlops_assets.core.drift import values as drift_values

        self.intervals: list[tuple[float, float]] = []
        self.lock = threading.Lock()
        for cls, name in ((drift_profile.ParquetSource, "column"),
                          (drift_profile.ParquetSource, "numeric"),
                          (drift_profile.ParquetSource, "categorical"),
                          (drift_values.LazyValues, "__getitem__")):
            setattr(cls, name, self.wrap(getattr(cls, name)))

    def wrap(self, fn):
        def inner(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                with self.lock:
                    self.intervals.append((t, time.perf_counter()))
        inner.__wrapped__ = fn
        return inner

    def reset(self) -> None:
        self.intervals.clear()

    def seconds(self) -> float:
        total, end = 0.0, -1.0
        for a, b in sorted(self.intervals):
            if b <= end:
                continue
            total += b - max(a, end)
            end = b
        return total


def _profile_path(ref: str, cur: str) -> Path:
    return Path(cur).parent / f"profile_{Path(ref).stem}.json"


def run_profile_build(ref: str, cur: str, mode: str) -> dict:
    """Training time: build the reference profile from Parquet and save it (JSON + values)."""
    from mlops_assets.core import drift

    io = _IOClock()
    t0 = time.perf_counter()
    p = drift.build_reference_profile_from_parquet(ref)
    drift.save_reference_profile(p, _profile_path(ref, cur))
    t1 = time.perf_counter()
    return {"wall": t1 - t0, "compute": t1 - t0 - io.seconds()}


def run_ours(ref: str, cur: str, mode: str) -> dict:
    from mlops_assets.core import drift

    io = _IOClock()
    t0 = time.perf_counter()
    if mode == "ours_profile":
        prof_json = _profile_path(ref, cur)
        if not prof_json.exists():
            p = drift.build_reference_profile_from_parquet(ref)
            drift.save_reference_profile(p, prof_json)
            del p
        io.reset()
        t0 = time.perf_counter()
        profile = drift.load_reference_profile(prof_json)
    else:
        profile = drift.build_reference_profile_from_parquet(ref)
    rep = drift.compute_drift_from_parquet(profile, cur)
    t1 = time.perf_counter()
    return {"wall": t1 - t0, "compute": t1 - t0 - io.seconds(), "drifted": rep["n_drifted"],
            "severity": rep["severity"], "mv": rep["multivariate"].get("drifted"),
            "threads": drift.report._workers(None, rep["current"]["rows"], rep["n_features"])}


def run_read_sort(ref: str, cur: str, mode: str) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    sort_time = 0.0
    f = pq.ParquetFile(cur)
    for name in f.schema_arrow.names:
        col = f.read(columns=[name]).column(0)
        if name.startswith("num_"):
            t = time.perf_counter()
            np.sort(col.to_numpy())
            sort_time += time.perf_counter() - t
    return {"wall": time.perf_counter() - t0, "compute": sort_time}


def run_scipy(ref: str, cur: str, mode: str) -> dict:
    import pandas as pd
    from scipy import stats

    t0 = time.perf_counter()
    r, c = pd.read_parquet(ref), pd.read_parquet(cur)
    t1 = time.perf_counter()
    drifted = 0
    for name in r.columns:
        if name.startswith("num_"):
            p = stats.ks_2samp(r[name].dropna().to_numpy(), c[name].dropna().to_numpy()).pvalue
        else:
            vc = pd.concat([r[name].value_counts(), c[name].value_counts()], axis=1).fillna(0)
            p = stats.chi2_contingency(vc.to_numpy().T)[1]
        drifted += p < 0.05
    t2 = time.perf_counter()
    return {"wall": t2 - t0, "compute": t2 - t1, "drifted": int(drifted)}


EVIDENTLY_CODE = r"""
import sys, time, json, pandas as pd
t0 = time.perf_counter()
r, c = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
t1 = time.perf_counter()
from evidently import Report, Dataset, DataDefinition
from evidently.presets import DataDriftPreset
num = [x for x in r.columns if x.startswith("num_")]
cat = [x for x in r.columns if x.startswith("cat_")]
dd = DataDefinition(numerical_columns=num, categorical_columns=cat)
snap = Report([DataDriftPreset()]).run(Dataset.from_pandas(c, data_definition=dd),
                                      Dataset.from_pandas(r, data_definition=dd))
snap.dict()
t2 = time.perf_counter()
print(json.dumps({"wall": t2 - t0, "compute": t2 - t1}))
"""


def measure(name: str, ref: Path, cur: Path, timeout: float) -> dict:
    """Run one contender in a child process and read its peak RSS from RUSAGE_CHILDREN."""
    env = dict(os.environ, DO_NOT_TRACK="1", PYTHONPATH=str(ROOT))
    if name == "evidently":
        py = EVIDENTLY_VENV / "bin" / "python"
        if not py.exists():
            return {"error": "not installed (run benchmarks/setup_evidently.sh)"}
        cmd = [str(py), "-c", EVIDENTLY_CODE, str(ref), str(cur)]
    else:
        cmd = [sys.executable, __file__, "--child", name, str(ref), str(cur)]
    script = ("import resource, subprocess, sys, json\n"
              "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
              "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
              "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr[-2000:],"
              " 'maxrss_kb': ru.ru_maxrss}))\n")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", script, *cmd], capture_output=True,
                              text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    outer = time.perf_counter() - t0
    res = json.loads(proc.stdout)
    if res["rc"] != 0:
        return {"error": res["err"].strip().splitlines()[-1] if res["err"].strip() else "failed"}
    data = json.loads(res["out"].strip().splitlines()[-1])
    data["peak_mb"] = res["maxrss_kb"] / 1024
    data["process"] = outer
    return data


CONTENDERS = ["profile_build", "read_sort", "ours_profile", "ours", "scipy", "evidently"]
RUNNERS = {"ours": run_ours, "ours_profile": run_ours, "read_sort": run_read_sort,
           "scipy": run_scipy, "profile_build": run_profile_build}
# the targets
MIN_VS_EVIDENTLY, MIN_VS_SCIPY, MAX_VS_READ_SORT, MAX_PEAK_MB = 50.0, 3.0, 1.5, 2048.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="100000,1000000")
    ap.add_argument("--only", default=",".join(CONTENDERS))
    ap.add_argument("--data", default=str(HERE / ".data"))
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        name, ref, cur = a.child
        print(json.dumps(RUNNERS[name](ref, cur, name)))
        return
    only = a.only.split(",")
    rows_list = [int(x) for x in a.rows.split(",")]
    results = []
    print(f"load average before: {_load()}", flush=True)
    for rows in rows_list:
        ref, cur = make_data(rows, Path(a.data))
        if "ours_profile" in only and "profile_build" not in only:
            _profile_path(str(ref), str(cur)).unlink(missing_ok=True)  # built fresh, untimed
            measure("profile_build", ref, cur, a.timeout)
        for name in [n for n in CONTENDERS if n in only]:
            if name == "evidently" and rows > 1_000_000:
                continue
            if name == "scipy" and rows > 1_000_000:
                continue
            r = measure(name, ref, cur, a.timeout)
            r.update(rows=rows, name=name)
            results.append(r)
            print(json.dumps(r), file=sys.stderr, flush=True)
    print(f"load average after: {_load()}")
    print_table(results)
    print_targets(results)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


LABELS = {"profile_build": "profile build + save (training)",
          "read_sort": "read + sort current (baseline)", "ours_profile": "ours, with profile",
          "ours": "ours, profile built in the run", "scipy": "scipy.stats loop",
          "evidently": "Evidently 0.7.23 DataDriftPreset"}


def print_table(results: list[dict]) -> None:
    print(f"\n{'rows':>10} | {'contender':34} | {'compute s':>9} | {'wall s':>8} | "
          f"{'peak MB':>8} | vs ours(profile) | note")
    print("-" * 110)
    for rows in sorted({r["rows"] for r in results}):
        group = [r for r in results if r["rows"] == rows]
        ours = next((r for r in group if r["name"] == "ours_profile" and "wall" in r), None)
        for r in group:
            if "error" in r:
                print(f"{rows:>10} | {LABELS[r['name']]:34} | {'':>9} | {'':>8} | {'':>8} | "
                      f"{'':16} | {r['error']}")
                continue
            comp = f"{r['compute']:.2f}" if r.get("compute") is not None else "–"
            ratio = f"{r['wall'] / ours['wall']:.1f}x" if ours else ""
            note = ""
            if "drifted" in r:
                note = f"drifted={r['drifted']}" + (f" severity={r['severity']}" if "severity" in r else "")
            if "threads" in r:
                note += f" threads={r['threads']}"
            print(f"{rows:>10} | {LABELS[r['name']]:34} | {comp:>9} | {r['wall']:8.2f} | "
                  f"{r['peak_mb']:8.0f} | {ratio:>16} | {note}")



def print_targets(results: list[dict]) -> None:
    """PASS/FAIL against the issue's targets, from the measurements of this run."""
    def get(rows: int, name: str) -> dict | None:
        return next((r for r in results if r["rows"] == rows and r["name"] == name
                     and "wall" in r), None)

    lines = []
    for rows in sorted({r["rows"] for r in results}):
        ours = get(rows, "ours_profile")
        if ours:
            for name, target in (("evidently", MIN_VS_EVIDENTLY), ("scipy", MIN_VS_SCIPY)):
                other = get(rows, name)
                if other:
                    x = other["wall"] / ours["wall"]
                    lines.append((rows, f"ours (profile) >= {target:g}x faster than {LABELS[name]}",
                                  f"{x:.1f}x", x >= target))
            base = get(rows, "read_sort")
            if base:
                x = ours["wall"] / base["wall"]
                lines.append((rows, f"ours (profile) within {MAX_VS_READ_SORT:g}x of read + sort",
                              f"{x:.2f}x", x <= MAX_VS_READ_SORT))
        if rows >= 10_000_000:
            for name in ("profile_build", "ours_profile", "ours"):
                r = get(rows, name)
                if r:
                    lines.append((rows, f"{LABELS[name]} peak RSS < {MAX_PEAK_MB:.0f} MB",
                                  f"{r['peak_mb']:.0f} MB", r["peak_mb"] < MAX_PEAK_MB))
    if lines:
        print(f"\n{'rows':>10} | {'target':66} | {'measured':>9} | result")
        print("-" * 100)
        for rows, what, val, ok in lines:
            print(f"{rows:>10} | {what:66} | {val:>9} | {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
