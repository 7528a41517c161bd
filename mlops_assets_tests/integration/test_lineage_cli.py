"""`mlops-assets lineage / reproduce / audit` on a chain trained here, with the real tools.

One project copy is trained once for the module (Dagster materialises the chain, the
registry approves and promotes the model, everything is committed); each tampering case
works on its own copy of it."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from mlops_assets.cli.main import main as cli_main
from mlops_assets_tests.conftest import SMALL, make_project_copy, run, tool_env

pytestmark = pytest.mark.slow


def md5(path: Path) -> str:
    """An independent md5 (hashlib over the file's bytes, not the code under test)."""
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project_copy(tmp_path_factory.mktemp("lineage") / "project", SMALL,
                             with_lock=False)
    env = tool_env(root, root / ".dagster_home")
    run(["mlops-assets", "demo"], root, env)
    version = json.loads((root / "data/model/model.json").read_text())["model_md5"]
    run(["mlops-assets", "registry", "register", "--by", "alice", "--reason", "first"], root, env)
    run(["mlops-assets", "registry", "approve", version, "--by", "bob", "--reason", "reviewed"],
        root, env)
    run(["mlops-assets", "registry", "promote", version, "--to", "production", "--by", "bob",
         "--reason", "go live"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "model trained, registered and promoted"], root, env)
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private copy of the trained project; the CLI runs in-process against it."""
    root = tmp_path / "project"
    shutil.copytree(trained, root, symlinks=True)
    monkeypatch.setenv("MLOPS_ASSETS_ROOT", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / ".dagster_home"))
    monkeypatch.setenv("PATH", f"{tool_env(root)['PATH']}")
    for k, v in tool_env(root).items():
        if k.startswith("GIT_"):
            monkeypatch.setenv(k, v)
    monkeypatch.chdir(root)
    yield root


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli_main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def lineage_json(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code, out = cli(capsys, "lineage", "production", "--json", *extra)
    return code, json.loads(out)


def lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]


def lock_out(root: Path, stage: str, path: str) -> str:
    return next(o["md5"] for o in lock(root)[stage]["outs"] if o["path"] == path)


# ---------------------------------------------------------------- the full chain


def test_lineage_is_complete_and_every_hash_is_right(project: Path, capsys) -> None:
    root = project
    code, lin = lineage_json(capsys, "--verify")
    assert code == 0, json.dumps(lin.get("verification"), indent=1)[:4000]
    v = lin["version"]
    # model + record (registry copies and the DVC output are the same bytes)
    assert v == md5(root / "data/model/model.skops")
    assert v == md5(root / f"registry/models/{v}/model.skops")
    assert lin["model"]["record_md5"] == md5(root / "data/model/model.json")
    assert lin["model"]["production"] is True
    assert lin["model"]["record"]["model_md5"] == v
    # evaluation + approval
    assert lin["evaluation"]["md5"] == md5(root / "data/reports/evaluation.json")
    assert lin["evaluation"]["eligible"] is True
    actions = [e["action"] for e in lin["approvals"]["audit_events"]]
    assert "approve" in actions and "promote" in actions
    assert lin["approvals"]["registry"][0]["by"] == "bob"
    # training data, features, validated dataset, contract
    assert lin["training_set"]["md5"] == md5(root / "data/split/train.parquet")
    assert lin["training_set"]["holdout_md5"] == md5(root / "data/split/holdout.parquet")
    assert lin["training_set"]["split_md5"] == md5(root / "data/split/split.json")
    assert lin["training_set"]["cutoff"] == yaml.safe_load(
        (root / "params.yaml").read_text())["split"]["cutoff"]
    assert lin["features"]["md5"] == md5(root / "data/features/features.parquet")
    assert lin["features"]["meta_md5"] == md5(root / "data/features/feature_meta.json")
    from mlops_assets.core.contract import load_contract

    contract = load_contract(root / "mlops_assets/contracts/fraud.yaml")
    assert lin["features"]["feature_definitions_hash"] == contract.feature_definitions_hash()
    vd = lin["validated_dataset"]
    assert vd["md5"] == md5(root / "data/validated/dataset.parquet")
    assert vd["report_md5"] == md5(root / "data/reports/validation.json")
    assert vd["passed"] is True
    assert vd["contract"]["md5"] == md5(root / "mlops_assets/contracts/fraud.yaml")
    assert vd["contract"]["schema_hash"] == contract.schema_hash()
    # every raw snapshot: md5, source file, rows, landing time (from Dagster)
    rs = lin["raw_snapshots"]
    snap_files = sorted((root / "data/snapshots").glob("*.parquet"))
    assert rs["n"] == len(snap_files) == 16
    assert rs["dir_md5"] == lock_out(root, "snapshot", "data/snapshots")  # DVC's own hash
    assert rs["manifest_md5"] == md5(root / "data/snapshots/manifest.json")
    for s in rs["snapshots"]:
        f = root / "data/snapshots" / s["snapshot_file"]
        assert s["md5"] == md5(f) == md5(root / "data/landing" / s["source_file"])
        assert s["rows"] == pq.ParquetFile(f).metadata.num_rows
        assert s["landed_at"] and s["landed_at_source"].startswith("dagster raw_snapshots")
    # params, git commit, libraries, drift
    pv = lin["provenance"]
    head = run(["git", "rev-parse", "HEAD"], root).stdout.strip()
    assert pv["git"]["lock_commit"]["commit"] == head
    assert pv["git"]["last_lock_commit"] == head
    assert pv["params"]["train"]["train"] == yaml.safe_load(
        (root / "params.yaml").read_text())["train"]
    assert pv["libraries"]["recorded"]["scikit-learn"]
    assert lin["drift"]["reports"][0]["md5"] == md5(root / "data/reports/drift.json")
    # every artifact's expected md5 equals an independent hash of its bytes
    for a in lin["artifacts"]:
        p = root / a["path"]
        if p.is_file():
            assert a["md5"] == md5(p), a
    checks = lin["verification"]["checks"]
    assert {c["status"] for c in checks} <= {"verified"}, [c for c in checks
                                                         if c["status"] != "verified"]
    assert any(c["kind"] == "dagster" for c in checks)  # Dagster metadata was compared
    assert any(c["kind"] == "leakage" for c in checks)
    assert any(c["kind"] == "audit" for c in checks)


def test_text_graph_and_console_script(project: Path, capsys) -> None:
    code, out = cli(capsys, "lineage", "production", "--no-dagster")
    assert code == 0
    for section in ("MODEL", "EVALUATION", "APPROVAL", "TRAINING DATA", "FEATURE TABLE",
                    "VALIDATED DATASET", "RAW SNAPSHOTS", "PROVENANCE", "DRIFT"):
        assert f"\n{section}" in out
    code, out = cli(capsys, "lineage", "production", "--graph", "mermaid", "--no-dagster")
    assert out.startswith("flowchart LR") and "n_model --> n_evaluation" in out
    code, out = cli(capsys, "lineage", "production", "--graph", "dot", "--no-dagster")
    assert out.startswith("digraph lineage") and "n_train -> n_model;" in out
    proc = run(["mlops-assets", "lineage", "current", "--verify", "--no-dagster"], project,
               check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "-> OK" in proc.stdout
    assert cli(capsys, "lineage", "0123456789abcdef0123456789abcdef")[0] == 2


def test_model_lineage_metadata_for_the_dagster_ui(project: Path) -> None:
    """What defs/metadata.py can attach to the model asset: a link to the lineage record."""
    from mlops_assets.defs.lineage import model_lineage_metadata

    v = json.loads((project / "registry/production.json").read_text())["version"]
    meta = model_lineage_metadata(project, v)
    assert set(meta) == {"lineage_record", "lineage_verify", "lineage_graph"}
    record = Path(meta["lineage_record"].value)
    assert record == project / "data/runs/lineage" / f"{v}.json"
    assert json.loads(record.read_text())["version"] == v
    assert meta["lineage_verify"].value == f"mlops-assets lineage {v} --verify"
    assert model_lineage_metadata(project, "f" * 32) == {}  # unknown: nothing, no exception


def test_warm_verify_reads_no_bytes(project: Path, capsys) -> None:
    cli(capsys, "lineage", "production", "--verify", "--no-dagster")
    code, lin = lineage_json(capsys, "--verify", "--no-dagster")
    assert code == 0
    assert lin["verification"]["hash_cache"]["hashed"] == 0
    assert lin["verification"]["hash_cache"]["hits"] > 60


# ---------------------------------------------------------------- tampering


def _flip_byte(p: Path, offset: int = 1000) -> None:
    p.chmod(0o644)
    b = bytearray(p.read_bytes())
    b[offset] ^= 0x01
    p.write_bytes(bytes(b))


def _verify(capsys) -> tuple[int, str]:
    return cli(capsys, "lineage", "production", "--verify", "--no-dagster")


def _problems(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.lstrip().startswith(("MISMATCHED", "MISSING"))]


def test_one_byte_changed_in_a_snapshot(project: Path, capsys) -> None:
    snap = sorted((project / "data/snapshots").glob("week_2025-10-*.parquet"))[0]
    _flip_byte(snap)
    code, out = _verify(capsys)
    assert code == 1
    rel = f"data/snapshots/{snap.name}"
    assert any(rel in p and "manifest.json" in p for p in _problems(out)), out[-3000:]
    assert any(p.strip().startswith("MISMATCHED  data/snapshots: directory md5")
               and f"{snap.name} changed" in p for p in _problems(out))


def test_feature_definition_edited_without_a_rebuild(project: Path, capsys) -> None:
    c = project / "mlops_assets/contracts/fraud.yaml"
    text = c.read_text()
    assert "transform: log1p" in text
    c.write_text(text.replace("transform: log1p", "transform: identity", 1))
    code, out = _verify(capsys)
    assert code == 1
    probs = _problems(out)
    assert any("feature definitions in mlops_assets/contracts/fraud.yaml" in p
               and "edited without a rebuild" in p for p in probs), out[-3000:]
    assert any(p.strip().startswith("MISMATCHED  mlops_assets/contracts/fraud.yaml: md5")
               for p in probs)


def test_model_file_swapped(project: Path, capsys) -> None:
    m = project / "data/model/model.skops"
    m.chmod(0o644)
    shutil.copyfile(project / "data/model/reference_profile.parquet", m)
    code, out = _verify(capsys)
    assert code == 1
    assert any("data/model/model.skops" in p and "model file was replaced" in p
               for p in _problems(out)), out[-3000:]
    # the registry's copy is untouched and still verifies
    assert "verified    registry/models/" in out


def test_a_row_past_the_cutoff_in_the_training_set(project: Path, capsys) -> None:
    train = project / "data/split/train.parquet"
    t, h = pd.read_parquet(train), pd.read_parquet(project / "data/split/holdout.parquet")
    train.chmod(0o644)
    pd.concat([t, h.iloc[:1]], ignore_index=True).to_parquet(train, index=False)
    code, out = _verify(capsys)
    assert code == 1
    assert any("leakage: data/split/train.parquet" in p and "1 of" in p
               and "at or after the recorded cutoff" in p for p in _problems(out)), out[-3000:]
    # re-pinning the leaky file (dvc commit) does not launder it into the model's lineage:
    # the model was trained on the recorded bytes, which are verified (and scanned) from the
    # DVC cache, and the output says the working tree holds another version
    want = lock_out(project, "split", "data/split/train.parquet")
    run(["dvc", "commit", "-f", "split"], project)
    code, out = _verify(capsys)
    assert code == 0, out[-3000:]
    assert (f"verified    data/split/train.parquet: {want} (DVC cache; the working tree holds "
            "another version)") in out
    assert "verified    leakage: none" in out


def test_an_edited_audit_log_entry(project: Path, capsys) -> None:
    log = project / "registry/audit.log.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    i = next(i for i, ln in enumerate(lines) if '"action":"approve"' in ln)
    lines[i] = lines[i].replace('"reviewed"', '"rubber-stamped"')
    log.chmod(0o644)
    log.write_text("".join(lines))
    code, out = _verify(capsys)
    assert code == 1
    assert any("registry/audit.log.jsonl" in p and f"entry at line {i + 1} was edited" in p
               for p in _problems(out)) or any(
        "registry/audit.log.jsonl" in p and f"line {i + 1} differs from the version committed"
        in p for p in _problems(out)), out[-3000:]
    code, out = cli(capsys, "audit", "verify")
    assert code == 1 and "BROKEN" in out


def test_a_consistently_rewritten_audit_log(project: Path, capsys) -> None:
    """Edit an entry AND re-chain every hash after it: the chain holds, but the version DVC
    pinned (registry/audit.log.jsonl.dvc, bytes in the DVC cache) is no longer a prefix."""
    log = project / "registry/audit.log.jsonl"
    lines = log.read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if '"action":"approve"' in ln)
    prev = hashlib.sha256(lines[i - 1].encode()).hexdigest() if i else "0" * 64
    for k in range(i, len(lines)):
        entry = json.loads(lines[k])
        if k == i:
            entry["reason"] = "rubber-stamped"
        entry["prev_hash"] = prev
        lines[k] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        prev = hashlib.sha256(lines[k].encode()).hexdigest()
    log.chmod(0o644)
    log.write_text("\n".join(lines) + "\n")
    from mlops_assets.core.audit import verify_chain

    assert verify_chain(log) == []  # the forgery is internally consistent
    code, out = cli(capsys, "audit", "verify")
    assert code == 1, out
    assert f"line {i + 1} differs from the DVC-tracked version" in out


def _registry_state(project: Path) -> tuple[Path, dict, str]:
    path = project / "registry/registry.json"
    state = json.loads(path.read_text())
    return path, state, json.loads((project / "registry/production.json").read_text())["version"]


def test_the_registry_pointed_at_another_evaluation(project: Path, capsys) -> None:
    """The evaluation a version was approved on is pinned by md5 in registry.json and in the
    audit log: a forged one, copied in and named in registry.json, is a mismatch."""
    path, state, v = _registry_state(project)
    ev = json.loads((project / "data/reports/evaluation.json").read_text())
    ev["candidate"]["pr_auc"] = 0.99
    forged = json.dumps(ev).encode()
    fmd5 = hashlib.md5(forged).hexdigest()
    rel = f"registry/models/{v}/evaluations/{fmd5}.json"
    (project / rel).write_bytes(forged)
    state["versions"][v].update(evaluation_md5=fmd5, evaluation_path=rel)
    path.write_text(json.dumps(state))
    code, out = _verify(capsys)
    assert code == 1
    assert any(rel in p and "audit log evaluate evaluation_md5" in p
               for p in _problems(out)), out[-3000:]


def test_the_registry_summary_of_the_gate_edited(project: Path, capsys) -> None:
    path, state, v = _registry_state(project)
    state["versions"][v]["evaluation"]["eligible"] = False
    path.write_text(json.dumps(state))
    code, out = _verify(capsys)
    assert code == 1
    assert any("registry.json says the evaluation gate of this version failed" in p
               for p in _problems(out)), out[-3000:]


def test_the_registry_copy_of_the_record_edited(project: Path, capsys) -> None:
    _, _, v = _registry_state(project)
    rec = project / f"registry/models/{v}/model.json"
    rec.chmod(0o644)
    rec.write_text(rec.read_text().replace('"cutoff"', '"cutoff" ', 1))
    code, out = _verify(capsys)
    assert code == 1
    assert any(p.strip().startswith(f"MISMATCHED  registry/models/{v}/model.json: md5")
               for p in _problems(out)), out[-3000:]


def test_every_drift_result_is_in_the_dvc_tracked_audit_log(project: Path, capsys) -> None:
    """Negative drift results too; the log's md5 is what DVC pinned after the last change."""
    code, out = cli(capsys, "audit", "log", "--json")
    events = json.loads(out)
    drift = [e for e in events if e["action"] == "drift_result"]
    assert drift and all(e["severity"] in ("none", "moderate", "significant") for e in drift)
    assert drift[-1]["report_md5"] == lock_out(project, "drift", "data/reports/drift.json")
    assert drift[-1]["model_version"] == md5(project / "data/model/model.skops")
    log = project / "registry/audit.log.jsonl"
    pinned = yaml.safe_load((project / "registry/audit.log.jsonl.dvc").read_text())
    assert pinned["outs"][0]["md5"] == md5(log)
    assert "/audit.log.jsonl" in (project / "registry/.gitignore").read_text().split()
    code, out = cli(capsys, "audit", "verify")
    assert code == 0 and "the DVC-tracked version" in out, out


def test_the_model_asset_links_to_its_lineage_record(project: Path) -> None:
    import dagster as dg

    v = md5(project / "data/model/model.skops")
    with dg.DagsterInstance.get() as instance:
        mat = instance.get_latest_materialization_event(dg.AssetKey("model")).asset_materialization
    assert mat.metadata["lineage_verify"].value == f"mlops-assets lineage {v} --verify"
    record = json.loads(Path(mat.metadata["lineage_record"].value).read_text())
    assert record["version"] == v


def test_a_deleted_artifact(project: Path, capsys) -> None:
    rel = "data/validated/dataset.parquet"
    want = md5(project / rel)
    (project / rel).unlink()
    code, out = _verify(capsys)  # still in the DVC cache: verified from there, with a note
    assert code == 0
    assert f"verified    {rel}: {want} (DVC cache; the working copy is missing" in out
    (project / ".dvc/cache/files/md5" / want[:2] / want[2:]).unlink()
    code, out = _verify(capsys)
    assert code == 3
    assert any(p.strip().startswith(f"MISSING     {rel}: missing") for p in _problems(out)), out


def test_dagster_disagrees_with_a_consistently_forged_chain(project: Path, capsys) -> None:
    """Rewrite the drift report and re-pin it with `dvc commit`: every file hash now agrees
    with dvc.lock, but Dagster never materialised that version: a warning, and a failure
    with --require-dagster."""
    html = project / "data/reports/drift.html"
    html.chmod(0o644)
    html.write_text(html.read_text().replace("significant", "nothing to see"))
    run(["dvc", "commit", "-f", "drift"], project)
    code, out = cli(capsys, "lineage", "production", "--verify")
    assert code == 0, out[-3000:]
    assert "WARNING     Dagster: drift_report was never materialised with data version" in out
    code, out = cli(capsys, "lineage", "production", "--verify", "--require-dagster")
    assert code == 1


# ---------------------------------------------------------------- audit log


def test_audit_log_filters(project: Path, capsys) -> None:
    v = json.loads((project / "registry/production.json").read_text())["version"]
    code, out = cli(capsys, "audit", "log", "--json")
    assert code == 0
    events = json.loads(out)
    assert len(events) >= 3 and [e["seq"] for e in events] == list(range(len(events)))
    code, out = cli(capsys, "audit", "log", "--model", v[:8], "--json")
    assert {e.get("version") or e.get("model_version") for e in json.loads(out)} == {v}
    code, out = cli(capsys, "audit", "log", "--since", "2999-01-01", "--json")
    assert json.loads(out) == []
    code, out = cli(capsys, "audit", "log", "--type", "approve")
    assert "registry.approve" in out and "registry.promote" not in out
    code, out = cli(capsys, "audit", "verify")
    assert code == 0 and "the hash chain holds" in out


# ---------------------------------------------------------------- reproduce


def test_reproduce_a_model_trained_two_commits_ago(project: Path, capsys) -> None:
    env = tool_env(project, project / ".dagster_home")
    old = json.loads((project / "registry/production.json").read_text())["version"]
    params = yaml.safe_load((project / "params.yaml").read_text())
    from mlops_assets.repo.params_edit import update_params_section

    update_params_section(project / "params.yaml", "train",
                          {"learning_rate": params["train"]["learning_rate"] / 2})
    run(["dvc", "repro", "train"], project, env)
    new = md5(project / "data/model/model.skops")
    assert new != old
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "model B"], project, env)
    (project / "README.md").write_text((project / "README.md").read_text() + "\nmore\n")
    run(["git", "commit", "-qam", "docs"], project, env)
    # the old model's lineage now comes from git history and the DVC cache, and verifies
    code, out = cli(capsys, "lineage", old, "--verify", "--no-dagster")
    assert code == 0, out[-3000:]
    assert "pinned by      dvc.lock@" in out
    code, out = cli(capsys, "reproduce", old[:10], "--json")
    res = json.loads(out)
    assert code == 0, json.dumps(res, indent=1)[-4000:]
    assert res["identical"] and res["rebuilt_md5"] == old
    assert res["input_differences"] == []
    assert res["worktree_removed"] and not Path(res["worktree"]).exists()
    worktrees = run(["git", "worktree", "list"], project).stdout.strip().splitlines()
    assert len(worktrees) == 1
    # the working tree (model B) is untouched
    assert md5(project / "data/model/model.skops") == new


def test_reproduce_names_the_input_that_differs(project: Path, capsys) -> None:
    """Replace the cached training set by one with fewer rows: the rebuild differs and the
    result names the input, with expected and actual md5."""
    want = lock_out(project, "split", "data/split/train.parquet")
    obj = project / ".dvc/cache/files/md5" / want[:2] / want[2:]
    train = pd.read_parquet(obj)
    obj.chmod(0o644)
    train.iloc[: len(train) - 500].to_parquet(obj, index=False)
    (project / "data/split/train.parquet").unlink()  # so checkout must come from the cache
    code, out = cli(capsys, "reproduce", "production")
    assert code == 1
    assert "DIFFERENT: rebuilt md5" in out, out[-3000:]
    assert f"input data/split/train.parquet: expected {want}, actual {md5(obj)}" in out
