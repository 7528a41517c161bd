"""Model-service benchmark: `mlops-assets serve` against a minimal FastAPI endpoint.

Contenders, each a uvicorn subprocess on a loopback port, same model, one OpenMP thread:
  service  the real service: contract validation, features, scoring, metrics and the
           inference log (Parquet segments);
  minimal  a bare FastAPI endpoint: JSON -> DataFrame -> build_features -> predict_proba;
           no validation, no logging, no metrics.
Load generator: a small asyncio HTTP/1.1 keep-alive client on uvloop (about 30 us of client
CPU per request, so the client does not eat the core the server needs; `wrk` is used by
nobody here). It shares the host's cores with the server.
  open loop    requests scheduled at --rate per second for --seconds, at most --concurrency
               in flight; latency counts from each request's SCHEDULED send time, so a slow
               server cannot slow the client down and hide its queueing;
  closed loop  --max-conns connections back to back: the maximum sustained throughput;
  batches      1,000-row requests on --batch-conns connections: rows/s.
In-process, the same records are timed through bare `pipeline.predict_proba` and through the
service's whole request handling (Service.predict: validation, features, scoring, metrics,
log append), which gives the overhead ratio.

    python benchmarks/serve_bench.py [--root TRAINED_PROJECT] [--rate 200] [--seconds 15]

Without --root a small project copy is trained first (tests' helpers). Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


# ----------------------------------------------------------------------------- client

class Conn:
    """One keep-alive HTTP/1.1 connection (requests one at a time, no pipelining)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Conn:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def post(self, path: str, body: bytes) -> int:
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n"
                          b"content-length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(),
                                                           len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def open_loop(host: str, port: int, payloads: list[bytes], rate: float,
                    concurrency: int) -> tuple[np.ndarray, int, float]:
    """(latencies s from the scheduled time, errors, seconds) at `rate` req/s."""
    conns = asyncio.Queue()
    for _ in range(concurrency):
        conns.put_nowait(await Conn(host, port).open())
    lat = np.zeros(len(payloads))
    errors = 0
    t0 = time.perf_counter() + 0.05

    async def one(i: int, body: bytes) -> None:
        nonlocal errors
        c = await conns.get()
        try:
            if await c.post("/predict", body) != 200:
                errors += 1
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            c = await Conn(host, port).open()
        lat[i] = time.perf_counter() - (t0 + i / rate)
        conns.put_nowait(c)

    tasks = []
    for i, body in enumerate(payloads):
        delay = t0 + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, body)))
    await asyncio.gather(*tasks)
    took = time.perf_counter() - t0
    while not conns.empty():
        conns.get_nowait().close()
    return lat, errors, took


async def closed_loop(host: str, port: int, payloads: list[bytes], conns: int,
                      seconds: float = 1e9) -> tuple[int, int, float, np.ndarray]:
    """(ok, errors, seconds, latencies) with `conns` connections sending back to back,
    until the payloads run out or `seconds` have passed."""
    it = iter(enumerate(payloads))
    lat = np.full(len(payloads), np.nan)
    ok = errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal ok, errors
        c = await Conn(host, port).open()
        for i, body in it:
            if time.perf_counter() > deadline:
                break
            t = time.perf_counter()
            if await c.post("/predict", body) == 200:
                ok += 1
            else:
                errors += 1
            lat[i] = time.perf_counter() - t
        c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(conns)])
    return ok, errors, time.perf_counter() - t0, lat[~np.isnan(lat)]


def run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coro)


# ----------------------------------------------------------------------------- servers

def tree(pid: int) -> list[int]:
    """The process and its descendants (uvicorn --workers children)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        for k in kids:
            out += tree(int(k))
    return out


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM summed over the process tree (MB)."""
    out = {"VmRSS": 0.0, "VmHWM": 0.0}
    for p in tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] += int(line.split()[1]) / 1024
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("server not ready")


def start(kind: str, root: Path, port: int, workdir: Path, extra: list[str]
          ) -> subprocess.Popen:
    env = dict(os.environ, MLOPS_ASSETS_ROOT=str(root), PYTHONUNBUFFERED="1")
    log = open(workdir / f"{kind}{'-'.join(extra)}.log", "wb")
    if kind == "service":
        cmd = [str(Path(sys.executable).parent / "mlops-assets"), "serve", "--root", str(root),
               "--port", str(port), *extra]
    else:
        app = workdir / "minimal_app.py"
        app.write_text(MINIMAL_APP)
        env["BENCH_CONTRACT"] = str(root / "mlops_assets/contracts/fraud.yaml")
        env["BENCH_MODEL"] = str(root / "data/model/model.skops")
        env["PYTHONPATH"] = f"{workdir}{os.pathsep}{ROOT}"
        cmd = [sys.executable, "-m", "uvicorn", "minimal_app:app", "--port", str(port),
               "--log-level", "warning", "--no-access-log"]
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)


# ----------------------------------------------------------------------------- in-process

def in_process(root: Path, records: list[dict], workdir: Path) -> dict[str, float]:
    """Per-call times (s): bare pipeline.predict_proba, and the service's whole handling
    (Service.predict) with its validation+features+log parts, for 1 and 1000 records."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from mlops_assets.core.contract import load_contract
    from mlops_assets.core.features import build_features
    from mlops_assets.core.train import feature_matrix
    from mlops_assets.serve.app import ServeConfig, Service
    from mlops_assets.serve.model_holder import ModelHolder, load_pinned
    from mlops_assets.serve.validation import records_to_frame

    threadpool_limits(1, user_api="openmp")
    contract = load_contract(root / "mlops_assets/contracts/fraud.yaml")
    model = load_pinned(root, contract, root / "data/model/model.skops", None, None,
                        source="file")
    svc = Service(workdir / "inproc", contract, ModelHolder(model),
                  ServeConfig(watch=False, log_dir="log", log_max_records=10 ** 9,
                              log_max_seconds=1e9))
    svc.start()

    def per_call(f: Any, k: int) -> float:
        f()
        t = time.perf_counter()
        for _ in range(k):
            f()
        return (time.perf_counter() - t) / k

    def measure(n: int, recs: list[dict], k: int) -> None:
        body = recs[0] if n == 1 else {"records": recs}
        X = feature_matrix(build_features(records_to_frame(recs, contract), contract),
                           contract)
        out[f"bare_{n}"] = per_call(lambda: model.pipeline.predict_proba(X), k)
        out[f"bare_features_{n}"] = per_call(
            lambda: model.pipeline.predict_proba(feature_matrix(
                build_features(pd.DataFrame(recs), contract), contract)), k)
        out[f"service_{n}"] = per_call(lambda: svc.predict(body), k)
        cols = svc.fast_columns.columns(recs)
        out[f"validate_{n}"] = per_call(lambda: svc.fast_columns.columns(recs), k)
        feats, scores = model.fast.score_columns(cols)
        out[f"score_{n}"] = per_call(lambda: model.fast.score_columns(cols), k)
        out[f"log_{n}"] = per_call(lambda: svc.log.append(svc._log_columns(
            cols, feats, scores, scores >= 0.5, model, "production",
            np.datetime64(time.time_ns(), "ns"), "x")), k)
        # the writer thread's share: segments of ~5,000 records (the default size)
        svc.log.flush()
        reps = max(1, 5000 // n)
        for _ in range(reps):
            svc.predict(body)
        t = time.perf_counter()
        svc.log.flush()
        out[f"log_write_{n}"] = (time.perf_counter() - t) / reps

    out: dict[str, float] = {}
    try:
        measure(1, records[:1], 500)
        measure(1000, records[:1000], 20)
    finally:
        svc.stop()
    return out


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--max-conns", type=int, default=16)
    ap.add_argument("--max-requests", type=int, default=10000)
    ap.add_argument("--max-seconds", type=float, default=10,
                    help="time bound of each closed-loop phase")
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--batch-conns", type=int, default=4)
    ap.add_argument("--variants", default="service,service --workers 2,minimal",
                    help="comma-separated: 'minimal', or 'service' plus serve flags")
    args = ap.parse_args()
    import orjson

    from mlops_assets_tests.serve.helpers import free_port, request_records, trained_project

    tmp = Path(tempfile.mkdtemp(prefix="serve_bench_"))
    root = args.root or trained_project(tmp / "project")[0]
    records, _ = request_records(root, 3000, where="all")
    singles = [orjson.dumps(r) for r in records]
    n_single = int(args.rate * args.seconds)
    single_payloads = [singles[i % len(singles)] for i in range(n_single)]
    max_payloads = [singles[i % len(singles)] for i in range(args.max_requests)]
    batch_payloads = [orjson.dumps({"records": records[(i % 3) * 1000:(i % 3 + 1) * 1000]})
                      for i in range(args.batches)]

    inproc = in_process(root, records, tmp)
    rows = []
    for variant in args.variants.split(","):
        kind, *extra = variant.split()
        port = free_port()
        proc = start(kind, root, port, tmp, extra)
        print(f"[bench] {variant} ...", file=sys.stderr, flush=True)
        try:
            wait_ready(port, proc)
            run(closed_loop("127.0.0.1", port, single_payloads[:500], 4))  # warm
            idle_rss = proc_status(proc.pid)["VmRSS"]
            cpu0 = cpu_seconds(proc.pid)
            lat, errors, took = run(open_loop("127.0.0.1", port, single_payloads, args.rate,
                                              args.concurrency))
            cpu_open = cpu_seconds(proc.pid) - cpu0
            ms = lat * 1e3
            ok, merr, t, mlat = run(closed_loop("127.0.0.1", port, max_payloads,
                                                args.max_conns, args.max_seconds))
            cpu_b = cpu_seconds(proc.pid)
            bok, berr, bt, blat = run(closed_loop("127.0.0.1", port, batch_payloads,
                                                  args.batch_conns, args.max_seconds))
            cpu_b = cpu_seconds(proc.pid) - cpu_b
            st = proc_status(proc.pid)
            rows.append({"kind": variant, "p50": float(np.percentile(ms, 50)),
                         "p99": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
                         "achieved": n_single / took, "errors": errors + merr + berr,
                         "max_rps": ok / t, "max_p99": float(np.percentile(mlat, 99) * 1e3),
                         "batch_rows_s": bok * 1000 / bt,
                         "batch_p50": float(np.percentile(blat, 50) * 1e3),
                         "rss_idle": idle_rss, "rss": st["VmRSS"], "hwm": st["VmHWM"],
                         "cpu_ms_per_req": cpu_open / n_single * 1e3,
                         "batch_rows_cpu_s": bok * 1000 / max(cpu_b, 1e-9)})
        finally:
            proc.terminate()
            proc.wait(30)

    print(f"\nhost: {os.cpu_count()} cores, client and server share them; "
          f"load average before/after: {BEFORE} / {os.getloadavg()}")
    print(f"open loop {args.rate:.0f} req/s for {args.seconds:.0f} s (single records, "
          f"<= {args.concurrency} in flight); max = closed loop, {args.max_conns} connections, "
          f"<= {args.max_requests} requests; batch = <= {args.batches} x 1000-row requests, "
          f"{args.batch_conns} connections; closed loops stop after {args.max_seconds:.0f} s\n")
    print("| endpoint | p50 ms @rate | p99 ms @rate | max ms @rate | achieved req/s | "
          "server CPU ms/req @rate | max req/s | p99 ms @max | batch rows/s | "
          "batch rows per server CPU-s | batch p50 ms | RSS MB idle/after/peak | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['kind']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['max_ms']:.1f} | "
              f"{r['achieved']:.0f} | {r['cpu_ms_per_req']:.2f} | {r['max_rps']:.0f} | "
              f"{r['max_p99']:.1f} | {r['batch_rows_s']:,.0f} | {r['batch_rows_cpu_s']:,.0f} | "
              f"{r['batch_p50']:.1f} | "
              f"{r['rss_idle']:.0f}/{r['rss']:.0f}/{r['hwm']:.0f} | {r['errors']} |")
    ip = inproc
    print("\nin-process per call (1 OpenMP thread), ms:")
    print("| records | bare pipeline.predict_proba | minimal path (DataFrame+build_features+"
          "predict_proba) | service handling (all) | validation | features+scoring | "
          "log append | log segment write (writer thread) | service / bare | "
          "(validation+log append+log write) / bare |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in (1, 1000):
        print(f"| {n} | {ip[f'bare_{n}']*1e3:.3f} | {ip[f'bare_features_{n}']*1e3:.3f} | "
              f"{ip[f'service_{n}']*1e3:.3f} | {ip[f'validate_{n}']*1e3:.3f} | "
              f"{ip[f'score_{n}']*1e3:.3f} | {ip[f'log_{n}']*1e3:.3f} | "
              f"{ip[f'log_write_{n}']*1e3:.3f} | {ip[f'service_{n}'] / ip[f'bare_{n}']:.2f}x | "
              f"{(ip[f'validate_{n}'] + ip[f'log_{n}'] + ip[f'log_write_{n}']) / ip[f'bare_{n}']:.3f}x |")
    print()
    mins = [r for r in rows if r["kind"] == "minimal"]
    for s in (r for r in rows if mins and r["kind"] != "minimal"):
        m = mins[0]
        print(f"{s['kind']} vs minimal endpoint: p50 {s['p50'] / m['p50']:.3f}x, p99 "
              f"{s['p99'] / m['p99']:.3f}x, max req/s {s['max_rps'] / m['max_rps']:.1f}x, "
              f"batch rows/s {s['batch_rows_s'] / m['batch_rows_s']:.2f}x")


BEFORE = os.getloadavg()

if __name__ == "__main__":
    main()
