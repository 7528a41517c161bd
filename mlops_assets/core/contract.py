"""The dataset contract: one YAML file that names the columns, their types, ranges and
categories, the id/timestamp/label columns and the feature definitions. Everything that
needs to know the shape of the data (validation, features, Dagster metadata, serving)
reads it from here, so a new dataset needs a new contract and no code change."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_assets.core.io import DataError, md5_bytes

COLUMN_TYPES = ("string", "int", "float", "bool", "datetime", "category")
TRANSFORMS = ("identity", "log1p", "ratio", "hour_of_day", "day_of_week", "is_weekend",
              "category", "clip")


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    nullable: bool = False
    unique: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    strict: bool = True  # for categories: an unseen value is an error (True) or a warning
    description: str = ""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    transform: str
    source: tuple[str, ...]
    min: float | None = None
    max: float | None = None

    @property
    def is_categorical(self) -> bool:
        return self.transform == "category"


@dataclass(frozen=True)
class Contract:
    name: str
    id_column: str
    timestamp_column: str
    label_column: str | None
    columns: dict[str, ColumnSpec]
    features: tuple[FeatureSpec, ...]
    description: str = ""
    path: str = ""
    md5: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.is_categorical]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if not f.is_categorical]

    def feature_definitions_hash(self) -> str:
        """md5 of the canonical JSON of the feature definitions: pinned with every table and model."""
        payload = [asdict(f) for f in self.features]
        return md5_bytes(json.dumps(payload, sort_keys=True).encode())

    def schema_hash(self) -> str:
        """md5 of the canonical JSON of the column definitions (the schema part of the contract)."""
        payload = {n: asdict(c) for n, c in self.columns.items()}
        keys = [self.id_column, self.timestamp_column, self.label_column]
        return md5_bytes(json.dumps([payload, keys], sort_keys=True).encode())


def load_contract(path: str | Path) -> Contract:
    """Parse and check a contract file; every mistake is reported with the file and the key."""
    path = Path(path)
    if not path.exists():
        raise DataError("contract file does not exist", path=path, expected="a YAML dataset contract")
    raw_bytes = path.read_bytes()
    try:
        raw = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as e:
        raise DataError(f"contract is not valid YAML ({str(e).splitlines()[0]})", path=path) from None
    if not isinstance(raw, dict):
        raise DataError("contract must be a mapping", path=path, expected="keys name, columns, features")
    for key in ("name", "id_column", "timestamp_column", "columns", "features"):
        if key not in raw:
            raise DataError(f"contract is missing the key {key!r}", path=path)
    columns: dict[str, ColumnSpec] = {}
    if not isinstance(raw["columns"], dict) or not raw["columns"]:
        raise DataError("contract 'columns' must be a non-empty mapping", path=path)
    for name, spec in raw["columns"].items():
        spec = dict(spec or {})
        ctype = spec.pop("type", None)
        if ctype not in COLUMN_TYPES:
            raise DataError(f"column type {ctype!r} is not supported", path=path, column=str(name),
                            expected=" | ".join(COLUMN_TYPES))
        cats = spec.pop("categories", None)
        if ctype == "category" and not cats:
            raise DataError("a category column needs a 'categories' list", path=path, column=str(name))
        unknown = set(spec) - {"nullable", "unique", "min", "max", "strict", "description"}
        if unknown:
            raise DataError(f"unknown column keys {sorted(unknown)}", path=path, column=str(name))
        columns[str(name)] = ColumnSpec(
            name=str(name), type=ctype,
            categories=tuple(str(c) for c in cats) if cats else None, **spec)
    for role in ("id_column", "timestamp_column", "label_column"):
        col = raw.get(role)
        if col is not None and col not in columns:
            raise DataError(f"{role} {col!r} is not among the contract's columns", path=path)
    if columns[raw["timestamp_column"]].type != "datetime":
        raise DataError("the timestamp column must have type datetime", path=path,
                        column=raw["timestamp_column"])
    features: list[FeatureSpec] = []
    for i, f in enumerate(raw["features"] or []):
        f = dict(f)
        name, transform, source = f.get("name"), f.get("transform"), f.get("source")
        if not name or transform not in TRANSFORMS:
            raise DataError(f"feature #{i} ({name!r}) has transform {transform!r}", path=path,
                            expected=" | ".join(TRANSFORMS))
        sources = tuple([source] if isinstance(source, str) else (source or []))
        missing = [s for s in sources if s not in columns]
        if not sources or missing:
            raise DataError(f"feature {name!r} reads columns not in the contract: {missing or 'none given'}",
                            path=path)
        if transform == "ratio" and len(sources) != 2:
            raise DataError(f"feature {name!r}: ratio needs two source columns", path=path)
        features.append(FeatureSpec(name=str(name), transform=transform, source=sources,
                                    min=f.get("min"), max=f.get("max")))
    if len({f.name for f in features}) != len(features):
        raise DataError("feature names must be unique", path=path)
    if not features:
        raise DataError("contract declares no features", path=path)
    return Contract(
        name=str(raw["name"]), id_column=raw["id_column"], timestamp_column=raw["timestamp_column"],
        label_column=raw.get("label_column"), columns=columns, features=tuple(features),
        description=str(raw.get("description", "")), path=str(path), md5=md5_bytes(raw_bytes), raw=raw,
    )
