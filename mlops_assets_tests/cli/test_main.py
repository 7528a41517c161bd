"""`mlops-assets` (cli/main.py): every subcommand is mounted from a top-level import, so a
broken sub-CLI fails the whole command loudly instead of vanishing from `--help`; and
`--help` stays fast (no dagster, sklearn, scipy or web server imported)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_assets.cli import main as cli_main
from mlops_assets.cli.registry import add_registry_parsers

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["demo", "stage", "drift", "registry", "run-params", "incident", "lineage",
            "reproduce", "audit", "serve"]
SUB_CLIS = ["mlops_assets.cli.drift", "mlops_assets.cli.registry", "mlops_assets.cli.run_params",
            "mlops_assets.cli.incident", "mlops_assets.cli.lineage", "mlops_assets.cli.serve"]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_every_subcommand_is_mounted_in_order() -> None:
    assert _subcommands(cli_main.build_parser()) == COMMANDS


def test_help_lists_every_subcommand() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "mlops_assets.cli.main", "--help"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "{" + ",".join(COMMANDS) + "}" in proc.stdout
    for name in COMMANDS:
        assert f"\n    {name} " in proc.stdout


def test_incident_is_mounted_by_main_not_by_the_registry() -> None:
    parser = argparse.ArgumentParser()
    add_registry_parsers(parser.add_subparsers())
    assert _subcommands(parser) == ["registry"]


@pytest.mark.parametrize("module", SUB_CLIS)
def test_a_broken_sub_cli_fails_loudly(module: str) -> None:
    """sys.modules[name] = None makes `import name` raise ImportError: the CLI must not
    start without that subcommand."""
    proc = _python(f"import sys; sys.modules[{module!r}] = None\n"
                   "from mlops_assets.cli.main import main\nmain(['--help'])")
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr or "ModuleNotFoundError" in proc.stderr
    assert module in proc.stderr


def test_main_swallows_no_import_error() -> None:
    assert "except ImportError" not in Path(cli_main.__file__).read_text()


def test_help_imports_no_heavy_dependency() -> None:
    proc = _python("import sys\nfrom mlops_assets.cli.main import build_parser\nbuild_parser()\n"
                   "print(sorted(m for m in ('dagster', 'sklearn', 'scipy', 'uvicorn', 'fastapi',"
                   " 'dvc.repo', 'mlops_assets.definitions') if m in sys.modules))")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_incident_refuses_a_non_empty_workdir(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "something").write_text("x")
    assert cli_main.main(["incident", "--workdir", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
