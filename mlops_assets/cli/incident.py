"""`mlops-assets incident`: the command line of the holiday incident replay.

The driver (workspace, Dagster runs, sensors, timeline) is `mlops_assets.demo.incident`;
this module only parses the flags, checks the workdir and prints the timeline."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlops_assets.core.layout import AUDIT_LOG
from mlops_assets.demo.workspace import setup


def run_incident(args: argparse.Namespace) -> int:
    """Replay the incident in an empty workdir and print (and optionally save) the timeline."""
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="incident-"))
    if workdir.exists() and any(workdir.iterdir()):
        print(f"incident: {workdir} is not empty; give an empty or new --workdir", file=sys.stderr)
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    ws = setup(workdir.resolve(), args.rows_per_week, daemon=not args.in_process)
    # Lazy: only after setup, since the driver imports the Dagster definitions, which read
    # dvc.yaml and params.yaml of MLOPS_ASSETS_ROOT (now the workspace) at import; they
    # also pull in dagster and sklearn, which `mlops-assets --help` must not wait for.
    from mlops_assets.demo.incident import replay
    from mlops_assets.demo.timeline import render

    timeline = replay(ws, approve_after=args.approve_after, in_process=args.in_process,
                      ui=args.ui, timeout=args.timeout)
    print()
    print(render(timeline))
    if args.json:
        Path(args.json).write_text(json.dumps(timeline, indent=2, default=str) + "\n")
        print(f"\ntimeline written to {args.json}")
    print(f"audit log: {workdir / AUDIT_LOG}")
    return 0


def add_incident_parser(sub: Any) -> argparse.ArgumentParser:
    """Mount `incident` on the main parser's sub-parsers."""
    p = sub.add_parser("incident", help="replay the holiday incident end to end in a fresh "
                                        "workspace and print the week-by-week timeline")
    p.add_argument("--json", help="also write the timeline as JSON to this file")
    p.add_argument("--workdir", help="where to build the workspace (default: a new temp dir)")
    p.add_argument("--rows-per-week", type=int, default=None,
                   help="override sample_data.rows_per_week (smaller is faster)")
    p.add_argument("--approve-after", type=int, default=1,
                   help="weeks the candidate waits for approval (default 1)")
    p.add_argument("--in-process", action="store_true",
                   help="tick the sensors in this process instead of running dagster-daemon "
                        "(deterministic and faster; for tests)")
    p.add_argument("--ui", action="store_true",
                   help="also start dagster-webserver on the workdir while the daemon runs")
    p.add_argument("--timeout", type=float, default=900,
                   help="seconds to wait for each daemon run before giving up (default 900)")
    p.set_defaults(func=run_incident)
    return p
