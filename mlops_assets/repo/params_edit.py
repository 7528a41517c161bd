"""Edit params.yaml in place, keeping its comments: run config from the Dagster Launchpad
lands here so that DVC pins the values a model was actually trained with."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from mlops_assets.core.io import write_text_atomic


def update_params_section(path: Path, section: str, values: dict[str, Any]) -> bool:
    """Set `section.key: value` for each item; returns whether anything changed."""
    yaml = YAML()
    yaml.preserve_quotes = True
    data = yaml.load(path.read_text())
    node = data.setdefault(section, {})
    changed = False
    for key, value in values.items():
        if node.get(key) != value:
            node[key] = value
            changed = True
    if changed:
        buf = io.StringIO()
        yaml.dump(data, buf)
        write_text_atomic(path, buf.getvalue())
    return changed
