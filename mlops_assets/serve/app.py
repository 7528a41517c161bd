"""The FastAPI application: /health, /metadata, /predict, /metrics.

`create_app(root, contract, holder, config)` builds an app around an already loaded and
warmed `ModelHolder` (the CLI loads the production model BEFORE uvicorn binds its port, so
the service never accepts a request before it can answer it). The app's lifespan starts
the registry watcher (hot swap) and the inference-log writer, and flushes the log on
shutdown.

POST /predict
  body: one record {field: value, ...}, or {"records": [{...}, ...]} (at most max_batch).
  200 single: {id, score, decision, model_version, served_by}
  200 batch:  {model_version, n, predictions: [{id, score, decision, model_version,
               served_by}, ...]}
  422:        {error, n_errors, errors: [{record, field, check, message, value}, ...]}
`decision` is true when score >= the model's operating threshold (model.json "threshold"),
the same rule as core.evaluate. Scores are those of core.features.build_features and
core.train.score, the functions training and batch scoring use: computed by them, or by the
model's serve.fast_path scorer, which is checked bit-identical to them at every model load
(a single record costs ~0.2 ms instead of ~7 ms). Requests of `offload_records` or more
records are scored in a worker thread; smaller ones on the event loop.

Each request reads `holder.current` once: the model that scored it is the model named in
its response, whatever a concurrent hot swap does.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mlops_assets.core.contract import Contract, column_constraints
from mlops_assets.core.features import build_features
from mlops_assets.core.io import DataError
from mlops_assets.core.monitoring.inference_log import LOG_DIR, InferenceLog
from mlops_assets.serve.fast_path import FastColumns, frame_columns
from mlops_assets.serve.metrics import ServeMetrics
from mlops_assets.serve.model_holder import (
    LoadedModel,
    ModelHolder,
    ProductionWatcher,
    example_record,
)
from mlops_assets.serve.validation import FieldError, RequestInvalid, RequestValidator

log = logging.getLogger("mlops_assets.serve")

try:
    import orjson

    def _loads(b: bytes) -> Any:
        return orjson.loads(b)

    def _dumps(o: Any) -> bytes:
        return orjson.dumps(o, option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover - orjson is in the lock file
    def _loads(b: bytes) -> Any:
        return json.loads(b, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))

    def _dumps(o: Any) -> bytes:
        return json.dumps(o).encode()


@dataclass
class ServeConfig:
    max_batch: int = 10_000
    poll_interval: float = 0.5      # seconds between checks of registry/production.json
    watch: bool = True              # hot swap on registry changes
    log_enabled: bool = True
    log_dir: str = LOG_DIR          # relative to the root
    log_max_records: int = 5000     # a segment is written at this many buffered records
    log_max_seconds: float = 2.0    # ... or when the oldest buffered record is this old
    canary_share: float = 0.0       # share of requests scored by the staging model
    canary_seed: int = 0
    shadow: bool = False            # score with staging too (logged), answer with production
    openmp_threads: int | None = 1  # per-request scoring is fastest single-threaded
    fast_path: bool = True          # numpy validation/features/trees (parity-checked)
    batch_threads: int = 1          # OpenMP threads for requests of >= 512 records
    offload_records: int = 64       # score requests this large in a worker thread


class _Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return _dumps(content)


def _input_fields(contract: Contract) -> list[dict[str, Any]]:
    out = []
    for name, spec in contract.columns.items():
        if name == contract.label_column:
            continue
        required = name in (contract.id_column, contract.timestamp_column) or not spec.nullable
        f: dict[str, Any] = {"name": name, "type": spec.type, "nullable": bool(spec.nullable)
                             and name not in (contract.id_column, contract.timestamp_column),
                             "required": required, "description": spec.description}
        if spec.min is not None:
            f["min"] = spec.min
        if spec.max is not None:
            f["max"] = spec.max
        if spec.categories:
            f["categories"] = list(spec.categories)
            f["strict"] = bool(spec.strict)
        f["constraints"] = [e for _, e in column_constraints(spec)]
        out.append(f)
    return out


class Service:
    """The state behind one app: contract, validator, holder, metrics, log, canary RNG."""

    def __init__(self, root: Path, contract: Contract, holder: ModelHolder,
                 config: ServeConfig) -> None:
        self.root, self.contract, self.holder, self.config = root, contract, holder, config
        self.validator = RequestValidator(contract, config.max_batch)
        self.fast_columns = FastColumns(contract)
        self.metrics = ServeMetrics()
        self.metrics.set_model(holder.current.version)
        if holder.staging is not None:
            self.metrics.set_model(holder.staging.version, "staging")
        self.log: InferenceLog | None = None
        if config.log_enabled:
            self.log = InferenceLog(
                root / config.log_dir, config.log_max_records, config.log_max_seconds,
                on_write=self._on_log_write,
                on_drop=lambda n: self.metrics.log_dropped.inc(n))
        self.watcher: ProductionWatcher | None = None
        if config.watch:
            self.watcher = ProductionWatcher(
                root, contract, holder, config.poll_interval, on_swap=self._on_swap,
                on_error=lambda m: self.metrics.reload_failures.inc(),
                watch_staging=config.canary_share > 0 or config.shadow,
                fast=config.fast_path, batch_threads=config.batch_threads)
        self._rng = random.Random(config.canary_seed)
        self._rng_lock = threading.Lock()
        self.ready = False
        self.started_at = time.time()
        self.id_col, self.ts_col = contract.id_column, contract.timestamp_column
        self.feature_names = contract.feature_names

    def _on_log_write(self, segments: int, records: int) -> None:
        self.metrics.log_segments.inc(segments)
        self.metrics.log_records.inc(records)

    def _on_swap(self, old: LoadedModel, new: LoadedModel) -> None:
        self.metrics.swaps.inc()
        self.metrics.set_model(new.version, previous=old.version)

    def start(self) -> None:
        if self.config.openmp_threads:
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=self.config.openmp_threads, user_api="openmp")
        if self.log is not None:
            self.log.start()
        if self.watcher is not None:
            self.watcher.start()
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        if self.watcher is not None:
            self.watcher.stop()
        if self.log is not None:
            self.log.close()

    # ---------------------------------------------------------------- routing
    def route(self) -> tuple[LoadedModel, str, LoadedModel | None]:
        """(model that answers, served_by, shadow model or None) for one request."""
        prod = self.holder.current  # read once
        staging = self.holder.staging
        if staging is None:
            return prod, "production", None
        if self.config.canary_share > 0:
            with self._rng_lock:
                draw = self._rng.random()
            if draw < self.config.canary_share:
                return staging, "canary", None
        return prod, "production", staging if self.config.shadow else None

    # ---------------------------------------------------------------- scoring
    def predict(self, body: Any) -> tuple[int, Any, str]:
        """(status, payload, model_version label) for a parsed body.

        Valid records take the fast path (serve.fast_path: numpy columns, parity-checked
        features and trees) when the answering model has one; anything the fast validator
        is unsure of goes through the full RequestValidator, which words every 422."""
        try:
            records, is_batch = self.validator.records(body)
            cols = self.fast_columns.columns(records) if self.config.fast_path else None
            frame = None
            if cols is None:
                frame = self.validator.validate(records)
        except RequestInvalid as e:
            for err in e.errors:
                self.metrics.validation_failures.labels(err.field or "*", err.check).inc()
            return 422, e.to_dict(), "none"
        model, served_by, shadow = self.route()
        try:
            feats, scores, cols = self._score(model, cols, frame)
        except DataError as e:  # the validator should have caught it: still a 422
            self.metrics.validation_failures.labels(e.column or "*", "features").inc()
            return 422, RequestInvalid([FieldError(e.rows[0] if e.rows else None, e.column,
                                                   "features", str(e))]).to_dict(), "none"
        decisions = scores >= model.threshold
        self.metrics.records.labels(model.version, served_by).inc(len(scores))
        self.metrics.scores.observe_many(model.version, scores)
        if self.log is not None:
            now = np.datetime64(time.time_ns(), "ns")
            rid = uuid.uuid4().hex
            self.log.append(self._log_columns(cols, feats, scores, decisions, model,
                                              served_by, now, rid))
            if shadow is not None:
                try:
                    _, s2, _ = self._score(shadow, cols, None)
                    self.log.append(self._log_columns(cols, feats, s2, s2 >= shadow.threshold,
                                                      shadow, "shadow", now, rid))
                except Exception as e:  # noqa: BLE001 - shadow never affects the answer
                    log.error("shadow scoring failed: %s", e)
        ids = cols[self.id_col].tolist()
        sc = scores.tolist()
        dec = decisions.tolist()
        v = model.version
        if not is_batch:
            return 200, {"id": ids[0], "score": sc[0], "decision": dec[0], "model_version": v,
                         "served_by": served_by, "threshold": model.threshold}, v
        preds = [{"id": i, "score": s, "decision": d, "model_version": v,
                  "served_by": served_by} for i, s, d in zip(ids, sc, dec, strict=True)]
        return 200, {"model_version": v, "served_by": served_by, "threshold": model.threshold,
                     "n": len(preds), "predictions": preds}, v

    def _score(self, model: LoadedModel, cols: dict[str, np.ndarray] | None,
               frame: pd.DataFrame | None
               ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """(feature columns, scores, input columns) of validated records given as numpy
        columns or as the validator's frame, by the model's fast scorer or, without one,
        by core.features.build_features + core.train.score."""
        if model.fast is not None:
            if cols is None:
                cols = frame_columns(frame, self.contract)
            feats, scores = model.fast.score_columns(cols)
            return feats, scores, cols
        if frame is None:
            frame = pd.DataFrame(cols)
        elif cols is None:
            cols = frame_columns(frame, self.contract)
        table = build_features(frame, self.contract)
        scores = model.scores(table, self.contract)
        return {n: table[n].to_numpy() for n in self.feature_names}, scores, cols

    def _log_columns(self, cols: dict[str, np.ndarray], feats: dict[str, np.ndarray],
                     scores: np.ndarray, decisions: np.ndarray, model: LoadedModel,
                     served_by: str, now: np.datetime64, rid: str) -> dict[str, np.ndarray]:
        """One request's log rows as column arrays (the log's column layout, in order)."""
        n = len(scores)
        out: dict[str, np.ndarray] = {
            "request_id": np.full(n, rid, dtype=object),
            "request_time": np.full(n, now, dtype="datetime64[ns]"),
            "record_index": np.arange(n, dtype=np.int64),
            "served_by": np.full(n, served_by, dtype=object),
            "model_version": np.full(n, model.version, dtype=object),
            "threshold": np.full(n, model.threshold, dtype=np.float64),
            self.id_col: cols[self.id_col],
            self.ts_col: cols[self.ts_col],
        }
        for name in self.feature_names:
            out[name] = feats[name]
        out["score"] = scores
        out["decision"] = decisions
        return out

    def metadata(self) -> dict[str, Any]:
        m = self.holder.current
        rec = m.record
        out = {
            "model_version": m.version,
            "lineage_id": m.version,
            "model_source": m.source,
            "model_path": _rel(m.model_path, self.root),
            "feature_definitions_hash": m.feature_definitions_hash
            or self.contract.feature_definitions_hash(),
            "contract": {"name": self.contract.name, "md5": self.contract.md5,
                         "feature_definitions_hash": self.contract.feature_definitions_hash(),
                         "id_column": self.contract.id_column,
                         "timestamp_column": self.contract.timestamp_column},
            "threshold": m.threshold,
            "operating_fpr": rec.get("operating_fpr"),
            "decision_rule": "decision = score >= threshold",
            "trained_on": {"cutoff": rec.get("cutoff"), "data": rec.get("data"),
                           "rows": rec.get("rows")},
            "features": self.contract.feature_names,
            "input_fields": _input_fields(self.contract),
            "max_batch": self.config.max_batch,
            "example": example_record(self.contract),
            "staging_version": self.holder.staging.version if self.holder.staging else None,
            "canary_share": self.config.canary_share,
            "shadow": self.config.shadow,
        }
        return out


def _rel(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def create_app(root: Path, contract: Contract, holder: ModelHolder,
               config: ServeConfig | None = None) -> FastAPI:
    svc = Service(Path(root), contract, holder, config or ServeConfig())

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        svc.start()
        try:
            yield
        finally:
            svc.stop()

    app = FastAPI(title="mlops_assets model service", lifespan=lifespan,
                  default_response_class=_Json)
    app.state.service = svc

    @app.get("/health")
    async def health() -> Response:
        m = svc.holder.current
        body = {"live": True, "ready": bool(svc.ready and m is not None),
                "model_version": m.version if m else None,
                "uptime_seconds": round(time.time() - svc.started_at, 3),
                "swaps": svc.holder.swaps,
                "watcher_error": svc.watcher.last_error if svc.watcher else None}
        return _Json(body, status_code=200 if body["ready"] else 503)

    @app.get("/metadata")
    async def metadata() -> Response:
        return _Json(svc.metadata())

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        t0 = time.perf_counter()
        raw = await request.body()
        try:
            body = _loads(raw)
        except (ValueError, TypeError) as e:
            svc.metrics.validation_failures.labels("body", "json").inc()
            payload: Any = RequestInvalid([FieldError(None, "body", "json",
                                                      f"the body is not valid JSON: {e}")]
                                          ).to_dict()
            status, version = 422, "none"
        else:
            n = len(body["records"]) if isinstance(body, dict) and isinstance(
                body.get("records"), list) else 1
            if n >= svc.config.offload_records:
                # a big batch: off the event loop, so small requests keep flowing (the tree
                # traversal releases the GIL) and two batches overlap on two cores
                status, payload, version = await run_in_threadpool(svc.predict, body)
            else:  # ~0.2 ms of work: a thread hop would cost more than it frees
                status, payload, version = svc.predict(body)
        svc.metrics.requests.labels("/predict", str(status), version).inc()
        svc.metrics.latency.labels("/predict", version).observe(time.perf_counter() - t0)
        return _Json(payload, status_code=status)

    @app.get("/metrics")
    async def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s", request.url.path)
        svc.metrics.requests.labels(request.url.path, "500", "none").inc()
        return _Json({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    return app
