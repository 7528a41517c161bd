"""The stage-graph walk of build_lineage on a tiny project: dvc.yaml's graph (with a stage
the real chain does not have), a working dvc.lock and one committed version of it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from mlops_assets.core.layout import (
    EVALUATION,
    FEATURE_META,
    FEATURES,
    HOLDOUT,
    LANDING,
    MODEL,
    MODEL_RECORD,
    SNAPSHOTS,
    SPLIT_SUMMARY,
    TRAIN,
    VALIDATED,
    VALIDATION_REPORT,
)
from mlops_assets.core.lineage import build_lineage

CLEAN = "data/clean/clean.parquet"  # a stage between validate and features, only here
OLD_CONTRACT, NEW_CONTRACT = "contracts/old.yaml", "contracts/new.yaml"

DVC_YAML = {"stages": {
    "landing": {"cmd": "x", "outs": [LANDING]},
    "snapshot": {"cmd": "x", "deps": [LANDING], "outs": [SNAPSHOTS]},
    "validate": {"cmd": "x", "deps": [SNAPSHOTS, "${dataset.contract}", "code/validate.py"],
                 "params": ["dataset.contract"], "outs": [VALIDATED],
                 "metrics": [VALIDATION_REPORT]},
    "clean": {"cmd": "x", "deps": [VALIDATED], "outs": [CLEAN]},
    "features": {"cmd": "x", "deps": [CLEAN, "${dataset.contract}"],
                 "outs": [FEATURES, FEATURE_META]},
    "split": {"cmd": "x", "deps": [FEATURES], "outs": [TRAIN, HOLDOUT, SPLIT_SUMMARY]},
    "train": {"cmd": "x", "deps": [TRAIN, SPLIT_SUMMARY, FEATURE_META, SNAPSHOTS,
                                   "code/train.py"], "outs": [MODEL, MODEL_RECORD]},
    "evaluate": {"cmd": "x", "deps": [MODEL, HOLDOUT], "metrics": [EVALUATION]}}}


def _h(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def _git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_COMMITTER_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True)


def _entry(deps: dict[str, str], outs: dict[str, str], **params: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"cmd": "x", "deps": [{"path": p, "md5": m} for p, m in deps.items()],
                         "outs": [{"path": p, "md5": m} for p, m in outs.items()]}
    if params:
        e["params"] = {"params.yaml": params}
    return e


def _stages(model: str, record: str, features: str) -> dict[str, Any]:
    contract = {OLD_CONTRACT: _h("contract")}
    return {
        "landing": _entry({}, {LANDING: _h("landing") + ".dir"}),
        "snapshot": _entry({LANDING: _h("landing") + ".dir"}, {SNAPSHOTS: _h("snaps") + ".dir"}),
        "validate": _entry({SNAPSHOTS: _h("snaps") + ".dir", **contract,
                            "code/validate.py": _h("v.py")},
                           {VALIDATED: _h("validated"), VALIDATION_REPORT: _h("report")},
                           **{"dataset.contract": OLD_CONTRACT}),
        "clean": _entry({VALIDATED: _h("validated")}, {CLEAN: _h("clean")}),
        "features": _entry({CLEAN: _h("clean"), **contract},
                           {FEATURES: features, FEATURE_META: _h("meta")}),
        "split": _entry({FEATURES: _h("features")}, {TRAIN: _h("train"), HOLDOUT: _h("holdout"),
                                                     SPLIT_SUMMARY: _h("split")}),
        "train": _entry({TRAIN: _h("train"), SPLIT_SUMMARY: _h("split"), FEATURE_META: _h("meta"),
                         SNAPSHOTS: _h("snaps") + ".dir", "code/train.py": _h("t.py")},
                        {MODEL: model, MODEL_RECORD: record}),
        "evaluate": _entry({MODEL: model, HOLDOUT: _h("holdout")}, {EVALUATION: _h("eval")}),
    }


def _project(root: Path) -> str:
    """A project whose features stage was rebuilt since: the entry that produced the chain's
    features is only in the committed dvc.lock."""
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump({"dataset": {"contract": NEW_CONTRACT}}))
    model = _h("model")
    rec = root / MODEL_RECORD
    rec.parent.mkdir(parents=True)
    rec.write_text(json.dumps({"model_md5": model, "data": {TRAIN: _h("train")}}))
    record = hashlib.md5(rec.read_bytes()).hexdigest()
    _git(root, "init", "-q")
    lock = {"schema": "2.0", "stages": _stages(model, record, _h("features"))}
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "chain")
    lock["stages"]["features"] = _stages(model, record, _h("features v2"))["features"]
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    return model


def test_the_walk_follows_dvc_yaml_and_the_lock_history(tmp_path: Path) -> None:
    model = _project(tmp_path)
    lineage, chain = build_lineage(tmp_path, "current")
    assert lineage["version"] == model
    # every stage of the graph upstream of train, consumers first, then the model's readers
    assert list(chain.entries) == ["train", "split", "features", "clean", "validate",
                                   "snapshot", "landing", "evaluate"]
    assert chain.entries["features"][0].commit is not None  # found in git history
    assert chain.entries["split"][0].commit is None         # in the working dvc.lock
    claims = {a.id: [who for who, _ in a.claims] for a in chain.artifacts.values()}
    assert claims["train"] == ["dvc.lock (working tree) train.deps",
                               "dvc.lock (working tree) split.outs", "model.json data"]
    label = chain.entries["features"][0].label
    assert claims["features"] == ["dvc.lock (working tree) split.deps", f"{label} features.outs"]
    assert claims[f"out:{CLEAN}"] == [f"{label} features.deps", "dvc.lock (working tree) clean.outs"]
    assert chain.artifacts[f"out:{CLEAN}"].kind == "dataset"
    assert claims["snapshots"] == ["dvc.lock (working tree) validate.deps",
                                   "dvc.lock (working tree) train.deps",
                                   "dvc.lock (working tree) snapshot.outs"]
    assert claims["holdout"] == ["dvc.lock (working tree) split.outs",
                                 "dvc.lock (working tree) evaluate.deps"]
    # the contract path is the one the lock pinned (dataset.contract), not params.yaml's
    contract = chain.artifacts["contract"]
    assert contract.path == OLD_CONTRACT and contract.git_tracked
    assert claims["contract"] == ["dvc.lock (working tree) validate.deps",
                                  f"{label} features.deps"]
    assert lineage["validated_dataset"]["contract"]["path"] == OLD_CONTRACT
    assert {a.id for a in chain.artifacts.values() if a.kind == "code"} == {
        "code:code/train.py", "code:code/validate.py"}
    assert "landing" in chain.artifacts and "evaluation" in chain.artifacts


def test_a_source_stage_nothing_pins_is_left_out(tmp_path: Path) -> None:
    """landing (no upstream stage) is walked only when a consumer recorded its output."""
    _project(tmp_path)
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    lock["stages"]["snapshot"]["deps"] = []
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    lineage, chain = build_lineage(tmp_path, "current")
    assert "landing" not in chain.entries and "landing" not in chain.artifacts
    assert lineage["raw_snapshots"]["landing_dir_md5"] is None


def test_a_missing_producer_is_a_note(tmp_path: Path) -> None:
    """No lock records the features entry split read: a note, and the stages above it that
    nothing else pins are walked without an entry (their files claimed by nobody)."""
    _project(tmp_path)
    lock = yaml.safe_load((tmp_path / "dvc.lock").read_text())
    lock["stages"]["split"]["deps"][0]["md5"] = _h("unknown features")
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    lineage, chain = build_lineage(tmp_path, "current")
    assert (f"no dvc.lock records the features stage that produced {FEATURES} md5 "
            f"{_h('unknown features')}") in lineage["notes"]
    assert not {"features", "clean", "validate"} & set(chain.entries)
    assert chain.artifacts["validated"].claims == []
    assert "snapshot" in chain.entries  # train pins the snapshots itself
