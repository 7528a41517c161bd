"""Model-service benchmark: `mlops-assets serve` against a minimal FastAPI endpoint.

Contenders, each a uvicorn subprocess on a loopback port, same model:
  service  the real service: contract validation, build_features, score, metrics and the
           inference log (Parquet segments);
  minimal  a bare FastAPI endpoint: JSON -> DataFrame -> build_features -> predict_proba;
           no validation, no logging, no metrics.
Load generator: a bounded Python client (asyncio + httpx, at most --concurrency requests in
flight) on the same host, so it competes with the server for the cores; latency is measured
from each request's SCHEDULED send time (open loop: a slow server cannot slow the client
down and hide its queueing).

    python benchmarks/serve_bench.py [--root TRAINED_PROJECT] [--rate 200] [--seconds 10]

Without --root a small project copy is trained first (tests' helpers). Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

MINIMAL_APP = r'''
import os, sys, orjson, pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response
from threadpoolctl import threadpool_limits
from mlops_assets.core.contract import load_contract
from mlops_assets.core.features import build_features
from mlops_assets.core.train import load_model, feature_matrix
threadpool_limits(1, user_api="openmp")
contract = load_contract(os.environ["BENCH_CONTRACT"])
model = load_model(os.environ["BENCH_MODEL"])
app = FastAPI()

@app.post("/predict")
async def predict(request: Request):
    body = orjson.loads(await request.body())
    recs = body["records"] if "records" in body else [body]
    feats = build_features(pd.DataFrame(recs), contract)
    p = model.predict_proba(feature_matrix(feats, contract))[:, 1]
    return Response(orjson.dumps({"scores": p.tolist()}), media_type="application/json")

@app.get("/health")
async def health():
    return {"ready": True}
'''


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server not ready")


def start(kind: str, root: Path, port: int, workdir: Path) -> subprocess.Popen:
    env = dict(os.environ, MLOPS_ASSETS_ROOT=str(root), PYTHONUNBUFFERED="1")
    log = open(workdir / f"{kind}.log", "wb")
    if kind == "service":
        cmd = [str(Path(sys.executable).parent / "mlops-assets"), "serve", "--root", str(root),
               "--port", str(port)]
    else:
        app = workdir / "minimal_app.py"
        app.write_text(MINIMAL_APP)
        env["BENCH_CONTRACT"] = str(root / "mlops_assets/contracts/fraud.yaml")
        env["BENCH_MODEL"] = str(root / "data/model/model.skops")
        env["PYTHONPATH"] = f"{workdir}{os.pathsep}{ROOT}"
        cmd = [sys.executable, "-m", "uvicorn", "minimal_app:app", "--port", str(port),
               "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)


async def open_loop(url: str, payloads: list[bytes], rate: float, concurrency: int
                    ) -> tuple[list[float], int, float]:
    """Send payloads at `rate`/s (scheduled), at most `concurrency` in flight."""
    lat: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        t0 = time.perf_counter()

        async def one(i: int, body: bytes) -> None:
            nonlocal errors
            scheduled = t0 + i / rate
            async with sem:
                try:
                    r = await client.post("/predict", content=body,
                                          headers={"content-type": "application/json"})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
            lat.append(time.perf_counter() - scheduled)
            if not ok:
                errors += 1

        tasks = []
        for i, body in enumerate(payloads):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, body)))
        await asyncio.gather(*tasks)
        took = time.perf_counter() - t0
    return lat, errors, took


async def closed_loop(url: str, payloads: list[bytes], concurrency: int) -> tuple[int, float]:
    done = 0
    it = iter(payloads)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def worker() -> None:
            nonlocal done
            for body in it:
                r = await client.post("/predict", content=body,
                                      headers={"content-type": "application/json"})
                if r.status_code == 200:
                    done += 1
        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return done, time.perf_counter() - t0


def bare_predict(root: Path, records: list[dict], reps: int = 200) -> dict[str, float]:
    """In-process times of build_features+predict_proba and of predict_proba alone."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from mlops_assets.core.contract import load_contract
    from mlops_assets.core.features import build_features
    from mlops_assets.core.train import feature_matrix, load_model
    from mlops_assets.serve.validation import records_to_frame

    threadpool_limits(1, user_api="openmp")
    contract = load_contract(root / "mlops_assets/contracts/fraud.yaml")
    model = load_model(root / "data/model/model.skops")
    out = {}
    for n in (1, 1000):
        frame = records_to_frame(records[:n], contract)
        X = feature_matrix(build_features(frame, contract), contract)
        k = reps if n == 1 else 20
        model.predict_proba(X)
        t = time.perf_counter()
        for _ in range(k):
            model.predict_proba(X)
        out[f"predict_proba_{n}"] = (time.perf_counter() - t) / k
        t = time.perf_counter()
        for _ in range(k):
            build_features(pd.DataFrame(records[:n]), contract)
        out[f"features_{n}"] = (time.perf_counter() - t) / k
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--batches", type=int, default=30)
    args = ap.parse_args()
    import orjson

    from mlops_assets_tests.serve.helpers import free_port, request_records, trained_project

    tmp = Path(tempfile.mkdtemp(prefix="serve_bench_"))
    root = args.root or trained_project(tmp / "project")[0]
    records, _ = request_records(root, 3000, where="all")
    singles = [orjson.dumps(r) for r in records]
    n_single = int(args.rate * args.seconds)
    single_payloads = [singles[i % len(singles)] for i in range(n_single)]
    batch_payloads = [orjson.dumps({"records": records[(i % 3) * 1000:(i % 3 + 1) * 1000]})
                      for i in range(args.batches)]

    bare = bare_predict(root, records)
    rows = []
    for kind in ("service", "minimal"):
        port = free_port()
        proc = start(kind, root, port, tmp)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(url, proc)
            asyncio.run(closed_loop(url, single_payloads[:200], 4))  # warm
            lat, errors, took = asyncio.run(open_loop(url, single_payloads, args.rate,
                                                      args.concurrency))
            ms = np.array(lat) * 1e3
            done, t = asyncio.run(closed_loop(url, single_payloads[:3000], 8))
            bdone, bt = asyncio.run(closed_loop(url, batch_payloads, 2))
            rows.append({"kind": kind, "p50": float(np.percentile(ms, 50)),
                         "p99": float(np.percentile(ms, 99)), "achieved": n_single / took,
                         "errors": errors, "max_rps": done / t,
                         "batch_rows_s": bdone * 1000 / bt, "rss": rss_mb(proc.pid),
                         "single_mean": statistics.mean(lat)})
        finally:
            proc.terminate()
            proc.wait(30)

    print(f"\nhost: {os.cpu_count()} cores; client and server share them; "
          f"open loop at {args.rate:.0f} req/s for {args.seconds:.0f}s, single records; "
          f"batch = {args.batches} requests of 1000 rows, 2 in flight\n")
    print("| endpoint | p50 ms | p99 ms | achieved req/s | errors | max req/s (8 conns) "
          "| batch rows/s | RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['p50']:.1f} | {r['p99']:.1f} | {r['achieved']:.0f} | "
              f"{r['errors']} | {r['max_rps']:.0f} | {r['batch_rows_s']:,.0f} | "
              f"{r['rss']:.0f} |")
    svc = rows[0]
    print(f"\nin-process, 1 OpenMP thread: predict_proba 1 row {bare['predict_proba_1']*1e3:.2f}"
          f" ms, build_features 1 row {bare['features_1']*1e3:.2f} ms; 1000 rows: "
          f"predict_proba {bare['predict_proba_1000']*1e3:.1f} ms, build_features "
          f"{bare['features_1000']*1e3:.1f} ms")
    print(f"overhead ratio (service p50 single / bare predict_proba 1 row): "
          f"{svc['p50'] / (bare['predict_proba_1'] * 1e3):.1f}x; service batch time per 1000 "
          f"rows / bare predict_proba: "
          f"{(1000 / svc['batch_rows_s']) / bare['predict_proba_1000']:.1f}x; "
          f"service vs minimal p50: {svc['p50'] / rows[1]['p50']:.2f}x")


if __name__ == "__main__":
    main()
