"""Every count names its cases: the banner's and the summary table's counts link (report.html) or name
(summary.md) the cases they count, each standard has its own worst case per phase x dtype, and a case
outside a reported standard is listed even when its dual-reference ratio is far from the bound."""

from __future__ import annotations

import random
import re

import pytest
from sample_report import _record, _run, sample_records, sample_report, sample_tests  # tests/ is on sys.path

from conformance.report import build_report, render_html, render_markdown
from conformance.report.model import bucket_cases, standard_worsts

PREFILL_TEST = "conformance/suite/test_prefill.py::test_prefill_output_and_cache_write"


@pytest.fixture(scope="module")
def report():
    return sample_report(complete=True)


@pytest.fixture(scope="module")
def passing_with_a_miss():
    """A green run whose one case outside the Ascend standard (not gating) has a dual ratio of 0.01: far
    from the bound, so a list ranked by the dual ratio alone never shows it."""
    records = [r for r in sample_records() if r["verdict"] == "pass" and r["verdicts"]["ascend"] == "pass"]
    miss = _record(random.Random(1), 950, "decode_eager", "float16", PREFILL_TEST, 0.01, ascend_margin=1.2)
    report = build_report(_run(True), records + [miss], sample_tests(records + [miss]), complete=True)
    assert report["verdict"]["status"] == "passed"
    assert report["verdict"]["reason"].endswith("; 1 outside the Ascend benchmark standard (reported, not gating)")
    return report, miss["case_id"]


def _banner(html: str) -> str:
    return html[html.index('<div class="banner'):html.index("<h2>Run</h2>")]


def _summary_row(html: str, phase: str, dtype: str) -> str:
    table = html[html.index('<table class="summary">'):]
    table = table[:table.index("</table>")]
    return re.search(rf'<tr class="[^"]*"><td>{phase}</td><td>{dtype}</td>.*?</tr>', table, re.S)[0]


def test_every_link_on_the_page_leads_to_a_listed_case(report):
    html = render_html(report)
    targets = set(re.findall(r'href="#([^"]+)"', html))
    ids = set(re.findall(r' id="([^"]+)"', html))
    assert targets and targets <= ids, f"links to nowhere: {sorted(targets - ids)}"


def test_the_banner_links_every_case_it_counts(report):
    html = render_html(report)
    banner = _banner(html)
    linked = re.findall(r'href="#case-(\w+)"', banner)
    failing = [r["case_id"] for r in report["records"] if r["verdict"] != "pass"]
    assert set(failing) <= set(linked)  # out of tolerance, nondeterministic, hazard, error: each case named
    nondeterministic = next(r["case_id"] for r in report["records"] if r["failed_checks"] == ["determinism"])
    assert re.search(rf"within tolerance but nondeterministic \(1\): <a href=\"#case-{nondeterministic}\">", banner)


def test_a_passing_runs_reported_miss_is_linked_listed_and_named(passing_with_a_miss):
    report, miss = passing_with_a_miss
    html = render_html(report)
    assert f'href="#case-{miss}"' in _banner(html)
    assert f'id="case-{miss}"' in html  # its row is in Worst cases, though its dual ratio is 0.01
    row = html[:html.index(f'id="case-{miss}"')].rsplit("<tr", 1)[-1]
    assert "(reported)" in row and "Ascend: " in row
    md = render_markdown(report)
    assert md.splitlines()[2].startswith("Counted: outside the Ascend benchmark standard (reported, not gating) "
                                         f"(1): `{miss}`")
    assert md.count(f"`{miss}`") >= 3  # the counted line, its bucket's line, the table of reported misses


def test_each_standard_has_its_own_worst_case_per_bucket(report):
    records = [r for r in report["records"] if (r["phase"], r["dtype"]) == ("prefill", "float16")]
    worst = standard_worsts(records)
    assert worst["dual"]["case_id"] != worst["ascend"]["case_id"]  # the 0.712 dual ratio; the 1.300 Ascend margin
    assert worst["ascend"]["ascend_ratio"] == 1.3 and worst["ascend"]["verdicts"]["ascend"] == "fail"
    html = render_html(report)
    row = _summary_row(html, "prefill", "float16")
    assert f'href="#case-{worst["dual"]["case_id"]}"' in row and f'href="#case-{worst["ascend"]["case_id"]}"' in row
    md = render_markdown(report)
    line = next(x for x in md.splitlines() if x.startswith("- prefill / float16:"))
    assert f"worst dual reference `{worst['dual']['case_id']}` 0.712" in line
    assert f"worst Ascend margin `{worst['ascend']['case_id']}` 1.300" in line
    assert f"outside Ascend std `{worst['ascend']['case_id']}`" in line


def test_every_summary_count_lists_the_cases_it_counts(report):
    html = render_html(report)
    for (phase, dtype), info in bucket_cases(report["records"]).items():
        row = _summary_row(html, phase, dtype)
        for group in ("failed", "errors", "ascend_failed", "nondeterministic", "hazards"):
            for r in info["groups"][group]:
                assert f'href="#case-{r["case_id"]}"' in row, (phase, dtype, group)
    # nondeterministic cases are named in their bucket's line of summary.md
    md = render_markdown(report)
    line = next(x for x in md.splitlines() if x.startswith("- decode_eager / float16:"))
    case = next(r["case_id"] for r in report["records"] if r["verdicts"].get("determinism") == "fail")
    assert f"nondeterministic `{case}`" in line
