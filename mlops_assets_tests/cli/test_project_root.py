"""The project is where the user is (like git and DVC): `--root`, else MLOPS_ASSETS_ROOT,
else the nearest directory from the working directory up holding dvc.yaml. Never where
the package is installed: an editable install used to act on its own checkout from
anywhere, and DVC's "git add" hints leaked into our output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.core.io import md5_file
from mlops_assets.pipeline import ProjectNotFoundError, find_project_root, project_root
from mlops_assets_tests.conftest import VENV_BIN, make_project_copy

REPO = Path(__file__).resolve().parents[2]


def cli(args: list[str], cwd: Path, pythonpath: Path = REPO,
        root_env: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m mlops_assets.cli.main ARGS` in `cwd`, MLOPS_ASSETS_ROOT unset unless given."""
    env = {k: v for k, v in os.environ.items() if k != "MLOPS_ASSETS_ROOT"}
    env.update(PYTHONPATH=str(pythonpath), DVC_NO_ANALYTICS="1", DO_NOT_TRACK="1",
               PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
               GIT_AUTHOR_NAME="tests", GIT_COMMITTER_NAME="tests",
               GIT_AUTHOR_EMAIL="tests@example.invalid", GIT_COMMITTER_EMAIL="tests@example.invalid")
    if root_env:
        env["MLOPS_ASSETS_ROOT"] = root_env
    return subprocess.run([sys.executable, "-m", "mlops_assets.cli.main", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def fake_model(d: Path) -> list[str]:
    """`registry register` arguments for a model (any bytes), its record and evaluation."""
    d.mkdir(parents=True)
    (d / "model.skops").write_bytes(b"model bytes")
    md5 = md5_file(d / "model.skops")
    (d / "model.json").write_text(json.dumps({"model_md5": md5, "cutoff": "2025-11-10"}))
    (d / "evaluation.json").write_text(json.dumps({
        "model_md5": md5, "candidate": {"pr_auc": 0.8, "fpr": 0.02},
        "gate": {"eligible": True, "reference": "rule_baseline", "reasons": ["PASS"]}}))
    return ["--model", str(d / "model.skops"), "--record", str(d / "model.json"),
            "--evaluation", str(d / "evaluation.json")]


def repo_state() -> str:
    """What the source checkout looks like to git (nothing may write into it)."""
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


# ------------------------------------------------------------------ finding the root


def test_the_nearest_ancestor_holding_dvc_yaml_is_the_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "outer" / "inner" / "deep").mkdir(parents=True)
    (tmp_path / "outer" / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "outer" / "inner" / "dvc.yaml").write_text("stages: {}\n")
    deep = tmp_path / "outer" / "inner" / "deep"
    assert find_project_root(deep) == (tmp_path / "outer" / "inner").resolve()
    monkeypatch.delenv("MLOPS_ASSETS_ROOT", raising=False)
    monkeypatch.chdir(deep)
    assert project_root() == (tmp_path / "outer" / "inner").resolve()
    monkeypatch.setenv("MLOPS_ASSETS_ROOT", str(tmp_path / "outer"))
    assert project_root() == (tmp_path / "outer").resolve()


def test_no_project_is_a_clear_error_naming_where_it_looked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_ASSETS_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProjectNotFoundError, match=str(tmp_path.resolve())):
        project_root()
    monkeypatch.setenv("MLOPS_ASSETS_ROOT", str(tmp_path))
    with pytest.raises(ProjectNotFoundError, match="MLOPS_ASSETS_ROOT"):
        project_root()


def test_the_cli_outside_any_project_exits_2_without_a_traceback(tmp_path: Path) -> None:
    proc = cli(["registry", "list"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert str(tmp_path.resolve()) in proc.stderr and "dvc.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = cli(["--root", str(tmp_path), "lineage", "--help"], tmp_path)
    assert proc.returncode == 0  # --help needs no project


# ------------------------------------------------------------------ acting on it


def test_registry_acts_on_the_project_of_the_cwd_and_prints_no_git_hints(tmp_path: Path) -> None:
    before = repo_state()
    project = make_project_copy(tmp_path / "project", with_lock=False)
    sub = project / "docs"
    model = fake_model(tmp_path / "model")
    proc = cli(["registry", "register", *model, "--by", "ci"], sub)
    assert proc.returncode == 0, proc.stderr
    version = md5_file(tmp_path / "model" / "model.skops")
    proc2 = cli(["registry", "approve", version[:8], "--by", "ana", "--reason", "ok"], sub)
    assert proc2.returncode == 0, proc2.stderr
    for out in (proc.stdout + proc.stderr, proc2.stdout + proc2.stderr):
        assert "git add" not in out and "To track the changes" not in out, out
    assert (project / "registry" / "models" / version / "model.skops").exists()
    assert (project / "registry" / "audit.log.jsonl.dvc").exists()
    assert repo_state() == before


def test_global_root_option_beats_the_cwd(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "project", with_lock=False)
    model = fake_model(tmp_path / "model")
    proc = cli(["--root", str(project), "registry", "register", *model, "--by", "ci"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    listed = cli(["registry", "list", "--json"], project / "mlops_assets")
    assert [r["stage"] for r in json.loads(listed.stdout)] == ["candidate"]


# ------------------------------------------------------------------ a non-editable install


@pytest.mark.slow
def test_a_non_editable_install_acts_on_the_project_it_is_run_in(tmp_path: Path) -> None:
    """Build and install the package (not editable) into a folder of its own, then run it
    from a subdirectory of a project copy (so `python -m` cannot pick the project's own
    source from the cwd): it acts on that project and writes nothing anywhere else."""
    src = make_project_copy(tmp_path / "src", with_lock=False)
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--target", str(target), str(src)], capture_output=True, text=True,
                         timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    assert not (target / "dvc.yaml").exists()
    before, src_files = repo_state(), sorted(p for p in src.rglob("*") if p.is_file())
    project = make_project_copy(tmp_path / "project", with_lock=False)
    sub = project / "docs"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = cli(list(args), sub, pythonpath=target)
        assert proc.returncode == 0, proc.stderr
        return proc

    env = {k: v for k, v in os.environ.items() if k != "MLOPS_ASSETS_ROOT"}
    env["PYTHONPATH"] = str(target)
    where = subprocess.run([sys.executable, "-c", "import mlops_assets; print(mlops_assets.__file__)"],
                           cwd=sub, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(where.strip()).is_relative_to(target)
    loaded = subprocess.run(  # the Dagster definitions load from the installed package too
        [sys.executable, "-W", "ignore", "-c", "from mlops_assets.definitions import defs; "
         "from mlops_assets.pipeline import project_root; "
         "print(len(list(defs().resolve_all_asset_keys())), project_root())"],
        cwd=sub, env=env, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split() == [loaded.stdout.split()[0], str(project.resolve())]
    assert "no model versions registered" in run("registry", "list").stdout
    out = run("registry", "register", *fake_model(tmp_path / "model"), "--by", "ci")
    assert "git add" not in out.stdout + out.stderr
    assert [r["stage"] for r in json.loads(run("registry", "list", "--json").stdout)] == ["candidate"]
    assert "the hash chain holds" in run("audit", "verify").stdout
    assert (project / "registry" / "audit.log.jsonl.dvc").exists()
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    ref.write_text("x\n" + "\n".join(str(i % 10) for i in range(200)) + "\n")
    cur.write_text("x\n" + "\n".join(str(i % 10) for i in range(200)) + "\n")
    run("drift", "--reference", str(ref), "--current", str(cur))
    assert sorted(p for p in src.rglob("*") if p.is_file()) == src_files
    assert not list(target.rglob("registry")) and not list(target.rglob("*.jsonl*"))
    assert repo_state() == before
