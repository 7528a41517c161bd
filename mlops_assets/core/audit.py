"""An append-only, tamper-evident audit log: one JSON object per line, each carrying the
sha256 of the previous line, so editing or deleting any entry breaks the chain.

Used for every drift result, validation failure, promotion, approval and rollback."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_assets.core.io import DataError

GENESIS = "0" * 64


def _line_hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8")).hexdigest()


def _last_complete_line(f: Any) -> str | None:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size == 0:
        return None
    block = min(size, 1 << 16)
    while True:
        f.seek(size - block)
        data = f.read(block).decode("utf-8", errors="replace")
        lines = [ln for ln in data.split("\n") if ln.strip()]
        if data.endswith("\n") and lines and (block == size or len(lines) > 1):
            return lines[-1]
        if block == size:
            return lines[-1] if lines else None
        block = min(size, block * 4)


def append_event(path: str | Path, event: dict[str, Any]) -> dict[str, Any]:
    """Append one event under an exclusive lock, fsync'd. A torn last line left by a crash
    is cut off before appending (it was never acknowledged), so the chain stays valid."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size:
                f.seek(size - 1)
                if f.read(1) != b"\n":  # torn write from a crash: drop the partial line
                    f.seek(0)
                    content = f.read()
                    keep = content[: content.rfind(b"\n") + 1]
                    f.truncate(len(keep))
            last = _last_complete_line(f)
            prev = _line_hash(last) if last else GENESIS
            seq = (json.loads(last)["seq"] + 1) if last else 0
            entry = {**event, "seq": seq, "prev_hash": prev}
            line = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str)
            f.seek(0, os.SEEK_END)
            f.write((line + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return entry


def read_events(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                break  # torn tail from a crash: not an acknowledged entry
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    raise DataError("audit log line is not valid JSON", path=path, rows=[n]) from None
    return out


@dataclass(frozen=True)
class ChainBreak:
    """One broken link of the hash chain, for callers that word it their own way."""

    line: int                 # 1-based line number
    kind: str                 # "json" (not JSON), "link" (prev_hash) or "seq"
    seq: Any = None           # the entry's recorded seq
    prev_hash: Any = None     # the entry's recorded prev_hash
    expected: str = GENESIS   # the hash of the line before (GENESIS for line 1)


def chain_breaks(path: str | Path) -> list[ChainBreak]:
    """Walk the hash chain once (the one walk of it): every broken link, in file order."""
    path = Path(path)
    if not path.exists():
        return []
    breaks: list[ChainBreak] = []
    prev = GENESIS
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.endswith("\n"):
                break
            raw = line.rstrip("\n")
            try:
                entry = json.loads(raw)
            except json.JSONDecodeError:
                breaks.append(ChainBreak(n, "json", expected=prev))
                prev = _line_hash(raw)
                continue
            seq, recorded = entry.get("seq"), entry.get("prev_hash")
            if recorded != prev:
                breaks.append(ChainBreak(n, "link", seq, recorded, prev))
            if seq != n - 1:
                breaks.append(ChainBreak(n, "seq", seq, recorded, prev))
            prev = _line_hash(raw)
    return breaks


def verify_chain(path: str | Path) -> list[str]:
    """Problems found, one message per broken link; an empty list means the chain holds."""
    messages = {
        "json": "{path}: line {n} is not valid JSON",
        "link": "{path}: line {n} (seq {seq}) does not chain to the line before it: the log was "
                "edited, reordered or truncated",
        "seq": "{path}: line {n} has seq {seq}, expected {n_1}"}
    return [messages[b.kind].format(path=path, n=b.line, seq=b.seq, n_1=b.line - 1)
            for b in chain_breaks(path)]
