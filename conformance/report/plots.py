"""The report's plots, drawn with matplotlib's Agg canvas (no pyplot, no global backend change)
and returned as base64 PNG for embedding in the self-contained HTML.

Each plot has a `*_figure(records)` (the Figure, for tests to inspect) and a `*_png(records)`. Their
long explanations are CAPTIONS, set as HTML captions under the images (they wrap with the page; a
title inside a narrow figure was cut at both ends). Text is at least MIN_FONT_PT at DPI, so nothing in
a plot reads smaller than the page's own small print (12 px), and figures are at most MAX_WIDTH_IN wide
so the page shows them at full size.
"""

from __future__ import annotations

import base64
import io
import math
import zlib

from conformance.formatting import num
from conformance.report.model import bucket_key

PASS_COLOUR, FAIL_COLOUR = "#2b7bb9", "#d62728"
MUTED_COLOUR = "#8c959f"
PHASE_COLOURS = {"prefill": "#2b7bb9", "decode_eager": "#ff7f0e", "decode_graph": "#2ca02c"}
DTYPE_COLOURS = {"float16": "#2b7bb9", "bfloat16": "#ff7f0e", "float32": "#9467bd"}
DPI = 100
MIN_FONT_PT = 9  # 12.5 px at DPI
MAX_WIDTH_IN = 11.2  # the page's content box is 1144 px wide

ASCEND_GATING = ("max_rel_err", "mean_rel_err", "rmse", "small_value_err_ratio")
ASCEND_REPORTED = ("eb",)  # error balance: msprobe computes it, its verdict leaves it out
ASCEND_METRICS = ASCEND_GATING + ASCEND_REPORTED

CAPTIONS = {
    "error_vs_bound": "Observed max error against the allowed bound, one panel per phase and dtype: above the dashed "
                      "line (the pink zone) the max rule fails. A red X is a failing case, also one that failed by "
                      "another rule (mean rule, a cache, a hazard, determinism: its row in Worst cases names it). "
                      "Exact outputs (error 0) sit on the bottom edge as hollow circles, non-finite ones on the top "
                      "edge.",
    "ratio_histogram": "Error/tolerance ratios (the worst of the max and mean rules) per phase, on log-spaced bins: "
                       "1 is the tolerance, right of it fails. Exact outputs (error 0) and non-finite ones have "
                       "bars of their own at the edges, apart from the log axis.",
    "ascend_margins": "Ascend benchmark standard (msprobe): each metric's kernel/baseline ratio over its limit, one "
                      "point per case (jittered, coloured by dtype). Left, the gating metrics: above 1 (pink) a "
                      "metric misses its limit, drawn as a large red X and named in Worst cases. Right, error "
                      "balance (eb): reported, not gating, so it has no limit line and fails nothing. A metric at 0 "
                      "sits on the bottom edge.",
}


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _compared(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("output") and r.get("ratio") is not None]


def _log_range(values: list[float], pad: float = 10.0) -> tuple[float, float]:
    """Decades around the positive finite values (1e-8..1 when there are none)."""
    finite = [x for x in values if x is not None and math.isfinite(x) and x > 0]
    if not finite:
        return 1e-8, 1.0
    return 10 ** math.floor(math.log10(min(finite))) / pad, 10 ** math.ceil(math.log10(max(finite))) * pad


# --- observed error against the allowed bound -------------------------------------------------
def _bound_panel(ax, group: list[dict], lo: float, hi: float) -> None:
    """One phase x dtype: the pass boundary y = x, the fail zone above it, each case once."""
    floor_y, top_y = lo * 1.5, hi / 1.5
    ax.plot([lo, hi], [lo, hi], color="#444444", linewidth=1, linestyle="--", label="error = bound")
    ax.fill_between([lo, hi], [lo, hi], [hi, hi], color=FAIL_COLOUR, alpha=0.06, linewidth=0)
    kinds = {"pass": [], "exact": [], "fail": []}
    for r in group:
        x, y = min(max(num(r["output"]["bound"]), lo), hi), num(r["output"]["max_abs_err"])
        kind = "fail" if r["verdict"] != "pass" else ("exact" if y == 0 else "pass")
        kinds[kind].append((x, top_y if not math.isfinite(y) else max(y, floor_y)))
    styles = {"pass": dict(s=30, c=PASS_COLOUR, marker="o", edgecolors="white", label="pass"),
              "exact": dict(s=40, facecolors="none", edgecolors=PASS_COLOUR, marker="o", label="exact (error 0)"),
              "fail": dict(s=90, c=FAIL_COLOUR, marker="X", edgecolors="black", label="fail")}
    for kind, points in kinds.items():
        if points:
            ax.scatter(*zip(*points), alpha=0.8, linewidths=0.6, zorder=3, **styles[kind])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    failing = len(kinds["fail"])
    ax.set_title(f"{group[0]['phase']} / {group[0]['dtype']}: {len(group)} case{'s' * (len(group) != 1)}"
                 + (f", {failing} failing" if failing else ""), fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.tick_params(labelsize=MIN_FONT_PT)


def _bound_legend(fig, axes, cols: int) -> int:
    """One legend under the panels (inside a panel it hid the fail zone): as many columns as fit."""
    handles = {}
    for ax in axes:
        handles.update(zip(*reversed(ax.get_legend_handles_labels())))
    ncol = len(handles) if cols > 1 else 2  # one 3.4-inch panel holds two entries a line
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=ncol, fontsize=MIN_FONT_PT,
               frameon=False)
    return math.ceil(len(handles) / ncol)


def error_vs_bound_figure(records: list[dict]):
    """Observed max error against the allowed bound, one log-log panel per phase x dtype, with the
    pass boundary y = x."""
    rows = _compared(records)
    if not rows:
        return None
    buckets: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        buckets.setdefault((r["phase"], r["dtype"]), []).append(r)
    keys = sorted(buckets, key=lambda k: bucket_key(*k))
    lo, hi = _log_range([num(r["output"]["bound"]) for r in rows] + [num(r["output"]["max_abs_err"]) for r in rows])
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    width, height = min(3.4 * cols + 1.0, MAX_WIDTH_IN), 3.0 * nrows + 1.4
    fig = _figure(width, height)
    axes = fig.subplots(nrows, cols, squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        _bound_panel(ax, buckets[key], lo, hi)
    for ax in axes[-1, :]:
        ax.set_xlabel("allowed bound", fontsize=MIN_FONT_PT)
    for ax in axes[:, 0]:
        ax.set_ylabel("observed max |out - golden|", fontsize=MIN_FONT_PT)
    legend_rows = _bound_legend(fig, axes.flat[: len(keys)], cols)
    fig.subplots_adjust(left=0.8 / width, right=1 - 0.2 / width, bottom=(0.6 + 0.22 * legend_rows) / height,
                        top=1 - 0.35 / height, wspace=0.12, hspace=0.35)
    return fig


def error_vs_bound_png(records: list[dict]) -> str | None:
    fig = error_vs_bound_figure(records)
    return _png(fig) if fig is not None else None


# --- error/tolerance ratios -------------------------------------------------------------------
def _edge_bars(ax, counts: dict[str, int], label: str) -> None:
    """A stacked bar per phase for the cases the log axis cannot place (error 0, or not finite)."""
    bottom = 0
    for phase, n in counts.items():
        ax.bar([0], [n], bottom=bottom, width=0.6, color=PHASE_COLOURS.get(phase, "#7f7f7f"), alpha=0.85)
        bottom += n
    ax.set_xlim(-0.6, 0.6)
    ax.set_xticks([0], [label], fontsize=MIN_FONT_PT)
    ax.tick_params(axis="y", labelleft=False, labelsize=MIN_FONT_PT)
    ax.grid(True, axis="y", alpha=0.3)


def _ratio_groups(rows: list[dict]) -> tuple[dict, dict, dict]:
    """Per phase: the positive finite ratios, the exact outputs (ratio 0), the non-finite ones."""
    values: dict[str, list[float]] = {}
    exact: dict[str, int] = {}
    nonfinite: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: bucket_key(r["phase"], "")):
        x = num(r["ratio"])
        values.setdefault(r["phase"], [])
        if not math.isfinite(x):
            nonfinite[r["phase"]] = nonfinite.get(r["phase"], 0) + 1
        elif x <= 0:
            exact[r["phase"]] = exact.get(r["phase"], 0) + 1
        else:
            values[r["phase"]].append(x)
    return values, exact, nonfinite


def ratio_histogram_figure(records: list[dict]):
    """Histogram of error/tolerance ratios (log-spaced bins) per phase, with the pass line at 1; exact
    outputs and non-finite ratios in bars of their own beside the log axis (clamped onto it, exact
    outputs read as a bar of real ratios near its left end)."""
    rows = _compared(records)
    if not rows:
        return None
    values, exact, nonfinite = _ratio_groups(rows)
    finite = [x for xs in values.values() for x in xs]
    lo, hi = min(finite + [1e-3]) / 1.5, max(finite + [2.0]) * 1.5
    fig = _figure(10.4, 3.8)
    ratios = [1] * bool(exact) + [14] + [1] * bool(nonfinite)
    grid = fig.add_gridspec(1, len(ratios), width_ratios=ratios, wspace=0.04, left=0.07, right=0.98, bottom=0.17,
                            top=0.9)
    axes = [fig.add_subplot(grid[0, i]) for i in range(len(ratios))]
    main = axes[1] if exact else axes[0]
    for ax in axes:
        if ax is not main:
            ax.sharey(main)
    phases = list(values)
    main.hist([values[p] for p in phases], bins=[lo * (hi / lo) ** (i / 40) for i in range(41)], stacked=True,
              label=[f"{p} ({len(values[p]) + exact.get(p, 0) + nonfinite.get(p, 0)})" for p in phases],
              color=[PHASE_COLOURS.get(p, "#7f7f7f") for p in phases], alpha=0.85)
    main.axvline(1.0, color=FAIL_COLOUR, linewidth=1.5, label="ratio 1 (tolerance)")
    main.axvspan(1.0, hi, color=FAIL_COLOUR, alpha=0.06)
    main.set_xscale("log")
    main.set_xlim(lo, hi)
    main.set_xlabel("error / tolerance ratio (worst of the max and mean rules)", fontsize=MIN_FONT_PT)
    main.set_title("Error / tolerance ratios: <= 1 passes", fontsize=10)
    main.legend(fontsize=MIN_FONT_PT, loc="upper left")
    main.grid(True, axis="y", alpha=0.3)
    main.tick_params(labelsize=MIN_FONT_PT)
    if exact:
        _edge_bars(axes[0], exact, "exact\n(error 0)")
        axes[0].tick_params(axis="y", labelleft=True)
        axes[0].set_ylabel("cases", fontsize=MIN_FONT_PT)
        main.tick_params(axis="y", labelleft=False)
    else:
        main.set_ylabel("cases", fontsize=MIN_FONT_PT)
    if nonfinite:
        _edge_bars(axes[-1], nonfinite, "NaN/Inf")
    return fig


def ratio_histogram_png(records: list[dict]) -> str | None:
    fig = ratio_histogram_figure(records)
    return _png(fig) if fig is not None else None


# --- Ascend benchmark standard ----------------------------------------------------------------
def _share(r: dict, metric: str) -> float:
    return num(r["ascend"]["ratios"][metric]) / r["ascend"]["limits"][metric]


def _missed(share: float) -> bool:
    return share > 1 or not math.isfinite(share)


def ascend_misses(records: list[dict]) -> list[tuple[dict, str, float]]:
    """(record, metric, ratio/limit) of every gating metric above its limit: the red X's of the plot."""
    return [(r, m, _share(r, m)) for r in records if r.get("ascend") for m in ASCEND_GATING if _missed(_share(r, m))]


def _jitter(r: dict, metric: str, i: int) -> float:
    return i + (zlib.crc32(f"{r['case_id']}/{metric}".encode()) % 1000 / 1000 - 0.5) * 0.6  # stable per case


def _ascend_points(ax, rows: list[dict], metrics: tuple, lo: float, hi: float, *, muted: bool) -> list[tuple]:
    """Every case's point per metric, coloured by dtype (grey when muted); returns the misses (x, y,
    case id) of gating metrics, drawn apart."""
    misses = []
    for dtype in sorted({r["dtype"] for r in rows}, key=lambda d: bucket_key("", d)):
        xs, ys = [], []
        for r in (r for r in rows if r["dtype"] == dtype):
            for i, m in enumerate(metrics):
                y = _share(r, m)
                point = (_jitter(r, m, i), hi / 1.2 if not math.isfinite(y) else max(y, lo * 1.2))
                if not muted and _missed(y):
                    misses.append((*point, r["case_id"]))
                else:
                    xs.append(point[0])
                    ys.append(point[1])
        colour = MUTED_COLOUR if muted else DTYPE_COLOURS.get(dtype, "#7f7f7f")
        ax.scatter(xs, ys, s=14, alpha=0.6, c=colour, linewidths=0, label=None if muted else dtype)
    return misses


def _mark_misses(ax, misses: list[tuple]) -> None:
    """Misses unmistakable: a large red X with a black edge over the small dtype dots (the caption under
    the image names their cases, each linked to its row)."""
    if misses:
        ax.scatter([m[0] for m in misses], [m[1] for m in misses], s=150, marker="X", c=FAIL_COLOUR,
                   edgecolors="black", linewidths=0.8, zorder=4, label=f"miss: above its limit ({len(misses)})")


def _ascend_axes(fig):
    grid = fig.add_gridspec(1, 2, width_ratios=[4, 1.25], wspace=0.22, left=0.075, right=0.985, bottom=0.21,
                            top=0.92)
    gating, reported = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    gating.set_label("gating")
    reported.set_label("reported")
    return gating, reported


def ascend_margins_figure(records: list[dict]):
    """Each Ascend metric's kernel/baseline ratio over its limit. The gating metrics share a panel with
    the limit at 1 and the fail zone above it; error balance, reported but never gating, sits in its own
    muted panel without either (its points above 1 looked like failures)."""
    rows = [r for r in records if r.get("ascend")]
    if not rows:
        return None
    finite = [x for r in rows for m in ASCEND_METRICS for x in [_share(r, m)] if math.isfinite(x) and x > 0]
    lo, hi = min(finite + [1e-3]) / 2, max(finite + [2.0]) * 2
    fig = _figure(10.8, 4.2)
    gating, reported = _ascend_axes(fig)
    misses = _ascend_points(gating, rows, ASCEND_GATING, lo, hi, muted=False)
    _ascend_points(reported, rows, ASCEND_REPORTED, lo, hi, muted=True)
    gating.axhline(1.0, color=FAIL_COLOUR, linewidth=1.5, label="limit")
    gating.axhspan(1.0, hi, color=FAIL_COLOUR, alpha=0.06)
    _mark_misses(gating, misses)
    for ax, metrics in ((gating, ASCEND_GATING), (reported, ASCEND_REPORTED)):
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        ax.set_xlim(-0.6, len(metrics) - 0.4)
        ax.set_xticks(range(len(metrics)), list(metrics), fontsize=MIN_FONT_PT)
        ax.tick_params(labelsize=MIN_FONT_PT)
        ax.grid(True, axis="y", alpha=0.3)
    gating.set_ylabel("ratio / limit", fontsize=MIN_FONT_PT)
    gating.set_title(f"Gating metrics ({len(rows)} cases): above 1 misses", fontsize=10)
    reported.set_title("eb: reported, not gating", fontsize=10, color="#57606a")
    gating.legend(fontsize=MIN_FONT_PT, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=6, frameon=False)
    return fig


def ascend_margins_png(records: list[dict]) -> str | None:
    fig = ascend_margins_figure(records)
    return _png(fig) if fig is not None else None
