"""The file-based model registry: transitions, refusals, the audit log, concurrency."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from mlops_assets.core.audit import read_events, verify_chain
from mlops_assets.core.io import md5_file
from mlops_assets.core.registry import (
    ARCHIVED,
    CANDIDATE,
    PRODUCTION,
    STAGING,
    Registry,
    RegistryError,
    Settings,
)


def _model(tmp: Path, name: str, eligible: bool | None = True) -> tuple[Path, Path, Path | None]:
    """A model file (any bytes: the registry only hashes them), its record and evaluation."""
    d = tmp / "src" / name
    d.mkdir(parents=True)
    model = d / "model.skops"
    model.write_bytes(f"model bytes of {name}".encode())
    md5 = md5_file(model)
    record = d / "model.json"
    record.write_text(json.dumps({"model_md5": md5, "cutoff": "2025-11-10", "threshold": 0.5}))
    if eligible is None:
        return model, record, None
    evaluation = d / "evaluation.json"
    evaluation.write_text(json.dumps({
        "model_md5": md5, "candidate": {"pr_auc": 0.8, "fpr": 0.02},
        "gate": {"eligible": eligible, "reference": "rule_baseline",
                 "reasons": ["PASS PR AUC: ..." if eligible else
                             "FAIL PR AUC: candidate 0.5000 < rule_baseline 0.7000"]}}))
    return model, record, evaluation


def _reg(root: Path, eligible: bool | None = True, name: str = "a",
         **settings: object) -> tuple[Registry, str]:
    reg = Registry(root, Settings(**settings) if settings else Settings())
    m, r, e = _model(root, name, eligible)
    return reg, reg.register(m, r, evaluation_path=e, by="ci", reason="trained")


def _actions(reg: Registry) -> list[str]:
    return [e["action"] for e in reg.events()]


def test_register_makes_an_immutable_content_addressed_candidate(tmp_path: Path) -> None:
    reg, v = _reg(tmp_path)
    m, _, _ = _model(tmp_path, "again")  # different bytes -> different version
    info = reg.get(v)
    assert info["stage"] == CANDIDATE
    copy = tmp_path / info["model_path"]
    assert copy == tmp_path / "registry" / "models" / v / "model.skops"
    assert md5_file(copy) == v
    assert not os.access(copy, os.W_OK) or os.geteuid() == 0  # read-only mode
    assert oct(copy.stat().st_mode & 0o777) == "0o444"
    # the same bytes again: one version, no second register event
    src = tmp_path / "src" / "a"
    assert reg.register(src / "model.skops", src / "model.json", by="ci", reason="x") == v
    assert _actions(reg) == ["register", "evaluate"]
    assert reg.get(v[:8])["version"] == v  # a unique prefix resolves
    assert reg.register(m, m.parent / "model.json", by="ci", reason="x") != v


def test_register_pins_the_record_and_the_evaluation_by_md5(tmp_path: Path) -> None:
    """What lineage verifies a version against: the record and evaluation as registered,
    by md5 (registry.json and the audit log), whatever the working files become later."""
    reg, v = _reg(tmp_path)
    src = tmp_path / "src" / "a"
    info = reg.get(v)
    assert info["record_md5"] == md5_file(src / "model.json")
    assert info["evaluation_md5"] == md5_file(src / "evaluation.json")
    copy = tmp_path / info["evaluation_path"]
    assert copy == tmp_path / "registry/models" / v / "evaluations" / f"{info['evaluation_md5']}.json"
    assert md5_file(copy) == info["evaluation_md5"]
    events = {e["action"]: e for e in reg.events(v)}
    assert events["register"]["record_md5"] == info["record_md5"]
    assert events["evaluate"]["evaluation_md5"] == info["evaluation_md5"]
    # a newer record of the same model bytes does not replace the registered one
    (src / "model.json").write_text(json.dumps({"model_md5": v, "cutoff": "2025-12-01"}))
    reg.register(src / "model.skops", src / "model.json", by="ci", reason="again")
    assert reg.get(v)["record_md5"] == info["record_md5"]


def test_every_transition_is_an_event_and_the_pointer_follows(tmp_path: Path) -> None:
    reg, a = _reg(tmp_path, name="a")
    _, b = _reg(tmp_path, name="b")
    reg.promote(a, STAGING, by="ana", reason="shadow first")
    reg.approve(a, by="ana", reason="reviewed the report")
    reg.promote(a, PRODUCTION, by="ana", reason="go live")
    assert reg.production() == a
    assert reg.pointer() == {"version": a, "model_path": f"registry/models/{a}/model.skops",
                             "record_path": f"registry/models/{a}/model.json"}
    reg.approve(b, by="bo", reason="beats production")
    reg.promote(b, PRODUCTION, by="bo", reason="holiday fix")
    assert reg.get(a)["stage"] == ARCHIVED and reg.get(b)["stage"] == PRODUCTION
    assert reg.pointer()["version"] == b
    out = reg.rollback(by="ana", reason="b misbehaves")
    assert out["version"] == a and out["from_version"] == b
    assert reg.production() == a and reg.get(b)["stage"] == ARCHIVED
    assert reg.pointer()["version"] == a
    _, c = _reg(tmp_path, name="c")
    reg.reject(c, by="bo", reason="leaks the label")
    assert reg.get(c)["stage"] == ARCHIVED
    assert _actions(reg) == ["register", "evaluate", "register", "evaluate", "promote",
                             "approve", "promote", "approve", "promote", "rollback",
                             "register", "evaluate", "reject"]
    ev = {e["action"]: e for e in reg.events()}
    assert ev["rollback"]["from_version"] == b and ev["rollback"]["to_version"] == a
    assert ev["rollback"]["by"] == "ana" and ev["rollback"]["reason"] == "b misbehaves"
    promote_b = [e for e in reg.events() if e["action"] == "promote"][-1]
    assert (promote_b["from_version"], promote_b["to_version"]) == (a, b)
    assert promote_b["from_stage"] == CANDIDATE and promote_b["to_stage"] == PRODUCTION
    assert all(e["at"].endswith("Z") for e in reg.events())
    assert verify_chain(reg.log_path) == []


def test_promoting_a_candidate_whose_gate_failed_is_refused(tmp_path: Path) -> None:
    reg, v = _reg(tmp_path, eligible=False)
    reg.approve(v, by="ana", reason="looks fine")
    for stage in (STAGING, PRODUCTION):
        with pytest.raises(RegistryError, match="evaluation gate failed.*FAIL PR AUC"):
            reg.promote(v, stage, by="ana", reason="try")
    assert reg.get(v)["stage"] == CANDIDATE and reg.production() is None
    assert reg.pointer()["version"] is None
    refused = [e for e in reg.events() if e["action"] == "promote_refused"]
    assert len(refused) == 2 and "evaluation gate failed" in refused[0]["refused"]


def test_promoting_without_approval_is_refused_when_required(tmp_path: Path) -> None:
    reg, v = _reg(tmp_path)
    with pytest.raises(RegistryError, match=r"approval is required.*registry approve"):
        reg.promote(v, PRODUCTION, by="ana", reason="ship it")
    assert reg.production() is None
    reg.promote(v, STAGING, by="ana", reason="staging needs no approval")
    reg.approve(v, by="bo", reason="ok")
    reg.promote(v, PRODUCTION, by="ana", reason="approved")
    assert reg.production() == v


def test_approval_not_required_when_params_say_so(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text("registry:\n  approval_required: false\n")
    reg = Registry(tmp_path)
    assert reg.settings.approval_required is False
    m, r, e = _model(tmp_path, "a")
    v = reg.register(m, r, evaluation_path=e)
    reg.promote(v, PRODUCTION, by="ci", reason="low stakes")
    assert reg.production() == v
    (tmp_path / "params.yaml").write_text("train: {}\n")
    assert Registry(tmp_path).settings.approval_required is True  # the default


def test_unevaluated_and_rejected_versions_cannot_reach_production(tmp_path: Path) -> None:
    reg, v = _reg(tmp_path, eligible=None)
    reg.approve(v, by="ana", reason="ok")
    with pytest.raises(RegistryError, match="has no evaluation"):
        reg.promote(v, PRODUCTION, by="ana", reason="x")
    _, w = _reg(tmp_path, name="w")
    reg.reject(w, by="bo", reason="bad")
    with pytest.raises(RegistryError, match="was rejected by bo"):
        reg.promote(w, STAGING, by="ana", reason="x")
    reg.approve(w, by="bo", reason="rechecked")  # a new approval lifts the rejection
    reg.promote(w, PRODUCTION, by="bo", reason="x")
    assert reg.production() == w
    with pytest.raises(RegistryError, match="in production and cannot be rejected"):
        reg.reject(w, by="bo", reason="x")
    with pytest.raises(RegistryError, match="cannot move from production to archived"):
        reg.promote(w, ARCHIVED, by="bo", reason="x")
    with pytest.raises(RegistryError, match="needs a person"):
        reg.approve(w, by="", reason="x")


def test_rollback_with_no_previous_version_is_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path, Settings())
    with pytest.raises(RegistryError, match="no previous production version"):
        reg.rollback(by="ana", reason="panic")
    _, v = _reg(tmp_path)
    reg.approve(v, by="ana", reason="ok")
    reg.promote(v, PRODUCTION, by="ana", reason="first")
    with pytest.raises(RegistryError, match="no previous production version"):
        reg.rollback(by="ana", reason="panic")
    assert reg.production() == v
    assert [e["action"] for e in reg.events()][-1] == "rollback_refused"


def test_rollback_twice_walks_back_the_history(tmp_path: Path) -> None:
    reg = Registry(tmp_path, Settings(approval_required=False))
    vs = []
    for n in "abc":
        m, r, e = _model(tmp_path, n)
        vs.append(reg.register(m, r, evaluation_path=e))
        reg.promote(vs[-1], PRODUCTION, by="ci", reason=n)
    assert reg.rollback(by="x", reason="1")["version"] == vs[1]
    assert reg.rollback(by="x", reason="2")["version"] == vs[0]
    with pytest.raises(RegistryError):
        reg.rollback(by="x", reason="3")
    assert [i["stage"] for i in map(reg.get, vs)] == [PRODUCTION, ARCHIVED, ARCHIVED]


def test_corrupt_registry_copy_is_detected(tmp_path: Path) -> None:
    reg, v = _reg(tmp_path)
    copy = tmp_path / reg.get(v)["model_path"]
    copy.chmod(0o644)
    copy.write_bytes(b"tampered")
    src = tmp_path / "src" / "a"
    with pytest.raises(RegistryError, match="corrupt"):
        reg.register(src / "model.skops", src / "model.json")


def test_log_is_append_only_and_survives_a_crash_mid_write(tmp_path: Path) -> None:
    reg, v = _reg(tmp_path)
    reg.approve(v, by="ana", reason="ok")
    before = reg.log_path.read_bytes()
    # a writer killed half-way through a line: bytes without the final newline
    with open(reg.log_path, "ab") as f:
        f.write(b'{"kind":"registry","action":"promote","version":"' + v.encode()[:10])
    assert [e["action"] for e in reg.events()] == ["register", "evaluate", "approve"]
    assert verify_chain(reg.log_path) == []  # the torn tail was never acknowledged
    reg.promote(v, PRODUCTION, by="ana", reason="after the crash")
    after = reg.log_path.read_bytes()
    assert after.startswith(before)  # earlier entries untouched: append-only
    events = read_events(reg.log_path)
    assert [e["action"] for e in events] == ["register", "evaluate", "approve", "promote"]
    assert [e["seq"] for e in events] == [0, 1, 2, 3]
    assert verify_chain(reg.log_path) == []
    # editing an old entry breaks the chain
    lines = after.decode().splitlines(keepends=True)
    lines[1] = lines[1].replace('"by":"ci"', '"by":"mallory"')
    reg.log_path.write_text("".join(lines))
    assert verify_chain(reg.log_path)


def test_a_crash_between_state_and_pointer_is_repaired(tmp_path: Path) -> None:
    reg = Registry(tmp_path, Settings(approval_required=False))
    m, r, e = _model(tmp_path, "a")
    v = reg.register(m, r, evaluation_path=e)
    reg.promote(v, PRODUCTION, by="ci", reason="x")
    reg.pointer_path.write_text('{"version": null}')  # as if the pointer write was lost
    m, r, e = _model(tmp_path, "b")
    reg.register(m, r, evaluation_path=e)  # any next change re-derives the pointer
    assert reg.pointer()["version"] == v


def _promote_worker(root: str, version: str, barrier: mp.synchronize.Barrier, q: mp.Queue) -> None:
    reg = Registry(Path(root), Settings(approval_required=False))
    barrier.wait()
    try:
        reg.promote(version, PRODUCTION, by=f"proc-{os.getpid()}", reason="race")
        q.put(("ok", version))
    except RegistryError as e:
        q.put(("refused", str(e)))


def test_concurrent_promotions_leave_exactly_one_production(tmp_path: Path) -> None:
    reg = Registry(tmp_path, Settings(approval_required=False))
    versions = []
    for n in "abcdef":
        m, r, e = _model(tmp_path, n)
        versions.append(reg.register(m, r, evaluation_path=e))
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(versions))
    q = ctx.Queue()
    procs = [ctx.Process(target=_promote_worker, args=(str(tmp_path), v, barrier, q))
             for v in versions]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    results = [q.get(timeout=5) for _ in procs]
    assert all(r[0] == "ok" for r in results), results
    state = json.loads(reg.state_path.read_text())
    prods = [v for v, i in state["versions"].items() if i["stage"] == PRODUCTION]
    assert len(prods) == 1
    last = [e for e in reg.events() if e["action"] == "promote"][-1]
    assert prods == [last["version"]] == [reg.pointer()["version"]]
    # each promotion archived exactly the one before it: the chain of from -> to is unbroken
    promos = [e for e in reg.events() if e["action"] == "promote"]
    assert promos[0]["from_version"] is None
    for prev, cur in zip(promos, promos[1:], strict=False):
        assert cur["from_version"] == prev["to_version"]
    assert verify_chain(reg.log_path) == []
    assert len(state["production_history"]) == len(versions)


def test_cli_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_assets.cli.main import main

    m, r, e = _model(tmp_path, "a")
    root = ["registry", "--root", str(tmp_path)]
    assert main(root + ["register", "--model", str(m), "--record", str(r), "--evaluation", str(e),
                        "--by", "ci"]) == 0
    v = md5_file(m)
    assert main(root + ["promote", v[:8], "--to", "production", "--by", "ana"]) == 2
    err = capsys.readouterr().err
    assert "approval is required" in err
    assert main(root + ["approve", v[:8], "--by", "ana", "--reason", "reviewed"]) == 0
    assert main(root + ["promote", v[:8], "--to", "production", "--by", "ana",
                        "--reason", "go"]) == 0
    assert main(root + ["rollback", "--by", "ana"]) == 2
    assert "no previous production version" in capsys.readouterr().err
    assert main(root + ["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["version"] == v and rows[0]["stage"] == "production"
    assert main(root + ["show", v]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [e["action"] for e in shown["events"]] == [
        "register", "evaluate", "promote_refused", "approve", "promote", "rollback_refused"]
    assert main(root + ["list"]) == 0 and "serving" in capsys.readouterr().out
    assert main(root + ["log"]) == 0 and "rollback_refused" in capsys.readouterr().out


def test_registry_models_are_tracked_by_dvc(tmp_path: Path) -> None:
    """`registry track` pins the immutable copies with DVC in a real project copy. (In a
    subprocess: DVC binds its log handler to the stream of the process that first uses it.)"""
    import yaml

    from mlops_assets_tests.conftest import VENV_BIN, make_project_copy, run

    root = make_project_copy(tmp_path / "p", with_lock=False)
    m, r, e = _model(tmp_path, "a")
    v = Registry(root).register(m, r, evaluation_path=e, by="ci", reason="x")
    out = run([str(VENV_BIN / "mlops-assets"), "registry", "--root", str(root), "track"], root)
    assert "registry/models.dvc" in out.stdout
    dvcfile = yaml.safe_load((root / "registry" / "models.dvc").read_text())
    # model.skops, model.json and the evaluation it was registered with
    assert dvcfile["outs"][0]["path"] == "models" and dvcfile["outs"][0]["nfiles"] == 3
    assert "/models" in (root / "registry" / ".gitignore").read_text()
    status = run(["dvc", "status", "registry/models.dvc", "--json"], root)
    assert json.loads(status.stdout) == {}
    assert (root / "registry" / "models" / v / "model.skops").exists()
