"""Chain benchmark (issue 2, "Performance"): the embedded fraud data at ~1M transactions,
through `dvc repro` and through Dagster, each in a fresh temporary copy of the project.

    .venv/bin/python benchmarks/chain_bench.py                       # 62,500 rows/week x 16 weeks
    .venv/bin/python benchmarks/chain_bench.py --rows-per-week 2500  # a quick smoke run
    .venv/bin/python benchmarks/chain_bench.py --keep                # keep the copies to inspect
    .venv/bin/python benchmarks/chain_bench.py --only none --profile 8   # cProfile per stage
    .venv/bin/python benchmarks/chain_bench.py --source /tmp/patched     # A/B a candidate fix

What is measured (every tool runs with the venv's bin first on PATH and DVC_NO_ANALYTICS=1):

1. DVC cold: `make_project_copy` (no dvc.lock, empty DVC cache) and `dvc repro`; the wall time
   of the whole command. Its output is read line by line as it arrives, time-stamped, so each
   stage gets a window: from the previous stage's "Updating lock file" line (for the first
   stage: its "Running stage" line) to its own lock line. The stage's compute time comes from
   data/runs/<stage>.json (compute_seconds and finished_at, written by `run_stage`), which
   splits the window's overhead into `pre` (change check of the deps, python start-up,
   imports, params) and `post` (run facts, hashing and caching the outs, writing dvc.lock).
   DVC's own start-up before the first stage and its wrap-up after the last one are shown
   as separate rows.
2. DVC no-op: `dvc repro` again in the same copy, --noop-repeats times; the target is judged
   on the median.
3. Dagster: another fresh copy with a temporary DAGSTER_HOME (the project's dagster.yaml),
   `mlops_assets.demo.orchestrate.materialize_chain` in a child python process. The time compared
   with `dvc repro` cold is the child's wall time from spawn to exit: interpreter start,
   importing dagster + mlops_assets, loading the definitions, both runs (landing; then all
   other assets, the registry assets included if the selection holds them), and the
   per-step `dvc commit`. Per step, STEP_START -> STEP_SUCCESS from the run's event log,
   minus the "compute_seconds" of its materialisation metadata, is its overhead; `pre` and
   `post` are split by data/runs/<stage>.json as for DVC.

4. --profile N: every stage in one process under cProfile in a third fresh copy: wall and
   process CPU time (all threads) per stage, and the top N functions by own time.

"compute" in the DVC columns includes the imports each stage function makes lazily
(sklearn, scipy.stats, skops: ~1-2.5 s in a fresh process); in Dagster those modules are
already loaded after the first stage that needs them, so Dagster's compute is lower there.

Noise: HistGradientBoosting scoring uses OpenMP on both cores, and when other processes
compete for the CPUs its spin-waiting barriers stall (the drift stage's 1,800 small predict
calls went from 7 s to 24 s at a load average of ~3 on 2 cores). The header prints the load
average at start and end, and the CPU seconds are printed beside the cold wall times; compare
runs made at a similar load, or set OMP_WAIT_POLICY=PASSIVE for both sides of an A/B.

Progress goes to stderr (silent when the CI environment variable is set); the table goes to
stdout. --json PATH also writes every number measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV_BIN = Path(sys.executable).parent
STAGES = ["landing", "snapshot", "validate", "features", "split", "train", "evaluate", "drift"]

TARGET_NOOP_S = 1.5
TARGET_OVERHEAD_S = 1.0
TARGET_COLD_S = 60.0
TARGET_DAGSTER_RATIO = 1.5

QUIET = bool(os.environ.get("CI"))


def say(msg: str) -> None:
    if not QUIET:
        print(f"[chain_bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tool_env(root: Path, dagster_home: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLOPS_ASSETS_ROOT"] = str(root)
    env["DVC_NO_ANALYTICS"] = "1"
    env["DO_NOT_TRACK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "chain-bench"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "chain-bench@example.invalid"
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return env


SOURCE = REPO  # --source: the checkout whose files are copied (a git work tree)


def make_copy(dest: Path, rows_per_week: int, weeks: int) -> Path:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from mlops_assets_tests import conftest
    from mlops_assets_tests.conftest import make_project_copy

    conftest.REPO = SOURCE  # project_files() and the copy read the checkout from here
    overrides = {"sample_data": {"rows_per_week": rows_per_week, "weeks": weeks}}
    return make_project_copy(dest, overrides, with_lock=False)


def run_facts(root: Path) -> dict[str, dict[str, Any]]:
    """data/runs/<stage>.json: compute_seconds, and compute start/end as epoch seconds."""
    facts = {}
    for stage in STAGES:
        p = root / "data" / "runs" / f"{stage}.json"
        if not p.exists():
            continue
        f = json.loads(p.read_text())
        end = datetime.fromisoformat(f["finished_at"]).timestamp()
        facts[stage] = {"compute": float(f["compute_seconds"]), "end": end,
                        "start": end - float(f["compute_seconds"])}
    return facts


# ------------------------------------------------------------------------------- DVC
RUNNING = re.compile(r"Running stage '([^']+)'")
LOCKED = re.compile(r"(Generating|Updating) lock file")


def children_cpu() -> float:
    """CPU seconds (user + sys) of the waited-for child processes and their descendants."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed_dvc_repro(root: Path) -> dict[str, Any]:
    """`dvc repro`, its output lines time-stamped as they arrive."""
    env = tool_env(root)
    cpu0 = children_cpu()
    t0 = time.time()
    proc = subprocess.Popen(["dvc", "repro"], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[tuple[float, str]] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.time(), line.rstrip("\n")))
    rc = proc.wait()
    t1 = time.time()
    cpu = children_cpu() - cpu0
    if rc != 0:
        tail = "\n".join(text for _, text in lines[-40:])
        raise SystemExit(f"dvc repro exited {rc} in {root}:\n{tail}")
    return {"t0": t0, "t1": t1, "wall": t1 - t0, "cpu": cpu, "lines": lines}


def dvc_stage_windows(rep: dict[str, Any], facts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    running: dict[str, float] = {}
    locked: dict[str, float] = {}
    current = None
    for ts, text in rep["lines"]:
        m = RUNNING.search(text)
        if m:
            current = m.group(1)
            running[current] = ts
        elif current and LOCKED.search(text):
            locked[current] = ts
    stages: dict[str, dict[str, float]] = {}
    prev_end = None
    for s in STAGES:
        if s not in running or s not in locked:
            continue
        start = prev_end if prev_end is not None else running[s]
        end = locked[s]
        f = facts.get(s)
        row = {"wall": end - start}
        if f:
            row.update(compute=f["compute"], overhead=row["wall"] - f["compute"],
                       pre=f["start"] - start, post=end - f["end"])
        stages[s] = row
        prev_end = end
    first = min(running.values()) if running else rep["t0"]
    last = max(locked.values()) if locked else rep["t1"]
    return {"stages": stages, "startup": first - rep["t0"], "wrapup": rep["t1"] - last}


def bench_dvc(base: Path, rows: int, weeks: int, noop_repeats: int) -> dict[str, Any]:
    say("DVC: making a fresh project copy ...")
    root = make_copy(base / "dvc", rows, weeks)
    say(f"DVC: cold `dvc repro` in {root} ...")
    cold = timed_dvc_repro(root)
    facts = run_facts(root)
    windows = dvc_stage_windows(cold, facts)
    say(f"DVC: cold repro took {cold['wall']:.1f}s; now {noop_repeats} no-op runs ...")
    noops, noop_ok = [], True
    for _ in range(noop_repeats):
        rep = timed_dvc_repro(root)
        noops.append(rep["wall"])
        text = "\n".join(t for _, t in rep["lines"])
        if RUNNING.search(text):
            noop_ok = False
            say("DVC: the no-op repro ran a stage:\n" + text)
    return {"root": str(root), "cold_wall": cold["wall"], "cold_cpu": cold["cpu"], **windows,
            "noop_walls": noops, "noop_ran_nothing": noop_ok,
            "cold_output": [t for _, t in cold["lines"]][-12:]}


# --------------------------------------------------------------------------- Dagster
CHILD = r"""
import json, sys, time
t_start = time.time()
out = sys.argv[2]
from pathlib import Path
root = Path(sys.argv[1])
import dagster as dg
import mlops_assets
from mlops_assets.demo.orchestrate import materialize_chain
t_imported = time.time()
instance = dg.DagsterInstance.get()
summary = materialize_chain(root, progress=False, instance=instance)
t_done = time.time()
runs = []
for rec in instance.get_run_records():
    run_id = rec.dagster_run.run_id
    steps, mats, marks = {}, {}, {}
    for e in instance.all_logs(run_id):
        ev = e.dagster_event
        if ev is None:
            continue
        kind = ev.event_type.name
        if kind in ("RUN_START", "RUN_SUCCESS", "RUN_FAILURE"):
            marks[kind] = e.timestamp
        if e.step_key is None:
            continue
        st = steps.setdefault(e.step_key, {})
        if kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            st[kind] = e.timestamp
        elif kind == "ASSET_MATERIALIZATION":
            md = ev.event_specific_data.materialization.metadata
            cs = md.get("compute_seconds")
            if cs is not None:
                st["compute_seconds"] = max(st.get("compute_seconds", 0.0), float(cs.value))
    runs.append({"run_id": run_id, "marks": marks, "steps": steps})
t_read = time.time()
instance.dispose()
summary = {k: v for k, v in summary.items() if k not in ("evaluation", "drift")}
json.dump({"t_start": t_start, "t_imported": t_imported, "t_done": t_done,
           "t_read": t_read, "summary": summary, "runs": runs,
           "mlops_assets_file": mlops_assets.__file__}, open(out, "w"), default=str)
"""


def bench_dagster(base: Path, rows: int, weeks: int) -> dict[str, Any]:
    say("Dagster: making a fresh project copy ...")
    root = make_copy(base / "dagster", rows, weeks)
    home = base / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")  # as at HEAD
    out = base / "dagster_events.json"
    say(f"Dagster: materialize_chain in a child process (DAGSTER_HOME={home}) ...")
    cpu0 = children_cpu()
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root), str(out)], cwd=root,
                          env=tool_env(root, home), capture_output=True, text=True)
    t1 = time.time()
    cpu = children_cpu() - cpu0
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"the Dagster child exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    data = json.loads(out.read_text())
    if not data["summary"].get("success"):
        say(f"Dagster: the chain did NOT succeed: {data['summary'].get('failed_steps')} "
            f"{data['summary'].get('errors')}")
    facts = run_facts(root)
    steps: dict[str, dict[str, float]] = {}
    extra: dict[str, dict[str, float]] = {}
    run_rows = []
    for run in sorted(data["runs"], key=lambda r: r["marks"].get("RUN_START", 0)):
        m = run["marks"]
        end = m.get("RUN_SUCCESS", m.get("RUN_FAILURE"))
        in_steps = 0.0
        for key, st in run["steps"].items():
            if "STEP_START" not in st:
                continue
            stop = st.get("STEP_SUCCESS", st.get("STEP_FAILURE"))
            if stop is None:
                continue
            wall = stop - st["STEP_START"]
            in_steps += wall
            row = {"wall": wall, "ok": "STEP_SUCCESS" in st}
            if key in STAGES:
                f = facts.get(key)
                compute = st.get("compute_seconds", f["compute"] if f else 0.0)
                row.update(compute=compute, overhead=wall - compute)
                if f:
                    row.update(pre=f["start"] - st["STEP_START"], post=stop - f["end"])
                steps[key] = row
            else:
                extra[key] = row
        if "RUN_START" in m and end is not None:
            run_rows.append({"run_id": run["run_id"][:8], "wall": end - m["RUN_START"],
                             "in_steps": in_steps})
    readout = data["t_read"] - data["t_done"]  # the benchmark's own event-log queries
    return {"root": str(root), "wall": t1 - t0 - readout, "readout_excluded": readout, "cpu": cpu,
            "import": data["t_imported"] - data["t_start"],
            "interpreter": data["t_start"] - t0, "materialize": data["t_done"] - data["t_imported"],
            "exit": t1 - data["t_read"], "steps": steps, "extra_steps": extra, "runs": run_rows,
            "success": bool(data["summary"].get("success")),
            "failed_steps": data["summary"].get("failed_steps"),
            "mlops_assets_file": data["mlops_assets_file"]}


# --------------------------------------------------------------------------- profile
PROFILE_CHILD = r"""
import cProfile, io, json, pstats, sys, time
from pathlib import Path
from threadpoolctl import threadpool_info
root, top, out = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
from mlops_assets.stages import run_stage
rows = []
for stage in sys.argv[4].split(","):
    pr = cProfile.Profile()
    w, c = time.perf_counter(), time.process_time()
    pr.enable()
    result = run_stage(stage, root)
    pr.disable()
    w, c = time.perf_counter() - w, time.process_time() - c
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(top)
    lines = [l for l in buf.getvalue().splitlines() if l.strip()]
    start = next(i for i, l in enumerate(lines) if l.lstrip().startswith("ncalls"))
    rows.append({"stage": stage, "compute": result.compute_seconds, "wall": w, "cpu": c,
                 "top": lines[start:start + top + 1]})
json.dump({"stages": rows, "openmp_threads": [i.get("num_threads") for i in threadpool_info()
                                              if i.get("user_api") == "openmp"]},
          open(out, "w"))
"""


def profile_stages(base: Path, rows: int, weeks: int, top: int) -> dict[str, Any]:
    """Every stage in order, in one process, under cProfile, in a fresh copy: process CPU
    time per stage (all threads) beside its wall time, and the top functions by own time."""
    say("profile: making a fresh project copy ...")
    root = make_copy(base / "profile", rows, weeks)
    out = base / "profile.json"
    say("profile: running every stage under cProfile ...")
    proc = subprocess.run([sys.executable, "-c", PROFILE_CHILD, str(root), str(top), str(out),
                           ",".join(STAGES)], cwd=root, env=tool_env(root), capture_output=True,
                          text=True)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"the profiling child exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


def profile_report(prof: dict[str, Any]) -> str:
    out = ["", "Profile (one process, cProfile on; wall includes the profiler's own cost; "
           "cpu = process CPU time, all threads)", "-" * 60]
    for r in prof["stages"]:
        out.append(f"== {r['stage']}: wall {r['wall']:.2f} s, cpu {r['cpu']:.2f} s")
        out += [f"   {line.strip()}" for line in r["top"]]
    return "\n".join(out)


# ---------------------------------------------------------------------------- report
def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def fmt(v: Any, nd: int = 2) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def report(args: argparse.Namespace, dvc: dict[str, Any] | None,
           dag: dict[str, Any] | None) -> str:
    rows_total = args.rows_per_week * args.weeks
    src = "" if SOURCE == REPO else f" [source: {SOURCE}]"
    out = [f"Chain benchmark{src}: {rows_total:,} transactions ({args.rows_per_week:,} rows/week x "
           f"{args.weeks} weeks), {os.cpu_count()} CPUs, load average at start "
           f"{args.load_at_start}, at end {args.load_at_end}", ""]
    cols = ["compute", "wall", "overhead", "pre", "post"]

    def cells(r: dict[str, Any]) -> str:
        return " ".join(f"{fmt(r.get(c)):>8}" for c in cols)

    half = " ".join(f"{c:>8}" for c in cols)
    width = len(half)
    out += [f"{'':<18} | {'dvc repro (cold), seconds':^{width}} | "
            f"{'Dagster materialise-all, seconds':^{width}}",
            f"{'stage':<18} | {half} | {half}"]
    out.append("-" * len(out[-1]))
    dvc_st = (dvc or {}).get("stages", {})
    dag_st = (dag or {}).get("steps", {})
    for s in STAGES:
        out.append(f"{s:<18} | {cells(dvc_st.get(s, {}))} | {cells(dag_st.get(s, {}))}")
    for key, r in ((dag or {}).get("extra_steps") or {}).items():
        out.append(f"{key + ' *':<18} | {cells({})} | "
                   f"{cells({'wall': r['wall'], 'overhead': r['wall']})}")

    def total(rows: dict[str, dict[str, float]]) -> dict[str, float]:
        return {c: sum(r.get(c, 0.0) for r in rows.values()) for c in cols} if rows else {}

    extra_rows = (dag or {}).get("extra_steps") or {}
    dag_total = total({**dag_st, **{k: {"wall": r["wall"], "overhead": r["wall"]}
                                    for k, r in extra_rows.items()}})
    out.append(f"{'sum':<18} | {cells(total(dvc_st))} | {cells(dag_total)}")
    out.append("pre = step start -> compute start (DVC: dep change check, python start-up, "
               "imports; Dagster: step set-up)")
    out.append("post = compute end -> step end (run facts, hashing + caching outs, dvc.lock; "
               "Dagster: + dvc commit, metadata, events)")
    if extra_rows:
        out.append("* Dagster-only step (registry asset, not a DVC stage): all of it counted "
                   "as overhead")
    out.append("")
    if dvc:
        noop = dvc["noop_walls"]
        out += [
            f"dvc repro cold (wall)                  {dvc['cold_wall']:8.2f} s   "
            f"(CPU {dvc['cold_cpu']:.1f} s; DVC start-up before 1st stage {dvc['startup']:.2f} s, "
            f"wrap-up {dvc['wrapup']:.2f} s)",
            f"dvc repro no-op (wall, median of {len(noop)})      {statistics.median(noop):8.2f} s   "
            f"(runs: {', '.join(f'{x:.2f}' for x in noop)}; ran nothing: "
            f"{dvc['noop_ran_nothing']})",
        ]
    if dag:
        out.append(f"Dagster materialise-all (child wall)   {dag['wall']:8.2f} s   "
                   f"(CPU {dag['cpu']:.1f} s; interpreter {dag['interpreter']:.2f} s + "
                   f"imports {dag['import']:.2f} s + "
                   f"materialize_chain {dag['materialize']:.2f} s + exit {dag['exit']:.2f} s; "
                   f"the benchmark's own event-log read-out, {dag['readout_excluded']:.2f} s, "
                   "is left out)")
        for r in dag["runs"]:
            out.append(f"  run {r['run_id']}: RUN_START->RUN_SUCCESS {r['wall']:.2f} s, in steps "
                       f"{r['in_steps']:.2f} s, outside steps {r['wall'] - r['in_steps']:.2f} s")
        if not dag["success"]:
            out.append(f"  !! the Dagster chain did not succeed: {dag['failed_steps']}")
    out += ["", "Targets", "-------"]
    rows_m = f"{rows_total / 1e6:.2g}M"
    checks: list[tuple[str, str, bool, str]] = []
    if dvc:
        med = statistics.median(dvc["noop_walls"])
        checks.append((f"no-op dvc repro <= {TARGET_NOOP_S} s", f"{med:.2f} s",
                       med <= TARGET_NOOP_S and dvc["noop_ran_nothing"],
                       f"median of {len(dvc['noop_walls'])}"))
    for name, rows in (("DVC", (dvc or {}).get("stages")), ("Dagster", (dag or {}).get("steps"))):
        if rows:
            worst, r = max(rows.items(), key=lambda kv: kv[1].get("overhead", 0.0))
            checks.append((f"overhead per stage <= {TARGET_OVERHEAD_S} s ({name}, worst)",
                           f"{r.get('overhead', 0.0):.2f} s",
                           r.get("overhead", 0.0) <= TARGET_OVERHEAD_S, worst))
    if dvc:
        checks.append((f"cold chain on {rows_m} rows <= {TARGET_COLD_S:.0f} s (dvc repro)",
                       f"{dvc['cold_wall']:.2f} s", dvc["cold_wall"] <= TARGET_COLD_S, ""))
    if dag:
        checks.append((f"cold chain on {rows_m} rows <= {TARGET_COLD_S:.0f} s (Dagster)",
                       f"{dag['wall']:.2f} s", dag["wall"] <= TARGET_COLD_S and dag["success"],
                       "" if dag["success"] else "run failed"))
    if dvc and dag:
        ratio = dag["wall"] / dvc["cold_wall"]
        checks.append((f"Dagster materialise-all <= {TARGET_DAGSTER_RATIO}x dvc repro cold",
                       f"{ratio:.2f}x", ratio <= TARGET_DAGSTER_RATIO and dag["success"], ""))
    for label, value, ok, note in checks:
        out.append(f"{label:<46} {value:>9}  {verdict(ok)}  {note}".rstrip())
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows-per-week", type=int, default=62_500,
                    help="params override sample_data.rows_per_week (default 62,500)")
    ap.add_argument("--weeks", type=int, default=16,
                    help="params override sample_data.weeks (default 16: ~1M rows in all)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project copies")
    ap.add_argument("--noop-repeats", type=int, default=3,
                    help="no-op `dvc repro` runs (the target is judged on their median)")
    ap.add_argument("--only", choices=["dvc", "dagster", "none"],
                    help="run one half only (none: with --profile, only the profile)")
    ap.add_argument("--json", type=Path, help="also write every measurement to this file")
    ap.add_argument("--profile", type=int, metavar="N", default=0,
                    help="also run every stage under cProfile in a fresh copy and print the "
                         "top N functions by own time per stage")
    ap.add_argument("--source", type=Path, default=REPO,
                    help="benchmark this checkout instead (a git work tree holding the project, "
                         "e.g. a scratch copy with a candidate fix); default: this repository")
    args = ap.parse_args(argv)
    global SOURCE
    SOURCE = args.source.resolve()
    args.load_at_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())

    base = Path(tempfile.mkdtemp(prefix="chain_bench_"))
    say(f"working in {base}")
    dvc = dag = prof = None
    try:
        if args.only in (None, "dvc"):
            dvc = bench_dvc(base, args.rows_per_week, args.weeks, args.noop_repeats)
        if args.only in (None, "dagster"):
            dag = bench_dagster(base, args.rows_per_week, args.weeks)
        if args.profile:
            prof = profile_stages(base, args.rows_per_week, args.weeks, args.profile)
    finally:
        if args.keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    args.load_at_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(report(args, dvc, dag))
    if prof:
        print(profile_report(prof))
    if args.json:
        args.json.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()
                                                  if k != "json"},
                                         "dvc": dvc, "dagster": dag, "profile": prof},
                                        indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
