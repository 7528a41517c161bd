"""The served model: loaded pinned by version hash, held behind one reference, hot swapped.

A `LoadedModel` is immutable once built. `ModelHolder.current` is a plain attribute: a
request reads it ONCE and uses that object for validation-free scoring, decision threshold
and the `model_version` it reports, so a swap in the middle of a request can never mix two
models. A swap is one reference assignment under a lock (the lock only serialises writers;
readers never wait).

The registry pointer `registry/production.json` ({version, model_path, record_path}, paths
relative to the project root) is read and the model verified by core.pinned_model, the
loader live monitoring uses too: the model file's md5 must equal `version`, so the service
serves exactly the pinned bytes and never "the latest file". `ProductionWatcher` polls the
pointer (mtime, size and content) and swaps in a new production model after loading and
warming it; a pointer that cannot be loaded is reported and the current model keeps serving.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from mlops_assets.core import layout
from mlops_assets.core.contract import Contract
from mlops_assets.core.features import build_features
from mlops_assets.core.io import DataError, md5_file
from mlops_assets.core.pinned_model import require_production, verify_pinned
from mlops_assets.core.registry import STAGING, Registry, Settings
from mlops_assets.core.train import load_model, score
from mlops_assets.serve.fast_path import FastPathUnsupported, FastScorer, frame_columns, parity_check
from mlops_assets.serve.validation import records_to_frame

log = logging.getLogger("mlops_assets.serve")

POINTER = layout.PRODUCTION_POINTER
REGISTRY_STATE = layout.REGISTRY_INDEX


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, verified and warmed model. `version` is the md5 of the model file (the
    registry version and the lineage id)."""

    pipeline: Any
    version: str
    threshold: float
    record: dict[str, Any] = field(repr=False)
    model_path: str = ""
    source: str = "registry"  # registry | file (dev: --model PATH)
    loaded_at: float = 0.0
    # the parity-checked fast scorer (serve.fast_path), None = the general path only
    fast: Any = field(default=None, repr=False, compare=False)

    @property
    def feature_definitions_hash(self) -> str | None:
        return (self.record.get("contract") or {}).get("feature_definitions_hash")

    def scores(self, features: pd.DataFrame, contract: Contract) -> np.ndarray:
        return score(self.pipeline, features, contract)


def load_pinned(root: Path, contract: Contract, model_path: str | Path, version: str | None,
                record_path: str | Path | None, source: str = "registry", fast: bool = True,
                batch_threads: int = 1, load: bool = True) -> LoadedModel:
    """Load a model file verified by core.pinned_model (md5 equals `version` when given,
    record matches the serving contract), build its fast scorer (kept only if it scores
    random records exactly as the general path does), and warm it up.
    `load=False` only verifies (the `--workers` parent): the pipeline is then None."""
    pinned = verify_pinned(root, contract, model_path, version, record_path,
                           require_record=source == "registry")
    if not load:
        return LoadedModel(pipeline=None, version=pinned.version, threshold=pinned.threshold,
                           record=pinned.record, model_path=str(pinned.path), source=source)
    # One OpenMP thread, also when the watcher thread loads a model for a hot swap (the
    # OpenMP thread count is per calling thread; the service sets its limit from the main
    # thread): loading must not start an OpenMP team that competes with serving.
    with threadpool_limits(limits=1, user_api="openmp"):
        pipeline = load_model(pinned.path)
        scorer = build_fast_scorer(pipeline, contract, batch_threads) if fast else None
        loaded = LoadedModel(pipeline=pipeline, version=pinned.version,
                             threshold=pinned.threshold, record=pinned.record,
                             model_path=str(pinned.path), source=source,
                             loaded_at=time.time(), fast=scorer)
        warm_up(loaded, contract)
    return loaded


def build_fast_scorer(pipeline: Any, contract: Contract, batch_threads: int = 1) -> Any:
    """The model's FastScorer after a parity check against the general path, or None (the
    service then scores through build_features + the Pipeline, only slower)."""
    try:
        scorer = FastScorer.build(pipeline, contract, threads=batch_threads)
        parity_check(scorer, pipeline, contract, n=1000)
    except FastPathUnsupported as e:
        log.warning("fast scoring path not available for this model (%s): general path", e)
        return None
    except Exception as e:  # noqa: BLE001 - a parity failure or an sklearn-internals change
        log.error("fast scoring path failed its parity check (%s: %s): general path",
                  type(e).__name__, e)
        return None
    return scorer


def load_production(root: Path, contract: Contract, fast: bool = True,
                    batch_threads: int = 1, load: bool = True) -> LoadedModel:
    """The registry's production model, loaded for serving."""
    info = require_production(
        root, "the registry has no production model; promote one first "
              "(mlops-assets registry promote ...) or start with --model PATH for development")
    return load_pinned(root, contract, info["model_path"], info["version"],
                       info.get("record_path"), fast=fast, batch_threads=batch_threads,
                       load=load)


def staging_entry(root: Path) -> dict[str, Any] | None:
    """The registry's staging version ({version, model_path, record_path}) or None (also
    when the registry state cannot be read); the newest staging entry wins if several."""
    try:
        versions = Registry(root, Settings()).versions()
    except (OSError, DataError):
        return None
    found = [(v, e) for v, e in versions.items()
             if isinstance(e, dict) and e.get("stage") == STAGING]
    if not found:
        return None
    version, entry = sorted(found, key=lambda ve: str(ve[1].get("updated_at") or ""))[-1]
    return {"version": version, "model_path": entry.get("model_path"),
            "record_path": entry.get("record_path")}


def example_record(contract: Contract) -> dict[str, Any]:
    """One valid request record built from the contract alone (label left out)."""
    out: dict[str, Any] = {}
    for name, spec in contract.columns.items():
        if name == contract.label_column:
            continue
        if name == contract.id_column:
            out[name] = "example-0001"
        elif spec.type == "datetime":
            out[name] = "2025-11-28T14:30:00Z"
        elif spec.type == "category":
            out[name] = (spec.categories or ("unknown",))[0]
        elif spec.type == "string":
            out[name] = f"example-{name}"
        elif spec.type == "bool":
            out[name] = False
        elif spec.type in ("int", "float"):
            lo = 0.0 if spec.min is None else float(spec.min)
            hi = lo + 1000.0 if spec.max is None else float(spec.max)
            v = lo + (hi - lo) * 0.01
            out[name] = int(round(v)) if spec.type == "int" else round(v, 2)
    return out


def warm_up(model: LoadedModel, contract: Contract, rows: int = 64) -> None:
    """Run the full feature + scoring path a few times, so the first request is not the one
    paying for lazy initialisation (OpenMP pools, pandas/numpy code paths)."""
    rec = example_record(contract)
    for n in (1, rows):
        frame = records_to_frame([dict(rec, **{contract.id_column: f"warm-{i}"})
                                  for i in range(n)], contract)
        s = model.scores(build_features(frame, contract), contract)
        if not np.all(np.isfinite(s)):
            raise DataError("warm-up scoring gave non-finite scores", path=model.model_path)
        if model.fast is not None:
            model.fast.score_columns(frame_columns(frame, contract))


class ModelHolder:
    """The served production model (and optionally a staging model for canary/shadow)."""

    def __init__(self, production: LoadedModel, staging: LoadedModel | None = None) -> None:
        self._lock = threading.Lock()
        self.current: LoadedModel = production
        self.staging: LoadedModel | None = staging
        self.swaps = 0
        self.history: list[str] = [production.version]

    def swap(self, new: LoadedModel) -> LoadedModel:
        """Serve `new` from now on; returns the model it replaced. One assignment."""
        with self._lock:
            old = self.current
            self.current = new
            self.swaps += 1
            self.history.append(new.version)
        return old

    def set_staging(self, new: LoadedModel | None) -> None:
        with self._lock:
            self.staging = new


class ProductionWatcher:
    """Polls registry/production.json and hot swaps the served model when it changes."""

    def __init__(self, root: Path, contract: Contract, holder: ModelHolder,
                 interval: float = 0.5, on_swap: Callable[[LoadedModel, LoadedModel], None]
                 | None = None, on_error: Callable[[str], None] | None = None,
                 watch_staging: bool = False, cache_size: int = 3, fast: bool = True,
                 batch_threads: int = 1) -> None:
        self.root, self.contract, self.holder = Path(root), contract, holder
        self.fast, self.batch_threads = fast, batch_threads
        self.interval = interval
        self.on_swap, self.on_error = on_swap, on_error
        self.watch_staging = watch_staging
        self._cache: dict[str, LoadedModel] = {holder.current.version: holder.current}
        self._cache_size = cache_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Nothing seen yet: the first poll compares the pointer with the SERVED version, so
        # a promotion between loading the model and starting the watcher is not missed
        # (with --workers, one worker can still be loading when another reports ready).
        self._seen: tuple[Any, ...] | None = ()
        self._seen_content: bytes | None = b""
        self._seen_staging: bytes | None = None
        self.last_error: str | None = None

    def _stamp(self) -> tuple[Any, ...] | None:
        try:
            st = (self.root / POINTER).stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _content(self, rel: str = POINTER) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except OSError:
            return None

    def start(self) -> ProductionWatcher:
        self._thread = threading.Thread(target=self._run, name="production-watcher",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once()
            except Exception as e:  # noqa: BLE001 - the watcher must never die
                self._error(f"watcher error: {type(e).__name__}: {e}")

    def _error(self, message: str) -> None:
        self.last_error = message
        log.error(message)
        if self.on_error is not None:
            self.on_error(message)

    def _load(self, info: dict[str, Any]) -> LoadedModel:
        version = info["version"]
        cached = self._cache.get(version)
        if cached is not None and md5_file(cached.model_path) == version:
            return cached
        model = load_pinned(self.root, self.contract, info["model_path"], version,
                            info.get("record_path"), fast=self.fast,
                            batch_threads=self.batch_threads)
        self._cache[version] = model
        while len(self._cache) > self._cache_size:
            oldest = next(iter(self._cache))
            if oldest == self.holder.current.version:
                self._cache[oldest] = self._cache.pop(oldest)  # keep, move to the end
                continue
            self._cache.pop(oldest)
        return model

    def check_once(self) -> bool:
        """One poll: swap if the pointer names another version. True when swapped."""
        swapped = False
        stamp = self._stamp()
        if stamp != self._seen:
            content = self._content()
            if content != self._seen_content:
                swapped = self._apply(content)
            self._seen = stamp
        if self.watch_staging:
            self._check_staging()
        return swapped

    def _apply(self, content: bytes | None) -> bool:
        try:
            info = json.loads(content) if content else None
        except json.JSONDecodeError:
            # a writer that is not atomic: read again at the next poll
            self._seen = None
            return False
        self._seen_content = content
        if not isinstance(info, dict) or not info.get("version"):
            self._error("the registry pointer names no production model; "
                        f"still serving {self.holder.current.version}")
            return False
        if info["version"] == self.holder.current.version:
            return False
        try:
            new = self._load(info)
        except DataError as e:
            self._error(f"cannot load production version {info['version']}: {e}; "
                        f"still serving {self.holder.current.version}")
            return False
        old = self.holder.swap(new)
        self.last_error = None
        log.warning("hot swap: %s -> %s", old.version, new.version)
        if self.on_swap is not None:
            self.on_swap(old, new)
        return True

    def _check_staging(self) -> None:
        content = self._content(REGISTRY_STATE)
        if content == self._seen_staging:
            return
        self._seen_staging = content
        entry = staging_entry(self.root)
        current = self.holder.staging
        if entry is None or not entry.get("model_path"):
            if current is not None:
                self.holder.set_staging(None)
            return
        if current is not None and current.version == entry["version"]:
            return
        try:
            self.holder.set_staging(self._load(entry))
        except DataError as e:
            self._error(f"cannot load staging version {entry['version']}: {e}")
