"""The plots say what they show: the Ascend plot keeps the reported-only metric (EB) apart from the gating
ones, without a fail zone, and marks each miss; the histogram gives exact outputs a bar of their own
instead of a bar near 1e-3; every text fits inside its figure (with one, two or nine panels) and is at
least 12 px tall where the page shows it."""

from __future__ import annotations

import copy

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from sample_report import sample_records  # tests/ is on sys.path

from conformance.formatting import num
from conformance.report import plots

FIGURES = (plots.error_vs_bound_figure, plots.ratio_histogram_figure, plots.ascend_margins_figure)


@pytest.fixture(scope="module")
def records():
    return sample_records()


def _subsets(records):
    one = [r for r in records if (r["phase"], r["dtype"]) == ("prefill", "float16")]
    two = [r for r in records if r["phase"] == "prefill" and r["dtype"] != "float32"]
    exact = copy.deepcopy(one)
    for r in exact[:3]:  # exact outputs: error 0, ratio 0
        r["ratio"], r["output"]["max_abs_err"] = 0.0, 0.0
    return {"one panel": one, "two panels": two, "nine panels": records, "exact outputs": exact}


def _drawn(fig):
    FigureCanvasAgg(fig).draw()
    return fig


def _cut(fig, renderer) -> list[str]:
    """The texts past the figure's edge (for the failure message; it also lists tick labels out of view,
    which are not drawn)."""
    box, cut = fig.bbox, []
    for text in fig.findobj(Text):
        extent = text.get_window_extent(renderer)
        if text.get_text().strip() and (extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1
                                        or extent.y1 > box.y1 + 1):
            cut.append(repr(text.get_text()))
    return cut


@pytest.mark.parametrize("subset", ["one panel", "two panels", "nine panels", "exact outputs"])
@pytest.mark.parametrize("figure", FIGURES, ids=lambda f: f.__name__)
def test_every_text_fits_inside_its_figure_and_is_legible(records, figure, subset):
    fig = _drawn(figure(_subsets(records)[subset]))
    renderer = fig.canvas.get_renderer()
    assert fig.get_figwidth() <= plots.MAX_WIDTH_IN  # shown at full size in the page's 1144 px column
    drawn, whole = fig.get_tightbbox(renderer), fig.bbox_inches  # everything drawn (ticks in view only)
    assert (drawn.x0 >= -0.01 and drawn.y0 >= -0.01 and drawn.x1 <= whole.x1 + 0.01
            and drawn.y1 <= whole.y1 + 0.01), f"cut at the edge: {_cut(fig, renderer)}"
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip():
            assert text.get_fontsize() * fig.dpi / 72 >= 12, f"tiny: {text.get_text()!r} at {text.get_fontsize()} pt"


def test_ascend_plot_keeps_reported_metrics_apart_and_marks_misses(records):
    fig = _drawn(plots.ascend_margins_figure(records))
    gating = next(ax for ax in fig.axes if ax.get_label() == "gating")
    reported = next(ax for ax in fig.axes if ax.get_label() == "reported")
    assert [t.get_text() for t in gating.get_xticklabels()] == list(plots.ASCEND_GATING)
    assert [t.get_text() for t in reported.get_xticklabels()] == ["eb"]
    assert "reported, not gating" in reported.get_title()
    assert not reported.patches and not reported.lines  # no fail zone, no limit line
    assert gating.patches and any(list(line.get_ydata()) == [1, 1] for line in gating.lines)
    misses = plots.ascend_misses(records)
    assert sorted((r["case_id"], m) for r, m, _ in misses) == sorted(
        (r["case_id"], m) for r in records if r.get("ascend") for m in plots.ASCEND_GATING
        if num(r["ascend"]["ratios"][m]) > r["ascend"]["limits"][m])
    marked = next(c for c in gating.collections if str(c.get_label()).startswith("miss"))
    assert len(marked.get_offsets()) == len(misses) == 2
    others = [c for c in gating.collections if c is not marked]
    assert min(marked.get_sizes()) > 5 * max(s for c in others for s in c.get_sizes())
    assert all(y <= 1 for c in others for _, y in c.get_offsets())  # every point above the limit is a marked miss


def test_histogram_gives_exact_outputs_a_bar_of_their_own(records):
    subset = _subsets(records)["exact outputs"]
    fig = _drawn(plots.ratio_histogram_figure(subset))
    labels = {t.get_text() for ax in fig.axes for t in ax.get_xticklabels()}
    assert "exact\n(error 0)" in labels
    exact_ax = next(ax for ax in fig.axes if [t.get_text() for t in ax.get_xticklabels()] == ["exact\n(error 0)"])
    assert sum(p.get_height() for p in exact_ax.patches) == 3
    log_ax = next(ax for ax in fig.axes if ax.get_xscale() == "log")
    positive = sum(1 for r in subset if 0 < num(r["ratio"]) < float("inf"))
    bars = [p.get_height() for bars in log_ax.containers for p in bars]
    assert sum(bars) == positive  # no exact output among the log axis's bars
