"""One small trained project (the chain run by the stage commands, the model registered as
production) shared by the service tests of this session."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_assets_tests.serve.helpers import trained_project


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return trained_project(tmp_path_factory.mktemp("serve") / "project")
