"""`mlops-assets registry ...`: the model registry from the command line.

    mlops-assets registry list [--json]
    mlops-assets registry show VERSION [--json]
    mlops-assets registry register [--model P] [--record P] [--evaluation P] [--by NAME]
    mlops-assets registry promote VERSION --to STAGE [--by NAME] [--reason TEXT]
    mlops-assets registry approve VERSION --by NAME --reason TEXT
    mlops-assets registry reject VERSION --by NAME --reason TEXT
    mlops-assets registry rollback [--by NAME] [--reason TEXT]
    mlops-assets registry log [--json]
    mlops-assets registry track          (dvc add registry/models)

VERSION is the model's md5 or a unique prefix of at least 6 characters. A refused
operation prints why and exits 2."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from mlops_assets.core.io import DataError
from mlops_assets.core.layout import (
    AUDIT_LOG,
    EVALUATION,
    MODEL,
    MODEL_RECORD,
    PRODUCTION_POINTER,
    REGISTRY_DIR,
    REGISTRY_MODELS,
)
from mlops_assets.core.registry import STAGES, Registry, RegistryError
from mlops_assets.pipeline import project_root
from mlops_assets.repo.dvc_bridge import dvc_add, repo_lock, track_audit_log


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root) if getattr(args, "root", None) else project_root()


def _row(v: str, info: dict[str, Any]) -> dict[str, Any]:
    ev = info.get("evaluation") or {}
    m = ev.get("metrics") or {}
    return {"version": v, "stage": info["stage"], "cutoff": info.get("cutoff"),
            "eligible": ev.get("eligible") if ev else None,
            "pr_auc": m.get("pr_auc"), "fpr": m.get("fpr"),
            "approvals": len(info.get("approvals", [])),
            "registered_at": info.get("registered_at")}


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _list(args: argparse.Namespace) -> int:
    reg = Registry(_root(args))
    rows = [_row(v, i) for v, i in sorted(reg.versions().items(),
                                         key=lambda kv: kv[1].get("registered_at") or "")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no model versions registered")
        return 0
    cols = ["version", "stage", "cutoff", "eligible", "pr_auc", "fpr", "approvals",
            "registered_at"]
    table = [[_fmt(r[c])[:12] if c == "version" else _fmt(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for t in table:
        print("  ".join(x.ljust(w) for x, w in zip(t, widths, strict=True)))
    prod = reg.pointer().get("version")
    print(f"\nserving ({PRODUCTION_POINTER}): {prod or 'nothing in production'}")
    return 0


def _show(args: argparse.Namespace) -> int:
    reg = Registry(_root(args))
    info = reg.get(args.version)
    info["events"] = reg.events(info["version"])
    print(json.dumps(info, indent=2, sort_keys=True))
    return 0


def _register(args: argparse.Namespace) -> int:
    root = _root(args)
    reg = Registry(root)
    model = Path(args.model or root / MODEL)
    record = Path(args.record or root / MODEL_RECORD)
    evaluation = args.evaluation or root / EVALUATION
    evaluation = Path(evaluation) if Path(evaluation).exists() else None
    v = reg.register(model, record, evaluation_path=evaluation, by=args.by or _user(),
                     reason=args.reason or "registered from the command line")
    info = reg.get(v)
    ev = info.get("evaluation")
    print(f"registered {v} ({info['stage']}); evaluation gate: "
          f"{'none' if ev is None else ('passed' if ev['eligible'] else 'FAILED')}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    reg = Registry(_root(args))
    out = reg.promote(args.version, args.to, by=args.by or _user(), reason=args.reason or "")
    print(f"{out['version']} -> {out['stage']}")
    if out["stage"] == "production":
        print(f"serving now points at {out['model_path']}")
    return 0


def _approve(args: argparse.Namespace) -> int:
    out = Registry(_root(args)).approve(args.version, by=args.by, reason=args.reason)
    print(f"approved {out['version']} by {args.by} ({len(out['approvals'])} approval(s))")
    return 0


def _reject(args: argparse.Namespace) -> int:
    out = Registry(_root(args)).reject(args.version, by=args.by, reason=args.reason)
    print(f"rejected {out['version']} by {args.by}: now {out['stage']}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    out = Registry(_root(args)).rollback(by=args.by or _user(), reason=args.reason or "rollback")
    print(f"rolled back: production {out['from_version']} -> {out['version']}")
    print(f"serving now points at {out['model_path']}")
    return 0


def _log(args: argparse.Namespace) -> int:
    evs = Registry(_root(args)).events()
    if args.json:
        print(json.dumps(evs, indent=2))
        return 0
    for e in evs:
        move = ""
        if e.get("from_stage") or e.get("to_stage"):
            move = f"{e.get('from_stage')} -> {e.get('to_stage')}"
        if e.get("from_version") or e.get("to_version"):
            move += (f"  production {str(e.get('from_version'))[:12]} -> "
                     f"{str(e.get('to_version'))[:12]}")
        print(f"{e['seq']:>4}  {e['at']}  {e['action']:<16} {str(e.get('version'))[:12]:<12}  "
              f"by {e['by']}: {e.get('reason', '')}  {move}"
              + (f"  [{e['refused']}]" if e.get("refused") else ""))
    return 0


def _track(args: argparse.Namespace) -> int:
    """`dvc add registry/models`: the immutable model copies go to the DVC cache (and
    remote, with `dvc push`); registry/models.dvc pins them in git beside registry.json and
    production.json. The audit log is DVC-tracked too (registry/audit.log.jsonl.dvc; every
    registry command and Dagster run that appends to it re-pins it)."""
    root = _root(args)
    models = root / REGISTRY_MODELS
    if not models.is_dir():
        print("registry: no registered models to track yet", file=sys.stderr)
        return 2
    with repo_lock(root):
        dvc_add(root, models)
    _track_log(root)
    dvcfile = models.with_suffix(".dvc")
    print(f"tracked {models.relative_to(root)} and the audit log with DVC -> "
          f"{dvcfile.relative_to(root)}, {AUDIT_LOG}.dvc; commit them with the "
          f"{REGISTRY_DIR}/*.json files, then `dvc push`")
    return 0


def _guarded(func: Any, mutating: bool = False) -> Any:
    """Clear errors (exit 2) instead of tracebacks; after a command that writes the audit
    log (refusals are logged too), pin the log's new version with DVC."""
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (RegistryError, DataError) as e:
            print(f"registry: {e}", file=sys.stderr)
            return 2
        finally:
            if mutating:
                _track_log(_root(args))
    return run


def _track_log(root: Path) -> None:
    if (root / ".dvc").is_dir():
        track_audit_log(root)


def add_registry_parsers(sub: Any) -> argparse.ArgumentParser:
    """Mount `registry` and its sub-commands on the main parser's sub-parsers."""
    p = sub.add_parser("registry", help="the model registry: list, show, promote, approve, "
                                        "reject, rollback")
    p.add_argument("--root", type=Path, help="project root (default: mlops-assets --root, "
                   "MLOPS_ASSETS_ROOT, else the nearest dvc.yaml from the cwd up)")
    rs = p.add_subparsers(dest="registry_command", required=True)
    q = rs.add_parser("list", help="every version with its stage")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_guarded(_list))
    q = rs.add_parser("show", help="one version: record, evaluation, approvals, events")
    q.add_argument("version")
    q.set_defaults(func=_guarded(_show))
    q = rs.add_parser("register", help="register data/model (and its evaluation) as candidate")
    q.add_argument("--model")
    q.add_argument("--record")
    q.add_argument("--evaluation")
    q.add_argument("--by")
    q.add_argument("--reason")
    q.set_defaults(func=_guarded(_register, mutating=True))
    q = rs.add_parser("promote", help="move a version to a stage")
    q.add_argument("version")
    q.add_argument("--to", required=True, choices=list(STAGES))
    q.add_argument("--by")
    q.add_argument("--reason")
    q.set_defaults(func=_guarded(_promote, mutating=True))
    for name, fn in (("approve", _approve), ("reject", _reject)):
        q = rs.add_parser(name, help=f"{name} a version (a person's sign-off)")
        q.add_argument("version")
        q.add_argument("--by", required=True)
        q.add_argument("--reason", required=True)
        q.set_defaults(func=_guarded(fn, mutating=True))
    q = rs.add_parser("rollback", help="bring back the previous production version")
    q.add_argument("--by")
    q.add_argument("--reason")
    q.set_defaults(func=_guarded(_rollback, mutating=True))
    q = rs.add_parser("track", help="dvc add registry/models and the audit log (pin them with DVC)")
    q.set_defaults(func=_guarded(_track))
    q = rs.add_parser("log", help="the registry events of the audit log")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_guarded(_log))
    return p
