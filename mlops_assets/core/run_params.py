"""Run-scoped params: values a run sets (a drift retrain's split window, Launchpad
hyperparameters) live in `data/run_params.yaml`, never in the person's `params.yaml`.

The file is machine-written and git-ignored; `dvc.yaml` lists it as a second params file of
the `split` and `train` stages, so dvc.lock pins exactly the values a model was built with.
The stages read the *effective* params: params.yaml deep-merged with this file. A section
stays until a later run sets it again or `mlops-assets run-params reset` empties it, so a
plain rebuild reproduces what dvc.lock pinned; the active overrides are shown wherever the
params are (asset metadata, `mlops-assets run-params show`)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mlops_assets.core.dvcgraph import load_params
from mlops_assets.core.io import DataError, write_text_atomic
from mlops_assets.core.layout import RUN_PARAMS

DEFAULT_PARAMS_FILE = "params.yaml"  # the person's file: DVC's default params file
# The sections a run may set. DVC's key-list entries need each to exist, hence `{}`.
RUN_SECTIONS: tuple[str, ...] = ("split", "train")
HEADER = ("# Machine-written run params (mlops_assets.core.run_params): the run config of the\n"
          "# last run that set each section, over params.yaml. Git-ignored; DVC pins it.\n"
          "# Do not edit: `mlops-assets run-params show | reset`.\n")


def default_run_params() -> dict[str, dict[str, Any]]:
    """No overrides: every section present and empty."""
    return {s: {} for s in RUN_SECTIONS}


def _validate(data: Any, path: Path) -> dict[str, dict[str, Any]]:
    """Only the run sections, each a mapping: anything else is a hand edit to refuse."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise DataError("run params must be a mapping", path=path, expected="split:, train:")
    unknown = sorted(set(data) - set(RUN_SECTIONS))
    if unknown:
        raise DataError(f"unknown run params section(s) {unknown}", path=path,
                        expected=" | ".join(RUN_SECTIONS))
    out = default_run_params()
    for section, values in data.items():
        if values is not None and not isinstance(values, Mapping):
            raise DataError(f"run params section {section!r} must be a mapping", path=path)
        out[section] = dict(values or {})
    return out


def load_run_params(root: Path) -> dict[str, dict[str, Any]]:
    """The run params of `root` (the empty default when the file does not exist yet)."""
    path = Path(root) / RUN_PARAMS
    if not path.is_file():
        return default_run_params()
    return _validate(yaml.safe_load(path.read_text()), path)


def _dump(data: Mapping[str, Mapping[str, Any]]) -> str:
    body = {s: dict(data.get(s) or {}) for s in RUN_SECTIONS}
    return HEADER + yaml.safe_dump(body, sort_keys=True, default_flow_style=False)


def ensure_run_params(root: Path) -> Path:
    """Create the file with its empty default if missing: DVC refuses a stage whose params
    file is absent, and a fresh clone has none (every stage command calls this first)."""
    path = Path(root) / RUN_PARAMS
    if not path.is_file():
        write_text_atomic(path, _dump(default_run_params()))
    return path


def write_run_params(root: Path, section: str, values: Mapping[str, Any]) -> bool:
    """Set `section` to exactly `values` (a run's config replaces the previous run's, it does
    not pile up on it); returns whether the file changed."""
    if section not in RUN_SECTIONS:
        raise DataError(f"{section!r} is not a run params section", path=RUN_PARAMS,
                        expected=" | ".join(RUN_SECTIONS))
    current = load_run_params(root)
    new = {**current, section: dict(values)}
    path = Path(root) / RUN_PARAMS
    if new == current and path.is_file():
        return False
    write_text_atomic(path, _dump(new))
    return True


def reset_run_params(root: Path) -> dict[str, dict[str, Any]]:
    """Drop every override (params.yaml alone applies again); returns what was dropped."""
    before = load_run_params(root)
    write_text_atomic(Path(root) / RUN_PARAMS, _dump(default_run_params()))
    return {s: v for s, v in before.items() if v}


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `over` laid on top, mappings merged key by key (neither is modified)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def effective_params(root: Path, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the stages use: params.yaml (or `base`) with the run params on top."""
    params = load_params(root) if base is None else base
    return deep_merge(params or {}, load_run_params(root))


def active_overrides(run_params: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The overrides in force as dotted keys (`split.cutoff`), for people to read."""
    return {f"{s}.{k}": v for s, values in run_params.items() for k, v in (values or {}).items()}
