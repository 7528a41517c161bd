"""The audit log as lineage reads it: which events name a model, when and of what type.

`core.audit` owns the log (schema, append, read, the hash-chain walk); events written over
time use several spellings of time, type and model, so these readers accept all of them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_assets.core.audit import read_events
from mlops_assets.core.io import DataError
from mlops_assets.core.layout import AUDIT_LOG

TIME_KEYS = ("ts", "time", "timestamp", "at", "created_at", "recorded_at", "when")
TYPE_KEYS = ("event", "type", "kind", "action")
MODEL_KEYS = ("version", "model_version", "model", "model_md5", "candidate", "from_version",
              "to_version", "previous", "previous_version", "new_version", "production")


def event_type(e: Mapping[str, Any]) -> str:
    """`kind.action` (the registry and the sensors write {"kind": ..., "action": ...}), else
    the first of event/type/kind/action that is a string."""
    kind, action = e.get("kind"), e.get("action")
    if isinstance(kind, str) and isinstance(action, str):
        return f"{kind}.{action}"
    for k in TYPE_KEYS:
        if isinstance(e.get(k), str):
            return e[k]
    return "?"


def event_matches_type(e: Mapping[str, Any], wanted: str) -> bool:
    """`--type` matches the kind, the action or kind.action."""
    w = wanted.lower()
    return w in {event_type(e).lower(), str(e.get("kind", "")).lower(),
                 str(e.get("action", "")).lower(), str(e.get("event", "")).lower()}


def event_time(e: Mapping[str, Any]) -> dt.datetime | None:
    for k in TIME_KEYS:
        v = e.get(k)
        if v is None:
            continue
        try:
            if isinstance(v, (int, float)):
                return dt.datetime.fromtimestamp(float(v), dt.UTC)
            t = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            return t if t.tzinfo else t.replace(tzinfo=dt.UTC)
        except (ValueError, OverflowError, OSError):
            continue
    return None


def event_models(e: Mapping[str, Any]) -> set[str]:
    """The model versions an event names (top level or one level down, e.g. {"model":
    {"version": ...}})."""
    found: set[str] = set()
    for k in MODEL_KEYS:
        v = e.get(k)
        if isinstance(v, str):
            found.add(v)
        elif isinstance(v, Mapping):
            for kk in ("version", "md5", "model_md5"):
                if isinstance(v.get(kk), str):
                    found.add(v[kk])
    lineage = e.get("lineage")
    if isinstance(lineage, Mapping) and isinstance(lineage.get("model_version"), str):
        found.add(lineage["model_version"])
    return found


def event_names_model(e: Mapping[str, Any], version: str) -> bool:
    return any(m == version or (len(version) >= 6 and m.startswith(version))
               for m in event_models(e))


_READ: dict[str, tuple[tuple[int, int, int], list[dict[str, Any]]]] = {}


def audit_events(root: Path) -> list[dict[str, Any]]:
    """The log's events; none when it does not parse (verify reports that, not the build).
    Read once per version of the file (size, mtime, inode): the build, the registry checks
    and the summary all ask, and the log can hold 100k entries. Callers must not mutate."""
    path = root / AUDIT_LOG
    try:
        st = path.stat()
    except OSError:
        return []
    key = (st.st_size, st.st_mtime_ns, st.st_ino)
    hit = _READ.get(str(path))
    if hit is not None and hit[0] == key:
        return hit[1]
    try:
        events = read_events(path)
    except (DataError, ValueError):
        events = []
    _READ.clear()  # one log at a time: a long-lived process never grows this
    _READ[str(path)] = (key, events)
    return events


_EVENT_SKIP = frozenset({"prev_hash", "seq", "version", "by", "reason", *TIME_KEYS,
                         *TYPE_KEYS})


def event_line(e: Mapping[str, Any], width: int = 200) -> str:
    """time (as recorded), type, the model it names, who and why, then the other fields
    (shortened). Kept cheap: `audit log` prints 100k of these."""
    t = next((str(e[k]) for k in TIME_KEYS if e.get(k) is not None), "?")
    head = []
    v = e.get("version")
    if isinstance(v, str):
        head.append(v[:12])
    if e.get("by"):
        head.append(f"by {e['by']}")
    if e.get("reason"):
        head.append(f"\"{e['reason']}\"")
    body = {k: v for k, v in e.items() if k not in _EVENT_SKIP}
    txt = " ".join(head)
    if body:
        txt += (" " if head else "") + json.dumps(body, sort_keys=True, default=str)
    if len(txt) > width:
        txt = txt[:width - 3] + "..."
    return f"{t[:25]:<25} {event_type(e):<26} {txt}"
