"""The drift engine: statistics (`stats`), the reference profile (`profile`), the report
(`report`) and its HTML page (`html`). The names below are its public API."""

from mlops_assets.core.drift.html import markdown_table, render_html
from mlops_assets.core.drift.profile import (
    build_reference_profile,
    build_reference_profile_from_parquet,
    resolve_params,
)
from mlops_assets.core.drift.report import (
    compute_drift_from_parquet,
    drift_report,
    drift_report_from_files,
    library_versions,
    write_reference_profile,
)
from mlops_assets.core.drift.values import load_reference_profile, save_reference_profile

__all__ = [
    "build_reference_profile", "build_reference_profile_from_parquet", "save_reference_profile",
    "load_reference_profile", "write_reference_profile", "drift_report",
    "compute_drift_from_parquet", "drift_report_from_files", "render_html", "markdown_table",
    "resolve_params", "library_versions",
]
