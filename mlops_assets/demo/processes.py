"""Start and stop the Dagster webserver and daemon as subprocesses of a project copy.

Used by `mlops-assets incident` (the replay runs against a real `dagster-daemon`) and by
the integration tests (mlops_assets_tests/integration/servers.py re-exports these):

    with start_webserver(root, root / ".dagster_home") as web:
        with start_daemon(root, root / ".dagster_home"):
            ...  # web.url is "http://127.0.0.1:<port>"

Each process runs in its own process group (so the run workers it spawns are stopped
with it), with stdout+stderr in a log file whose tail failure messages can quote.
Stopping is SIGTERM to the group, a bounded wait, then SIGKILL.

`graphql(url, query)` and `wait_daemon_healthy(url)` talk to a running webserver;
`wait_daemon_heartbeats(instance)` needs no webserver (it reads the instance)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(root: Path, dagster_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the services run with: the venv first on PATH, MLOPS_ASSETS_ROOT and
    DAGSTER_HOME pointing at the copy, analytics/telemetry off."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["MLOPS_ASSETS_ROOT"] = str(root)
    env["DAGSTER_HOME"] = str(dagster_home)
    env["DVC_NO_ANALYTICS"] = "1"
    env["DO_NOT_TRACK"] = "1"
    env["DAGSTER_DISABLE_TELEMETRY"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("GIT_AUTHOR_NAME", "tests")
    env.setdefault("GIT_COMMITTER_NAME", "tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@example.invalid")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@example.invalid")
    env.update(extra or {})
    return env


@dataclass
class Service:
    """A started process: its name, Popen handle, log file and (for the webserver) URL."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    url: str | None = None
    _stopped: bool = field(default=False, repr=False)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the log, with runs of identical lines (warnings repeated on every
        tick) collapsed, so the tail shows what happened."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"<no log: {exc}>"
        out: list[str] = []
        repeats = 0
        for i, line in enumerate(lines):
            if i and line == lines[i - 1]:
                repeats += 1
                continue
            if repeats:
                out.append(f"    [previous line repeated {repeats} more times]")
                repeats = 0
            out.append(line)
        if repeats:
            out.append(f"    [previous line repeated {repeats} more times]")
        return "\n".join(out)[-chars:]

    def describe(self, chars: int = 4000) -> str:
        state = "running" if self.alive() else f"exited {self.proc.returncode}"
        return f"--- {self.name} ({state}), log {self.log_path} ---\n{self.log_tail(chars)}"

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the process group, wait up to `timeout`, then SIGKILL it."""
        if self._stopped:
            return
        self._stopped = True
        _signal_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc, signal.SIGKILL)
            self.proc.wait(timeout=10)
        # children that outlived the leader (run workers) go too
        _signal_group(self.proc, signal.SIGKILL)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # start_new_session: pgid == pid
    except ProcessLookupError:
        pass


@contextmanager
def start_service(name: str, cmd: Sequence[str], root: Path, dagster_home: Path,
                  log_path: Path | None = None, env: dict[str, str] | None = None,
                  stop_timeout: float = 30) -> Iterator[Service]:
    """Run `cmd` in `root` in a new process group for the duration of the block."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    log_path = log_path or dagster_home / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(cmd), cwd=root, env=env or server_env(root, dagster_home),
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    service = Service(name, proc, log_path)
    try:
        yield service
    finally:
        service.stop(stop_timeout)


def wait_for(url: str, timeout: float = 120, interval: float = 0.5,
             service: Service | None = None) -> None:
    """Poll `url` until it answers 200; raise TimeoutError (with the service's log tail)
    after `timeout` seconds, or at once if `service` exits meanwhile."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if service is not None and not service.alive():
            raise RuntimeError(f"{service.name} exited before {url} answered\n{service.describe()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = repr(exc)
        time.sleep(interval)
    extra = f"\n{service.describe()}" if service is not None else ""
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f}s (last: {last}){extra}")


@contextmanager
def start_webserver(root: Path, dagster_home: Path, port: int | None = None,
                    workspace: str = "workspace.yaml", ready_timeout: float = 180,
                    log_path: Path | None = None, attempts: int = 3) -> Iterator[Service]:
    """`dagster-webserver -w workspace.yaml -h 127.0.0.1 -p PORT` in `root`; yields once
    GET /server_info answers 200 and the process still runs. `service.url` is the base URL.
    Without `port`, a free one is picked, and picked again (up to `attempts` times) if
    another process took it before the webserver could bind it."""
    for attempt in range(1, attempts + 1):
        chosen = port or free_port()
        cmd = [str(VENV_BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
               "-p", str(chosen)]
        with start_service("dagster-webserver", cmd, root, dagster_home, log_path) as service:
            service.url = f"http://127.0.0.1:{chosen}"
            try:
                wait_for(f"{service.url}/server_info", timeout=ready_timeout, service=service)
                time.sleep(1)  # a 200 from someone else's server, then ours fails to bind?
                if not service.alive():
                    raise RuntimeError(f"{service.name} exited after {service.url} answered"
                                       f"\n{service.describe()}")
            except RuntimeError:
                in_use = "address already in use" in service.log_tail(20000).lower()
                if port is None and in_use and attempt < attempts:
                    continue
                raise
            yield service
            return
    raise AssertionError("unreachable")


@contextmanager
def start_daemon(root: Path, dagster_home: Path, workspace: str = "workspace.yaml",
                 log_path: Path | None = None) -> Iterator[Service]:
    """`dagster-daemon run -w workspace.yaml` in `root` (backfills, sensors, schedules).
    Whether it is up shows in the webserver: see `wait_daemon_healthy`."""
    cmd = [str(VENV_BIN / "dagster-daemon"), "run", "-w", workspace]
    with start_service("dagster-daemon", cmd, root, dagster_home, log_path) as service:
        yield service


class GraphQLError(RuntimeError):
    pass


def graphql(base_url: str, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
    """POST a query to the webserver's /graphql; return `data`, raise GraphQLError on errors."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(f"{base_url}/graphql", data=body,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.load(resp)
    except urllib.error.HTTPError as exc:
        raise GraphQLError(f"HTTP {exc.code} from /graphql: {exc.read()[:2000]!r}") from exc
    if payload.get("errors"):
        raise GraphQLError(f"GraphQL errors: {json.dumps(payload['errors'])[:2000]}")
    return payload["data"]


DAEMON_HEALTH = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"


def wait_daemon_healthy(base_url: str, daemon_types: Sequence[str] = ("BACKFILL",),
                        timeout: float = 120, interval: float = 1,
                        services: Sequence[Service] = ()) -> None:
    """Wait until the webserver reports the given daemons healthy (their heartbeats arrive),
    or raise TimeoutError with the services' log tails."""
    deadline = time.monotonic() + timeout
    statuses: list[dict] = []
    while time.monotonic() < deadline:
        for s in services:
            if not s.alive():
                raise RuntimeError(f"{s.name} exited\n{s.describe()}")
        statuses = graphql(base_url, DAEMON_HEALTH)["instance"]["daemonHealth"]["allDaemonStatuses"]
        healthy = {d["daemonType"] for d in statuses if d["healthy"]}
        if set(daemon_types) <= healthy:
            return
        time.sleep(interval)
    logs = "\n".join(s.describe() for s in services)
    raise TimeoutError(f"daemons {list(daemon_types)} not healthy within {timeout:.0f}s: "
                       f"{statuses}\n{logs}")


def wait_daemon_heartbeats(instance: Any, daemon_types: Sequence[str] = ("SENSOR",),
                           since: float | None = None, timeout: float = 180,
                           interval: float = 1, services: Sequence[Service] = ()) -> None:
    """Wait until the instance holds a heartbeat newer than `since` (epoch seconds, default
    now) from each of `daemon_types`: the daemon is up and ticking. No webserver needed."""
    since = time.time() if since is None else since
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        for s in services:
            if not s.alive():
                raise RuntimeError(f"{s.name} exited\n{s.describe()}")
        seen = {str(k): float(getattr(v, "timestamp", 0) or 0)
                for k, v in (instance.get_daemon_heartbeats() or {}).items()}
        if all(seen.get(t, 0) >= since for t in daemon_types):
            return
        time.sleep(interval)
    logs = "\n".join(s.describe() for s in services)
    raise TimeoutError(f"no heartbeat from daemons {list(daemon_types)} within {timeout:.0f}s "
                       f"(last seen: {seen})\n{logs}")
