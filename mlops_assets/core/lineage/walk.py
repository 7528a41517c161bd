"""The walk over dvc.yaml's stage graph that claims every artifact of one model's chain.

Up from the train stage, consumers before producers: each producing stage's dvc.lock entry
is the one whose output md5 equals what its consumers (or the model record) recorded for
it, in the working lock first, then in git history. Across to the stages that read the
model (evaluate, drift), found by the model md5 they depend on. Every file gets the claims
of every record that names its md5; the tables below say only what the graph cannot: the
artifact ids, the record's extra claims, and how a directory output is listed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.core.dvcgraph import (
    Stages,
    ancestors,
    descendants,
    param,
    producer_of,
    topological,
)
from mlops_assets.core.layout import (
    DRIFT_JSON,
    EVALUATION,
    FEATURE_META,
    FEATURES,
    HOLDOUT,
    LANDING,
    MANIFEST,
    MODEL,
    MODEL_RECORD,
    REFERENCE_PROFILE,
    SNAPSHOTS,
    SPLIT_SUMMARY,
    TRAIN,
    VALIDATED,
    VALIDATION_REPORT,
)
from mlops_assets.core.lineage.chain import Artifact, Chain, DagsterRecords
from mlops_assets.core.lineage.history import TRAIN_STAGE, LockRev, deps_of, outs_of, params_of
from mlops_assets.core.lineage.times import landing_times

Hit = tuple[LockRev, dict[str, Any]]
Claims = list[tuple[str, str | None]]

# artifact id and kind of every file the lineage names; any other out is `out:<path>`
ARTIFACT_IDS: dict[str, tuple[str, str]] = {
    MODEL: ("model", "model"), MODEL_RECORD: ("record", "record"),
    REFERENCE_PROFILE: ("reference_profile", "model"),
    TRAIN: ("train", "dataset"), HOLDOUT: ("holdout", "dataset"),
    SPLIT_SUMMARY: ("split", "report"),
    FEATURES: ("features", "features"), FEATURE_META: ("feature_meta", "report"),
    VALIDATED: ("validated", "dataset"), VALIDATION_REPORT: ("validation", "report"),
    SNAPSHOTS: ("snapshots", "dir"), LANDING: ("landing", "dir"),
    EVALUATION: ("evaluation", "report"), DRIFT_JSON: ("drift", "report")}

# source files (deps no stage writes, not code) named by the param that holds their path
SOURCE_PARAMS: dict[str, tuple[str, str]] = {"dataset.contract": ("contract", "contract")}


@dataclass
class Walk:
    """One build: the chain being claimed and the facts read on the way."""

    chain: Chain
    graph: Stages
    params: dict[str, Any]            # params.yaml (the working tree's)
    version: str
    record: dict[str, Any]
    found: Hit | None                 # the train entry
    registry_entry: dict[str, Any] | None
    dagster: DagsterRecords | None
    facts: dict[str, Any] = field(default_factory=dict)  # JSON outs read, by path
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    drift_reports: list[dict[str, Any]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # artifact id -> path
    order: list[str] = field(default_factory=list)  # the graph's stages, producers first

    def __post_init__(self) -> None:
        self.order = topological(self.graph)

    @property
    def data_rec(self) -> dict[str, Any]:
        return self.record.get("data") or {}

    def fact(self, path: str) -> dict[str, Any]:
        value = self.facts.get(path)
        return value if isinstance(value, dict) else {}


# claims the model record (and its siblings) make beyond dvc.lock, by artifact id
EXTRA_CLAIMS: dict[str, Callable[[Walk], Claims]] = {
    "validated": lambda w: [("feature_meta.json validated_md5",
                             w.fact(FEATURE_META).get("validated_md5"))],
    "contract": lambda w: [("model.json contract.md5",
                            (w.record.get("contract") or {}).get("md5"))],
    "reference_profile": lambda w: [("model.json reference_profile_md5",
                                     w.record.get("reference_profile_md5"))],
}


def artifact_id(path: str, default_kind: str) -> tuple[str, str]:
    """(id, kind) of an out: named in ARTIFACT_IDS, else `out:<path>` of the given kind."""
    return ARTIFACT_IDS.get(path) or (f"out:{path}", default_kind)


# ------------------------------------------------------------------------------ upstream


def _consumers(w: Walk, done: list[str]) -> list[tuple[str, LockRev, dict[str, Any]]]:
    """The resolved entries of the stages walked so far, producers first (so the claims of
    an artifact come in the graph's order, whatever the order of dvc.yaml's text)."""
    return [(s, *w.chain.entries[s]) for s in w.order if s in done and s in w.chain.entries]


def _pinned(consumers: list[tuple[str, LockRev, dict[str, Any]]], path: str) -> Claims:
    return [(f"{rev.label} {s}.deps", deps_of(e).get(path)) for s, rev, e in consumers]


def _find_producer(w: Walk, stage: str, consumers: list[tuple[str, LockRev, dict[str, Any]]]
                   ) -> tuple[Hit | None, bool]:
    """The stage's entry whose output md5 is the first its consumers (or the record) pinned,
    and whether anything pinned one of its outputs at all."""
    for path in w.graph[stage]["outs"]:
        md5 = next((m for _, m in _pinned(consumers, path) if m), None) or w.data_rec.get(path)
        if not md5:
            continue
        hit = w.chain.find_entry(stage, lambda e, p=path, m=md5: outs_of(e).get(p) == m)
        if hit:
            w.chain.entries.setdefault(stage, hit)
        else:
            w.chain.notes.append(f"no dvc.lock records the {stage} stage that produced {path} "
                                 f"md5 {md5}")
        return hit, True
    return None, False


def _walk_stage(w: Walk, stage: str, done: list[str]) -> None:
    consumers = _consumers(w, done)
    hit, pinned = _find_producer(w, stage, consumers)
    if not pinned and not ancestors(w.graph, stage):
        return  # a source stage (landing) nothing pins: older locks never tracked it
    label = f"{hit[0].label} {stage}.outs" if hit else f"{stage}.outs"
    outs = outs_of(hit[1]) if hit else {}
    for path in w.graph[stage]["outs"]:
        aid, kind = artifact_id(path, "dataset")
        extra = EXTRA_CLAIMS.get(aid)
        a = w.chain.claim_file(aid, kind, path, [
            *_pinned(consumers, path), (label, outs.get(path)),
            ("model.json data", w.data_rec.get(path)), *(extra(w) if extra else [])])
        if kind == "dir":
            a.is_dir = True
            (_list_snapshots if path == SNAPSHOTS else _list_dir)(w, a)
        elif path.endswith(".json"):
            w.facts[path], _ = w.chain.json_of(path, a.md5)


def _source_paths(w: Walk, order: list[str]) -> dict[str, str]:
    """Plain-file deps of the walked stages (not code, no stage's out) -> the last stage in
    walk order that reads them: they are claimed once all their readers are resolved."""
    last: dict[str, str] = {}
    for stage in order:
        for dep in w.graph[stage]["deps"]:
            if not dep.endswith(".py") and producer_of(w.graph, dep) is None:
                last[dep] = stage
    return last


def _claim_source(w: Walk, dep: str, done: list[str]) -> None:
    """A git-tracked source file; its path as the chain's entries pinned it (a param such
    as dataset.contract), else as params.yaml has it."""
    aid, kind, path = f"source:{dep}", "source", dep
    consumers = _consumers(w, done)
    for key, (named, named_kind) in SOURCE_PARAMS.items():
        if param(w.params, key) == dep:
            aid, kind = named, named_kind
            path = next((params_of(e)[key] for _, _, e in consumers if params_of(e).get(key)),
                        dep)
    extra = EXTRA_CLAIMS.get(aid)
    a = w.chain.claim_file(aid, kind, path, [*_pinned(consumers, path),
                                             *(extra(w) if extra else [])])
    a.git_tracked = True
    w.sources[aid] = path


def walk_upstream(w: Walk) -> None:
    """Up from the train stage through every stage it depends on, consumers first."""
    ups = ancestors(w.graph, TRAIN_STAGE)
    order = [s for s in reversed(w.order) if s in ups]
    sources = _source_paths(w, order)
    done = [TRAIN_STAGE]
    for stage in order:
        _walk_stage(w, stage, done)
        done.append(stage)
        for dep, last in sources.items():
            if last == stage:
                _claim_source(w, dep, done)


# ------------------------------------------------------------------------------ directories


def _list_dir(w: Walk, d: Artifact) -> None:
    """Each file of a DVC directory output's listing (from the cache), as `<id>:<file>`."""
    for fname, md5 in w.chain.dir_listing(d.md5) or []:
        w.chain.claim_file(f"{d.id}:{fname}", d.id, f"{d.path}/{fname}",
                           [(f"{d.path} {d.md5}", md5)], d.id)


def _list_snapshots(w: Walk, d: Artifact) -> None:
    """The snapshot directory: its manifest, each snapshot it names (claimed by the listing,
    the manifest and the model record), and any file only the listing has."""
    chain = w.chain
    listing = chain.dir_listing(d.md5)
    if listing is None and d.md5:
        chain.notes.append(f"the DVC cache holds no listing for {SNAPSHOTS} {d.md5}: "
                           "snapshot files are checked against the manifest and model record")
    listed = dict(listing or [])
    man = chain.claim_file("manifest", "manifest", MANIFEST,
                           [(f"{SNAPSHOTS} {d.md5}", listed.get("manifest.json"))], d.id)
    manifest, _ = chain.json_of(MANIFEST, man.md5)
    entries = (manifest or {}).get("entries") or w.record.get("snapshots") or []
    rec_snaps = {s.get("snapshot_file"): s for s in w.record.get("snapshots") or []}
    times = landing_times(w.dagster, chain.root, entries)
    for e in entries:
        fname = e.get("snapshot_file")
        chain.claim_file(f"snapshot:{e.get('batch')}", "snapshot", f"{SNAPSHOTS}/{fname}", [
            (f"{SNAPSHOTS} {d.md5}", listed.get(fname)), ("manifest.json", e.get("md5")),
            ("model.json snapshots", (rec_snaps.get(fname) or {}).get("md5"))], d.id)
        lt = times.get(str(e.get("batch")), {})
        w.snapshots.append({
            "batch": e.get("batch"), "source_file": e.get("source_file"),
            "snapshot_file": fname, "md5": e.get("md5"), "rows": e.get("rows"),
            "size": e.get("size"), "landed_at": lt.get("time"),
            "landed_at_source": lt.get("source")})
    named = {e.get("snapshot_file") for e in entries}
    for fname, md5 in listed.items():  # files the listing has and the manifest does not name
        if fname != "manifest.json" and fname not in named:
            chain.claim_file(f"snapshot-file:{fname}", "snapshot", f"{SNAPSHOTS}/{fname}",
                             [(f"{SNAPSHOTS} {d.md5}", md5)], d.id)


# ------------------------------------------------------------------------------ downstream


def _read_evaluation(w: Walk, a: Artifact, hit: Hit) -> None:
    """The evaluation the lock pinned for this model (the registry's, the one it was approved
    on, is an artifact of its own: `registered`)."""
    evaluation, _ = w.chain.json_of(EVALUATION, a.md5)
    w.facts[EVALUATION] = evaluation
    if isinstance(evaluation, dict) and evaluation.get("model_md5"):
        w.chain.artifacts["model"].claim("evaluation.json model_md5", evaluation.get("model_md5"))


def _read_drift(w: Walk, a: Artifact, hit: Hit) -> None:
    drift, _ = w.chain.json_of(DRIFT_JSON, a.md5)
    report: dict[str, Any] = {"path": DRIFT_JSON, "md5": a.md5, "lock": hit[0].label}
    if not isinstance(drift, dict):
        w.drift_reports.append({**report, "available": False})
        return
    lin = drift.get("lineage") or {}
    w.drift_reports.append({
        **report, "available": True,
        "severity": drift.get("severity"), "drift_share": drift.get("drift_share"),
        "drifted_features": drift.get("drifted_features"),
        "current_batch": lin.get("current_batch"), "current_window": lin.get("current_window"),
        "recommendation": drift.get("recommendation")})
    w.chain.artifacts["model"].claim("drift.json lineage.model_version", lin.get("model_version"))


# what is read from a downstream stage's report, and what it claims about the model
REPORT_READERS: dict[str, Callable[[Walk, Artifact, Hit], None]] = {
    EVALUATION: _read_evaluation, DRIFT_JSON: _read_drift}


def _claim_others(w: Walk, stage: str, hit: Hit) -> None:
    """A downstream stage's other outs, and what its deps say about the chain's files when
    it was recorded in the same dvc.lock as the training."""
    rev, entry = hit
    chain = w.chain
    known = {a.path for a in chain.artifacts.values()}
    for p, omd5 in outs_of(entry).items():
        if p not in known:
            chain.claim_file(f"out:{p}", "report", p, [(f"{rev.label} {stage}.outs", omd5)])
    if w.found and rev is w.found[0]:
        by_path = {a.path: a for a in chain.artifacts.values()}
        for p, dmd5 in deps_of(entry).items():
            if p in by_path and not p.endswith(".py"):
                by_path[p].claim(f"{rev.label} {stage}.deps", dmd5)


def walk_downstream(w: Walk) -> None:
    """Across to the stages that read this model (evaluate, drift): the entry whose model
    dep is this version, and the report it wrote."""
    readers = descendants(w.graph, TRAIN_STAGE)
    stages = [s for s in w.order if s in readers and MODEL in w.graph[s]["deps"]]
    for stage in stages:
        hit = w.chain.find_entry(stage, lambda e: deps_of(e).get(MODEL) == w.version)
        report = next((p for p in w.graph[stage]["outs"] if p in REPORT_READERS), None)
        if not hit or report is None:
            continue
        w.chain.entries[stage] = hit
        aid, kind = artifact_id(report, "report")
        a = w.chain.claim_file(aid, kind, report,
                               [(f"{hit[0].label} {stage}.outs", outs_of(hit[1]).get(report))])
        REPORT_READERS[report](w, a, hit)
    for stage in stages:
        if stage in w.chain.entries:
            _claim_others(w, stage, w.chain.entries[stage])


def claim_train_outs(w: Walk) -> None:
    """The train entry's outs beyond the model and its record (the reference profile)."""
    if not w.found:
        return
    rev, entry = w.found
    for p, md5 in outs_of(entry).items():
        if p in (MODEL, MODEL_RECORD):
            continue
        aid, kind = artifact_id(p, "model")
        extra = EXTRA_CLAIMS.get(aid)
        w.chain.claim_file(aid, kind, p, [(f"{rev.label} {TRAIN_STAGE}.outs", md5),
                                          *(extra(w) if extra else [])])


def claim_code(w: Walk) -> dict[str, dict[str, str]]:
    """Every Python dep of every resolved entry (git-tracked): stage -> {path: md5}."""
    code: dict[str, dict[str, str]] = {}
    for stage, (rev, entry) in list(w.chain.entries.items()):
        for p, md5 in deps_of(entry).items():
            if p.endswith(".py") and md5:
                prior = w.chain.artifacts.get(f"code:{p}")
                aid = f"code:{p}" if prior is None or prior.md5 == md5 else f"code:{p}@{md5}"
                a = w.chain.claim_file(aid, "code", p, [(f"{rev.label} {stage}.deps", md5)])
                a.git_tracked = True
                code.setdefault(stage, {})[p] = md5
    return code
