"""`mlops-assets reproduce MODEL_VERSION`: rebuild a model from its pinned inputs and show
that the bytes are the registered ones, or say exactly which input differs.

1. Find the commit whose dvc.lock recorded the model md5 (the first one, where it entered
   the history; `git log -- dvc.lock`).
2. `git worktree add --detach` a temporary checkout of that commit (outside the repository).
3. Point the worktree's DVC at this repository's cache (`dvc cache dir --local`) and remotes,
   and `dvc checkout` the train stage's data deps (`dvc pull` them when the cache lacks them).
4. Hash every dep of the train stage in the worktree against the md5 dvc.lock recorded (data
   from DVC, code and params from git): any difference is reported with path, expected and
   actual md5.
5. `dvc repro --force --single-item train` in the worktree (with MLOPS_ASSETS_ROOT and
   PYTHONPATH pointing at it, so the code of that commit runs), then compare the md5 of the
   rebuilt model.skops with the version.
6. Remove the worktree (`git worktree remove --force`, then prune), unless --keep.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mlops_assets.core.dvcgraph import inside, param
from mlops_assets.core.layout import MODEL, MODEL_RECORD, RUN_PARAMS
from mlops_assets.core.lineage.chain import LineageError
from mlops_assets.core.lineage.history import (
    TRAIN_STAGE,
    LockHistory,
    deps_of,
    model_md5_of,
    outs_of,
    params_of,
)
from mlops_assets.core.lineage.model import resolve_model
from mlops_assets.core.run_params import RUN_SECTIONS, effective_params, write_run_params
from mlops_assets.core.store import dir_md5, dvc_cache_dir, dvc_cache_object, md5_of_file
from mlops_assets.core.versions import library_versions

Say = Callable[[str], None]


class ReproduceError(Exception):
    """The model cannot be reproduced (unknown version, never committed): a message for people."""


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _tool(name: str) -> str:
    """A tool of this environment (the venv's dvc), else from PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def find_commit(root: Path, version: str) -> tuple[str, dict[str, Any]]:
    """The first commit (oldest) whose dvc.lock records `version` as the train stage's
    model.skops, and that dvc.lock's stages."""
    history = LockHistory(root)
    revs = [r for r in history.commits() if model_md5_of(r) == version]
    if not revs:
        where = (" It is recorded only in the uncommitted dvc.lock of the working tree: commit "
                 "dvc.lock first." if model_md5_of(history.working) == version else "")
        raise ReproduceError(f"no commit's dvc.lock records model {version}.{where}")
    first = revs[-1]
    return str(first.commit), first.stages


def _tree_md5(path: Path) -> str | None:
    if path.is_file():
        return md5_of_file(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return dir_md5((p.relative_to(path).as_posix(), md5_of_file(p)) for p in files)
    return None


def _dvc_remotes(root: Path, env: dict[str, str]) -> dict[str, str]:
    """name -> url (absolute for local remotes) of this repository's DVC remotes."""
    proc = _run([_tool("dvc"), "remote", "list"], root, env)
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            name, url = parts[0], parts[1]
            if "://" not in url and not os.path.isabs(url):
                url = str((root / ".dvc" / url).resolve())
            out[name] = url
    return out


def _step(steps: list[dict[str, Any]], name: str, p: subprocess.CompletedProcess[str],
          keep: int = 1000, stderr_only: bool = False) -> bool:
    """Record a tool run among the result's steps; whether it succeeded."""
    detail = p.stderr if stderr_only else p.stdout + p.stderr
    steps.append({"step": name, "ok": p.returncode == 0, "detail": detail.strip()[-keep:]})
    return p.returncode == 0


def _share_dvc(root: Path, wt: Path, env: dict[str, str], steps: list[dict[str, Any]]) -> None:
    """Point the worktree's DVC at this repository's cache and remotes."""
    dvc = _tool("dvc")
    p = _run([dvc, "cache", "dir", "--local", str(dvc_cache_dir(root))], wt, env)
    _step(steps, "dvc cache dir --local", p, keep=500, stderr_only=True)
    for name, url in _dvc_remotes(root, env).items():
        _run([dvc, "remote", "modify", "--local", name, "url", url], wt, env)


def _inputs(root: Path, stages: dict[str, Any], result: dict[str, Any]
            ) -> tuple[dict[str, str], list[str]]:
    """The train stage's deps (path -> md5 pinned) and which of them DVC brings. The model
    record pins (by md5) data the train stage reads besides its declared deps
    (data/features/features.parquet: its md5 goes into model.json); those count too."""
    train = stages.get(TRAIN_STAGE) or {}
    deps = dict(deps_of(train))
    produced = {o.rstrip("/") for st in stages.values() for o in outs_of(st)}
    record = _record_from_cache(root, outs_of(train).get(MODEL_RECORD))
    undeclared = {p: m for p, m in (record.get("data") or {}).items() if p not in deps}
    result["undeclared_inputs"] = sorted(undeclared)
    deps.update(undeclared)
    return deps, [d for d in deps if any(inside(d, o) for o in produced)]


def _checkout(wt: Path, env: dict[str, str], data_deps: list[str], steps: list[dict[str, Any]],
              say: Say) -> None:
    """Bring the data deps from the shared cache, else from the remote."""
    if not data_deps:
        return
    dvc = _tool("dvc")
    say(f"dvc checkout {' '.join(data_deps)}")
    if not _step(steps, "dvc checkout", _run([dvc, "checkout", *data_deps], wt, env)):
        say("dvc checkout failed for some inputs; trying dvc pull")
        _step(steps, "dvc pull", _run([dvc, "pull", *data_deps], wt, env))


def _compare_inputs(wt: Path, deps: dict[str, str], data_deps: list[str],
                    lock_params: dict[str, Any], result: dict[str, Any]) -> None:
    """Every input in the worktree against what dvc.lock pinned (data, code and params)."""
    for path, want in sorted(deps.items()):
        have = _tree_md5(wt / path)
        row = {"path": path, "expected": want, "actual": have,
               "source": "DVC" if path in data_deps else "git"}
        result["inputs"].append(row)
        if have != want:
            result["input_differences"].append(row)
    now = effective_params(wt, yaml.safe_load((wt / "params.yaml").read_text()) or {})
    for key, val in lock_params.items():
        node = param(now, key)
        if node != val:
            result["input_differences"].append(
                {"path": f"params.yaml:{key}", "expected": val, "actual": node,
                 "source": "git"})


def _restore_run_params(wt: Path, stages: dict[str, Any], say: Say) -> None:
    """The run params file is git-ignored, so the worktree has none: write back the sections
    the lock's entries pinned (a retrain's window, Launchpad hyperparameters)."""
    for entry in stages.values():
        pinned = (entry.get("params") or {}).get(RUN_PARAMS) or {}
        for section in RUN_SECTIONS:
            if section in pinned:
                write_run_params(wt, section, pinned[section] or {})
                if pinned[section]:
                    say(f"{RUN_PARAMS} {section}: {pinned[section]} (as dvc.lock pinned)")


def _rebuild(wt: Path, env: dict[str, str], train: dict[str, Any], result: dict[str, Any],
             say: Say) -> None:
    """`dvc repro` the train stage with the worktree's code, and compare the bytes."""
    run_env = dict(env)
    run_env["MLOPS_ASSETS_ROOT"] = str(wt)
    run_env["PYTHONPATH"] = str(wt) + (os.pathsep + env["PYTHONPATH"]
                                       if env.get("PYTHONPATH") else "")
    run_env.pop("DAGSTER_HOME", None)
    say("dvc repro --force --single-item train")
    p = _run([_tool("dvc"), "repro", "--force", "--single-item", TRAIN_STAGE], wt, run_env)
    ok = _step(result["steps"], "dvc repro --force --single-item train", p, keep=2000)
    model = wt / MODEL
    result["rebuilt_md5"] = md5_of_file(model) if ok and model.exists() else None
    result["identical"] = result["rebuilt_md5"] == result["version"]
    result["ok"] = result["identical"] and not result["input_differences"]
    result["record_identical"] = (model.exists() and (wt / MODEL_RECORD).exists()
                                  and md5_of_file(wt / MODEL_RECORD)
                                  == outs_of(train).get(MODEL_RECORD))
    if not result["identical"]:
        result["libraries"] = _library_diff(wt)


def _remove_worktree(root: Path, wt: Path, env: dict[str, str], result: dict[str, Any]) -> None:
    _run(["git", "worktree", "remove", "--force", str(wt)], root, env)
    if wt.exists():
        shutil.rmtree(wt, ignore_errors=True)
    _run(["git", "worktree", "prune"], root, env)
    result["worktree_removed"] = not wt.exists()


def _tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def _add_worktree(root: Path, version: str, commit: str, env: dict[str, str]) -> Path:
    """A detached worktree of `commit` in a fresh temporary folder (outside the repo)."""
    wt = Path(tempfile.mkdtemp(prefix=f"mlops-reproduce-{version[:8]}-"))
    wt.rmdir()  # git worktree add wants to create it
    proc = _run(["git", "worktree", "add", "--detach", str(wt), commit], root, env)
    if proc.returncode != 0:
        raise ReproduceError(f"git worktree add failed: {proc.stderr.strip()}")
    return wt


def reproduce(root: Path, ref: str, keep: bool = False,
              progress: Say | None = None) -> dict[str, Any]:
    """Rebuild model `ref` in a temporary worktree; the result dict says whether the bytes
    are identical and, if not, which inputs differ."""
    say = progress or (lambda m: None)
    root = Path(root).resolve()
    try:
        version = resolve_model(root, ref, LockHistory(root)).version
    except LineageError as e:
        raise ReproduceError(str(e)) from None
    commit, stages = find_commit(root, version)
    train = stages.get(TRAIN_STAGE) or {}
    env = _tool_env()
    result: dict[str, Any] = {"version": version, "commit": commit, "identical": False,
                              "ok": False, "rebuilt_md5": None, "input_differences": [],
                              "inputs": [], "steps": [], "worktree": None}
    started = time.perf_counter()
    wt = _add_worktree(root, version, commit, env)
    result["worktree"] = str(wt)
    say(f"model {version} was recorded in dvc.lock at commit {commit[:10]}; worktree {wt}")
    try:
        _share_dvc(root, wt, env, result["steps"])
        deps, data_deps = _inputs(root, stages, result)
        _checkout(wt, env, data_deps, result["steps"], say)
        _restore_run_params(wt, stages, say)
        _compare_inputs(wt, deps, data_deps, params_of(train), result)
        _rebuild(wt, env, train, result, say)
    finally:
        if keep:
            say(f"worktree kept at {wt}")
        else:
            _remove_worktree(root, wt, env, result)
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _record_from_cache(root: Path, md5: str | None) -> dict[str, Any]:
    if not md5:
        return {}
    obj = dvc_cache_object(root, md5)
    try:
        return json.loads(obj.read_bytes()) if obj.is_file() else {}
    except ValueError:
        return {}


def _library_diff(wt: Path) -> dict[str, Any]:
    try:
        rec = json.loads((wt / MODEL_RECORD).read_text()).get("libraries") or {}
    except (OSError, ValueError):
        rec = {}
    now = library_versions()
    return {k: {"recorded": rec.get(k), "installed": now.get(k)} for k in sorted(set(rec) | set(now))
            if rec.get(k) != now.get(k)}


def render_result(r: dict[str, Any]) -> str:
    lines = [f"reproduce {r['version']} from commit {r['commit'][:10]} "
             f"(worktree {r['worktree']}, {r.get('seconds')}s)"]
    if r.get("undeclared_inputs"):
        lines.append("  note: the train stage also reads " + ", ".join(r["undeclared_inputs"])
                     + " (pinned by md5 in model.json) though dvc.yaml does not list it as a dep;"
                       " checked out and compared too")
    for row in r["inputs"]:
        ok = row["expected"] == row["actual"]
        lines.append(f"  {'ok      ' if ok else 'DIFFERS '} {row['path']:<42} {row['source']:<4} "
                     f"expected {row['expected']}" + ("" if ok else f", actual {row['actual']}"))
    if r["identical"] and not r["input_differences"]:
        lines.append(f"IDENTICAL: the rebuilt model.skops has md5 {r['rebuilt_md5']}, the "
                     "registered bytes" + ("; model.json too" if r.get("record_identical") else ""))
    elif r["identical"]:
        lines.append(f"IDENTICAL model bytes ({r['rebuilt_md5']}), but inputs differ from what "
                     "dvc.lock pinned, so the pinned inputs could not be brought back intact:")
        for d in r["input_differences"]:
            lines.append(f"  input {d['path']}: expected {d['expected']}, actual {d['actual']}")
    else:
        failed = [s for s in r["steps"] if not s["ok"]]
        if r["rebuilt_md5"] is None:
            lines.append(f"NOT REBUILT: the rebuild of {r['version']} failed (see below)")
        else:
            lines.append(f"DIFFERENT: rebuilt md5 {r['rebuilt_md5']} != {r['version']}")
        for d in r["input_differences"]:
            lines.append(f"  input {d['path']}: expected {d['expected']}, actual {d['actual']}")
        if r["rebuilt_md5"] is not None and not r["input_differences"]:
            lines.append("  every input matches dvc.lock: the difference comes from the "
                         "environment" + (f" (libraries: {r.get('libraries')})"
                                          if r.get("libraries") else ""))
        for s in failed:
            lines.append(f"  step failed: {s['step']}: {s['detail'][-600:]}")
    return "\n".join(lines)
