"""`mlops-assets drift`: compare two tables (CSV or Parquet) and gate on the result.

    mlops-assets drift --reference REF.parquet --current CUR.parquet
        [--method auto|ks|psi|js|wasserstein|chi2] [--categorical COL,...]
        [--json OUT.json] [--html OUT.html] [--params params.yaml]

Exit codes: 0 no significant drift, 1 significant drift, 2 bad input (message on stderr).
Column types come from the dtypes (numbers numeric; strings, booleans, categories
categorical); --categorical overrides. Datetime columns are skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mlops_assets.core.io import (
    DataError,
    md5_file,
    read_table,
    write_json_atomic,
    write_text_atomic,
)

EXIT_OK, EXIT_DRIFT, EXIT_BAD_INPUT = 0, 1, 2


def add_drift_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "drift", help="drift report of a current table against a reference table",
        description="Compare CUR against REF column by column (and jointly); exit 1 when the "
                    "drift is significant, 2 on bad input.")
    p.add_argument("--reference", required=True, help="reference table (.csv or .parquet)")
    p.add_argument("--current", required=True, help="current table (.csv or .parquet)")
    p.add_argument("--method", default="auto",
                   choices=["auto", "ks", "psi", "js", "wasserstein", "chi2"],
                   help="decision method (numeric columns; psi/js/chi2 also apply to "
                        "categorical ones). auto: KS for numeric, chi-square for categorical")
    p.add_argument("--categorical", default="",
                   help="comma-separated columns to treat as categorical")
    p.add_argument("--columns", default="", help="comma-separated columns to compare (default: all common)")
    p.add_argument("--json", dest="json_out", help="write the JSON report here")
    p.add_argument("--html", dest="html_out", help="write the HTML report here")
    p.add_argument("--params", help="a params.yaml whose `drift:` section sets the defaults")
    return p


def _read(path: str) -> Any:
    """A pandas frame for CSV; for Parquet, only the schema (columns are read one at a time)."""
    pth = Path(path)
    if pth.suffix.lower() in (".parquet", ".pq"):
        # Lazy: mlops_assets.core.drift pulls in scipy (~1 s); `--help` must not wait for it.
        from mlops_assets.core.drift.profile import ParquetSource

        src = ParquetSource(pth)
        if src.n_rows == 0:
            raise DataError("input file has no rows", path=pth, expected="at least one data row")
        return src
    return read_table(pth)


def _dtypes(tab: Any) -> dict[str, Any]:
    if hasattr(tab, "schema"):
        return {f.name: f.type for f in tab.schema}
    return dict(tab.dtypes)


def _null_counts(tab: Any, cols: list[str]) -> dict[str, tuple[int, int]]:
    if hasattr(tab, "schema"):
        md = tab.file.metadata
        out = {}
        for c in cols:
            idx = tab.schema.get_field_index(c)
            nulls, known = 0, True
            for rg in range(md.num_row_groups):
                stats = md.row_group(rg).column(idx).statistics
                if stats is None or not stats.has_null_count:
                    known = False
                    break
                nulls += stats.null_count
            if not known:
                nulls = tab.column(c).null_count
            out[c] = (int(nulls), tab.n_rows)
        return out
    return {c: (int(tab[c].isna().sum()), len(tab)) for c in cols}


def _all_nan_numeric(tab: Any, col: str) -> bool:
    x = tab.numeric(col) if hasattr(tab, "schema") else None
    if x is None:
        x = pd.to_numeric(tab[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return not np.isfinite(x).any()


def _plan(ref: Any, cur: Any, args: argparse.Namespace) -> dict[str, str]:
    # Lazy: mlops_assets.core.drift pulls in scipy (~1 s); `--help` must not wait for it.
    from mlops_assets.core.drift.profile import infer_type

    rd, cd = _dtypes(ref), _dtypes(cur)
    common = [c for c in rd if c in cd]
    if args.columns:
        wanted = [c.strip() for c in args.columns.split(",") if c.strip()]
        absent = [c for c in wanted if c not in common]
        if absent:
            raise DataError(f"column(s) {absent} are not in both tables",
                            expected=f"one of {common}")
        common = wanted
    if not common:
        raise DataError("the reference and current tables have no columns in common",
                        path=args.current, expected=f"some of {list(rd)[:20]}")
    forced = {c.strip() for c in args.categorical.split(",") if c.strip()}
    unknown = sorted(forced - set(common))
    if unknown:
        raise DataError(f"--categorical names column(s) {unknown} not in both tables",
                        expected=f"one of {common}")
    types = {}
    for c in common:
        t = "categorical" if c in forced else infer_type(rd[c])
        if t == "datetime":
            continue
        if t == "numeric" and infer_type(cd[c]) not in ("numeric",):
            t = "categorical"  # types disagree: compare as categories
        types[c] = t
    if not types:
        raise DataError("no comparable columns (only datetime columns in common)")
    for tab, label, path in ((ref, "reference", args.reference), (cur, "current", args.current)):
        for c, (nulls, n) in _null_counts(tab, list(types)).items():
            if nulls >= n or (types[c] == "numeric" and _all_nan_numeric(tab, c)):
                raise DataError(f"column is entirely null in the {label} table", path=path,
                                column=c, expected="at least one value")
    return types


def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.params:
        pth = Path(args.params)
        if not pth.exists():
            raise DataError("params file does not exist", path=pth)
        params = dict((yaml.safe_load(pth.read_text()) or {}).get("drift") or {})
    if args.method != "auto":
        params["method_numeric"] = args.method
        if args.method in ("psi", "js", "chi2"):
            params["method_categorical"] = args.method
    return params


def format_table(report: dict[str, Any]) -> str:
    rows = sorted(report["features"], key=lambda e: (not e["drifted"], -(e.get("drift_ratio") or 0),
                                                     e["name"]))
    name_w = max([7, *(len(e["name"]) for e in rows)])
    head = (f"{'feature':{name_w}}  {'type':11}  {'method':11}  {'effect':>9}  {'threshold':>9}  "
            f"{'p (BH)':>9}  {'PSI':>7}  {'missing Δ':>9}  verdict")
    lines = [head, "-" * len(head)]

    def f(x: Any, w: int = 9) -> str:
        return f"{'-':>{w}}" if x is None else f"{x:>{w}.4g}"

    for e in rows:
        extra = f"  new: {', '.join(e['unseen_categories'][:3])}" if e.get("unseen_categories") else ""
        lines.append(f"{e['name']:{name_w}}  {e['type']:11}  {e['method']:11}  {f(e.get('effect_size'))}  "
                     f"{f(e.get('threshold'))}  {f(e.get('p_value_adjusted'))}  {f(e.get('psi'), 7)}  "
                     f"{(e.get('missing_share_change') or 0):>+9.1%}  {e['level']}{extra}")
    mv = report.get("multivariate") or {}
    lines.append("")
    if mv.get("available"):
        lines.append(f"multivariate (PCA reconstruction error): {mv['effect_size']:+.1%} "
                     f"(threshold ±{mv['threshold']:.1%}) -> {mv['level']}")
    lines.append(f"drift share {report['drift_share']:.0%} ({report['n_drifted']} of "
                 f"{report['n_features']} features); severity: {report['severity'].upper()}")
    lines.append(report["recommendation"])
    return "\n".join(lines)


def run_drift(args: argparse.Namespace) -> int:
    """Compare the two tables, print the table, write the reports; the exit code gates."""
    # Lazy: mlops_assets.core.drift pulls in scipy (~1 s); `--help` must not wait for it.
    from mlops_assets.core import drift

    try:
        ref = _read(args.reference)
        cur = _read(args.current)
        types = _plan(ref, cur, args)
        params = _params(args)
        if hasattr(ref, "schema"):
            profile = drift.build_reference_profile_from_parquet(ref.path, types, params=params)
        else:
            profile = drift.build_reference_profile(ref, types, params=params)
        lineage = {"reference": str(args.reference), "current": str(args.current),
                   "reference_md5": md5_file(args.reference), "current_md5": md5_file(args.current),
                   "libraries": drift.library_versions()}
        if hasattr(cur, "schema"):
            report = drift.compute_drift_from_parquet(profile, cur.path, params=params,
                                                      lineage=lineage)
        else:
            report = drift.drift_report(profile, cur, params=params, lineage=lineage)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(format_table(report))
    if args.json_out:
        write_json_atomic(args.json_out, report)
    if args.html_out:
        write_text_atomic(args.html_out, drift.render_html(report))
    return EXIT_DRIFT if report["severity"] == "significant" else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlops-assets")
    sub = parser.add_subparsers(dest="command", required=True)
    add_drift_parser(sub)
    args = parser.parse_args(argv)
    return run_drift(args)


if __name__ == "__main__":
    sys.exit(main())
