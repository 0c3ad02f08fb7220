"""report.json schema v2: a real report and the synthetic one validate; broken ones are rejected with
the place named; a v1 report is migrated; non-finite numbers round-trip; the verdict line says why a
run is not green."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from sample_report import _run, sample_records, sample_report, sample_tests  # tests/ is on sys.path

from conformance.formatting import jsonable
from conformance.report import ReportError, build_report, dumps, load_report, load_schema, num, validate_report

PREFILL_TEST = "conformance/suite/test_prefill.py::test_prefill_output_and_cache_write"


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    """report.json from a real (small) pytest run of the prefill property on the emulated backend."""
    out = tmp_path_factory.mktemp("real-report")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", PREFILL_TEST,
                           "--backend", "emulated", "--hypothesis-profile", "dev", "--conformance-report", str(out),
                           "--conformance-failures", str(out / "failures")],
                          cwd=root, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TORCH_DEVICE_BACKEND_AUTOLOAD": "0"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "report.json"


def test_schema_ships_with_the_package_and_is_a_valid_json_schema():
    import jsonschema

    for version in (1, 2):
        text = resources.files("conformance.report").joinpath(f"schema-v{version}.json").read_text("utf-8")
        schema = json.loads(text)
        jsonschema.validators.validator_for(schema).check_schema(schema)
        assert load_schema(version) == schema
        assert schema["properties"]["schema_version"] == {"const": version}
    assert load_schema() == load_schema(2)


def test_a_real_report_validates_and_its_summaries_add_up(real_report):
    report = load_report(real_report)
    assert report["complete"] is True and report["verdict"]["status"] == "passed"
    records = report["records"]
    assert records and all(r["test_id"].endswith("test_prefill_output_and_cache_write") for r in records)
    assert {r["phase"] for r in records} == {"prefill"}
    assert sum(s["cases"] for s in report["summaries"]) == len(records) == report["totals"]["cases"]
    for s in report["summaries"]:
        mine = [r for r in records if (r["phase"], r["dtype"]) == (s["phase"], s["dtype"])]
        assert s["worst_ratio"] == max(r["ratio"] for r in mine)
        assert s["worst_case_id"] in {r["case_id"] for r in mine}
    run = report["run"]
    assert run["backend"] == "emulated" and run["hypothesis"]["profile"] == "dev"
    assert run["versions"]["torch"] and run["tolerance_policy"]["source"] == "default"
    assert report["tests"] == [dict(report["tests"][0], outcome="passed")]
    # Every record replays: the case is plain data that rebuilds the same Case.
    from conformance.cases.case import Case

    assert Case.from_dict(records[0]["case"]).case_id == records[0]["case_id"]


@pytest.mark.parametrize("complete", [True, False])
def test_the_synthetic_report_validates(complete):
    report = sample_report(complete=complete)
    assert validate_report(report) is report
    assert json.loads(dumps(report)) == report


def _broken(mutate):
    report = copy.deepcopy(sample_report())
    mutate(report)
    return report


BROKEN = {
    "newer schema version": (lambda r: r.update(schema_version=3), "schema_version 3 is not supported"),
    "v2 record without verdicts": (lambda r: r["records"][0].pop("verdicts"), "'verdicts' is a required property"),
    "unknown failed check": (lambda r: r["records"][0].update(failed_checks=["tolerance"]),
                             "records/0/failed_checks/0"),
    "Ascend level unknown": (lambda r: r["records"][0]["ascend"].update(level="L9"), "records/0/ascend"),
    "verdicts without ascend and determinism": (lambda r: r["records"][0].update(verdicts={"dual": "pass"}),
                                                "records/0/verdicts"),
    "records missing": (lambda r: r.pop("records"), "'records' is a required property"),
    "unknown verdict": (lambda r: r["records"][0].update(verdict="maybe"), "records/0/verdict"),
    "ratio as text": (lambda r: r["records"][1].update(ratio="big"), "records/1/ratio"),
    "passing case without metrics": (lambda r: r["records"][2].pop("output"), "'output' is a required property"),
    "error case without its error": (lambda r: r["records"][-1].pop("error"), "'error' is a required property"),
    "negative count": (lambda r: r["summaries"][0].update(cases=-1), "summaries/0/cases"),
    "unknown phase": (lambda r: r["records"][0].update(phase="prefil"), "records/0/phase"),
    "test outcome unknown": (lambda r: r["tests"][0].update(outcome="green"), "tests/0/outcome"),
    "complete is a string": (lambda r: r.update(complete="yes"), "at complete"),
    "run metadata without backend": (lambda r: r["run"].pop("backend"), "'backend' is a required property"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_reports_are_rejected_naming_the_place(name):
    mutate, expected = BROKEN[name]
    with pytest.raises(ReportError) as info:
        validate_report(_broken(mutate), "r.json")
    assert expected in str(info.value)


def test_load_report_rejects_files_that_are_not_reports(tmp_path):
    bad_json = tmp_path / "a.json"
    bad_json.write_text("{not json", encoding="utf-8")
    bare_nan = tmp_path / "b.json"
    bare_nan.write_text(dumps(sample_report()).replace('"inf"', "Infinity", 1), encoding="utf-8")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_report(bad_json)
    with pytest.raises(ReportError, match="Infinity is not JSON"):
        load_report(bare_nan)
    with pytest.raises(ReportError, match="no such file"):
        load_report(tmp_path / "missing.json")
    good = tmp_path / "c.json"
    good.write_text(dumps(sample_report()), encoding="utf-8")
    assert load_report(good)["schema_version"] == 2


def test_a_v1_report_is_migrated_on_load_and_renders(tmp_path):
    from conformance.report import diff_reports, render_html, render_markdown

    v1 = Path(__file__).parent / "data" / "report-v1.json"
    raw = json.loads(v1.read_text(encoding="utf-8"))
    assert raw["schema_version"] == 1 and "ascend_ratio" in raw["records"][0]["output"]
    report = load_report(v1)
    assert report["schema_version"] == 2 and report["run"]["migrated_from"] == 1
    validate_report(report)  # the migrated report is a valid v2 report
    compared = [r for r in report["records"] if r["verdict"] != "error"]
    assert compared and all(r["verdicts"]["ascend"] == "not run" and r["ascend"] is None for r in compared)
    assert all(r["verdicts"]["dual"] == r["output"]["verdict"] for r in compared)
    assert all("ascend_ratio" not in r["output"] for r in compared)
    assert report["run"]["tolerance_policy"]["gating"]["standards"] == "dual"
    assert "migrated from version 1" in render_html(report) and "Gating:" in render_markdown(report)
    diff = diff_reports(report, sample_report())
    assert any("schema-v1 report" in note for note in diff.notes)
    broken = dict(raw, records=[dict(raw["records"][0], verdict="maybe")])
    with pytest.raises(ReportError, match="not a valid schema-v1 npu-conformance report"):
        validate_report(broken, "old.json")


def test_non_finite_numbers_round_trip_as_strings():
    data = {"a": math.inf, "b": -math.inf, "c": math.nan, "d": (1.5, None), "e": 3}
    text = json.dumps(jsonable(data), allow_nan=False)
    back = json.loads(text)
    assert back == {"a": "inf", "b": "-inf", "c": "nan", "d": [1.5, None], "e": 3}
    assert num(back["a"]) == math.inf and num(back["b"]) == -math.inf and math.isnan(num(back["c"]))
    assert num(None) is None and num(back["e"]) == 3.0


def _report(records, tests, *, complete=True, run=None, **kw):
    return build_report(run or _run(True), records, tests, complete=complete, **kw)


def test_verdict_lines_say_why_a_run_is_not_green():
    records = sample_records()
    passing = [r for r in records if r["verdict"] == "pass"]
    tests = [dict(t, outcome="passed", reason=None) if t["outcome"] == "failed" else t for t in sample_tests(records)]

    green = _report(passing, tests)["verdict"]
    assert green["passed"] and green["reason"].startswith(f"PASSED: {len(passing)} cases within tolerance")
    # a passing case outside the Ascend standard (not gating by default) is said, not hidden
    assert green["reason"].endswith("; 1 outside the Ascend benchmark standard (reported, not gating)")

    failing = _report(records, sample_tests(records))["verdict"]
    assert not failing["passed"]
    assert failing["reason"] == (f"FAILED: 3 of {len(records)} cases out of tolerance, 1 of {len(records)} cases "
                                 f"within tolerance but nondeterministic, 1 of {len(records)} cases "
                                 "within tolerance but with an unacknowledged emulator hazard, "
                                 f"1 of {len(records)} cases raised an error (worst ratio inf in decode_graph/float16)")
    worst_only = passing + [r for r in records if r["ratio"] == 3.4]  # the one decode_eager/bfloat16 failure
    reason = _report(worst_only, tests)["verdict"]["reason"]
    assert reason == (f"FAILED: 1 of {len(worst_only)} cases out of tolerance (worst ratio 3.400 in "
                      "decode_eager/bfloat16)")

    skipped = [dict(t, outcome="skipped", reason="needs a real NPU", cases=0) for t in tests]
    none = _report([], skipped)["verdict"]
    assert not none["passed"] and none["reason"].startswith("FAILED: no case ran")
    assert f"{len(skipped)} skipped" in none["reason"]

    no_npu = _report(passing, tests, run=dict(_run(True), require_npu=True))["verdict"]
    assert no_npu["reason"] == "FAILED: --require-npu but no usable NPU (torch-npu is not installed)"

    broken_test = tests + [{"test_id": "conformance/suite/test_metamorphic.py::test_eager_and_graph_decode_agree",
                            "outcome": "failed", "duration_s": 1.0, "reason": "ContractViolation", "cases": 0,
                            "worker": None}]
    red = _report(passing, broken_test)["verdict"]
    assert red["reason"].startswith("FAILED: 1 of ") and "test_eager_and_graph_decode_agree" in red["reason"]

    cut = _report(passing, tests, complete=False, incomplete_reason="interrupted (KeyboardInterrupt)",
                  tests_collected=len(tests) + 4)
    assert cut["verdict"]["status"] == "incomplete" and not cut["verdict"]["passed"]
    assert cut["verdict"]["reason"].startswith(
        f"INCOMPLETE: interrupted (KeyboardInterrupt) after {len(tests)} of {len(tests) + 4} test(s)")
    assert cut["complete"] is False and cut["incomplete_reason"] == "interrupted (KeyboardInterrupt)"
