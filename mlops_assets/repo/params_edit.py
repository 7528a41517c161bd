"""Edit a params.yaml in place, keeping its comments. Only for a params.yaml the code made
itself (the incident replay's workspace, test project copies): no run, sensor or command
writes the person's params.yaml; run config goes to data/run_params.yaml
(core/run_params.py)."""

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
