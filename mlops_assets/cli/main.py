"""`mlops-assets`: the command line for people and scripts."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mlops_assets.cli.drift import add_drift_parser, run_drift
from mlops_assets.cli.incident import add_incident_parser
from mlops_assets.cli.lineage import add_lineage_parsers
from mlops_assets.cli.registry import add_registry_parsers
from mlops_assets.cli.run_params import add_run_params_parser
from mlops_assets.cli.serve import add_serve_parser
from mlops_assets.core.layout import DRIFT_HTML, EVALUATION, MODEL, MODEL_RECORD, PLOTS
from mlops_assets.pipeline import ROOT_ENV, ProjectNotFoundError, project_root


def _demo(args: argparse.Namespace) -> int:
    """Land the embedded sample data and materialise the whole chain in the project's
    Dagster instance, exactly as the UI would, then say where everything is."""
    # Lazy: the orchestration loads dagster and the definitions; `--help` must not wait.
    from mlops_assets.demo.orchestrate import materialize_chain

    root = project_root()
    os.environ.setdefault("DAGSTER_HOME", str(root / ".dagster_home"))
    start = time.perf_counter()
    summary = materialize_chain(root, progress=not os.environ.get("CI"))
    took = time.perf_counter() - start
    if not summary["success"]:
        print(f"\nThe chain FAILED at: {', '.join(summary['failed_steps'])}", file=sys.stderr)
        for line in summary.get("errors", []):
            print(f"  {line}", file=sys.stderr)
        return 1
    ev, dr = summary["evaluation"], summary["drift"]
    cand = ev.get("candidate", {})
    runs = ", ".join(summary["run_ids"])
    print(f"\nMaterialised the whole chain in {took:.1f}s (Dagster runs {runs}).")
    print(f"  model         {root / MODEL}  (md5 {summary['model_md5']})")
    print(f"  model record  {root / MODEL_RECORD}")
    print(f"  metrics       {root / EVALUATION}  "
          f"precision {cand.get('precision', 0):.3f}  recall {cand.get('recall', 0):.3f}  "
          f"FPR {cand.get('fpr', 0):.4f}  ROC AUC {cand.get('roc_auc', 0):.3f}  "
          f"(eligible: {ev['gate']['eligible']} vs {ev['reference'].get('name')})")
    print(f"  drift report  {root / DRIFT_HTML}  "
          f"severity {dr.get('severity')}, drift share {dr.get('drift_share', 0):.2f}")
    print(f"  plots         {root / PLOTS}  (or: dvc plots show)")
    print("\nOpen the UI:        make ui   ->  http://127.0.0.1:3000")
    print("Same chain by DVC:  .venv/bin/dvc repro   (up to date now: nothing reruns)")
    return 0


def _stage(args: argparse.Namespace) -> int:
    """One DVC stage in this process (what `dvc repro` runs for each stage)."""
    # Lazy: the stage runner imports the whole core (sklearn, scipy); `--help` must not wait.
    from mlops_assets.stages import main as stage_main

    return stage_main([args.name] + (["--root", str(args.root)] if args.root else []))


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; the order of the subcommands is the order of `--help`."""
    parser = argparse.ArgumentParser(prog="mlops-assets", description=__doc__)
    # dest differs from the sub-commands' own --root: a sub-parser's default would
    # otherwise overwrite the value given before the sub-command
    parser.add_argument("--root", dest="global_root", type=Path, metavar="DIR",
                        help=f"the project to act on (default: {ROOT_ENV}, else the nearest "
                             "directory from here up holding dvc.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="land the sample data and materialise the whole chain")
    p.set_defaults(func=_demo)
    p = sub.add_parser("stage", help="run one stage of the chain (what dvc repro runs)")
    p.add_argument("name")
    p.add_argument("--root", type=Path)
    p.set_defaults(func=_stage)
    # every sub-CLI is imported at the top: a broken one fails loudly, never vanishes
    add_drift_parser(sub).set_defaults(func=run_drift)
    add_registry_parsers(sub)
    add_run_params_parser(sub)
    add_incident_parser(sub)
    add_lineage_parsers(sub)
    add_serve_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, settle the project root once, run; no project -> a clear error, exit 2."""
    args = build_parser().parse_args(argv)
    if args.global_root is not None:
        # through the environment, so every subprocess (dvc repro, Dagster) acts on it too
        os.environ[ROOT_ENV] = str(args.global_root.expanduser().resolve())
    try:
        return int(args.func(args) or 0)
    except ProjectNotFoundError as e:
        print(f"mlops-assets: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
