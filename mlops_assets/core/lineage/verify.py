"""`verify_lineage`: recompute every hash of a built chain and check it against every claim
(dvc.lock outs and the deps recorded downstream, the model record, the snapshot manifest,
the DVC `.dir` listings, the registry, Dagster), then the checks that are not about one
file's bytes (`checks`, `auditlog`).

Hashing goes through `store.HashCache`, so a warm verify re-reads no bytes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlops_assets.core.lineage.auditlog import check_audit_log
from mlops_assets.core.lineage.chain import (
    MISMATCHED,
    MISSING,
    SKIPPED,
    STATUSES,
    VERIFIED,
    Artifact,
    Chain,
    Check,
    DagsterRecords,
)
from mlops_assets.core.lineage.checks import (
    check_dagster,
    check_feature_definitions,
    check_leakage,
    check_params,
    check_registry,
)
from mlops_assets.core.lineage.history import TRAIN_STAGE
from mlops_assets.core.lineage.registered import check_registered
from mlops_assets.core.store import dir_md5, dvc_cache_object, git


def _actual_md5(chain: Chain, a: Artifact, commit: str | None
                ) -> tuple[str | None, str | None, bool]:
    """(md5, where the bytes came from, working copy present)."""
    root = chain.root
    wf = root / a.path
    present = wf.is_file()
    expected = a.md5
    if present:
        got = chain.cache.md5(wf)
        if a.strict or got == expected:
            return got, "working tree", True
    if expected:
        obj = dvc_cache_object(root, expected)
        if obj.is_file():
            return chain.cache.md5(obj), "DVC cache", present
        if a.git_tracked:
            revs = ([commit] if commit else []) + [r.commit for r in chain.history.commits()
                                                   if r.commit != commit]
            for c in revs[:50]:
                blob = git(root, "show", f"{c}:{a.path}", binary=True)
                if blob is not None and hashlib.md5(blob).hexdigest() == expected:
                    return expected, f"git {c[:10]}", present
    if present:  # not strict and not found elsewhere: report what the working tree holds
        return chain.cache.md5(wf), "working tree", True
    return None, None, False


def _dir_actual(chain: Chain, a: Artifact) -> tuple[str | None, list[str]]:
    """The working directory's DVC md5, and which files differ from the recorded listing."""
    d = chain.root / a.path
    if not d.is_dir():
        return None, []
    files = sorted(p for p in d.rglob("*") if p.is_file())
    md5s = chain.cache.md5_many(files)
    entries = [(p.relative_to(d).as_posix(), md5s[os.path.abspath(p)]) for p in files]
    actual = dir_md5(entries)
    diffs: list[str] = []
    listing = chain.dir_listing(a.md5)
    if listing is not None and actual != a.md5:
        want, have = dict(listing), dict(entries)
        diffs += [f"{r} changed" for r in want if r in have and have[r] != want[r]]
        diffs += [f"{r} missing" for r in want if r not in have]
        diffs += [f"{r} not in the recorded listing" for r in have if r not in want]
    return actual, diffs


def _warm(chain: Chain) -> None:
    """Hash every file of the chain at once (parallel on a cold run)."""
    root = chain.root
    wanted: list[Path] = []
    for a in chain.artifacts.values():
        p = root / a.path
        if a.is_dir and p.is_dir():
            wanted += [q for q in p.rglob("*") if q.is_file()]
        elif p.is_file():
            wanted.append(p)
        wanted += [root / alt for alt in a.alt_paths if (root / alt).is_file()]
    chain.cache.md5_many(wanted)


def _claims_text(a: Artifact) -> str:
    return ", ".join(f"{who}={m[:12]}" for who, m in a.claims)


def _check_dir(chain: Chain, a: Artifact) -> Check:
    """A directory output: the working directory when it should hold this version, else
    the listing object in the DVC cache."""
    root = chain.root
    if (root / a.path).is_dir() and a.strict:
        actual, diffs = _dir_actual(chain, a)
        if actual == a.md5:
            return Check(a.path, a.kind, VERIFIED, f"{a.path}: {actual}", a.md5, actual,
                         "working tree")
        detail = "; ".join(diffs[:10]) + (f" (+{len(diffs) - 10} more)" if len(diffs) > 10
                                          else "")
        return Check(a.path, a.kind, MISMATCHED,
                     f"{a.path}: directory md5 {actual} but {_claims_text(a)}"
                     + (f": {detail}" if detail else ""), a.md5, actual, "working tree")
    listing = chain.dir_listing(a.md5)
    obj = dvc_cache_object(root, a.md5 or "")
    if listing is not None and chain.cache.md5(obj) == (a.md5 or "")[:-4]:
        return Check(a.path, a.kind, VERIFIED, f"{a.path}: listing {a.md5} (DVC cache)", a.md5,
                     a.md5, "DVC cache")
    if listing is not None:
        return Check(a.path, a.kind, MISMATCHED, f"{a.path}: the DVC cache's listing object for "
                                                 f"{a.md5} is corrupt", a.md5, None, "DVC cache")
    return Check(a.path, a.kind, MISSING, f"{a.path}: {a.md5} is neither in the working tree "
                                          "nor in the DVC cache", a.md5)


def _check_file(chain: Chain, a: Artifact, commit: str | None) -> Check:
    actual, src, present = _actual_md5(chain, a, commit)
    if actual is None:
        return Check(a.path, a.kind, MISSING,
                     f"{a.path}: missing (not in the working tree, the DVC cache"
                     + (" or git" if a.git_tracked else "") + f"); expected {a.md5}", a.md5)
    if actual != a.md5:
        msg = f"{a.path}: md5 {actual} ({src}) but {_claims_text(a)}"
        if a.kind == "model":
            msg += " -- the model file was replaced or altered"
        elif a.kind == "code" and a.strict:
            msg += " -- the code changed since dvc.lock was written (rebuild or revert)"
        return Check(a.path, a.kind, MISMATCHED, msg, a.md5, actual, src)
    note = "" if src == "working tree" else (
        f" ({src}; the working copy is missing: `dvc checkout` restores it)"
        if not present and a.strict else
        f" ({src}; the working tree holds another version)" if present else f" ({src})")
    return Check(a.path, a.kind, VERIFIED, f"{a.path}: {actual}{note}", a.md5, actual, src)


def _check_copies(chain: Chain, a: Artifact) -> list[Check]:
    """Registry copies must hold the same bytes."""
    out = []
    for alt in a.alt_paths:
        p = chain.root / alt
        if not p.is_file():
            out.append(Check(alt, a.kind, MISSING, f"{alt}: missing (registry copy of "
                                                   f"{a.path})", a.md5))
            continue
        got = chain.cache.md5(p)
        out.append(Check(alt, a.kind, VERIFIED if got == a.md5 else MISMATCHED,
                         f"{alt}: {got}" + ("" if got == a.md5 else
                                            f" but {_claims_text(a)} (registry copy altered)"),
                         a.md5, got, "working tree"))
    return out


def check_artifact(chain: Chain, a: Artifact, commit: str | None) -> list[Check]:
    """Every claim agrees, and the bytes hash to it."""
    if not a.claims:
        return [Check(a.path, a.kind, MISSING, f"{a.path}: nothing records its md5")]
    out = []
    if len({m for _, m in a.claims}) > 1:
        out.append(Check(a.path, a.kind, MISMATCHED,
                         f"{a.path}: the records disagree about its md5: {_claims_text(a)}",
                         expected=a.md5))
    if a.is_dir:
        return [*out, _check_dir(chain, a)]
    return [*out, _check_file(chain, a, commit), *_check_copies(chain, a)]


def verify_lineage(lineage: dict[str, Any], chain: Chain, *,
                   dagster: DagsterRecords | None = None,
                   dagster_note: str | None = None,
                   asset_outs: Mapping[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """Recompute every hash of the chain and check it against every claim; check leakage,
    feature definitions, params, the registry, Dagster and the audit log's hash chain."""
    train_rev = chain.entries.get(TRAIN_STAGE, (None, None))[0]
    commit = train_rev.commit if train_rev else None
    _warm(chain)
    checks: list[Check] = []
    for a in chain.artifacts.values():
        checks += check_artifact(chain, a, commit)
    checks += check_leakage(lineage, chain)
    checks += check_feature_definitions(lineage, chain)
    checks += check_params(lineage, chain)
    checks += check_registry(lineage, chain)
    checks += check_registered(lineage, chain)
    checks += check_audit_log(chain.root)
    if dagster is not None:
        checks += check_dagster(lineage, chain, dagster, asset_outs)
    else:
        checks.append(Check("dagster", "dagster", SKIPPED,
                            dagster_note or "Dagster: no instance, materialisation metadata not "
                                            "checked"))
    counts = {s: sum(c.status == s for c in checks) for s in STATUSES}
    return {"ok": counts[MISMATCHED] == 0 and counts[MISSING] == 0, "counts": counts,
            "checks": [asdict(c) for c in checks], "hash_cache": chain.cache.stats()}
