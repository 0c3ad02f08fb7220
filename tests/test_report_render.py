"""summary.md and report.html rendered from the synthetic report (failures, an error, hazards, skips,
incomplete), and `npu-conformance report` re-rendering from JSON."""

from __future__ import annotations

import base64
import copy
import re

import pytest
from sample_report import sample_report  # tests/ is on sys.path

from conformance import cli
from conformance.formatting import fmt_ratio
from conformance.report import dumps, render_html, render_markdown
from conformance.report.model import failures_first


@pytest.fixture(scope="module")
def report():
    return sample_report(complete=True)


@pytest.fixture(scope="module")
def incomplete():
    return sample_report(complete=False)


def _failing(report):
    return [r for r in failures_first(report["records"]) if r["verdict"] != "pass"]


@pytest.fixture(scope="module")
def html(report):
    return render_html(report)


# --- summary.md -------------------------------------------------------------------------------
def test_markdown_has_verdict_metadata_bucket_table_failures_and_hazards(report):
    md = render_markdown(report)
    lines = md.splitlines()
    assert lines[0] == f"## ❌ npu-conformance: {report['verdict']['reason']}"
    assert "backend `emulated`" in md and "profile `dev`" in md and "seed 1234" in md and "commit `0123456789`" in md
    header = ("| phase | dtype | cases | passed | failed | errors | worst error/tolerance | worst Ascend margin "
              "| outside Ascend std | nondeterministic | worst case |")
    table = lines[lines.index(header) + 2: lines.index(header) + 2 + len(report["summaries"])]
    assert len(table) == 9  # 3 phases x 3 dtypes
    for row, s in zip(table, report["summaries"]):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:3] == [s["phase"], s["dtype"], str(s["cases"])]
        assert cells[6].strip("*") == fmt_ratio(s["worst_ratio"])
        assert cells[7] == fmt_ratio(s["worst_ascend_ratio"])
        assert cells[8:10] == [str(s["ascend_failed"]), str(s["nondeterministic"])]
    bad_row = next(r for r in table if r.startswith("| decode_eager | bfloat16 |"))
    assert "**1**" in bad_row and "**3.400**" in bad_row
    # Top failures: the failing and erroring case ids, worst first.
    assert "### Top failures (6 of 6)" in md
    top = md[md.index("### Top failures"):]
    ids = [r["case_id"] for r in _failing(report)]
    assert all(f"`{i}`" in top for i in ids)
    inf_case = next(r["case_id"] for r in _failing(report) if r["ratio"] == "inf")
    assert top.index(inf_case) < top.index(next(r["case_id"] for r in _failing(report) if r["ratio"] == 3.4))
    assert "ContractViolation: torch_npu.scatter_update_" in top
    # Hazards are counted by kind, the failing ones apart from the acknowledged ones; notes on their own.
    assert "### Hazards that failed their cases (1 in 1 kind(s))" in md
    assert "unacknowledged hazard fia/mask-content" in top
    assert ("| `scu/overlapping-targets` | `torch_npu.scatter_update_` | indices | duplicate (overlapping) targets: "
            "the result at repeated positions is not guaranteed | 6 | 6 | no | graph-padding-dummy-slot |") in md
    assert md.index("### Acknowledged hazards (6 in 1 kind(s))") < md.index("### Notes (informational) (6 in 1")
    assert "**Stale acknowledgements** (matched nothing in this full run): `old-entry`" in md
    # Skipped tests are listed with their reason; no incomplete banner on a complete run.
    assert "needs a real NPU: run with --backend npu on an Ascend machine" in md
    assert "Incomplete report" not in md


def test_markdown_marks_an_incomplete_run(incomplete):
    md = render_markdown(incomplete)
    assert md.startswith("## ⚠️ npu-conformance: INCOMPLETE: interrupted (KeyboardInterrupt)")
    assert "> **Incomplete report**: interrupted (KeyboardInterrupt)." in md


def test_markdown_cells_cannot_break_the_table(report):
    r = copy.deepcopy(report)
    r["hazards"][0]["rule"] = "a | b\nnext line"
    md = render_markdown(r)
    row = next(line for line in md.splitlines() if "a \\| b next line" in line)
    assert row.count(" | ") == 7


def test_markdown_of_an_empty_run_says_no_case_was_compared(report):
    r = copy.deepcopy(report)
    r.update(records=[], summaries=[], hazards=[])
    assert "_No case was compared._" in render_markdown(r)


# --- report.html ------------------------------------------------------------------------------
def test_html_is_self_contained_with_three_png_plots(report, html):
    assert html.startswith("<!DOCTYPE html>") and "<title>npu-conformance tolerance report: failed</title>" in html
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    assert [alt for alt, _ in images] == ["Observed error against allowed bound per phase and dtype",
                                          "Histogram of error/tolerance ratios",
                                          "Ascend benchmark-standard ratios per metric, against their limits"]
    for _, data in images:
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # Nothing to fetch: no scripts, no external URLs, no linked stylesheets.
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_html_lists_failures_first_with_their_localisation(report, html):
    section = html[html.index("<h2>Worst cases"):html.index("<h2>Hazards")]
    verdicts = re.findall(r'<tr class="(bad|err|)"><td><span class="tag t-(\w+)">', section)
    kinds = [v for _, v in verdicts]
    assert kinds[:6] == ["fail"] * 5 + ["error"] and set(kinds[6:]) == {"pass"}
    worst = _failing(report)[0]
    assert worst["ratio"] == "inf"
    assert (f'seq&nbsp;{worst["output"]["worst_seq"]} head&nbsp;{worst["output"]["worst_head"]}'
            in section.split(worst["case_id"])[0].rsplit("<tr", 2)[-1])
    assert "1 row(s) hold NaN/Inf (first: row 3)" in section  # the reasons and worst values are in the details
    assert "v_cache: fail (2/256 slots differ)" in section
    assert "npu-conformance replay conformance-report/failures/decode_graph-0904deadbeef.json" in section


def test_html_hazards_table_is_deduplicated_with_counts(report, html):
    section = html[html.index("<h2>Hazards"):html.index("<h2>Tests")]
    failing = section[section.index("<h3>Hazards that failed"):section.index("<h3>Acknowledged hazards")]
    accepted = section[section.index("<h3>Acknowledged hazards"):section.index("<h3>Notes")]
    notes = section[section.index("<h3>Notes"):section.index("<h3>Acknowledgement ledger")]
    ledger = section[section.index("<h3>Acknowledgement ledger"):]
    assert failing.count('<tr class="bad">') == 1 and "fia/mask-content" in failing
    assert accepted.count("<tr class=") == 1 and "graph-padding-dummy-slot" in accepted
    assert '<td class="n">6</td><td class="n">6</td><td>decode_graph</td><td>sourced</td>' in accepted
    assert "fia/bf16-inner-precise" in notes and '<td class="n">6</td><td class="n">6</td><td>prefill</td>' in notes
    assert ledger.count('<tr class="bad">') == 1 and "stale" in ledger


def test_html_summary_banner_tests_and_escaping(report):
    r = copy.deepcopy(report)
    r["tests"][0]["test_id"] = "suite/test_x.py::test_<script>alert(1)</script>"
    html = render_html(r)
    assert '<div class="banner failed">FAILED: 3 of 65 cases out of tolerance' in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    tests = html[html.index("<h2>Tests"):]
    outcomes = re.findall(r'<span class="tag t-\w+">(\w+)</span>', tests)
    assert outcomes == ["failed", "failed", "failed", "skipped", "passed"]
    assert "needs a real NPU: run with --backend npu on an Ascend machine" in tests
    assert "INCOMPLETE REPORT" not in html


def test_html_shows_the_incomplete_banner(incomplete):
    html = render_html(incomplete)
    assert '<div class="banner incomplete">INCOMPLETE: interrupted (KeyboardInterrupt)' in html
    assert "<b>INCOMPLETE REPORT</b>: interrupted (KeyboardInterrupt)" in html


def test_html_of_an_empty_run_has_no_plots_and_says_so(report):
    r = copy.deepcopy(report)
    r.update(records=[], summaries=[], hazards=[], tests=[])
    html = render_html(r)
    assert "<img" not in html and "No case was compared" in html and "No compared case to plot" in html


# --- npu-conformance report -------------------------------------------------------------------
def test_report_command_rerenders_html_and_markdown(tmp_path, report, html, capsys):
    src = tmp_path / "report.json"
    src.write_text(dumps(report), encoding="utf-8")
    code = cli.main(["report", str(src), "--html", str(tmp_path / "again.html"), "--md", str(tmp_path / "again.md")])
    assert code == 0
    assert (tmp_path / "again.html").read_text(encoding="utf-8") == html
    assert (tmp_path / "again.md").read_text(encoding="utf-8") == render_markdown(report)
    assert capsys.readouterr().out.startswith(report["verdict"]["reason"])


def test_report_command_rejects_invalid_input_clearly(tmp_path, report, capsys):
    broken = copy.deepcopy(report)
    broken["records"][0]["verdict"] = "maybe"
    src = tmp_path / "report.json"
    src.write_text(dumps(broken), encoding="utf-8")
    assert cli.main(["report", str(src), "--html", str(tmp_path / "x.html")]) == 2
    err = capsys.readouterr().err
    assert "is not a valid schema-v2 npu-conformance report" in err and "at records/0/verdict" in err
    assert not (tmp_path / "x.html").exists()
    assert cli.main(["report", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err
