"""The stage graph of `dvc.yaml`, read without the dvc package: each stage's resolved deps
and outs (DVC's `${a.b}` templating resolved against params.yaml), who produces what, and
the order to walk it in. Pure and small so that the core (lineage) and the Dagster adapter
(`mlops_assets.pipeline`) read the graph the same way."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# A stage: {"deps": [...], "outs": [...]} (outs include metrics and plots files).
Stages = dict[str, dict[str, list[str]]]


def load_params(root: Path) -> dict[str, Any]:
    with open(root / "params.yaml") as f:
        return yaml.safe_load(f)


def param(params: Mapping[str, Any] | None, dotted: str) -> Any:
    """`params["a"]["b"]` for "a.b", None when any part is absent."""
    node: Any = params
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def interpolate(value: str, params: dict[str, Any]) -> str:
    """Resolve DVC's ${a.b} templating against params.yaml, as `dvc` itself does."""

    def lookup(m: re.Match[str]) -> str:
        node: Any = params
        for part in m.group(1).split("."):
            node = node[part]
        return str(node)

    return re.sub(r"\$\{\s*([\w.]+)\s*\}", lookup, value)


def _paths(entries: list[Any] | None, params: dict[str, Any]) -> list[str]:
    out = []
    for e in entries or []:
        path = next(iter(e)) if isinstance(e, dict) else e
        out.append(interpolate(str(path), params).rstrip("/"))
    return out


def parse_stages(spec: Mapping[str, Any], params: dict[str, Any]) -> Stages:
    """Each stage's resolved deps and outs, in dvc.yaml order."""
    stages: Stages = {}
    for name, st in (spec.get("stages") or {}).items():
        outs = (_paths(st.get("outs"), params) + _paths(st.get("metrics"), params)
                + _paths(st.get("plots"), params))
        stages[name] = {"deps": _paths(st.get("deps"), params), "outs": outs}
    return stages


def dvc_stages(root: Path) -> Stages:
    """The stages of `root/dvc.yaml` (see `parse_stages`)."""
    with open(root / "dvc.yaml") as f:
        spec = yaml.safe_load(f)
    return parse_stages(spec, load_params(root))


def inside(path: str, out: str) -> bool:
    """`path` is the out itself or a file inside that directory out."""
    return path == out or path.startswith(out + "/")


def producers(stages: Stages) -> dict[str, str]:
    """out path -> the stage that writes it."""
    return {o: name for name, st in stages.items() for o in st["outs"]}


def producer_of(stages: Stages, path: str) -> str | None:
    """The stage whose out is (or holds) `path`; None for a source file (code, contract)."""
    return next((name for name, st in stages.items()
                 if any(inside(path, o) for o in st["outs"])), None)


def stage_edges(stages: Stages) -> set[tuple[str, str]]:
    """(upstream, downstream) stage pairs: B depends on A when a dep of B is, or lies
    inside, an out of A."""
    edges = set()
    for down, st in stages.items():
        for dep in st["deps"]:
            for up, ust in stages.items():
                if up != down and any(inside(dep, o) for o in ust["outs"]):
                    edges.add((up, down))
    return edges


def dvc_stage_edges(root: Path) -> set[tuple[str, str]]:
    return stage_edges(dvc_stages(root))


def _closure(start: str, step: Mapping[str, Iterable[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in step.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def ancestors(stages: Stages, stage: str) -> set[str]:
    """Every stage `stage` depends on, directly or not."""
    ups: dict[str, list[str]] = {}
    for up, down in stage_edges(stages):
        ups.setdefault(down, []).append(up)
    return _closure(stage, ups)


def descendants(stages: Stages, stage: str) -> set[str]:
    """Every stage that depends on `stage`, directly or not."""
    downs: dict[str, list[str]] = {}
    for up, down in stage_edges(stages):
        downs.setdefault(up, []).append(down)
    return _closure(stage, downs)


def topological(stages: Stages) -> list[str]:
    """Producers before consumers; ties keep dvc.yaml order (Kahn's algorithm)."""
    edges = stage_edges(stages)
    order: list[str] = []
    left = list(stages)
    while left:
        ready = next((s for s in left if not any(d == s and u in left for u, d in edges)), None)
        if ready is None:
            raise ValueError(f"dvc.yaml stages form a cycle: {', '.join(left)}")
        order.append(ready)
        left.remove(ready)
    return order
