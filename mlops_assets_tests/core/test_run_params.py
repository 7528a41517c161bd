"""Run-scoped params: the effective merge the stages read, and the writer runs use instead
of the person's params.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlops_assets.core.io import DataError
from mlops_assets.core.layout import RUN_PARAMS
from mlops_assets.core.lineage.history import params_of
from mlops_assets.core.run_params import (
    active_overrides,
    deep_merge,
    effective_params,
    ensure_run_params,
    load_run_params,
    reset_run_params,
    write_run_params,
)

PARAMS = {"split": {"cutoff": "2025-11-10", "holdout_end": "2025-11-24"},
          "train": {"seed": 42, "learning_rate": 0.1}, "drift": {"alpha": 0.01}}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return tmp_path


def test_deep_merge_overrides_key_by_key_and_copies() -> None:
    over = {"split": {"cutoff": "2025-12-19"}, "train": {}}
    merged = deep_merge(PARAMS, over)
    assert merged["split"] == {"cutoff": "2025-12-19", "holdout_end": "2025-11-24"}
    assert merged["train"] == PARAMS["train"] and merged["drift"] == PARAMS["drift"]
    merged["train"]["seed"] = 0
    assert PARAMS["train"]["seed"] == 42  # neither input is modified


def test_effective_params_without_a_file_is_params_yaml(root: Path) -> None:
    assert not (root / RUN_PARAMS).exists()
    assert effective_params(root) == PARAMS
    assert load_run_params(root) == {"split": {}, "train": {}}


def test_ensure_creates_the_empty_default_dvc_accepts(root: Path) -> None:
    path = ensure_run_params(root)
    text = path.read_text()
    assert yaml.safe_load(text) == {"split": {}, "train": {}}  # DVC key lists need both keys
    write_run_params(root, "split", {"cutoff": "2025-12-19"})
    ensure_run_params(root)  # an existing file is left alone
    assert load_run_params(root)["split"] == {"cutoff": "2025-12-19"}


def test_writer_sets_a_section_and_never_touches_params_yaml(root: Path) -> None:
    before = (root / "params.yaml").read_bytes()
    window = {"cutoff": "2025-12-19", "holdout_end": "2025-12-22"}
    assert write_run_params(root, "split", window) is True
    assert write_run_params(root, "split", window) is False  # same values: no rewrite
    assert write_run_params(root, "train", {"learning_rate": 0.05})
    eff = effective_params(root)
    assert eff["split"] == window
    assert eff["train"] == {"seed": 42, "learning_rate": 0.05}
    assert (root / "params.yaml").read_bytes() == before
    raw = yaml.safe_load((root / RUN_PARAMS).read_text())
    assert raw["split"]["cutoff"] == "2025-12-19"  # a string, as params.yaml has it
    # a later run's config replaces the section, it does not pile up on it
    write_run_params(root, "train", {"max_iter": 300})
    assert load_run_params(root)["train"] == {"max_iter": 300}
    assert active_overrides(load_run_params(root)) == {
        "split.cutoff": "2025-12-19", "split.holdout_end": "2025-12-22", "train.max_iter": 300}


def test_reset_drops_every_override(root: Path) -> None:
    write_run_params(root, "split", {"cutoff": "2025-12-19"})
    assert reset_run_params(root) == {"split": {"cutoff": "2025-12-19"}}
    assert load_run_params(root) == {"split": {}, "train": {}}
    assert effective_params(root) == PARAMS


def test_only_run_sections_are_accepted(root: Path) -> None:
    with pytest.raises(DataError):
        write_run_params(root, "drift", {"alpha": 0.5})
    (root / RUN_PARAMS).parent.mkdir(parents=True, exist_ok=True)
    (root / RUN_PARAMS).write_text("dataset:\n  contract: other.yaml\n")
    with pytest.raises(DataError, match="unknown run params section"):
        load_run_params(root)


def test_lineage_reads_a_lock_entry_with_both_params_files() -> None:
    """dvc.lock keys a stage's params by file; the run params file wins, key by key."""
    entry = {"params": {
        RUN_PARAMS: {"split": {"cutoff": "2025-12-19"}},
        "params.yaml": {"split": {"cutoff": "2025-11-10", "holdout_end": "2025-11-24"},
                        "dataset.contract": "c.yaml"}}}
    assert params_of(entry) == {"split": {"cutoff": "2025-12-19", "holdout_end": "2025-11-24"},
                                "dataset.contract": "c.yaml"}
    assert params_of({"params": {"params.yaml": {"train": {"seed": 1}},
                                 RUN_PARAMS: {"train": {}}}}) == {"train": {"seed": 1}}
