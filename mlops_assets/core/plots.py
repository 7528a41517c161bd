"""The curves and the figure of an evaluation, written for `dvc plots`: ROC and PR points,
the aggregated confusion matrix, its Vega-Lite template and the SVG. Kept apart from the
metrics (core.evaluate) because only the evaluate stage writes them; every file is a DVC
output, so the same inputs give the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from mlops_assets.core.evaluate import as_labels, as_scores, classification_metrics
from mlops_assets.core.io import write_bytes_atomic, write_json_atomic, write_text_atomic

MAX_CURVE_POINTS = 200
FLOAT_FORMAT = "{:.6f}"
PLOT_FILES = {"roc": "roc.csv", "pr": "pr.csv", "confusion": "confusion.csv",
              "image": "evaluation.svg"}
# Salt for the ids matplotlib puts into an SVG (clip paths, glyphs); fixed so the same figure
# gives the same bytes (matplotlib otherwise salts with a random uuid).
SVG_HASH_SALT = "mlops_assets"


def _downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most `max_points` points spread evenly along the curve's length
    (deterministic; first and last points always kept)."""
    n = len(x)
    if n <= max_points:
        return np.arange(n)
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    if cum[-1] > 0:
        targets = np.linspace(0.0, cum[-1], max_points)[:-1]
        idx = np.searchsorted(cum, targets, side="left")
    else:
        idx = np.linspace(0, n - 1, max_points)[:-1].round().astype(int)
    return np.unique(np.concatenate([np.minimum(idx, n - 1), [n - 1]]))


def _both_classes(y: np.ndarray) -> bool:
    return bool(np.any(y == 1) and np.any(y == 0))


def roc_points(labels: Any, scores: Any, max_points: int = MAX_CURVE_POINTS
               ) -> list[dict[str, float | None]]:
    """ROC curve as rows {fpr, tpr, threshold}, fpr ascending, at most `max_points` rows.
    The (0, 0) start has threshold None (no score alerts). Empty for one-class labels."""
    y = as_labels(labels)
    s = as_scores(scores, len(y))
    if not _both_classes(y):
        return []
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=True)
    idx = _downsample(fpr, tpr, max_points)
    return [{"fpr": float(fpr[i]), "tpr": float(tpr[i]),
             "threshold": float(thr[i]) if np.isfinite(thr[i]) else None} for i in idx]


def pr_points(labels: Any, scores: Any, max_points: int = MAX_CURVE_POINTS
              ) -> list[dict[str, float | None]]:
    """Precision-recall curve as rows {recall, precision, threshold}, recall ascending, at
    most `max_points` rows. The (recall 0, precision 1) end has threshold None. Empty for
    one-class labels."""
    y = as_labels(labels)
    s = as_scores(scores, len(y))
    if not _both_classes(y):
        return []
    precision, recall, thr = precision_recall_curve(y, s, drop_intermediate=True)
    thr = np.concatenate([thr, [np.inf]])
    precision, recall, thr = precision[::-1], recall[::-1], thr[::-1]
    idx = _downsample(recall, precision, max_points)
    return [{"recall": float(recall[i]), "precision": float(precision[i]),
             "threshold": float(thr[i]) if np.isfinite(thr[i]) else None} for i in idx]


def confusion_rows(labels: Any, scores: Any, threshold: float) -> list[dict[str, int]]:
    """The 2x2 confusion matrix as four rows {actual, predicted, count} (zero cells
    included), sorted by (actual, predicted).

    DVC's built-in `confusion` template counts *rows* (one row per record), which for a
    holdout of many thousand rows means a plots file and an HTML report that grow with the
    data. These aggregated rows are plotted with CONFUSION_COUNTS_TEMPLATE instead, which
    sums `count` per (actual, predicted) cell."""
    m = classification_metrics(labels, scores, threshold)
    return [
        {"actual": 0, "predicted": 0, "count": m["tn"]},
        {"actual": 0, "predicted": 1, "count": m["fp"]},
        {"actual": 1, "predicted": 0, "count": m["fn"]},
        {"actual": 1, "predicted": 1, "count": m["tp"]},
    ]


# A Vega-Lite template for `dvc plots` (anchors <DVC_METRIC_*> are filled by DVC) that draws
# a confusion matrix from pre-aggregated {actual, predicted, count} rows: the cell value is
# the SUM of `count`, not the number of rows as in DVC's built-in `confusion` template.
# Commit it as .dvc/plots/confusion_counts.json (write_confusion_template) and declare in
# dvc.yaml:  - data/reports/plots/confusion.csv: {template: confusion_counts, x: predicted,
#            y: actual}
CONFUSION_COUNTS_TEMPLATE: dict[str, Any] = {
    "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
    "data": {"values": "<DVC_METRIC_DATA>"},
    "title": "<DVC_METRIC_TITLE>",
    "facet": {"column": {"field": "rev", "sort": []}},
    "spec": {
        "transform": [
            {"calculate": "toNumber(datum.count)", "as": "cell_count"},
            {"aggregate": [{"op": "sum", "field": "cell_count", "as": "rows"}],
             "groupby": ["<DVC_METRIC_Y>", "<DVC_METRIC_X>"]},
            {"joinaggregate": [{"op": "sum", "field": "rows", "as": "total"}]},
            {"calculate": "datum.total > 0 ? datum.rows / datum.total : 0", "as": "share"},
        ],
        "encoding": {
            "x": {"field": "<DVC_METRIC_X>", "type": "nominal", "sort": "ascending",
                  "title": "<DVC_METRIC_X_LABEL>"},
            "y": {"field": "<DVC_METRIC_Y>", "type": "nominal", "sort": "ascending",
                  "title": "<DVC_METRIC_Y_LABEL>"},
        },
        "layer": [
            {
                "mark": "rect",
                "width": 300,
                "height": 300,
                "encoding": {
                    "color": {"field": "rows", "type": "quantitative", "title": "rows",
                              "scale": {"type": "symlog", "domainMin": 0}},
                    "tooltip": [
                        {"field": "<DVC_METRIC_Y>", "type": "nominal"},
                        {"field": "<DVC_METRIC_X>", "type": "nominal"},
                        {"field": "rows", "type": "quantitative"},
                        {"field": "share", "type": "quantitative", "format": ".2%"},
                    ],
                },
            },
            {
                "mark": {"type": "text", "fontSize": 14},
                "encoding": {"text": {"field": "rows", "type": "quantitative"},
                             "color": {"value": "black"}},
            },
        ],
    },
}


def write_confusion_template(path: str | Path) -> Path:
    """Write CONFUSION_COUNTS_TEMPLATE as canonical JSON (e.g. to
    .dvc/plots/confusion_counts.json, where `dvc plots` finds it by name)."""
    return write_json_atomic(path, CONFUSION_COUNTS_TEMPLATE)


def _fmt(v: float | int | None) -> str:
    if v is None:
        return ""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    return FLOAT_FORMAT.format(float(v))


def rows_to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header, "\\n" line ends, integers as integers, floats with fixed
    6-decimal formatting and None as an empty field: the same rows give the same bytes."""
    lines = [",".join(columns)]
    lines += [",".join(_fmt(r[c]) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def write_plots(plots_dir: str | Path, labels: Any, scores: Any, threshold: float, *,
                reference_scores: Any = None, reference_name: str = "reference",
                reference_threshold: float | None = None,
                max_points: int = MAX_CURVE_POINTS) -> dict[str, Path]:
    """Write the plot files of an evaluation into `plots_dir`, each atomically and
    byte-deterministically:

      roc.csv        fpr,tpr,threshold           (<= max_points rows)
      pr.csv         recall,precision,threshold  (<= max_points rows)
      confusion.csv  actual,predicted,count      (4 rows; see CONFUSION_COUNTS_TEMPLATE)
      evaluation.svg ROC and PR curves (candidate, and the reference if given, with the
                     operating points marked) and the confusion matrix

    Returns {"roc"|"pr"|"confusion"|"image": path}."""
    plots_dir = Path(plots_dir)
    y = as_labels(labels)
    s = as_scores(scores, len(y))
    roc = roc_points(y, s, max_points)
    pr = pr_points(y, s, max_points)
    conf = confusion_rows(y, s, threshold)
    out = {
        "roc": write_text_atomic(plots_dir / PLOT_FILES["roc"],
                                 rows_to_csv(roc, ("fpr", "tpr", "threshold"))),
        "pr": write_text_atomic(plots_dir / PLOT_FILES["pr"],
                                rows_to_csv(pr, ("recall", "precision", "threshold"))),
        "confusion": write_text_atomic(plots_dir / PLOT_FILES["confusion"],
                                       rows_to_csv(conf, ("actual", "predicted", "count"))),
    }
    ref = None
    if reference_scores is not None:
        rs = as_scores(reference_scores, len(y), "reference scores")
        ref = {"name": reference_name, "roc": roc_points(y, rs, max_points),
               "pr": pr_points(y, rs, max_points),
               "metrics": (classification_metrics(y, rs, reference_threshold)
                           if reference_threshold is not None else None)}
    svg = render_evaluation_svg(roc, pr, conf, classification_metrics(y, s, threshold), ref)
    out["image"] = write_bytes_atomic(plots_dir / PLOT_FILES["image"], svg)
    return out


def render_evaluation_svg(roc: list[dict], pr: list[dict], confusion: list[dict],
                          metrics: dict[str, Any], reference: dict[str, Any] | None = None
                          ) -> bytes:
    """The evaluation figure as SVG bytes. Deterministic: Agg-free `Figure` (no pyplot
    state), fixed `svg.hashsalt`, no creation date in the metadata."""
    import matplotlib
    from matplotlib.figure import Figure

    rc = {"svg.hashsalt": SVG_HASH_SALT, "svg.fonttype": "path", "path.simplify": True,
          "font.family": "DejaVu Sans"}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(13.5, 4.2))
        ax_roc, ax_pr, ax_cm = fig.subplots(1, 3)
        _draw_curve(ax_roc, roc, "fpr", "tpr", "model", "C0")
        _draw_curve(ax_pr, pr, "recall", "precision", "model", "C0")
        if metrics.get("fpr") is not None and metrics.get("recall") is not None:
            ax_roc.plot([metrics["fpr"]], [metrics["recall"]], "o", color="C0",
                        label=f"operating point (thr {metrics['threshold']:.3g})")
        if metrics.get("precision") is not None and metrics.get("recall") is not None:
            ax_pr.plot([metrics["recall"]], [metrics["precision"]], "o", color="C0",
                       label="operating point")
        if reference:
            _draw_curve(ax_roc, reference["roc"], "fpr", "tpr", reference["name"], "C1")
            _draw_curve(ax_pr, reference["pr"], "recall", "precision", reference["name"], "C1")
            rm = reference.get("metrics")
            if rm and rm.get("fpr") is not None and rm.get("recall") is not None:
                ax_roc.plot([rm["fpr"]], [rm["recall"]], "s", color="C1")
            if rm and rm.get("precision") is not None and rm.get("recall") is not None:
                ax_pr.plot([rm["recall"]], [rm["precision"]], "s", color="C1")
        ax_roc.plot([0, 1], [0, 1], ":", color="grey", linewidth=0.8)
        auc = metrics.get("roc_auc")
        ax_roc.set(xlabel="false-positive rate", ylabel="true-positive rate (recall)",
                   title="ROC" + (f" (AUC {auc:.3f})" if auc is not None else ""),
                   xlim=(0, 1), ylim=(0, 1.01))
        ap = metrics.get("pr_auc")
        ax_pr.set(xlabel="recall", ylabel="precision",
                  title="Precision-recall" + (f" (AP {ap:.3f})" if ap is not None else ""),
                  xlim=(0, 1), ylim=(0, 1.01))
        for ax in (ax_roc, ax_pr):
            ax.grid(True, linewidth=0.4, alpha=0.5)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="lower right" if ax is ax_roc else "upper right", fontsize=8)
        cells = np.zeros((2, 2), dtype=int)
        for r in confusion:
            cells[int(r["actual"]), int(r["predicted"])] = int(r["count"])
        ax_cm.imshow(np.log1p(cells), cmap="Blues", vmin=0)
        for a in (0, 1):
            for p in (0, 1):
                ax_cm.text(p, a, f"{cells[a, p]:,}", ha="center", va="center",
                           color="white" if np.log1p(cells[a, p]) > np.log1p(cells.max()) / 2
                           else "black")
        ax_cm.set(xticks=[0, 1], yticks=[0, 1], xlabel="predicted", ylabel="actual",
                  title=f"Confusion at threshold {metrics['threshold']:.3g}")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def _draw_curve(ax: Any, rows: list[dict], xkey: str, ykey: str, label: str, color: str) -> None:
    if not rows:
        return
    ax.plot([r[xkey] for r in rows], [r[ykey] for r in rows], color=color, label=label,
            linewidth=1.4, drawstyle="default")
