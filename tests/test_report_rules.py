"""A failing case's row names the rules it broke without being expanded: a case failed by the mean rule
alone (its max error under the bound) says "mean rule", a NaN output "NaN", a cache "cache v_cache",
and a standard that only reports is marked "(reported)"."""

from __future__ import annotations

import random
import re

import pytest
from sample_report import _record, _run, sample_records, sample_tests  # tests/ is on sys.path

from conformance.report import build_report, render_html, render_markdown
from conformance.report.model import failed_rules

PREFILL_TEST = "conformance/suite/test_prefill.py::test_prefill_output_and_cache_write"


@pytest.fixture(scope="module")
def report():
    """The sample's cases, plus one failed by the mean rule only: max error at half its bound."""
    mean_only = _record(random.Random(2), 960, "prefill", "float16", PREFILL_TEST, 0.5, mean_ratio=1.4)
    assert mean_only["output"]["max_abs_err"] < mean_only["output"]["bound"] and mean_only["verdict"] == "fail"
    records = sample_records() + [mean_only]
    return build_report(_run(True), records, sample_tests(records), complete=True)


def _collapsed_row(html: str, case_id: str) -> str:
    """The case's own row in Worst cases (what shows before anything is expanded)."""
    section = html[html.index("<h2>Worst cases"):html.index("<h2>Hazards")]
    rows = re.findall(r"<tr[^>]*>.*?</tr>", section, re.S)
    return next(row for row in rows if f"<code>{case_id}</code><br>" in row and "<details>" not in row)


def _case(report: dict, **where) -> dict:
    return next(r for r in report["records"] if all(r.get(k) == v for k, v in where.items()))


def _rules(report: dict, case: dict) -> dict[str, bool]:
    return {x["rule"]: x["gating"] for x in failed_rules(case)}


def test_failed_rules_name_each_broken_rule(report):
    assert _rules(report, _case(report, ratio=1.4)) == {"mean rule": True}
    nan = _case(report, ratio="inf")
    assert _rules(report, nan) == {"NaN": True, "Ascend: NaN": False}  # the Ascend standard reports, not gates
    assert _rules(report, _case(report, ratio=3.4))["max rule"] is True
    assert _rules(report, _case(report, failed_checks=["v_cache"])) == {"cache v_cache": True}
    assert _rules(report, _case(report, failed_checks=["hazards"])) == {"hazard fia/mask-content": True}
    assert _rules(report, _case(report, failed_checks=["determinism"])) == {"nondeterministic": True}
    miss = _case(report, verdict="pass", ascend_ratio=1.3)
    assert list(_rules(report, miss).values()) == [False] and next(iter(_rules(report, miss))).startswith("Ascend: ")
    assert _rules(report, _case(report, verdict="error")) == {"error": True}


def test_the_collapsed_row_names_the_failed_rules(report):
    html = render_html(report)
    mean_only = _collapsed_row(html, _case(report, ratio=1.4)["case_id"])
    assert "mean rule" in mean_only and "max rule" not in mean_only
    for where, shown in (({"ratio": "inf"}, ["NaN", "Ascend: NaN (reported)"]),
                         ({"failed_checks": ["v_cache"]}, ["cache v_cache"]),
                         ({"failed_checks": ["hazards"]}, ["hazard fia/mask-content"]),
                         ({"failed_checks": ["determinism"]}, ["nondeterministic"]),
                         ({"verdict": "pass", "ascend_ratio": 1.3}, ["(reported)"])):
        row = _collapsed_row(html, _case(report, **where)["case_id"])
        assert all(text in row for text in shown), (where, row)


def test_summary_md_names_the_failed_rules(report):
    md = render_markdown(report)
    row = next(line for line in md.splitlines() if f"`{_case(report, ratio=1.4)['case_id']}`" in line
               and line.startswith("| fail |"))
    assert "| mean rule |" in row
