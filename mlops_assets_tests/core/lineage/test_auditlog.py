"""core.lineage.auditlog and core.lineage.events: the audit log as an auditor reads it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mlops_assets.core.audit import append_event, verify_chain
from mlops_assets.core.lineage.auditlog import verify_audit_log
from mlops_assets.core.lineage.events import (
    event_matches_type,
    event_names_model,
    event_time,
    event_type,
)


def _git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True,
                          text=True).stdout


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


def test_one_walk_of_the_chain_two_wordings(tmp_path: Path) -> None:
    """core.audit walks the chain; lineage words the same breaks for an auditor."""
    path = _log(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join([lines[0], lines[2], lines[3]]))  # an entry removed
    audit_msgs = verify_chain(path)
    lineage_msgs = verify_audit_log(tmp_path)["problems"]
    assert len(audit_msgs) == len(lineage_msgs) == 3  # one link and two seqs broken
    assert "does not chain to the line before it" in audit_msgs[0]
    assert "the entry at line 1 was edited, or entries were removed" in lineage_msgs[0]
    assert lineage_msgs[1] == "registry/audit.log.jsonl: line 2 has seq 2, expected 1"
