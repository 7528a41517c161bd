"""The drift report for people: one self-contained HTML file (inline CSS and SVG, no
script, no network) and a markdown table for Dagster metadata. Same report in, same bytes
out."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

_COLORS = {"none": "#2e7d32", "moderate": "#ef6c00", "significant": "#c62828"}
_REF, _CUR = "#90a4ae", "#1565c0"

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#212121;
max-width:1200px}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:4px 0}
.verdict{padding:14px 18px;border-radius:6px;color:#fff;font-size:17px;margin:10px 0}
.muted{color:#666;font-size:12px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #e0e0e0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f5f5}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;color:#fff;font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid #e0e0e0;border-radius:6px;padding:10px;width:560px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
code{background:#f5f5f5;padding:1px 4px}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    x = float(x)
    if not math.isfinite(x):
        return "–"
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
        return f"{x:.{max(digits - 1, 1)}e}"
    return f"{x:.{digits}g}"


def _badge(level: str) -> str:
    return f'<span class="badge" style="background:{_COLORS.get(level, "#757575")}">{_e(level)}</span>'


# --------------------------------------------------------------------------- SVG pieces
def _bars_svg(labels: Sequence[str], ref: Sequence[float], cur: Sequence[float],
              title: str, width: int = 540, height: int = 170) -> str:
    """Grouped bars of reference and current shares."""
    n = max(len(labels), 1)
    top = max([*ref, *cur, 1e-12])
    pad_l, pad_b, pad_t = 36, 42, 16
    w = (width - pad_l - 6) / n
    h = height - pad_b - pad_t
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" aria-label="{_e(title)}">',
           f'<text x="{pad_l}" y="11" font-size="11">{_e(title)}</text>',
           f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{width - 4}" y2="{pad_t + h}" stroke="#999"/>',
           f'<text x="2" y="{pad_t + 8}" font-size="9">{top:.0%}</text>']
    for i, (lab, a, b) in enumerate(zip(labels, ref, cur, strict=False)):
        x = pad_l + i * w
        for j, (v, col) in enumerate(((a, _REF), (b, _CUR))):
            bh = h * (v / top)
            out.append(f'<rect x="{x + 1 + j * (w - 2) / 2:.1f}" y="{pad_t + h - bh:.1f}" '
                       f'width="{max((w - 2) / 2, 0.5):.1f}" height="{bh:.1f}" fill="{col}">'
                       f'<title>{_e(lab)}: ref {a:.2%}, cur {b:.2%}</title></rect>')
        if n <= 24:
            short = str(lab) if len(str(lab)) <= 12 else str(lab)[:11] + "…"
            out.append(f'<text x="{x + w / 2:.1f}" y="{pad_t + h + 10}" font-size="8" '
                       f'text-anchor="end" transform="rotate(-35 {x + w / 2:.1f} '
                       f'{pad_t + h + 10})">{_e(short)}</text>')
    out.append("</svg>")
    return "".join(out)


def _contrib_svg(labels: Sequence[str], contrib: Sequence[float], width: int = 540,
                 height: int = 120) -> str:
    """Per-bin PSI contributions."""
    n = max(len(labels), 1)
    top = max([*contrib, 1e-12])
    pad_l, pad_b, pad_t = 36, 8, 16
    w = (width - pad_l - 6) / n
    h = height - pad_b - pad_t
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'role="img" aria-label="PSI contribution per bin">',
           f'<text x="{pad_l}" y="11" font-size="11">PSI contribution per bin '
           f'(total {sum(contrib):.4f})</text>',
           f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{width - 4}" y2="{pad_t + h}" stroke="#999"/>',
           f'<text x="2" y="{pad_t + 8}" font-size="9">{top:.3g}</text>']
    for i, (lab, c) in enumerate(zip(labels, contrib, strict=False)):
        bh = h * (max(c, 0) / top)
        out.append(f'<rect x="{pad_l + i * w + 1:.1f}" y="{pad_t + h - bh:.1f}" '
                   f'width="{max(w - 2, 0.5):.1f}" height="{bh:.1f}" fill="#6a1b9a">'
                   f'<title>{_e(lab)}: {c:.5f}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def _trend_svg(points: Sequence[tuple[str, float, str]], width: int = 760, height: int = 170) -> str:
    """Drift share per batch, coloured by severity."""
    n = len(points)
    pad_l, pad_b, pad_t = 40, 40, 14
    w = (width - pad_l - 10) / max(n - 1, 1)
    h = height - pad_b - pad_t
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           'role="img" aria-label="drift share per batch">',
           f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{width - 6}" y2="{pad_t + h}" stroke="#999"/>',
           f'<text x="2" y="{pad_t + 8}" font-size="9">100%</text>',
           f'<text x="2" y="{pad_t + h}" font-size="9">0%</text>']
    coords = [(pad_l + i * w, pad_t + h * (1 - min(max(s, 0), 1))) for i, (_, s, _) in enumerate(points)]
    if n > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        out.append(f'<polyline points="{path}" fill="none" stroke="#607d8b"/>')
    for (lab, s, sev), (x, y) in zip(points, coords, strict=False):
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{_COLORS.get(sev, "#757575")}">'
                   f'<title>{_e(lab)}: {s:.0%} drifted, {_e(sev)}</title></circle>')
        out.append(f'<text x="{x:.1f}" y="{pad_t + h + 12}" font-size="8" text-anchor="end" '
                   f'transform="rotate(-30 {x:.1f} {pad_t + h + 12})">{_e(lab[:16])}</text>')
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------------------- HTML
def _batch_label(report: Mapping[str, Any], i: int) -> str:
    lin = report.get("lineage") or {}
    for key in ("current_batch", "batch", "current_window"):
        if lin.get(key):
            v = lin[key]
            return str(v[0] if isinstance(v, list | tuple) and v else v)
    return f"batch {i + 1}"


def _ranked(features: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(features, key=lambda e: (not e.get("drifted"), -(e.get("drift_ratio") or 0.0),
                                           e["name"]))


def _head(report: Mapping[str, Any]) -> list[str]:
    """Page head, title and the verdict banner with the recommendation."""
    sev = report.get("severity", "none")
    return ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<title>Drift report</title><style>", _CSS, "</style></head><body>",
            "<h1>Drift report</h1>",
            f'<div class="verdict" style="background:{_COLORS.get(sev, "#757575")}">'
            f'Severity: <b>{_e(sev)}</b> — {report.get("n_drifted", 0)} of '
            f'{report.get("n_features", 0)} features drifted '
            f'(drift share {float(report.get("drift_share", 0)):.0%})</div>',
            f"<p>{_e(report.get('recommendation', ''))}</p>"]


def _prediction_rows(report: Mapping[str, Any], pred: Mapping[str, Any]) -> list[str]:
    """The score-distribution and predicted-positive-rate rows of the dataset table."""
    sc = pred.get("score") or {}
    out = [f"<tr><td>score distribution (KS)</td><td class=num>D = {_num(sc.get('ks_d'))}"
           f", PSI {_num(sc.get('psi'))}</td><td class=num>{_num(sc.get('threshold'))}</td>"
           f"<td class=num>{_num(sc.get('p_value'))}</td>"
           f"<td>{_badge(sc.get('level', 'none'))}</td></tr>"]
    rate = pred.get("positive_rate")
    if rate:
        out.append(f"<tr><td>predicted-positive rate at threshold {_num(rate['threshold'])}"
                   f"</td><td class=num>{float(rate['reference']):.2%} → "
                   f"{float(rate['current']):.2%}</td><td class=num>±"
                   f"{float(report.get('settings', {}).get('positive_rate_change', 0.25)):.0%} "
                   f"relative</td><td class=num>{_num(rate['p_value'])}</td>"
                   f"<td>{_badge(rate['level'])}</td></tr>")
    return out


def _dataset_section(report: Mapping[str, Any]) -> list[str]:
    """Dataset-level signals: drift share, multivariate, prediction drift."""
    sev = report.get("severity", "none")
    mv = report.get("multivariate") or {}
    pred = report.get("prediction") or {}
    out = ["<h2>Dataset level</h2><table><tr><th>signal</th><th>value</th><th>threshold</th>"
           "<th>p-value</th><th>verdict</th></tr>"]
    out.append(f"<tr><td>share of drifted features</td><td class=num>"
               f"{float(report.get('drift_share', 0)):.1%}</td><td class=num>"
               f"≥ {float(report.get('settings', {}).get('drift_share_significant', 0.5)):.0%} "
               f"significant</td><td>BH-adjusted per feature</td><td>{_badge(sev)}</td></tr>")
    if mv.get("available"):
        out.append(f"<tr><td>multivariate (PCA reconstruction error, {mv['n_components']} of "
                   f"{len(mv['columns'])} components)</td><td class=num>"
                   f"{_num(mv['reference_error'])} → {_num(mv['current_error'])} "
                   f"({float(mv['effect_size']):+.1%})</td><td class=num>±{float(mv['threshold']):.1%}"
                   f"</td><td class=num>{_num(mv['p_value'])}</td><td>{_badge(mv['level'])}</td></tr>")
    if pred:
        out += _prediction_rows(report, pred)
    out.append("</table>")
    return out


def _drift_table(feats: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every feature, most drifted first, with all its statistics."""
    out = ["<h2>Features ranked by drift</h2><table><tr><th>#</th><th>feature</th><th>type</th>"
           "<th>method</th><th>effect</th><th>threshold</th><th>effect / threshold</th>"
           "<th>p (BH)</th><th>PSI (no-drift ≈)</th><th>KS D</th><th>W/σ</th><th>JS</th>"
           "<th>missing ref → cur</th><th>unseen</th><th>verdict</th></tr>"]
    for i, e in enumerate(_ranked(feats), 1):
        unseen = ""
        if e.get("unseen_categories"):
            unseen = ", ".join(str(u) for u in e["unseen_categories"][:5])
        out.append(
            f"<tr><td>{i}</td><td><a href=\"#f-{_e(e['name'])}\">{_e(e['name'])}</a></td>"
            f"<td>{_e(e['type'])}</td><td>{_e(e['method'])}</td>"
            f"<td class=num>{_num(e.get('effect_size'))}</td><td class=num>{_num(e.get('threshold'))}"
            f"<div class=muted>{_e(e.get('threshold_source') or '')}</div></td>"
            f"<td class=num>{_num(e.get('drift_ratio'), 3)}</td>"
            f"<td class=num>{_num(e.get('p_value_adjusted'))}</td>"
            f"<td class=num>{_num(e.get('psi'))} ({_num(e.get('psi_expected'), 2)})</td>"
            f"<td class=num>{_num(e.get('ks_d'))}</td><td class=num>{_num(e.get('wasserstein_norm'))}</td>"
            f"<td class=num>{_num(e.get('js'))}</td>"
            f"<td class=num>{float(e.get('missing_share_ref') or 0):.1%} → "
            f"{float(e.get('missing_share_cur') or 0):.1%}</td><td>{_e(unseen)}</td>"
            f"<td>{_badge(e.get('level', 'none'))}</td></tr>")
    out.append("</table>")
    return out


def _importance_table(feats: Sequence[Mapping[str, Any]], importance: Mapping[str, float]
                      ) -> list[str]:
    """Features by model importance beside their drift (empty without importances)."""
    if not importance:
        return []
    out = ["<h2>Features ranked by importance to the model</h2><table><tr><th>#</th>"
           "<th>feature</th><th>importance</th><th>effect / threshold</th><th>verdict</th></tr>"]
    by_name = {e["name"]: e for e in feats}
    ranked = sorted(importance.items(), key=lambda kv: (-kv[1], kv[0]))
    for i, (name, imp) in enumerate(ranked, 1):
        e = by_name.get(name, {})
        out.append(f"<tr><td>{i}</td><td>{_e(name)}</td><td class=num>{_num(imp)}</td>"
                   f"<td class=num>{_num(e.get('drift_ratio'), 3)}</td>"
                   f"<td>{_badge(e.get('level', 'none')) if e else '–'}</td></tr>")
    out.append("</table>")
    return out


def _trend_section(report: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None,
                   feats: Sequence[Mapping[str, Any]]) -> list[str]:
    """Drift share per batch (history then this report) and the top features' effects."""
    reports = [*(history or []), report]
    out = ["<h2>Trend across recent batches</h2>"]
    if len(reports) <= 1:
        out.append("<p class=muted>No earlier reports given.</p>")
        return out
    pts = [(_batch_label(r, i), float(r.get("drift_share", 0)), str(r.get("severity", "none")))
           for i, r in enumerate(reports)]
    out.append(_trend_svg(pts))
    top = [e["name"] for e in _ranked(feats)[:8]]
    out.append("<table><tr><th>batch</th><th>severity</th><th>drift share</th>"
               + "".join(f"<th>{_e(n)}</th>" for n in top) + "</tr>")
    for i, r in enumerate(reports):
        eff = {e["name"]: e for e in r.get("features", [])}
        cells = "".join(
            f"<td class=num style=\"color:{_COLORS.get(eff.get(n, {}).get('level', 'none'))}\">"
            f"{_num(eff.get(n, {}).get('effect_size'), 3)}</td>" for n in top)
        out.append(f"<tr><td>{_e(_batch_label(r, i))}</td><td>{_badge(r.get('severity', 'none'))}"
                   f"</td><td class=num>{float(r.get('drift_share', 0)):.0%}</td>{cells}</tr>")
    out.append("</table><p class=muted>Cells: effect size per feature; colour: verdict.</p>")
    return out


def _feature_card(e: Mapping[str, Any]) -> list[str]:
    """One feature's card: verdict, statistic, histogram and per-bin plots, note."""
    out = [f'<div class="card" id="f-{_e(e["name"])}"><h3>{_e(e["name"])} '
           f'{_badge(e.get("level", "none"))}</h3>',
           f"<div class=muted>{_e(e['type'])}, method {_e(e['method'])} "
           f"({_e(e.get('effect_name', ''))} {_num(e.get('effect_size'))} vs threshold "
           f"{_num(e.get('threshold'))}; {_e(e.get('test', ''))} p = {_num(e.get('p_value'))})"
           "</div>"]
    hist = e.get("histogram")
    if hist and hist.get("edges"):
        edges = hist["edges"]
        labels = [f"≤{_num(edges[0], 3)}"] + [f"≤{_num(b, 3)}" for b in edges[1:]] + [
            f">{_num(edges[-1], 3)}"]
        out.append(_bars_svg(labels, hist["ref"], hist["cur"], "distribution (histogram)"))
    bins = e.get("bins") or []
    if bins:
        labels = [b["label"] for b in bins]
        title = "shares per PSI bin" if e["type"] == "numeric" else "shares per category"
        out.append(_bars_svg(labels, [b["ref"] for b in bins], [b["cur"] for b in bins], title))
        out.append(_contrib_svg(labels, [b["psi"] for b in bins]))
    if e.get("note"):
        out.append(f"<p class=muted>{_e(e['note'])}</p>")
    out.append("</div>")
    return out


def _feature_cards(feats: Sequence[Mapping[str, Any]]) -> list[str]:
    """The per-feature plots, most drifted first."""
    out = ['<h2>Per feature</h2><p class="legend">'
           f'<span style="background:{_REF}"></span>reference'
           f'<span style="background:{_CUR}"></span>current</p><div class="cards">']
    for e in _ranked(feats):
        out += _feature_card(e)
    out.append("</div>")
    return out


def _lineage_and_settings(report: Mapping[str, Any]) -> list[str]:
    """Where the data came from, the settings used and how the decision is made; page end."""
    out = ["<h2>Lineage</h2><table>"]
    for k, v in sorted((report.get("lineage") or {}).items()):
        out.append(f"<tr><th>{_e(k)}</th><td><code>{_e(_flat(v))}</code></td></tr>")
    out.append(f"<tr><th>reference rows</th><td>{_e((report.get('reference') or {}).get('rows'))}</td></tr>"
               f"<tr><th>current rows</th><td>{_e((report.get('current') or {}).get('rows'))}</td></tr>")
    out.append("</table><h2>Settings</h2><table>")
    for k, v in sorted((report.get("settings") or {}).items()):
        out.append(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>")
    out.append("</table><p class=muted>Decision: a feature drifts when its Benjamini–Hochberg "
               "adjusted p-value ≤ alpha and its effect size ≥ threshold (a documented default, "
               "or mean + k·sd across reference chunks when larger). See docs/drift.md.</p>")
    out.append("</body></html>\n")
    return out


def render_html(report: Mapping[str, Any], history: Sequence[Mapping[str, Any]] | None = None,
                importance: Mapping[str, float] | None = None) -> str:
    """A self-contained HTML page for the report; ``history`` is a list of earlier reports
    (oldest first) for the trend; ``importance`` maps feature -> model importance."""
    importance = dict(importance or report.get("importance") or {})
    feats = list(report.get("features", []))
    return "".join([*_head(report), *_dataset_section(report), *_drift_table(feats),
                    *_importance_table(feats, importance), *_trend_section(report, history, feats),
                    *_feature_cards(feats), *_lineage_and_settings(report)])


def _flat(v: Any) -> str:
    if isinstance(v, Mapping):
        return "; ".join(f"{k}={_flat(x)}" for k, x in sorted(v.items()))
    if isinstance(v, list | tuple):
        return ", ".join(_flat(x) for x in v)
    return str(v)


def markdown_table(report: Mapping[str, Any], max_rows: int = 30) -> str:
    """A markdown summary for Dagster metadata: verdict line and features ranked by drift."""
    lines = [f"**Severity: {report.get('severity')}** — drift share "
             f"{float(report.get('drift_share', 0)):.0%} ({report.get('n_drifted', 0)} of "
             f"{report.get('n_features', 0)} features)", ""]
    mv = report.get("multivariate") or {}
    if mv.get("available"):
        lines.append(f"Multivariate (PCA reconstruction error): {float(mv['effect_size']):+.1%}, "
                     f"{mv['level']}")
    rate = ((report.get("prediction") or {}).get("positive_rate")) or {}
    if rate:
        lines.append(f"Predicted-positive rate: {float(rate['reference']):.2%} → "
                     f"{float(rate['current']):.2%}, {rate['level']}")
    lines += ["", "| feature | type | method | effect | threshold | p (BH) | PSI | missing Δ | "
              "unseen | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    feats = _ranked(report.get("features", []))
    for e in feats[:max_rows]:
        unseen = ", ".join(str(u) for u in (e.get("unseen_categories") or [])[:3])
        lines.append(f"| {e['name']} | {e['type']} | {e['method']} | {_num(e.get('effect_size'))} | "
                     f"{_num(e.get('threshold'))} | {_num(e.get('p_value_adjusted'))} | "
                     f"{_num(e.get('psi'))} | {float(e.get('missing_share_change') or 0):+.1%} | "
                     f"{unseen} | {e.get('level')} |")
    if len(feats) > max_rows:
        lines.append(f"| … {len(feats) - max_rows} more | | | | | | | | | |")
    return "\n".join(lines) + "\n"
