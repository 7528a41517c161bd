"""The audit log's integrity as lineage reports it. `core.audit` walks the hash chain (the
one walk of it); this words each break for an auditor and adds the append-only check the
chain alone cannot make: every pinned version of the log (committed to git, or pinned by
DVC in `registry/audit.log.jsonl.dvc`, whose bytes the DVC cache keeps) must be a byte
prefix of the working file, so a rewritten chain, an edit of the last committed entry, or a
truncation, is caught too. (An uncommitted last entry has nothing after it to chain to:
edits to it are only caught once it is committed or followed by another entry.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlops_assets.core.audit import ChainBreak, chain_breaks
from mlops_assets.core.layout import AUDIT_LOG
from mlops_assets.core.lineage.chain import MISMATCHED, SKIPPED, VERIFIED, Check
from mlops_assets.core.store import dvc_cache_object, git


def _rel(root: Path, p: Path) -> str:
    try:
        return str(p.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


def _break_message(path: Path, path_txt: str, b: ChainBreak) -> str:
    """A break named by the entry that was altered (the one before the broken link)."""
    n = b.line
    if b.kind == "json":
        return f"{path_txt}: line {n} is not valid JSON"
    if b.kind == "seq":
        return f"{path_txt}: line {n} has seq {b.seq}, expected {n - 1}"
    if n == 1:
        return (f"{path_txt}: line 1 (seq {b.seq}) does not start the chain: entries before it "
                "were removed")
    return (f"{path}: the entry at line {n - 1} was edited, or entries were removed or "
            f"reordered there: line {n} (seq {b.seq}) records prev_hash "
            f"{str(b.prev_hash)[:16]}… but line {n - 1} hashes to {b.expected[:16]}…")


def _prefix_problems(path_txt: str, raw: bytes, anchor: bytes, what: str) -> list[str]:
    """The log is append-only: every pinned version of it must be a byte prefix of the file."""
    if raw.startswith(anchor):
        return []
    if len(raw) < len(anchor) and anchor.startswith(raw):
        n_old, n_new = anchor.count(b"\n"), raw.count(b"\n")
        return [f"{path_txt}: truncated: {what} has {n_old} entries, the file {n_new} "
                "(the log is append-only)"]
    old_lines, lines = anchor.split(b"\n"), raw.split(b"\n")
    k = next((i for i, (a, b) in enumerate(zip(old_lines, lines, strict=False)) if a != b),
             min(len(old_lines), len(lines)) - 1)
    return [f"{path_txt}: line {k + 1} differs from {what}: an entry already pinned was edited "
            "(the log is append-only)"]


def _dvc_pinned_versions(root: Path, rel: str) -> list[tuple[str, str]]:
    """(label, md5) of the log's `.dvc` pointer in the working tree and as last committed."""
    out: list[tuple[str, str]] = []
    pointer = rel + ".dvc"
    texts = [("the DVC-tracked version (" + pointer + ")",
              (root / pointer).read_text() if (root / pointer).exists() else None)]
    commit = (git(root, "log", "-1", "--format=%H", "--", pointer) or "").strip()
    if commit:
        texts.append((f"the DVC-tracked version committed in {commit[:10]}",
                      git(root, "show", f"{commit}:{pointer}")))
    for label, text in texts:
        try:
            md5 = ((yaml.safe_load(text or "") or {}).get("outs") or [{}])[0].get("md5")
        except (yaml.YAMLError, AttributeError, IndexError):
            md5 = None
        if md5 and md5 not in {m for _, m in out}:
            out.append((label, md5))
    return out


def _anchor_problems(root: Path, path_txt: str, rel: str, raw: bytes
                     ) -> tuple[list[str], list[str], str, str | None]:
    """Problems against the committed and the DVC-pinned versions; (problems, what it was
    checked against, the log's last commit, the DVC md5 it was checked against)."""
    problems: list[str] = []
    commit = (git(root, "log", "-1", "--format=%H", "--", rel) or "").strip()
    committed = git(root, "show", f"{commit}:{rel}", binary=True) if commit else None
    if committed is not None:
        problems += _prefix_problems(path_txt, raw, committed,
                                     f"the version committed in {commit[:10]}")
    dvc_md5 = None
    for label, md5 in _dvc_pinned_versions(root, rel):
        pinned = dvc_cache_object(root, md5)
        if not pinned.is_file():
            problems.append(f"{path_txt}: {label} pins md5 {md5}, but the DVC cache does not "
                            "hold those bytes (run `dvc pull`)")
            continue
        dvc_md5 = dvc_md5 or md5
        problems += _prefix_problems(path_txt, raw, pinned.read_bytes(),
                                     f"{label} (md5 {md5[:12]})")
    anchors = ([f"the version committed in {commit[:10]}"] if committed is not None else []) \
        + ([f"the DVC-tracked version {dvc_md5[:12]}"] if dvc_md5 else [])
    return problems, anchors, commit, dvc_md5


def verify_audit_log(root: Path, path: Path | None = None) -> dict[str, Any]:
    """The audit log's hash chain, with the altered entry named, and append-only against
    every pinned version of it (see module docstring)."""
    path = Path(path) if path is not None else root / AUDIT_LOG
    if not path.exists():
        return {"path": str(path), "exists": False, "entries": 0, "ok": True, "problems": []}
    raw = path.read_bytes()
    rel = path_txt = _rel(root, path)
    problems = [_break_message(path, path_txt, b) for b in chain_breaks(path)]
    more, anchors, commit, dvc_md5 = _anchor_problems(root, path_txt, rel, raw)
    problems += more
    return {"path": str(path), "exists": True, "entries": len(raw.split(b"\n")[:-1]),
            "ok": not problems, "problems": list(dict.fromkeys(problems)),
            "committed_in": commit or None, "dvc_md5": dvc_md5,
            "anchors": " and ".join(anchors)}


def check_audit_log(root: Path) -> list[Check]:
    res = verify_audit_log(root)
    if not res["exists"]:
        return [Check(AUDIT_LOG, "audit", SKIPPED, f"audit log: {AUDIT_LOG} does not exist yet")]
    if res["problems"]:
        return [Check(AUDIT_LOG, "audit", MISMATCHED, f"audit log {AUDIT_LOG}: {p}")
                for p in res["problems"]]
    anchor = f", append-only against {res['anchors']}" if res.get("anchors") else ""
    return [Check(AUDIT_LOG, "audit", VERIFIED, f"audit log {AUDIT_LOG}: the hash chain holds "
                                                f"({res['entries']} entries{anchor})")]
