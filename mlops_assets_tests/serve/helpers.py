"""A trained project copy with a registry production model, and a real `mlops-assets serve`
subprocess on a free loopback port, for the service tests and the benchmark."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from mlops_assets_tests.conftest import SMALL, make_project_copy, run, tool_env

VENV_BIN = Path(sys.executable).parent
CHAIN = ["landing", "snapshot", "validate", "features", "split", "train"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register(root: Path, model_path: Path, record: dict[str, Any]) -> str:
    """Copy a model into registry/models/<md5>/ (as the registry lays it out); the version."""
    from mlops_assets.core.io import md5_file, write_json_atomic

    version = md5_file(model_path)
    d = root / "registry" / "models" / version
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.skops").write_bytes(model_path.read_bytes())
    write_json_atomic(d / "model.json", record)
    return version


def point_production(root: Path, version: str | None) -> None:
    """Write registry/production.json atomically (what a promotion/rollback does)."""
    from mlops_assets.core.io import write_json_atomic

    if version is None:
        info = {"version": None, "model_path": None, "record_path": None}
    else:
        info = {"version": version,
                "model_path": f"registry/models/{version}/model.skops",
                "record_path": f"registry/models/{version}/model.json"}
    write_json_atomic(root / "registry" / "production.json", info)


def train_alternative(root: Path, max_iter: int = 25) -> str:
    """A second, different model trained in-process on the same training table; registered."""
    from mlops_assets.core.contract import load_contract
    from mlops_assets.core.io import read_table
    from mlops_assets.core.train import TrainParams, model_record, save_model, train_model
    from mlops_assets.pipeline import load_params

    params = load_params(root)
    contract = load_contract(root / params["dataset"]["contract"])
    tp = TrainParams.from_params(dict(params["train"], max_iter=max_iter))
    result = train_model(read_table(root / "data/split/train.parquet"), contract, tp)
    tmp = root / "data" / "alt_model" / "model.skops"
    save_model(result.pipeline, tmp)
    record = model_record(model_path=tmp, result=result, contract=contract, params=tp,
                          data_hashes={})
    return register(root, tmp, record)


def trained_project(dest: Path) -> tuple[Path, str]:
    """A small project copy, the chain run up to `train` by the stage commands, the model
    registered and pointed to as production. Returns (root, version)."""
    root = make_project_copy(dest, SMALL, with_lock=False)
    env = tool_env(root)
    for stage in CHAIN:
        run([sys.executable, "-m", "mlops_assets.stages", stage, "--root", str(root)], root, env)
    record = json.loads((root / "data/model/model.json").read_text())
    version = register(root, root / "data/model/model.skops", record)
    point_production(root, version)
    return root, version


def request_records(root: Path, n: int, start: int = 0, where: str = "holdout"
                    ) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """n raw rows of the validated dataset as JSON request records (label removed), and the
    validated rows themselves. `where` = holdout takes rows at/after the split cutoff."""
    from mlops_assets.core.io import read_table
    from mlops_assets.pipeline import load_params

    params = load_params(root)
    df = read_table(root / "data/validated/dataset.parquet")
    if where == "holdout":
        df = df[df["ts"] >= pd.Timestamp(params["split"]["cutoff"])]
    rows = df.iloc[start:start + n].reset_index(drop=True)
    return [to_record(r) for r in rows.to_dict("records")], rows


def to_record(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k in ("is_fraud", "_batch"):
            continue
        if isinstance(v, pd.Timestamp):
            v = v.isoformat() + "Z"
        elif isinstance(v, float) and math.isnan(v):
            v = None
        elif hasattr(v, "item"):
            v = v.item()
        out[k] = v
    return out


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError as e:
            return f"<no log: {e}>"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return int(self.proc.returncode)


def start_server(root: Path, *extra: str, log_name: str = "serve.log",
                 wait: bool = True, timeout: float = 120) -> Server:
    port = free_port()
    log_path = root / log_name
    env = tool_env(root)
    env["PYTHONUNBUFFERED"] = "1"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "mlops-assets"), "serve", "--root", str(root), "--port", str(port),
             *extra], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, log_path)
    if not wait:
        return server
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}:\n{server.log_tail()}")
        try:
            r = httpx.get(f"{server.url}/health", timeout=2)
            if r.status_code == 200 and r.json().get("ready"):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"serve not ready in {timeout}s:\n{server.log_tail()}")


@contextmanager
def serving(root: Path, *extra: str, log_name: str = "serve.log") -> Iterator[Server]:
    server = start_server(root, *extra, log_name=log_name)
    try:
        yield server
    finally:
        server.stop()
