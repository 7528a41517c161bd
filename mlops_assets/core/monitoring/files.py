"""Where live monitoring reads and writes, below the project root.

The `monitoring:` settings (core.monitoring.live_performance.monitoring_settings) name the
folders (defaults in core.layout); every monitoring output sits under `output_dir`:
inference_log/date=D.parquet, drift/date=D.json|html, labels.parquet,
live_performance.json and batch_predictions/<batch>.parquet."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_assets.core.ingest import list_landing_batches


def output_path(root: Path, settings: Mapping[str, Any], *parts: str) -> Path:
    """A file under the monitoring output folder."""
    return root / settings["output_dir"] / Path(*parts)


def consolidated_log_path(root: Path, settings: Mapping[str, Any], day: str) -> Path:
    """The consolidated inference log of one request date."""
    return output_path(root, settings, "inference_log", f"date={day}.parquet")


def consolidated_days(root: Path, settings: Mapping[str, Any]) -> list[Path]:
    """The consolidated days, oldest first, at most the newest `history_days`."""
    days = sorted(output_path(root, settings, "inference_log").glob("date=*.parquet"))
    return days[-int(settings["history_days"]):]


def label_files(root: Path, settings: Mapping[str, Any]) -> list[Path]:
    """The landed label files (core.ingest rules: temporary and hidden names ignored)."""
    return list_landing_batches(root / settings["labels_dir"])


def labels_signature(files: list[Path]) -> str:
    """Changes when a label file is added, replaced or rewritten (name, size, mtime)."""
    h = hashlib.md5()
    for p in files:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def rel(root: Path, p: Path) -> str:
    """`p` relative to the root as posix text (as given when outside it)."""
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        return str(p)
