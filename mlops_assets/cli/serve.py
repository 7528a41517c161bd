"""`mlops-assets serve`: the production model over HTTP (FastAPI on uvicorn).

    mlops-assets serve [--port 8000] [--host 127.0.0.1] [--root DIR] [--model PATH]
                       [--max-batch N] [--poll-interval S] [--canary-share F]
                       [--canary-seed N] [--shadow] [--no-log] [--workers N]
                       [--batch-threads N] [--no-fast-path]

Start-up loads the registry's production model pinned by its version hash
(registry/production.json; the file's md5 must equal the version), warms it up, and only
then binds the port. With no production model it refuses to start (exit 2) unless
`--model PATH` names a model file for development (then the pointer is not watched).
Optional defaults come from a `serve:` section of params.yaml (same key names, with
underscores); command-line flags win.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from mlops_assets.core.contract import load_contract
from mlops_assets.core.io import DataError
from mlops_assets.pipeline import load_params, project_root


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help="serve the registry's production model over HTTP",
        description="Serve the production model (FastAPI on uvicorn): /predict, /health, "
                    "/metadata, /metrics.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--root", type=Path, default=None, help="project root (default: "
                   "mlops-assets --root, MLOPS_ASSETS_ROOT, else found from the cwd up)")
    p.add_argument("--model", type=Path, default=None,
                   help="development only: serve this model file instead of the registry's "
                        "production model (its model.json beside it gives the threshold)")
    p.add_argument("--max-batch", type=int, default=None, help="records per request (10000)")
    p.add_argument("--poll-interval", type=float, default=None,
                   help="seconds between checks of registry/production.json (0.5)")
    p.add_argument("--canary-share", type=float, default=None,
                   help="share of requests scored by the staging model (0)")
    p.add_argument("--canary-seed", type=int, default=None)
    p.add_argument("--shadow", action="store_true", default=None,
                   help="also score with the staging model (logged); answer with production")
    p.add_argument("--no-log", action="store_true", help="do not write the inference log")
    p.add_argument("--log-max-records", type=int, default=None)
    p.add_argument("--log-max-seconds", type=float, default=None)
    p.add_argument("--no-fast-path", action="store_true",
                   help="score through build_features + the sklearn Pipeline only (slower; "
                        "the fast path is parity-checked against it at every model load)")
    p.add_argument("--batch-threads", type=int, default=None,
                   help="OpenMP threads for requests of 512+ records (1)")
    p.add_argument("--offload-records", type=int, default=None,
                   help="requests with this many records are scored in a worker thread, "
                        "smaller ones on the event loop (64; none with --workers > 1)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (1); each holds its own model copy and hot swaps "
                        "on its own, which uses more than one core for big batches")
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=run_serve)
    return p


def build_service(args: argparse.Namespace, preflight: bool = False) -> tuple[Any, Any]:
    """(app, loaded production model); raises DataError with a message for a person.
    `preflight` only verifies the model (pointer, bytes, record): (None, unloaded model)."""
    # Lazy: the service pulls in fastapi and sklearn (seconds); `--help` must not wait.
    from mlops_assets.serve.app import ServeConfig, create_app
    from mlops_assets.serve.model_holder import (
        ModelHolder,
        load_pinned,
        load_production,
        staging_entry,
    )

    root = (args.root or project_root()).resolve()
    params = load_params(root)
    contract = load_contract(root / params["dataset"]["contract"])
    defaults = params.get("serve") or {}
    config = ServeConfig(**{k: v for k, v in defaults.items()
                            if k in ServeConfig.__dataclass_fields__})
    for name in ("max_batch", "poll_interval", "canary_share", "canary_seed", "shadow",
                 "log_max_records", "log_max_seconds", "batch_threads", "offload_records"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(config, name, value)
    if getattr(args, "no_log", False):
        config.log_enabled = False
    if getattr(args, "no_fast_path", False):
        config.fast_path = False
    if (getattr(args, "workers", None) or 1) > 1 and getattr(args, "offload_records",
                                                             None) is None:
        # several processes already use the cores: a worker thread per big batch only adds
        # GIL contention (measured: 79k rows per CPU-second inline, 57k offloaded)
        config.offload_records = config.max_batch + 1
    fast = dict(fast=config.fast_path, batch_threads=config.batch_threads, load=not preflight)
    if not 0.0 <= config.canary_share <= 1.0:
        raise DataError(f"--canary-share is {config.canary_share}", expected="0 <= share <= 1")
    if args.model is not None:
        model = load_pinned(root, contract, args.model.resolve(), None, None, source="file",
                            **fast)
        config.watch = False
    else:
        model = load_production(root, contract, **fast)
    staging = None
    if config.canary_share > 0 or config.shadow:
        entry = staging_entry(root)
        if entry and entry.get("model_path"):
            staging = load_pinned(root, contract, entry["model_path"], entry["version"],
                                  entry.get("record_path"), **fast)
    if preflight:
        return None, model
    holder = ModelHolder(model, staging)
    return create_app(root, contract, holder, config), model


def run_serve(args: argparse.Namespace) -> int:
    # No OMP_WAIT_POLICY here: small requests never start an OpenMP team (the fast path
    # traverses the trees in numpy; the rest runs with one OpenMP thread), and for
    # --batch-threads > 1 PASSIVE waiting made HistGradientBoosting's 200 parallel regions
    # per call ~5x slower (22 ms instead of 4 ms for 1,000 rows, measured).
    # Lazy: uvicorn is only needed to serve, not to print `--help`.
    import uvicorn

    workers = max(1, int(getattr(args, "workers", None) or 1))
    try:
        app, model = build_service(args, preflight=workers > 1)
    except DataError as e:
        print(f"[serve] cannot start: {e}", file=sys.stderr)
        return 2
    print(f"[serve] model {model.version} ({model.source}, threshold {model.threshold:.6f}) "
          f"{'verified' if workers > 1 else 'warmed up'}; listening on "
          f"http://{args.host}:{args.port}"
          + (f" with {workers} worker processes" if workers > 1 else ""),
          file=sys.stderr, flush=True)
    if workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    access_log=False, lifespan="on")
        return 0
    # Several processes: the model was verified above without loading it (a bad pointer or
    # bytes still exit 2 before the port is bound); each worker loads, parity-checks and
    # warms its own copy before it accepts, watches the registry pointer itself (hot swap
    # per process) and writes its own log segments (the file names carry the pid).
    # /metrics reports the worker that answers the scrape.
    os.environ[_WORKER_ARGS] = json.dumps({k: str(v) if isinstance(v, Path) else v
                                           for k, v in vars(args).items() if k != "func"})
    uvicorn.run("mlops_assets.cli.serve:worker_app", factory=True, host=args.host,
                port=args.port, workers=workers, log_level=args.log_level, access_log=False,
                lifespan="on")
    return 0


_WORKER_ARGS = "MLOPS_ASSETS_SERVE_ARGS"


def worker_app() -> Any:
    """The app of one `--workers` process (uvicorn factory), from the parent's arguments."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1`: thread stacks
    raw = json.loads(os.environ[_WORKER_ARGS])
    for key in ("root", "model"):
        if raw.get(key) is not None:
            raw[key] = Path(raw[key])
    app, _ = build_service(argparse.Namespace(**raw))
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_assets.cli.serve")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_parser(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
