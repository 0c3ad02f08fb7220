"""The report's plots, drawn with matplotlib's Agg canvas (no pyplot, no global backend change)
and returned as base64 PNG for embedding in the self-contained HTML."""

from __future__ import annotations

import base64
import io
import math
import zlib

from conformance.report.model import bucket_key
from conformance.formatting import num

PASS_COLOUR, FAIL_COLOUR = "#2b7bb9", "#d62728"
PHASE_COLOURS = {"prefill": "#2b7bb9", "decode_eager": "#ff7f0e", "decode_graph": "#2ca02c"}


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _compared(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("output") and r.get("ratio") is not None]


def error_vs_bound_png(records: list[dict]) -> str | None:
    """Observed max error against the allowed bound, one log-log panel per phase x dtype, with the
    pass boundary y = x. Exact outputs (error 0) sit on the bottom edge, non-finite ones on the top."""
    rows = _compared(records)
    if not rows:
        return None
    buckets: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        buckets.setdefault((r["phase"], r["dtype"]), []).append(r)
    keys = sorted(buckets, key=lambda k: bucket_key(*k))
    bounds = [num(r["output"]["bound"]) for r in rows]
    errs = [num(r["output"]["max_abs_err"]) for r in rows]
    finite = [x for x in bounds + errs if x is not None and math.isfinite(x) and x > 0]
    lo = 10 ** math.floor(math.log10(min(finite))) / 10 if finite else 1e-8
    hi = 10 ** math.ceil(math.log10(max(finite))) * 10 if finite else 1.0
    floor_y, top_y = lo * 1.5, hi / 1.5

    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    width, height = 3.6 * cols + 0.8, 3.1 * nrows + 0.9
    fig = _figure(width, height)
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.15 / width, bottom=0.6 / height, top=1 - 0.55 / height,
                        wspace=0.12, hspace=0.32)
    axes = fig.subplots(nrows, cols, squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        group = buckets[key]
        ax.plot([lo, hi], [lo, hi], color="#444444", linewidth=1, linestyle="--", label="error = bound")
        ax.fill_between([lo, hi], [lo, hi], [hi, hi], color=FAIL_COLOUR, alpha=0.06, linewidth=0)
        for verdict, colour, marker in (("pass", PASS_COLOUR, "o"), ("fail", FAIL_COLOUR, "X")):
            xs, ys = [], []
            for r in group:
                if r["verdict"] != verdict:
                    continue
                x, y = num(r["output"]["bound"]), num(r["output"]["max_abs_err"])
                y = top_y if not math.isfinite(y) else max(y, floor_y)
                xs.append(min(max(x, lo), hi))
                ys.append(y)
            if xs:
                ax.scatter(xs, ys, s=22 if verdict == "pass" else 55, c=colour, marker=marker, alpha=0.75,
                           edgecolors="white" if verdict == "pass" else "black", linewidths=0.4,
                           label=f"{verdict} ({len(xs)})", zorder=3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_title(f"{key[0]} / {key[1]}  ({len(group)} cases)", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    for ax in axes[-1, :]:
        ax.set_xlabel("allowed bound (max |out - golden|)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("observed max |out - golden|", fontsize=8)
    fig.suptitle("Observed max error against the allowed bound: above the dashed line fails; red X = failing case "
                 "(also by the mean rule or a cache check); exact outputs sit on the bottom edge", fontsize=9)
    return _png(fig)


def ratio_histogram_png(records: list[dict]) -> str | None:
    """Histogram of error/tolerance ratios (log-spaced bins) per phase, with the pass line at 1."""
    rows = _compared(records)
    if not rows:
        return None
    values: dict[str, list[float]] = {}
    for r in rows:
        values.setdefault(r["phase"], []).append(num(r["ratio"]))
    finite = [x for xs in values.values() for x in xs if math.isfinite(x) and x > 0]
    lo = min(finite + [1e-3]) / 1.5
    hi = max(finite + [2.0]) * 1.5
    nonfinite = sum(1 for xs in values.values() for x in xs if not math.isfinite(x))
    edges = [lo * (hi / lo) ** (i / 40) for i in range(41)]
    fig = _figure(10.4, 3.6)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16, top=0.9)
    ax = fig.subplots()
    phases = sorted(values, key=lambda p: bucket_key(p, ""))
    data = [[min(max(x, lo * 1.01), hi / 1.01) if math.isfinite(x) else hi / 1.01 for x in values[p]]
            for p in phases]
    ax.hist(data, bins=edges, stacked=True, label=[f"{p} ({len(values[p])})" for p in phases],
            color=[PHASE_COLOURS.get(p, "#7f7f7f") for p in phases], alpha=0.85)
    ax.axvline(1.0, color=FAIL_COLOUR, linewidth=1.5, label="ratio 1 (tolerance)")
    ax.axvspan(1.0, hi, color=FAIL_COLOUR, alpha=0.06)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("error / tolerance ratio (worst of the max and mean rules; exact outputs at the left edge"
                  + (f"; {nonfinite} non-finite at the right edge" if nonfinite else "") + ")", fontsize=8)
    ax.set_ylabel("cases")
    ax.set_title("Error / tolerance ratios: <= 1 passes", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)


ASCEND_METRICS = ("max_rel_err", "mean_rel_err", "rmse", "small_value_err_ratio", "eb")
DTYPE_COLOURS = {"float16": "#2b7bb9", "bfloat16": "#ff7f0e", "float32": "#2ca02c"}


def ascend_margins_png(records: list[dict]) -> str | None:
    """Each Ascend benchmark-standard metric's kernel/baseline ratio divided by its limit, one column of
    points per metric (jittered, coloured by dtype), with the limit at 1: the margin each metric leaves."""
    rows = [r for r in records if r.get("ascend")]
    if not rows:
        return None
    fig = _figure(10.4, 3.8)
    fig.subplots_adjust(left=0.07, right=0.82, bottom=0.17, top=0.9)
    ax = fig.subplots()
    values = [num(r["ascend"]["ratios"][m]) / r["ascend"]["limits"][m] for r in rows for m in ASCEND_METRICS]
    finite = [x for x in values if math.isfinite(x) and x > 0]
    lo, hi = min(finite + [1e-3]) / 2, max(finite + [2.0]) * 2
    for dtype in sorted({r["dtype"] for r in rows}, key=lambda d: bucket_key("", d)):
        xs, ys = [], []
        for r in (r for r in rows if r["dtype"] == dtype):
            for i, m in enumerate(ASCEND_METRICS):
                y = num(r["ascend"]["ratios"][m]) / r["ascend"]["limits"][m]
                xs.append(i + (zlib.crc32(f"{r['case_id']}/{m}".encode()) % 1000 / 1000 - 0.5) * 0.6)  # stable jitter
                ys.append(hi / 1.2 if not math.isfinite(y) else max(y, lo * 1.2))
        ax.scatter(xs, ys, s=10, alpha=0.6, c=DTYPE_COLOURS.get(dtype, "#7f7f7f"), label=dtype, linewidths=0)
    ax.axhline(1.0, color=FAIL_COLOUR, linewidth=1.5, label="limit")
    ax.axhspan(1.0, hi, color=FAIL_COLOUR, alpha=0.06)
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.set_xticks(range(len(ASCEND_METRICS)), [m + (" (not gating)" if m == "eb" else "") for m in ASCEND_METRICS],
                  fontsize=8)
    ax.set_ylabel("ratio / limit", fontsize=8)
    ax.set_title(f"Ascend benchmark standard: kernel/baseline ratio over its limit, per metric ({len(rows)} "
                 "cases; a metric at 0 sits on the bottom edge)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: points reach every corner
    ax.grid(True, axis="y", alpha=0.3)
    return _png(fig)
