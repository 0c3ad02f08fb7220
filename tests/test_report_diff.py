"""`npu-conformance diff`: identical reports pass (exit 0); on matched cases an injected ratio growth above
10 % or a new failure is a regression, as are a new failing test, a new unacknowledged hazard and an
incomplete NEW report (exit 1); two all-passing samples of different cases never are."""

from __future__ import annotations

import copy

import pytest
from sample_report import _run, sample_records, sample_tests  # tests/ is on sys.path

from conformance import cli
from conformance.report import build_report, diff_reports, dumps

BUCKET = ("decode_eager", "float16")


def _green() -> dict:
    records = [r for r in sample_records() if r["verdict"] == "pass"]
    tests = [dict(t, outcome="passed", reason=None) if t["outcome"] == "failed" else t for t in sample_tests(records)]
    return build_report(_run(True), records, tests, complete=True)


def _rebuild(report: dict, records=None, tests=None, complete=True) -> dict:
    return build_report(report["run"], report["records"] if records is None else records,
                        report["tests"] if tests is None else tests, complete=complete,
                        incomplete_reason=None if complete else "interrupted (KeyboardInterrupt)")


def _scale_bucket_worst(report: dict, factor: float) -> dict:
    records = copy.deepcopy(report["records"])
    worst = max((r for r in records if (r["phase"], r["dtype"]) == BUCKET), key=lambda r: r["ratio"])
    worst["ratio"] *= factor
    return _rebuild(report, records)


@pytest.fixture
def old():
    return _green()


def test_identical_reports_have_no_regression(old):
    d = diff_reports(old, copy.deepcopy(old))
    assert not d.regressed and d.regressions == []
    assert len(d.buckets) == 9 and all(b["growth"] == 0.0 for b in d.buckets)
    assert d.same_cases and d.matched == len({r["case_id"] for r in old["records"]})


def test_ratio_growth_above_ten_percent_is_a_regression_and_below_is_not(old):
    assert not diff_reports(old, _scale_bucket_worst(old, 1.09)).regressed
    d = diff_reports(old, _scale_bucket_worst(old, 1.25))
    assert [(c["phase"], c["dtype"]) for c in d.grown_cases] == [BUCKET]
    assert d.grown_cases[0]["growth"] == pytest.approx(0.25)
    assert d.regressions[0].startswith("case ") and "(decode_eager/float16): ratio " in d.regressions[0]
    # Improvements are not regressions.
    assert not diff_reports(old, _scale_bucket_worst(old, 0.5)).regressed


def test_a_new_failing_case_and_its_test_are_regressions(old):
    records = copy.deepcopy(old["records"])
    bad = next(r for r in records if (r["phase"], r["dtype"]) == ("prefill", "bfloat16"))
    bad.update(verdict="fail")
    bad["output"]["verdict"] = "fail"
    tests = copy.deepcopy(old["tests"])
    for t in tests:
        if t["test_id"] == bad["test_id"]:
            t.update(outcome="failed", reason="AssertionError")
    d = diff_reports(old, _rebuild(old, records, tests))
    assert [r["case_id"] for r in d.new_failures] == [bad["case_id"]]
    assert [t["test_id"] for t in d.new_failing_tests] == [bad["test_id"]]
    bucket = next(b for b in d.buckets if (b["phase"], b["dtype"]) == ("prefill", "bfloat16"))
    assert (bucket["old_bad"], bucket["new_bad"]) == (0, 1)
    # The same failure in both runs is not new.
    assert not diff_reports(_rebuild(old, records, tests), _rebuild(old, records, tests)).regressed


def test_a_new_hazard_kind_is_a_regression_but_more_of_a_known_one_is_not(old):
    records = copy.deepcopy(old["records"])
    target = next(r for r in records if r["phase"] == "decode_eager")
    target["hazards"] = [{"op": "torch_npu.npu_fused_infer_attention_score_v2", "argument": "block_table",
                          "rule": "block ids past num_blocks are not checked", "source": "docs", "inferred": False,
                          "detail": ""}]
    d = diff_reports(old, _rebuild(old, records))
    assert [(h["op"], h["rule"]) for h in d.new_hazards] == [
        ("torch_npu.npu_fused_infer_attention_score_v2", "block ids past num_blocks are not checked")]
    known = old["hazards"][0]
    target["hazards"] = [{k: known[k] for k in ("op", "argument", "rule", "code", "source", "inferred")}]
    assert not diff_reports(old, _rebuild(old, records)).regressed
    # An acknowledged hazard is accepted by the ledger: new or not, it is no regression.
    target["hazards"] = [{"op": "x", "argument": "y", "rule": "z", "code": "scu/negative-axis", "source": "s",
                          "inferred": False, "detail": "", "acknowledgement": "some-entry", "accepted": True}]
    assert not diff_reports(old, _rebuild(old, records)).regressed


def test_an_incomplete_new_report_cannot_show_there_is_no_regression(old):
    d = diff_reports(old, _rebuild(old, complete=False))
    assert d.regressed and d.regressions == ["NEW report is incomplete: interrupted (KeyboardInterrupt)"]


def test_diff_command_exit_status_and_table(tmp_path, old, capsys):
    a, b, c = tmp_path / "old.json", tmp_path / "same.json", tmp_path / "worse.json"
    a.write_text(dumps(old), encoding="utf-8")
    b.write_text(dumps(old), encoding="utf-8")
    c.write_text(dumps(_scale_bucket_worst(old, 1.5)), encoding="utf-8")
    assert cli.main(["diff", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "no regression (" in out and "matched cases, threshold 10% on their ratios)" in out
    assert cli.main(["diff", str(a), str(c)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION: 1 finding(s): case " in out and "(decode_eager/float16): ratio" in out
    assert any("decode_eager/float16" in line and "+50%" in line for line in out.splitlines())
    assert cli.main(["diff", str(a), str(c), "--threshold", "0.6"]) == 0
    capsys.readouterr()
    (tmp_path / "junk.json").write_text("[]", encoding="utf-8")
    assert cli.main(["diff", str(a), str(tmp_path / "junk.json")]) == 2
    assert "is not a valid schema-v2 npu-conformance report" in capsys.readouterr().err


def _resampled(report: dict, salt: str, scale: float = 1.0, fail_bucket=None) -> dict:
    """The same kind of run over different cases (other ids), ratios scaled; optionally one failure."""
    records = copy.deepcopy(report["records"])
    for r in records:
        r["case_id"] = (salt + r["case_id"])[:12]
        r["ratio"] *= scale
    if fail_bucket is not None:
        bad = next(r for r in records if (r["phase"], r["dtype"]) == fail_bucket)
        bad.update(verdict="fail", ratio=3.0)
    return _rebuild(report, records)


def test_two_all_passing_samples_of_different_cases_are_no_regression(old):
    other = _resampled(old, "ff", scale=1.8)  # every worst ratio 80 % higher, still all passing
    d = diff_reports(old, other)
    assert not d.same_cases and d.matched == 0
    assert not d.regressed, d.regressions
    assert any("drew different cases" in note for note in d.notes)


def test_a_failure_in_a_bucket_the_old_sample_had_clean_is_a_regression(old):
    d = diff_reports(old, _resampled(old, "ee", fail_bucket=("prefill", "bfloat16")))
    assert [(r["phase"], r["dtype"]) for r in d.new_failures] == [("prefill", "bfloat16")]
    # Both samples failing in the same bucket: the same bug seen twice, not a new one.
    failing = _resampled(old, "dd", fail_bucket=("prefill", "bfloat16"))
    assert not diff_reports(failing, _resampled(old, "cc", fail_bucket=("prefill", "bfloat16"))).new_failures


def test_a_negative_threshold_is_refused(old):
    with pytest.raises(ValueError, match="threshold must be >= 0"):
        diff_reports(old, old, threshold=-0.1)


def test_a_grown_ascend_margin_on_a_matched_case_is_a_regression(old):
    records = copy.deepcopy(old["records"])
    victim = next(r for r in records if r.get("ascend"))
    victim["ascend_ratio"] = victim["ascend"]["margin"] = victim["ascend_ratio"] * 1.5
    d = diff_reports(old, _rebuild(old, records))
    assert [c["case_id"] for c in d.grown_ascend] == [victim["case_id"]] and not d.grown_cases
    assert any("Ascend margin" in line for line in d.regressions)
    assert not diff_reports(old, _rebuild(old, records), threshold=0.6).regressed


@pytest.mark.parametrize("standard", ["ascend", "determinism"])
def test_a_standard_that_breaks_on_a_matched_case_is_a_regression_even_when_it_does_not_gate(old, standard):
    records = copy.deepcopy(old["records"])
    victim = records[0]
    victim["verdicts"] = dict(victim["verdicts"], **{standard: "fail"})  # the case still passes: not gating
    new = _rebuild(old, records)
    assert new["verdict"]["passed"]
    d = diff_reports(old, new)
    assert d.new_standard_failures == [{"case_id": victim["case_id"], "phase": victim["phase"],
                                        "dtype": victim["dtype"], "standard": standard}]
    assert d.regressed and f"{standard} verdict pass -> fail" in d.regressions[0]
    assert not diff_reports(new, new).regressed


def test_the_bucket_table_shows_both_runs_worst_ascend_margin(old, capsys):
    d = diff_reports(old, old)
    bucket = next(b for b in d.buckets if (b["phase"], b["dtype"]) == BUCKET)
    summary = next(s for s in old["summaries"] if (s["phase"], s["dtype"]) == BUCKET)
    assert bucket["old_ascend"] == bucket["new_ascend"] == summary["worst_ascend_ratio"] is not None
