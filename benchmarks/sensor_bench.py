"""Sensor performance (issue 4).

1. Tick cost: `landing_sensor.evaluate_tick` with N files (default 1,000) already in the
   landing area, over many ticks while the history grows (one new file per tick). The tick
   must stay under 1 s and must not grow with history: known files are only stat'ed, never
   re-hashed, and the cursor holds one entry per file present (not per tick).
2. Latency (`--latency`): dagster-daemon + webserver with the default intervals (params
   automation: 30 s ticks, 10 s settle) against a temporary DAGSTER_HOME; a batch file lands
   and the time until its drift report is materialised is split into waiting (landing ->
   run created: sensor interval and settle time) and running (run created -> drift report).

    .venv/bin/python benchmarks/sensor_bench.py [--files 1000] [--ticks 30]
    .venv/bin/python benchmarks/sensor_bench.py --latency
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _workspace(tmp: Path, overrides: dict) -> Path:
    # code from the working tree, params/lock/registry from git HEAD: a used checkout's
    # state (an edited params.yaml, a promoted version) never reaches the measurement
    from mlops_assets_tests.conftest import make_project_copy

    return make_project_copy(tmp / "project", overrides, with_lock=False)


def _tiny(path: Path, i: int) -> None:
    import pandas as pd

    from mlops_assets.core.io import write_parquet_atomic

    write_parquet_atomic(path, pd.DataFrame({"transaction_id": [f"t{i}"], "amount": [float(i)]}))
    old = time.time() - 3600
    os.utime(path, (old, old))


def tick_cost(n_files: int, ticks: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        root = _workspace(Path(d), {"sample_data": {"rows_per_week": 2500}})
        os.environ["MLOPS_ASSETS_ROOT"] = str(root)
        import dagster as dg

        from mlops_assets.definitions import defs
        from mlops_assets.defs.sensors import landing_sensor

        definitions = defs()
        landing = root / "data" / "landing"
        landing.mkdir(parents=True, exist_ok=True)
        for i in range(n_files):
            _tiny(landing / f"b{i:05d}.parquet", i)
        with dg.instance_for_test() as instance:
            def tick(cursor):
                ctx = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(),
                                              cursor=cursor, definitions=definitions)
                t = time.perf_counter()
                res = landing_sensor.evaluate_tick(ctx)
                took = time.perf_counter() - t
                for req in res.dynamic_partitions_requests or []:
                    instance.add_dynamic_partitions(req.partitions_def_name,
                                                    list(req.partition_keys))
                return res, took

            res, first = tick(None)
            assert len(res.run_requests) == n_files
            cursor = res.cursor
            times = []
            for k in range(ticks):
                _tiny(landing / f"new{k:05d}.parquet", n_files + k)  # history grows
                res, took = tick(cursor)
                assert len(res.run_requests) == 1
                cursor = res.cursor
                times.append(took)
        half = len(times) // 2
        return {"files": n_files, "ticks": ticks, "first_tick_s": round(first, 3),
                "steady_median_s": round(statistics.median(times), 4),
                "steady_max_s": round(max(times), 4),
                "first_half_median_s": round(statistics.median(times[:half]), 4),
                "second_half_median_s": round(statistics.median(times[half:]), 4),
                "cursor_bytes": len(cursor)}


def latency(timeout: float = 600) -> dict:
    import dagster as dg
    import yaml

    from mlops_assets.core.generate import FraudScenario, generate_week
    from mlops_assets.core.io import write_parquet_atomic
    from mlops_assets.demo.processes import start_daemon, start_webserver, wait_daemon_healthy

    with tempfile.TemporaryDirectory() as d:
        root = _workspace(Path(d), {"sample_data": {"rows_per_week": 2500, "weeks": 11}})
        home = root / ".dagster_home"
        os.environ.update(MLOPS_ASSETS_ROOT=str(root), DAGSTER_HOME=str(home))
        os.chdir(root)
        from mlops_assets.demo.orchestrate import materialize_chain

        with dg.DagsterInstance.get() as instance:
            assert materialize_chain(root, progress=False, instance=instance)["success"]
            params = yaml.safe_load((root / "params.yaml").read_text())
            scenario = FraudScenario.from_params(params["sample_data"])
            with start_webserver(root, home) as web, start_daemon(root, home) as daemon:
                wait_daemon_healthy(web.url, ("SENSOR",), timeout=180, services=[web, daemon])
                time.sleep(5)
                def latest() -> int | None:
                    recs = instance.fetch_materializations(dg.AssetKey("drift_report"),
                                                           limit=1).records
                    return recs[0].storage_id if recs else None

                before = latest()
                key = scenario.file_name(11).removesuffix(".parquet")
                t0 = time.time()
                write_parquet_atomic(root / "data/landing" / scenario.file_name(11),
                                     generate_week(scenario, 11))
                created = done = None
                while time.time() - t0 < timeout:
                    runs = instance.get_run_records(dg.RunsFilter(
                        tags={"mlops_assets/batch": key, "mlops_assets/trigger": "landing"}))
                    if runs and created is None:
                        created = runs[-1].create_timestamp.timestamp()
                    if created is not None and latest() != before:
                        done = time.time()
                        break
                    time.sleep(0.5)
                assert done is not None, daemon.describe()
        total = done - t0
        waiting = (created - t0) if created else None
        return {"landing_to_drift_report_s": round(total, 1),
                "waiting_on_ticks_s": None if waiting is None else round(waiting, 1),
                "waiting_share": None if waiting is None else round(waiting / total, 3),
                "running_s": None if waiting is None else round(total - waiting, 1),
                "intervals": params.get("automation")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--ticks", type=int, default=30)
    ap.add_argument("--latency", action="store_true", help="measure landing -> drift report "
                                                           "with the daemon instead (minutes)")
    args = ap.parse_args(argv)
    if args.latency:  # its own process state: the definitions load from its workspace
        print(json.dumps({"latency": latency()}, indent=2))
        return 0
    out = {"tick_cost": tick_cost(args.files, args.ticks)}
    print(json.dumps(out, indent=2))
    tc = out["tick_cost"]
    ok = tc["steady_max_s"] < 1.0
    print(f"steady-state tick with {tc['files']} files: median {tc['steady_median_s']}s, "
          f"max {tc['steady_max_s']}s ({'OK' if ok else 'OVER'} the 1 s budget); first half "
          f"{tc['first_half_median_s']}s vs second half {tc['second_half_median_s']}s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
