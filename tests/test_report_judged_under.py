"""`report merge` and `diff` compare like with like: every setting that decides a verdict is compared, and a
`--mix` merge stays mixed when it is merged or diffed again."""

from __future__ import annotations

import copy

import pytest
from sample_report import sample_report

from conformance.report.judged_under import differences, judged_under
from conformance.report.merge import merge_reports


@pytest.mark.parametrize(("label", "change"), [
    ("backend", lambda run: run.update(backend="npu")),
    ("tolerance policy", lambda run: run["tolerance_policy"].update(k=0.5)),
    ("planted bug", lambda run: run.update(planted="decode_newest_token_dropped")),
    ("shape space", lambda run: run.update(shape_space="npu")),
    ("emulated CANN", lambda run: run.update(cann_emulated={"version": "9.0.0"})),
    ("strict contracts", lambda run: run.update(strict_contracts=not run.get("strict_contracts", False))),
    ("graph mode", lambda run: run.update(graph_mode="reduce-overhead")),
])
def test_each_setting_that_decides_a_verdict_is_compared(label, change):
    a = sample_report()
    b = copy.deepcopy(a)
    change(b["run"])
    assert differences([a, a], ["a", "a"]) == []
    [line] = differences([a, b], ["a.json", "b.json"])
    assert line.startswith(f"{label}: ") and "a.json" in line and "b.json" in line


def test_a_different_acknowledgement_ledger_is_a_difference_wherever_its_file_was():
    a = sample_report()
    b = copy.deepcopy(a)
    b["run"]["acknowledgements_source"] = "/elsewhere/acknowledged_hazards.toml"
    assert differences([a, b], ["a", "b"]) == [], "the same entries from another path judge alike"
    b["acknowledgements"] = b["acknowledgements"][1:]
    assert [line.split(":")[0] for line in differences([a, b], ["a", "b"])] == ["acknowledgements"]


def test_a_mixed_merge_stays_mixed_when_merged_or_compared_again():
    a = sample_report()
    b = copy.deepcopy(a)
    b["run"]["tolerance_policy"]["k"] = 0.5
    mixed = merge_reports([a, b], sources=["a", "b"])
    assert judged_under(mixed)["tolerance policy"].startswith("mixed: ")
    assert [line.split(":")[0] for line in differences([mixed, a], ["mixed", "a"])] == ["tolerance policy"]
    alike = merge_reports([a, copy.deepcopy(a)], sources=["a", "a2"])
    assert differences([alike, a], ["alike", "a"]) == []


def test_a_mixed_merge_says_so_in_report_html_and_summary_md():
    from conformance.report.html import render_html
    from conformance.report.markdown import render_markdown

    a = sample_report()
    b = copy.deepcopy(a)
    b["run"]["graph_mode"] = "reduce-overhead"
    mixed = merge_reports([a, b], sources=["node1/report.json", "node2/report.json"])
    for text in (render_html(mixed), render_markdown(mixed).replace("\\|", "|")):  # markdown escapes the pipe
        assert "merged with --mix from node1/report.json, node2/report.json" in text
        assert "graph mode mixed: max-autotune | reduce-overhead" in text
    alike = merge_reports([a, copy.deepcopy(a)], sources=["n1", "n2"])
    assert "merged with --mix" not in render_markdown(alike)
