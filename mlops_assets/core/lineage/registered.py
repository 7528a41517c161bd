"""What the registry pinned for one version, verified as the record of that version.

A version's registry entry names two files by md5: the model record copied at registration
(`record_md5`, also in the audit log's register event) and the evaluation it was judged and
approved on (`evaluation_md5`, also in the audit log's evaluate event, its bytes kept under
the version's folder). They are artifacts of their own, not claims on the working
`data/model/model.json` and `data/reports/evaluation.json`: those move on legitimately
while the model bytes stay the same, when production moves (evaluate compares against it)
or new data arrives (the record lists the snapshots). Each is checked against its own md5,
every record of that md5 must agree (registry.json, the hash-chained audit log), and each
must name this model; the evaluation's gate must be the one the registry summarised."""

from __future__ import annotations

from typing import Any

from mlops_assets.core.layout import EVALUATION
from mlops_assets.core.lineage.chain import MISMATCHED, VERIFIED, Artifact, Chain, Check
from mlops_assets.core.lineage.events import audit_events

REGISTERED_RECORD, REGISTERED_EVALUATION = "registry_record", "registry_evaluation"


def _logged(events: list[dict[str, Any]], action: str, key: str) -> str | None:
    """What the last `action` event of the version logged under `key`."""
    hits = [e.get(key) for e in events if e.get("action") == action and e.get(key)]
    return str(hits[-1]) if hits else None


def _registered(chain: Chain, aid: str, kind: str, path: str,
                claims: list[tuple[str, str | None]]) -> Artifact:
    a = chain.artifact(aid, kind, path)
    for who, md5 in claims:
        a.claim(who, md5)
    return a


def claim_registered(chain: Chain, version: str, entry: dict[str, Any] | None) -> None:
    """The registered record and evaluation of `version`, and what they say of the model."""
    entry = entry or {}
    if not (entry.get("record_md5") or entry.get("evaluation_md5")):
        return
    events = [e for e in audit_events(chain.root) if e.get("kind") == "registry"
              and e.get("version") == version]
    model = chain.artifacts["model"]
    if entry.get("record_md5") and entry.get("record_path"):
        a = _registered(chain, REGISTERED_RECORD, "record", entry["record_path"], [
            ("registry.json record_md5", entry["record_md5"]),
            ("audit log register record_md5", _logged(events, "register", "record_md5"))])
        a.strict = True  # the registry's copy is the one file that must hold these bytes
        record, _ = chain.json_of(a.path, a.md5)
        model.claim("registered model.json model_md5", (record or {}).get("model_md5"))
    if entry.get("evaluation_md5"):
        a = _registered(chain, REGISTERED_EVALUATION, "report",
                        entry.get("evaluation_path") or EVALUATION, [
                            ("registry.json evaluation_md5", entry["evaluation_md5"]),
                            ("audit log evaluate evaluation_md5",
                             _logged(events, "evaluate", "evaluation_md5"))])
        a.strict = bool(entry.get("evaluation_path")) or chain.working_expected(a)
        evaluation, _ = chain.json_of(a.path, a.md5)
        if isinstance(evaluation, dict):
            model.claim("registered evaluation model_md5", evaluation.get("model_md5"))


def registered_evaluation(chain: Chain) -> tuple[str, dict[str, Any] | None] | None:
    """(md5, parsed bytes) of the evaluation the version was registered with, if any."""
    a = chain.artifacts.get(REGISTERED_EVALUATION)
    if a is None or not a.md5:
        return None
    evaluation, _ = chain.json_of(a.path, a.md5)
    return a.md5, evaluation if isinstance(evaluation, dict) else None


def check_registered(lineage: dict[str, Any], chain: Chain) -> list[Check]:
    """The registry's summary of the evaluation (what promotion was allowed on) must be what
    that evaluation's bytes say."""
    found = registered_evaluation(chain)
    entry = lineage["model"].get("registry") or {}
    summary = entry.get("evaluation")
    if found is None or found[1] is None or not isinstance(summary, dict):
        return []
    md5, evaluation = found
    gate = (evaluation.get("gate") or {})
    have, said = bool(gate.get("eligible")), bool(summary.get("eligible"))
    target = chain.artifacts[REGISTERED_EVALUATION].path
    if have != said:
        return [Check(target, "registry", MISMATCHED,
                      f"registry: registry.json says the evaluation gate of this version "
                      f"{'passed' if said else 'failed'}, but its evaluation {md5[:12]} says "
                      f"eligible={have}", str(have), str(said))]
    return [Check(target, "registry", VERIFIED,
                  f"registry: approved on evaluation {md5[:12]} (gate "
                  f"{'passed' if have else 'failed'} against {gate.get('reference')})",
                  str(have), str(said))]
