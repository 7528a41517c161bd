"""`mlops-assets run-params show | reset`: what a person sees of the run-scoped params."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlops_assets.cli.main import main
from mlops_assets.core.run_params import load_run_params, write_run_params


def test_show_and_reset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"split": {"cutoff": "2025-11-10", "holdout_end": "2025-11-24"}, "train": {"seed": 1}}))
    before = (tmp_path / "params.yaml").read_bytes()
    assert main(["run-params", "--root", str(tmp_path), "init"]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["run-params", "--root", str(tmp_path), "show"]) == 0
    assert "no overrides" in capsys.readouterr().out
    write_run_params(tmp_path, "split", {"cutoff": "2025-12-19", "holdout_end": "2025-12-22"})
    assert main(["run-params", "--root", str(tmp_path), "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["overrides"] == {"split.cutoff": "2025-12-19", "split.holdout_end": "2025-12-22"}
    assert shown["effective"]["split"]["cutoff"] == "2025-12-19"
    assert main(["run-params", "--root", str(tmp_path), "reset"]) == 0
    assert "dropped" in capsys.readouterr().out
    assert load_run_params(tmp_path) == {"split": {}, "train": {}}
    assert (tmp_path / "params.yaml").read_bytes() == before
