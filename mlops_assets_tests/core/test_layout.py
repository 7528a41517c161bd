"""core.layout is the one catalogue of artifact paths: it must name exactly dvc.yaml's outs."""

from __future__ import annotations

from mlops_assets.core import layout
from mlops_assets.pipeline import dvc_stages
from mlops_assets_tests.conftest import REPO


def _covered(out: str, mine: tuple[str, ...]) -> bool:
    return any(out == p or out.startswith(p + "/") for p in mine)


def test_every_dvc_out_has_one_home_in_layout() -> None:
    stages = dvc_stages(REPO)
    assert set(stages) == set(layout.STAGE_OUTS)
    for stage, spec in stages.items():
        mine = layout.STAGE_OUTS[stage]
        missing = [o for o in spec["outs"] if not _covered(o, mine)]
        assert not missing, f"{stage}: dvc.yaml outs not in core.layout: {missing}"
        unused = [p for p in mine if not any(_covered(o, (p,)) for o in spec["outs"])]
        assert not unused, f"{stage}: core.layout paths that dvc.yaml does not list: {unused}"


def test_registry_paths_nest() -> None:
    for path in (layout.PRODUCTION_POINTER, layout.REGISTRY_INDEX, layout.AUDIT_LOG,
                 layout.REGISTRY_MODELS):
        assert path.startswith(layout.REGISTRY_DIR + "/")
    assert layout.registry_model_dir("abc") == "registry/models/abc"
    assert layout.MANIFEST.startswith(layout.SNAPSHOTS + "/")
