"""`mlops-assets lineage`, `mlops-assets reproduce` and `mlops-assets audit`: the auditor's
commands.

    mlops-assets lineage MODEL_VERSION|production|current [--json] [--graph mermaid|dot]
                         [--verify] [--no-hash-cache] [--no-dagster] [--require-dagster]
    mlops-assets reproduce MODEL_VERSION|production [--keep] [--json]
    mlops-assets audit log [--since DATE] [--model VERSION] [--type TYPE] [--json]
    mlops-assets audit verify

Exit codes of `lineage --verify`: 0 every artifact verified; 1 something mismatched (a hash,
leakage past the cutoff, edited feature definitions, a broken audit-log chain); 3 something
missing (and nothing mismatched); 2 bad input (unknown model version). `--require-dagster`
also fails (1) when Dagster never materialised an artifact of the chain.
`audit verify`: 0 the chain holds, 1 it is broken. `reproduce`: 0 identical bytes, 1 not.

The Dagster materialisation metadata is read through `mlops_assets.defs.lineage` (the
instance at DAGSTER_HOME, when it has storage); otherwise that part is skipped with a note."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from mlops_assets.core.audit import read_events
from mlops_assets.core.io import DataError
from mlops_assets.core.layout import AUDIT_LOG
from mlops_assets.core.lineage import (
    DagsterRecords,
    LineageError,
    build_lineage,
    event_line,
    event_matches_type,
    event_names_model,
    event_time,
    json_default,
    render_graph,
    render_json,
    render_text,
    to_json,
    verify_audit_log,
    verify_lineage,
)
from mlops_assets.core.store import HashCache
from mlops_assets.pipeline import ASSET_STAGE, asset_outs, project_root
from mlops_assets.repo.reproduce import ReproduceError, render_result, reproduce

EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT, EXIT_MISSING = 0, 1, 2, 3


# ============================================================================ lineage


def add_lineage_parsers(sub: Any) -> None:
    """Mount `lineage`, `reproduce` and `audit` on the main CLI's sub-parsers."""
    p = sub.add_parser(
        "lineage", help="the full chain of a model version, back to the raw bytes",
        description="Print the chain of MODEL_VERSION (md5 of model.skops, a unique prefix, "
                    "'production' or 'current'): model and record, evaluation and approval, "
                    "feature table, validated dataset and contract, every raw snapshot, params, "
                    "git commit, libraries, cutoff and drift reports. --verify recomputes "
                    "every hash.")
    p.add_argument("model", help="MODEL_VERSION (md5 or prefix), 'production' or 'current'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--graph", choices=["mermaid", "dot"], help="print the chain as a diagram")
    p.add_argument("--verify", action="store_true",
                   help="recompute every hash and check it against dvc.lock, the model record "
                        "and Dagster; exit 1 on a mismatch, 3 on a missing artifact")
    p.add_argument("--no-hash-cache", action="store_true",
                   help="rehash every file (ignore .dvc/tmp/lineage-hashes.sqlite)")
    p.add_argument("--no-dagster", action="store_true", help="do not read the Dagster instance")
    p.add_argument("--require-dagster", action="store_true",
                   help="fail when Dagster never materialised an artifact of the chain")
    p.set_defaults(func=run_lineage)

    if "reproduce" not in sub.choices:
        r = sub.add_parser(
            "reproduce", help="rebuild a model in a temporary git worktree and compare bytes",
            description="Find the commit whose dvc.lock recorded MODEL_VERSION, check it out in "
                        "a temporary git worktree sharing this repository's DVC cache, bring "
                        "the pinned inputs, run `dvc repro train` and compare the model bytes.")
        r.add_argument("model", help="MODEL_VERSION (md5 or prefix) or 'production'")
        r.add_argument("--keep", action="store_true", help="keep the worktree for inspection")
        r.add_argument("--json", action="store_true")
        r.set_defaults(func=run_reproduce)

    if "audit" not in sub.choices:  # another module may own `audit`; never clash
        a = sub.add_parser("audit", help="read and verify the append-only audit log")
        asub = a.add_subparsers(dest="audit_command", required=True)
        lg = asub.add_parser("log", help="print audit-log entries")
        lg.add_argument("--since", help="only entries at or after DATE (YYYY-MM-DD or ISO time)")
        lg.add_argument("--model", help="only entries naming this model version (or prefix)")
        lg.add_argument("--type", dest="event_type", help="only entries of this type")
        lg.add_argument("--json", action="store_true", help="a JSON array of the entries")
        lg.add_argument("--log", type=Path, help="the log file (default registry/audit.log.jsonl)")
        lg.set_defaults(func=run_audit_log)
        vf = asub.add_parser("verify", help="check the hash chain of the audit log")
        vf.add_argument("--log", type=Path, help="the log file (default registry/audit.log.jsonl)")
        vf.add_argument("--json", action="store_true")
        vf.set_defaults(func=run_audit_verify)


def _asset_outs(root: Path) -> dict[str, tuple[str, str]] | None:
    """asset key -> (DVC stage, the out whose dvc.lock md5 is its data version)."""
    try:
        return {a: (ASSET_STAGE[a], outs[0]) for a, outs in asset_outs(root).items() if outs}
    except (OSError, KeyError, ValueError):
        return None


def _dagster(root: Path, no_dagster: bool) -> tuple[DagsterRecords | None, str]:
    """The Dagster instance's records (defs.lineage), or None and why not."""
    if no_dagster:
        return None, "Dagster: not read (--no-dagster)"
    # Lazy: mlops_assets.defs imports dagster (about a second), which --no-dagster and the
    # audit commands never need.
    from mlops_assets.defs.lineage import dagster_records

    return dagster_records(root)


def _exit_code(verification: dict[str, Any], require_dagster: bool) -> int:
    counts = verification["counts"]
    if counts["mismatched"] or (require_dagster and any(
            c["kind"] == "dagster" and c["status"] == "warning" for c in verification["checks"])):
        return EXIT_MISMATCH
    if counts["missing"]:
        return EXIT_MISSING
    return EXIT_OK


def run_lineage(args: argparse.Namespace) -> int:
    root = project_root()
    dagster, note = _dagster(root, args.no_dagster)
    with HashCache.for_root(root, enabled=not args.no_hash_cache) as cache:
        try:
            lineage, chain = build_lineage(root, args.model, cache=cache, dagster=dagster)
        except LineageError as e:
            print(f"lineage: {e}", file=sys.stderr)
            return EXIT_BAD_INPUT
        verification = None
        if args.verify:
            verification = verify_lineage(lineage, chain, dagster=dagster, dagster_note=note,
                                          asset_outs=_asset_outs(root))
    if args.graph:
        print(render_graph(lineage, chain, args.graph, verification))
    elif args.json:
        print(render_json(lineage, chain, verification))
    else:
        print(render_text(lineage, verification))
    return EXIT_OK if verification is None else _exit_code(verification, args.require_dagster)


def run_reproduce(args: argparse.Namespace) -> int:
    try:
        result = reproduce(project_root(), args.model, keep=args.keep,
                           progress=None if args.json else lambda m: print(m, file=sys.stderr))
    except ReproduceError as e:
        print(f"reproduce: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print(to_json(result))
    else:
        print(render_result(result))
    return EXIT_OK if result["ok"] else EXIT_MISMATCH


# ============================================================================ audit


def _parse_since(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def filter_events(events: list[dict[str, Any]], since: dt.datetime | None = None,
                  model: str | None = None, event_type: str | None = None
                  ) -> list[dict[str, Any]]:
    out = []
    for e in events:
        if since is not None:
            t = event_time(e)
            if t is None or t < since:
                continue
        if model and not event_names_model(e, model.lower()):
            continue
        if event_type and not event_matches_type(e, event_type):
            continue
        out.append(e)
    return out


def run_audit_log(args: argparse.Namespace) -> int:
    path = args.log or project_root() / AUDIT_LOG
    try:
        since = _parse_since(args.since) if args.since else None
    except ValueError:
        print(f"audit log: --since {args.since!r} is not a date (YYYY-MM-DD or ISO time)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        events = read_events(path)
    except DataError as e:
        print(f"audit log: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    shown = filter_events(events, since, args.model, args.event_type)
    out = sys.stdout
    if args.json:  # one compact object per line inside the array (the C encoder: fast)
        out.write("[\n" + ",\n".join(json.dumps(e, sort_keys=True, default=json_default)
                                      for e in shown) + ("\n]\n" if shown else "]\n"))
        return EXIT_OK
    if not Path(path).exists():
        print(f"{path}: no audit log yet (nothing recorded)")
        return EXIT_OK
    lines = [f"{'seq':>6}  {'time':<25} {'type':<26} details"]
    lines += [f"{e.get('seq', '?'):>6}  {event_line(e)}" for e in shown]
    lines.append(f"{len(shown)} of {len(events)} entries ({path})")
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def run_audit_verify(args: argparse.Namespace) -> int:
    root = project_root()
    res = verify_audit_log(root, args.log)
    path, n, problems = res["path"], res["entries"], res["problems"]
    if args.json:
        print(json.dumps(res, indent=2))
    elif not res["exists"]:
        print(f"{path}: no audit log yet (nothing to verify)")
    elif problems:
        print(f"{path}: the audit log is BROKEN ({len(problems)} problem(s) in {n} entries):")
        for p in problems:
            print(f"  {p}")
    else:
        anchor = f"; append-only against {res['anchors']}" if res.get("anchors") else ""
        print(f"{path}: the hash chain holds ({n} entries{anchor})")
    return EXIT_MISMATCH if problems else EXIT_OK
