"""Graph snapshot: the Dagster asset graph (keys, deps, code versions, checks, automation
conditions, partitions) serialised to canonical JSON and compared with the committed
`snapshots/asset_graph.json`, so lineage cannot change without the snapshot being updated on
purpose.

    UPDATE_SNAPSHOTS=1 pytest mlops_assets_tests/test_graph_snapshot.py   # rewrite it, on purpose
    STRICT_CODE_VERSIONS=1 pytest mlops_assets_tests/test_graph_snapshot.py

Keys, deps, checks (name + blocking), partitions and automation conditions are compared
exactly. Code versions change whenever a stage's code changes (they are hashes of the code
files, defs/assets.py `_code_version`), and the code is still being changed every day, so by
default a code version only has to be *present and 16 hex characters* where the snapshot has
one (and absent where it has none); set STRICT_CODE_VERSIONS=1 (e.g. on a release branch) to
compare the values too. Rewrite the snapshot with UPDATE_SNAPSHOTS=1 and review its diff."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
HEX16 = re.compile(r"^[0-9a-f]{16}$")
FORMAT = 1


def _partitions(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    if isinstance(p, dg.DynamicPartitionsDefinition):
        return {"type": "dynamic", "name": p.name}
    if isinstance(p, dg.StaticPartitionsDefinition):
        return {"type": "static", "keys": list(p.get_partition_keys())}
    if isinstance(p, dg.TimeWindowPartitionsDefinition):
        return {"type": "time_window", "cron_schedule": p.cron_schedule,
                "start": p.start.isoformat(), "timezone": p.timezone, "fmt": p.fmt,
                "end_offset": p.end_offset}
    if isinstance(p, dg.MultiPartitionsDefinition):
        return {"type": "multi", "dimensions": {d.name: _partitions(d.partitions_def)
                                                for d in p.partitions_defs}}
    return {"type": type(p).__name__, "repr": str(p)}


def _automation(cond: Any) -> dict[str, Any] | None:
    if cond is None:
        return None
    from dagster._serdes import serialize_value

    return {"label": cond.get_label(), "serialized": json.loads(serialize_value(cond))}


def serialise_graph(defs: dg.Definitions) -> dict[str, Any]:
    """The asset graph as a canonical, JSON-ready dict."""
    graph = defs.resolve_asset_graph()
    assets: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        checks = []
        for ck in sorted(node.check_keys, key=lambda c: c.name):
            spec = graph.get_check_spec(ck)
            checks.append({"name": ck.name, "blocking": bool(spec.blocking),
                           "automation_condition": _automation(spec.automation_condition)})
        assets[key.to_user_string()] = {
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "code_version": node.code_version,
            "checks": checks,
            "automation_condition": _automation(node.automation_condition),
            "partitions": _partitions(node.partitions_def),
        }
    return {"format": FORMAT, "assets": assets}


def compare_graphs(expected: dict[str, Any], actual: dict[str, Any],
                   strict_code_versions: bool = False) -> list[str]:
    """Human-readable differences; empty when the graphs agree (see module docstring)."""
    diffs: list[str] = []
    exp, act = expected.get("assets", {}), actual.get("assets", {})
    for k in sorted(set(exp) - set(act)):
        diffs.append(f"asset {k} is in the snapshot but not in the graph")
    for k in sorted(set(act) - set(exp)):
        diffs.append(f"asset {k} is in the graph but not in the snapshot")
    for k in sorted(set(exp) & set(act)):
        e, a = exp[k], act[k]
        for field in ("deps", "checks", "automation_condition", "partitions"):
            if e.get(field) != a.get(field):
                if field == "deps":
                    gone = sorted(set(e["deps"]) - set(a["deps"]))
                    new = sorted(set(a["deps"]) - set(e["deps"]))
                    diffs.append(f"{k}: edges changed: removed {gone or '-'} -> {k}, added "
                                 f"{new or '-'} -> {k}")
                else:
                    diffs.append(f"{k}: {field} changed: snapshot {json.dumps(e.get(field))[:300]}"
                                 f", graph {json.dumps(a.get(field))[:300]}")
        ecv, acv = e.get("code_version"), a.get("code_version")
        if strict_code_versions:
            if ecv != acv:
                diffs.append(f"{k}: code_version changed: snapshot {ecv}, graph {acv} "
                             "(STRICT_CODE_VERSIONS=1)")
        elif (ecv is None) != (acv is None):
            diffs.append(f"{k}: code_version {'appeared' if ecv is None else 'disappeared'}: "
                         f"snapshot {ecv}, graph {acv}")
        elif acv is not None and not HEX16.match(str(acv)):
            diffs.append(f"{k}: code_version {acv!r} is not 16 hex characters")
    return diffs


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _defs() -> dg.Definitions:
    from mlops_assets.definitions import defs

    return defs()


def test_asset_graph_matches_snapshot() -> None:
    actual = serialise_graph(_defs())
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(_dump(actual))
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing: run with UPDATE_SNAPSHOTS=1 to create it"
    expected = json.loads(SNAPSHOT.read_text())
    diffs = compare_graphs(expected, actual,
                           strict_code_versions=os.environ.get("STRICT_CODE_VERSIONS") == "1")
    assert not diffs, ("the asset graph differs from the committed snapshot "
                       f"{SNAPSHOT.name}; if the change is on purpose rerun with "
                       "UPDATE_SNAPSHOTS=1 and commit the diff:\n  " + "\n  ".join(diffs))


def test_serialisation_is_canonical() -> None:
    """The same graph gives the same bytes (sorted keys, deps and checks)."""
    assert _dump(serialise_graph(_defs())) == _dump(serialise_graph(_defs()))


def test_a_changed_edge_fails_the_comparison() -> None:
    """Not vacuous: the real graph with one edge removed (drift_report no longer depends on
    feature_table) no longer matches the snapshot, and the message names the edge."""
    defs = _defs()

    def drop_edge(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key == dg.AssetKey("drift_report"):
            return spec.replace_attributes(
                deps=[d for d in spec.deps if d.asset_key != dg.AssetKey("feature_table")])
        return spec

    changed = dg.Definitions(
        assets=[a.map_asset_specs(drop_edge) if isinstance(a, dg.AssetsDefinition) else a
                for a in defs.assets or []],
        asset_checks=list(defs.asset_checks or []), sensors=list(defs.sensors or []),
        schedules=list(defs.schedules or []), jobs=list(defs.jobs or []))
    expected = json.loads(SNAPSHOT.read_text())
    diffs = compare_graphs(expected, serialise_graph(changed))
    assert any("drift_report: edges changed" in d and "feature_table" in d for d in diffs), diffs
    # and an edge added by hand in the serialised form is caught as well
    added = serialise_graph(defs)
    added["assets"]["model"]["deps"] = sorted(added["assets"]["model"]["deps"] + ["holdout_set"])
    assert any("model: edges changed" in d and "holdout_set" in d
               for d in compare_graphs(expected, added))


def test_code_versions_loose_by_default_strict_on_request() -> None:
    expected = json.loads(SNAPSHOT.read_text())
    changed = json.loads(json.dumps(expected))
    key = next(k for k, v in changed["assets"].items() if v["code_version"])
    changed["assets"][key]["code_version"] = "0123456789abcdef"
    assert compare_graphs(expected, changed) == []
    assert any("code_version changed" in d
               for d in compare_graphs(expected, changed, strict_code_versions=True))
    changed["assets"][key]["code_version"] = "not-hex"
    assert any("not 16 hex" in d for d in compare_graphs(expected, changed))
