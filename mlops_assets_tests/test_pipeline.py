"""One source of truth: the Dagster asset graph and dvc.yaml must describe the same chain."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import yaml

from mlops_assets.pipeline import ASSET_STAGE, STAGE_ASSETS, dvc_stage_edges, dvc_stages
from mlops_assets_tests.conftest import committed_text

REPO = Path(__file__).resolve().parent.parent


def _dagster_graph() -> tuple[set[str], set[tuple[str, str]]]:
    from mlops_assets.definitions import defs

    graph = defs().resolve_asset_graph()
    # Assets that are not DVC stages (the model registry) say so in their metadata.
    mirrored = {k for k in graph.get_all_asset_keys()
                if graph.get(k).metadata.get("mlops_assets/dvc_mirrored", True) is not False}
    keys = {k.to_user_string() for k in mirrored}
    edges = {(up.to_user_string(), k.to_user_string())
             for k in mirrored for up in graph.get(k).parent_keys if up in mirrored}
    return keys, edges


def dagster_stage_edges(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(ASSET_STAGE[a], ASSET_STAGE[b]) for a, b in edges if ASSET_STAGE[a] != ASSET_STAGE[b]}


def test_every_dvc_stage_is_a_dagster_asset_and_back() -> None:
    keys, _ = _dagster_graph()
    assert set(dvc_stages(REPO)) == set(STAGE_ASSETS)
    assert keys == set(ASSET_STAGE)


def test_dagster_edges_equal_dvc_edges() -> None:
    _, edges = _dagster_graph()
    assert dagster_stage_edges(edges) == dvc_stage_edges(REPO)
    # the chain is connected end to end
    assert ("landing", "snapshot") in dvc_stage_edges(REPO)
    assert ("train", "drift") in dvc_stage_edges(REPO)


def test_a_changed_dvc_edge_is_detected(tmp_path: Path) -> None:
    """The comparison is not vacuous: removing a dep from dvc.yaml changes the DVC graph,
    which then disagrees with the Dagster graph built from the committed file."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text())
    spec["stages"]["drift"]["deps"] = [d for d in spec["stages"]["drift"]["deps"]
                                       if not str(d).startswith("data/features")]
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "params.yaml").write_text(committed_text("params.yaml"))
    _, edges = _dagster_graph()
    assert dagster_stage_edges(edges) != dvc_stage_edges(tmp_path)
    assert ("features", "drift") in dagster_stage_edges(edges) - dvc_stage_edges(tmp_path)


def test_asset_selection_parses_with_dvc_installed(tmp_path: Path, monkeypatch) -> None:
    """The antlr pin: dagster's selection parser must work beside DVC's hydra/omegaconf,
    in one environment and one process that really runs DVC."""
    import omegaconf  # noqa: F401
    from dvc.repo import Repo

    monkeypatch.chdir(tmp_path)
    repo = Repo.init(str(tmp_path), no_scm=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    repo = Repo(str(tmp_path))
    repo.reproduce("s")
    assert (tmp_path / "out.txt").read_text().strip() == "hi"
    assert repo.status() == {}

    sel = dg.AssetSelection.from_string('key:"model"+ or group:"ingest"')
    from mlops_assets.definitions import defs

    resolved = {k.to_user_string() for k in sel.resolve(defs().resolve_asset_graph())}
    assert {"model", "evaluation", "drift_report", "landing_batches", "raw_snapshots"} <= resolved
