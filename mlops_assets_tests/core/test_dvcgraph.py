"""core.dvcgraph: dvc.yaml's stage graph read without the dvc package."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlops_assets.core.dvcgraph import (
    ancestors,
    descendants,
    dvc_stages,
    param,
    producer_of,
    topological,
)
from mlops_assets_tests.conftest import REPO


def _graph(tmp_path: Path) -> Path:
    spec = {"stages": {  # text order deliberately not the graph's
        "b": {"cmd": "x", "deps": ["out/a.txt", "${cfg.file}"], "outs": ["out/b"],
              "metrics": ["out/b.json"]},
        "a": {"cmd": "x", "deps": ["src/a.py"], "outs": [{"out/a.txt": {"cache": True}}]},
        "c": {"cmd": "x", "deps": ["out/b/part.parquet"], "plots": ["out/c.csv"]}}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"cfg": {"file": "conf/x.yaml"}}))
    return tmp_path


def test_stages_resolve_templates_and_walk_the_graph(tmp_path: Path) -> None:
    stages = dvc_stages(_graph(tmp_path))
    assert stages["b"] == {"deps": ["out/a.txt", "conf/x.yaml"], "outs": ["out/b", "out/b.json"]}
    assert stages["c"]["outs"] == ["out/c.csv"]
    assert topological(stages) == ["a", "b", "c"]
    assert ancestors(stages, "c") == {"a", "b"} and descendants(stages, "a") == {"b", "c"}
    assert producer_of(stages, "out/b/part.parquet") == "b"  # a file inside a directory out
    assert producer_of(stages, "conf/x.yaml") is None
    assert param({"cfg": {"file": "f"}}, "cfg.file") == "f" and param({}, "cfg.file") is None


def test_the_project_graph_puts_train_after_everything_it_reads() -> None:
    stages = dvc_stages(REPO)
    order = topological(stages)
    assert ancestors(stages, "train") == {"landing", "snapshot", "validate", "features", "split"}
    assert all(order.index(s) < order.index("train") for s in ancestors(stages, "train"))
