"""Lineage benchmark: `mlops-assets lineage --verify` on a chain of 52 weekly snapshots of
100k rows each (cold and warm hash cache), and `mlops-assets audit log / verify` on an audit
log of 100k entries.

How the chain is made (say so when quoting the numbers):
* a real copy of the project (git repo + DVC), params set to 52 weeks x 100k rows;
* the `landing` and `snapshot` stages run for real (the seeded generator, the content-
  hashed snapshot store and its manifest);
* validated dataset, feature table, train/holdout split are SYNTHESISED with pyarrow from the
  snapshots (concatenated and sorted, two derived feature columns, split at the cutoff):
  the real validate/features/train stages on 5.2M rows would take minutes and are not what
  is measured; model.skops is 2 MB of seeded random bytes and model.json a record with the
  real hashes; evaluation/drift reports are small stand-ins;
* `dvc commit -f` then pins every stage, so dvc.lock and .dvc/cache are DVC's own;
* the model is registered, approved and promoted (registry + audit log), all committed.
No Dagster instance: the Dagster part of --verify is skipped (it adds ~1.5 s to open it).

"cold" = no hash cache (.dvc/tmp/lineage-hashes.sqlite deleted) and the OS page cache of
every data file and DVC cache object dropped with posix_fadvise(DONTNEED); "warm" = the
run right after. Each measurement is a fresh `mlops-assets` process (interpreter start-up
and imports included).

    python benchmarks/lineage_bench.py                    # 52 x 100k, audit log 100k
    python benchmarks/lineage_bench.py --weeks 8 --rows 20000 --audit 10000   # quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))


def env_for(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLOPS_ASSETS_ROOT"] = str(root)
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("DAGSTER_HOME", None)
    for k in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        env.setdefault(k, "bench")
    for k in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        env.setdefault(k, "bench@example.invalid")
    return env


def sh(cmd: list[str], root: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(cmd, cwd=root, env=env_for(root), capture_output=True, text=True)
    if check and p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout[-2000:]}\n"
                         f"{p.stderr[-2000:]}")
    return p


def md5(p: Path) -> str:
    h = hashlib.md5()
    with open(p, "rb") as f:
        while b := f.read(1 << 22):
            h.update(b)
    return h.hexdigest()


# ------------------------------------------------------------------------------ the chain


def build_chain(root: Path, weeks: int, rows: int) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from mlops_assets.core.contract import load_contract
    from mlops_assets.core.io import write_json_atomic
    from mlops_assets.repo.params_edit import update_params_section
    from mlops_assets_tests.conftest import make_project_copy

    t: dict[str, float] = {}
    s = time.perf_counter()
    make_project_copy(root, {"sample_data": {"rows_per_week": rows, "weeks": weeks}},
                      with_lock=False)
    import datetime as dt

    start = dt.date(2025, 9, 1)
    end = start + dt.timedelta(weeks=weeks)
    cutoff = end - dt.timedelta(weeks=4)
    update_params_section(root / "params.yaml", "split",
                          {"cutoff": cutoff.isoformat(), "holdout_end": end.isoformat()})
    sh(["git", "commit", "-qam", "bench params"], root)
    for stage in ("landing", "snapshot"):
        sh([sys.executable, "-m", "mlops_assets.stages", stage], root)
    t["landing + snapshot stages (real)"] = time.perf_counter() - s

    s = time.perf_counter()
    d = root / "data"
    manifest = json.loads((d / "snapshots/manifest.json").read_text())
    tables = []
    for e in manifest["entries"]:
        tab = pq.read_table(d / "snapshots" / e["snapshot_file"])
        tables.append(tab.append_column("_batch", pa.array([e["batch"]] * tab.num_rows)))
    validated = pa.concat_tables(tables).sort_by([("ts", "ascending"),
                                                  ("transaction_id", "ascending")])
    for sub in ("validated", "features", "split", "model", "reports/plots"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    pq.write_table(validated, d / "validated/dataset.parquet")
    feats = validated.append_column("log_amount", pc.ln(pc.add(validated["amount"], 1.0)))
    feats = feats.append_column("hour", pc.hour(validated["ts"]))
    pq.write_table(feats, d / "features/features.parquet")
    cut = pa.scalar(dt.datetime.combine(cutoff, dt.time()), type=feats["ts"].type)
    hend = pa.scalar(dt.datetime.combine(end, dt.time()), type=feats["ts"].type)
    train = feats.filter(pc.less(feats["ts"], cut))
    holdout = feats.filter(pc.and_(pc.greater_equal(feats["ts"], cut), pc.less(feats["ts"], hend)))
    pq.write_table(train, d / "split/train.parquet")
    pq.write_table(holdout, d / "split/holdout.parquet")
    contract = load_contract(root / "mlops_assets/contracts/fraud.yaml")

    def side(tab: pa.Table) -> dict:
        return {"rows": tab.num_rows, "ts_min": pc.min(tab["ts"]).as_py().isoformat(),
                "ts_max": pc.max(tab["ts"]).as_py().isoformat(), "positives": None}

    split = {"cutoff": dt.datetime.combine(cutoff, dt.time()).isoformat(),
             "holdout_end": dt.datetime.combine(end, dt.time()).isoformat(),
             "timestamp_column": "ts", "label_column": "is_fraud",
             "feature_definitions_hash": contract.feature_definitions_hash(),
             "train": side(train), "holdout": side(holdout)}
    write_json_atomic(d / "split/split.json", split)
    write_json_atomic(d / "features/feature_meta.json", {
        "feature_definitions_hash": contract.feature_definitions_hash(),
        "features": [{"name": f.name, "transform": f.transform, "source": list(f.source),
                      "kind": "categorical" if f.is_categorical else "numeric"}
                     for f in contract.features],
        "contract": contract.name, "schema_hash": contract.schema_hash(),
        "validated_md5": md5(d / "validated/dataset.parquet"), "rows": feats.num_rows,
        "batches": [e["batch"] for e in manifest["entries"]]})
    write_json_atomic(d / "reports/validation.json", {
        "passed": True, "n_rows": validated.num_rows, "warnings": [], "errors": [],
        "failure_counts": {}, "note": "synthesised by benchmarks/lineage_bench.py"})
    (d / "model/model.skops").write_bytes(random.Random(0).randbytes(2_000_000))
    (d / "model/reference_profile.json").write_text('{"synthesised": true}\n')
    pq.write_table(train.slice(0, 1000), d / "model/reference_profile.parquet")
    import yaml

    from mlops_assets.core.versions import library_versions

    params = yaml.safe_load((root / "params.yaml").read_text())
    version = md5(d / "model/model.skops")
    record = {
        "format": "mlops_assets.model_record/1", "model_md5": version,
        "model": {"file": "model.skops", "md5": version, "serialisation": "skops",
                  "estimator": "synthetic (benchmark)"},
        "contract": {"name": contract.name, "md5": contract.md5,
                     "schema_hash": contract.schema_hash(),
                     "feature_definitions_hash": contract.feature_definitions_hash(),
                     "label_column": contract.label_column},
        "data": {"data/split/train.parquet": md5(d / "split/train.parquet"),
                 "data/features/features.parquet": md5(d / "features/features.parquet"),
                 "data/validated/dataset.parquet": md5(d / "validated/dataset.parquet")},
        "params": params["train"], "cutoff": cutoff.isoformat(), "threshold": 0.5,
        "operating_fpr": params["train"]["operating_fpr"],
        "rows": {"train": train.num_rows}, "libraries": library_versions(),
        "snapshots": [{k: e[k] for k in ("batch", "source_file", "snapshot_file", "md5", "rows")}
                      for e in manifest["entries"]],
        "split": split, "reference_profile_md5": md5(d / "model/reference_profile.json")}
    write_json_atomic(d / "model/model.json", record)
    write_json_atomic(d / "reports/evaluation.json", {
        "model_md5": version, "candidate": {"precision": 0.5, "recall": 0.5, "fpr": 0.02,
                                            "roc_auc": 0.9, "pr_auc": 0.4},
        "reference": {"name": "rule_baseline"},
        "gate": {"eligible": True, "reasons": ["PASS (synthesised)"],
                 "reference": "rule_baseline"}})
    for name in ("roc.csv", "pr.csv", "confusion.csv"):
        (d / "reports/plots" / name).write_text("a,b\n0,1\n")
    (d / "reports/plots/evaluation.svg").write_text("<svg/>\n")
    write_json_atomic(d / "reports/drift.json", {
        "severity": "none", "drift_share": 0.0,
        "lineage": {"model_version": version, "current_batch": manifest["entries"][-1]["batch"]}})
    (d / "reports/drift.html").write_text("<html></html>\n")
    t["synthesise validated/features/split/model"] = time.perf_counter() - s

    s = time.perf_counter()
    sh(["dvc", "commit", "-f", "-q"], root)
    t["dvc commit -f (DVC hashes + caches everything)"] = time.perf_counter() - s
    from mlops_assets.core.registry import PRODUCTION, Registry

    reg = Registry(root)
    reg.register(d / "model/model.skops", d / "model/model.json",
                 evaluation_path=d / "reports/evaluation.json", by="bench", reason="bench")
    reg.approve(version, by="bench", reason="bench")
    reg.promote(version, PRODUCTION, by="bench", reason="bench")
    sh(["git", "add", "-A"], root)
    sh(["git", "commit", "-qm", "bench chain"], root)
    return t


def drop_page_cache(root: Path) -> int:
    """Evict the OS page cache of every data file and DVC cache object (no root needed)."""
    n = 0
    for base in (root / "data", root / ".dvc" / "cache", root / "registry"):
        for p in base.rglob("*"):
            if p.is_file():
                fd = os.open(p, os.O_RDONLY)
                try:
                    os.fsync(fd) if os.access(p, os.W_OK) else None
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    n += 1
                finally:
                    os.close(fd)
    return n


def timed_cli(root: Path, args: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    s = time.perf_counter()
    p = subprocess.run([str(VENV_BIN / "mlops-assets"), *args], cwd=root, env=env_for(root),
                       capture_output=True, text=True)
    return time.perf_counter() - s, p


def bench_lineage(root: Path, repeats: int) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    args = ["lineage", "current", "--verify", "--json", "--no-dagster"]
    db = root / ".dvc" / "tmp" / "lineage-hashes.sqlite"

    def run(label: str) -> dict:
        secs, p = timed_cli(root, args)
        if p.returncode != 0:
            raise SystemExit(f"lineage --verify failed ({p.returncode}):\n{p.stdout[-3000:]}\n"
                             f"{p.stderr[-2000:]}")
        ver = json.loads(p.stdout)["verification"]
        hc, n = ver["hash_cache"], ver["counts"]
        rows.append((label, secs, f"{n['verified']} verified; {hc['hashed']} files hashed "
                                  f"({hc['bytes_hashed'] / 1e6:.0f} MB), {hc['hits']} cache hits"))
        return ver

    for f in db.parent.glob(db.name + "*"):
        f.unlink()
    n = drop_page_cache(root)
    run(f"lineage --verify, cold (no hash cache, page cache of {n} files dropped)")
    warm = []
    for _ in range(repeats):
        s = time.perf_counter()
        run("lineage --verify, warm (hash cache)")
        warm.append(time.perf_counter() - s)
    rows[-repeats:] = [(f"lineage --verify, warm (hash cache), median of {repeats}",
                        statistics.median(r[1] for r in rows[-repeats:]), rows[-1][2])]
    for f in db.parent.glob(db.name + "*"):
        f.unlink()
    secs, p = timed_cli(root, args[:-2] + ["--no-hash-cache", "--no-dagster", "--json"])
    ver = json.loads(p.stdout)["verification"]
    rows.append(("lineage --verify --no-hash-cache (page cache warm)", secs,
                 f"{ver['hash_cache']['bytes_hashed'] / 1e6:.0f} MB hashed"))
    secs, p = timed_cli(root, ["lineage", "current", "--no-dagster"])
    rows.append(("lineage (no verify), text", secs, f"{len(p.stdout.splitlines())} lines"))
    return rows


# ------------------------------------------------------------------------------ audit log


def build_audit_log(path: Path, n: int) -> tuple[str, str]:
    """n entries in exactly append_event's format (one json.dumps per line, sha256 chain),
    written in one go (append_event fsyncs each entry)."""
    from mlops_assets.core.audit import GENESIS, append_event, verify_chain

    rnd = random.Random(0)
    versions = [hashlib.md5(str(i).encode()).hexdigest() for i in range(200)]
    prev = GENESIS
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = 1_750_000_000
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            kind = rnd.choice(["registry", "registry", "drift", "landing"])
            action = {"registry": rnd.choice(["register", "evaluate", "approve", "promote"]),
                      "drift": rnd.choice(["retrain_requested", "retrain_absorbed"]),
                      "landing": "batch_changed"}[kind]
            e = {"kind": kind, "action": action, "version": rnd.choice(versions),
                 "by": rnd.choice(["alice", "bob", "drift_retrain_sensor"]),
                 "reason": "benchmark entry", "at": time.strftime(
                     "%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + i * 60)),
                 "seq": i, "prev_hash": prev}
            line = json.dumps(e, sort_keys=True, separators=(",", ":"), default=str)
            f.write(line + "\n")
            prev = hashlib.sha256(line.encode("utf-8")).hexdigest()
    assert verify_chain(path) == [], "the synthesised log does not chain"
    append_event(path, {"kind": "registry", "action": "approve", "version": versions[0],
                        "by": "bench", "reason": "appended by core.audit",
                        "at": "2030-01-01T00:00:00Z"})
    assert verify_chain(path) == [], "append_event does not continue the synthesised chain"
    return versions[0], time.strftime("%Y-%m-%d", time.gmtime(t0 + (n * 60) * 9 // 10))


def bench_audit(root: Path, n: int) -> list[tuple[str, float, str]]:
    from mlops_assets.core.audit import read_events, verify_chain

    log = root / "bench_audit.log.jsonl"
    version, since = build_audit_log(log, n)
    rows = []
    s = time.perf_counter()
    events = read_events(log)
    rows.append((f"core.audit.read_events, {len(events)} entries (in process)",
                 time.perf_counter() - s, f"{log.stat().st_size / 1e6:.0f} MB"))
    s = time.perf_counter()
    assert verify_chain(log) == []
    rows.append(("core.audit.verify_chain (in process)", time.perf_counter() - s, ""))
    for label, args in [
            ("audit log (text, all entries)", ["audit", "log", "--log", str(log)]),
            ("audit log --json (all entries)", ["audit", "log", "--log", str(log), "--json"]),
            ("audit log --model V --since D", ["audit", "log", "--log", str(log), "--model",
                                               version[:8], "--since", since]),
            ("audit verify", ["audit", "verify", "--log", str(log)])]:
        secs, p = timed_cli(root, args)
        if p.returncode != 0:
            raise SystemExit(f"{label} failed: {p.stderr[-2000:]}")
        rows.append((f"mlops-assets {label}", secs,
                     f"{max(len(p.stdout.splitlines()) - 2, 0)} lines out"
                     if "json" not in label else f"{len(p.stdout) / 1e6:.0f} MB out"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--audit", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, help="where to build (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--reuse", action="store_true",
                    help="measure an existing --workdir chain again instead of rebuilding it")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lineage-bench-"))
    root = work / "project"
    reuse = args.reuse and (root / "dvc.lock").exists()
    if root.exists() and not reuse:
        shutil.rmtree(root)
    try:
        setup: dict[str, float] = {}
        if not reuse:
            print(f"building a chain of {args.weeks} weekly snapshots x {args.rows} rows in "
                  f"{root} ...", file=sys.stderr)
            setup = build_chain(root, args.weeks, args.rows)
        size = sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file())
        load = os.getloadavg()[0]
        rows = bench_lineage(root, args.repeats) + bench_audit(root, args.audit)
        print(f"\nchain: {args.weeks} snapshots x {args.rows} rows, {size / 1e9:.2f} GB under "
              f"data/ (+ the same in .dvc/cache); audit log: {args.audit} entries; "
              f"{os.cpu_count()} CPUs")
        if setup:
            print("setup (not part of the measurements): " + ", ".join(
                f"{k} {v:.1f}s" for k, v in setup.items()))
        print(f"load average when measuring began: {load:.2f} on {os.cpu_count()} CPUs (other "
              "processes share the machine)")
        w = max(len(r[0]) for r in rows)
        print(f"\n| {'measurement':<{w}} | {'seconds':>8} | notes")
        print(f"|{'-' * (w + 2)}|{'-' * 10}|{'-' * 40}")
        for label, secs, note in rows:
            print(f"| {label:<{w}} | {secs:>8.2f} | {note}")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            print(f"\nkept {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
