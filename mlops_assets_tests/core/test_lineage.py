"""The lineage core without a trained chain: DVC's directory hash, the hash cache, the
leakage scan, the audit-log verification, audit events, and model resolution over the git
history of dvc.lock."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops_assets.core.audit import append_event
from mlops_assets.core.lineage import (
    HashCache,
    LineageError,
    LockHistory,
    dir_md5,
    event_matches_type,
    event_names_model,
    event_time,
    event_type,
    resolve_model,
    scan_leakage,
    verify_audit_log,
)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout


# ------------------------------------------------------------------ DVC directory hash


def test_dir_md5_equals_dvc_data_tree_digest(tmp_path: Path) -> None:
    """Our directory md5 is DVC's (dvc_data computes it independently here)."""
    from dvc_data.hashfile.hash_info import HashInfo
    from dvc_data.hashfile.meta import Meta
    from dvc_data.hashfile.tree import Tree

    files = {"manifest.json": b"{}\n", "week_1-abc.parquet": b"x" * 100, "sub/b.csv": b"a,b\n",
             "a.txt": b"a"}
    tree = Tree()
    for rel, data in files.items():
        tree.add(tuple(rel.split("/")), Meta(), HashInfo("md5", _md5(data)))
    tree.digest()
    assert dir_md5((rel, _md5(d)) for rel, d in files.items()) == tree.hash_info.value


# ------------------------------------------------------------------ hash cache


def test_hash_cache_hits_when_warm_and_misses_after_an_edit(tmp_path: Path) -> None:
    f = tmp_path / "data.bin"
    f.write_bytes(b"a" * 1000)
    db = tmp_path / "hashes.sqlite"
    with HashCache(db) as cache:
        assert cache.md5(f) == _md5(b"a" * 1000)
        assert cache.stats()["hashed"] == 1
    with HashCache(db) as cache:  # a new process: warm
        assert cache.md5(f) == _md5(b"a" * 1000)
        assert cache.stats() | {"cache_file": None} == {
            "cache_file": None, "hits": 1, "hashed": 0, "bytes_hashed": 0}
    # an edit of the same size that restores the mtime is still seen (ctime is in the key)
    st = f.stat()
    time.sleep(0.05)
    f.write_bytes(b"b" + b"a" * 999)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    with HashCache(db) as cache:
        assert cache.md5(f) == _md5(b"b" + b"a" * 999)
        assert cache.stats()["hashed"] == 1


def test_hash_cache_many_files_in_parallel_equal_hashlib(tmp_path: Path) -> None:
    paths = []
    for i in range(12):
        p = tmp_path / f"f{i}"
        p.write_bytes(os.urandom(50_000 + i))
        paths.append(p)
    with HashCache(None, workers=4) as cache:
        got = cache.md5_many(paths)
    assert got == {str(p): _md5(p.read_bytes()) for p in paths}


# ------------------------------------------------------------------ leakage


def test_scan_leakage_counts_rows_at_or_after_the_cutoff(tmp_path: Path) -> None:
    p = tmp_path / "train.parquet"
    pd.DataFrame({"ts": pd.to_datetime(["2025-11-09 23:59:59", "2025-11-10 00:00:00",
                                        "2025-11-01 00:00:00", "2025-12-01 00:00:00"]),
                  "x": [1, 2, 3, 4]}).to_parquet(p)
    res = scan_leakage(p, "ts", "2025-11-10")
    assert res == {"rows": 4, "late": 2, "ts_max": "2025-12-01T00:00:00"}
    assert scan_leakage(p, "ts", "2025-12-02")["late"] == 0
    assert "error" in scan_leakage(p, "no_such_column", "2025-11-10")


# ------------------------------------------------------------------ audit log


def _log(root: Path, n: int = 4) -> Path:
    path = root / "registry" / "audit.log.jsonl"
    for i in range(n):
        append_event(path, {"kind": "registry", "action": "approve", "version": f"{i:032x}",
                            "by": "bob", "reason": f"ok {i}", "at": f"2026-01-0{i + 1}T00:00:00Z"})
    return path


def test_verify_audit_log_names_the_edited_entry(tmp_path: Path) -> None:
    path = _log(tmp_path)
    assert verify_audit_log(tmp_path)["ok"]
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace("ok 1", "ok 9")
    path.write_text("".join(lines))
    res = verify_audit_log(tmp_path)
    assert not res["ok"]
    assert any("the entry at line 2 was edited" in p and "registry/audit.log.jsonl" in p
               for p in res["problems"]), res["problems"]


def test_verify_audit_log_catches_an_edited_last_entry_once_committed(tmp_path: Path) -> None:
    """The hash chain cannot see an edit of the last line; git (the log is tracked) can."""
    path = _log(tmp_path)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "log")
    append_event(path, {"kind": "registry", "action": "promote", "version": "f" * 32,
                        "by": "bob", "reason": "go"})  # appending is fine
    assert verify_audit_log(tmp_path)["ok"]
    _git(tmp_path, "commit", "-qam", "more")
    lines = path.read_text().splitlines(keepends=True)
    lines[-1] = lines[-1].replace('"go"', '"gone"')
    path.write_text("".join(lines))
    res = verify_audit_log(tmp_path)
    assert not res["ok"]
    assert any("line 5 differs from the version committed" in p for p in res["problems"])
    path.write_text("".join(lines[:2]))  # truncation
    assert any("truncated" in p for p in verify_audit_log(tmp_path)["problems"])


def test_audit_event_helpers() -> None:
    e = {"kind": "registry", "action": "approve", "version": "ab" * 16, "at": "2026-01-02T03:04:05Z"}
    assert event_type(e) == "registry.approve"
    assert event_matches_type(e, "approve") and event_matches_type(e, "registry")
    assert event_names_model(e, "abab" * 2) and not event_names_model(e, "cd" * 16)
    assert event_time(e).isoformat() == "2026-01-02T03:04:05+00:00"
    drift = {"kind": "drift", "action": "retrain_requested", "cutoff": "2025-11-10"}
    assert event_type(drift) == "drift.retrain_requested" and event_time(drift) is None


# ------------------------------------------------------------------ model resolution


def _lock(model_md5: str) -> str:
    return yaml.safe_dump({"schema": "2.0", "stages": {"train": {
        "cmd": "python -m mlops_assets.stages train",
        "outs": [{"path": "data/model/model.skops", "md5": model_md5, "hash": "md5"}]}}})


def test_resolve_model_over_the_history_of_dvc_lock(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q")
    a, b = "a1b2c3" + "0" * 26, "a1b2c3" + "1" * 26
    for md5 in (a, b):
        (tmp_path / "dvc.lock").write_text(_lock(md5))
        _git(tmp_path, "add", "-A")
        _git(tmp_path, "commit", "-qm", md5[:8])
    hist = LockHistory(tmp_path)
    assert [r.stages["train"]["outs"][0]["md5"] for r in hist.commits()] == [b, a]
    assert resolve_model(tmp_path, "current", hist).version == b
    assert resolve_model(tmp_path, "a1b2c30", hist).version == a
    assert resolve_model(tmp_path, a, hist).how == "dvc.lock history"
    with pytest.raises(LineageError, match="ambiguous"):
        resolve_model(tmp_path, "a1b2c3", hist)
    with pytest.raises(LineageError, match="not a model version"):
        resolve_model(tmp_path, "a1b2c", hist)
    with pytest.raises(LineageError, match="unknown model version"):
        resolve_model(tmp_path, "f" * 32, hist)
    with pytest.raises(LineageError, match="no production model"):
        resolve_model(tmp_path, "production", hist)
    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / "production.json").write_text(json.dumps({"version": a}))
    assert resolve_model(tmp_path, "production", hist).version == a
