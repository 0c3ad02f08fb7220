"""`npu-conformance run` end to end on CPU, and `pytest --conformance-report DIR`: the four files, the
exit status and its one-line reason, interrupted and crashed runs left marked incomplete, xdist merge.

Each run is a subprocess on a small selection (-k prefill: the prefill property and one metamorphic
relation, dev profile), so a test takes seconds.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_helpers import cli_env, run_cli, run_process

from conformance.report import load_report

FILES = ("report.json", "report.html", "summary.md", "junit.xml")
PREFILL_TESTS = {"test_prefill.py::test_prefill_output_and_cache_write",
                 "test_metamorphic.py::test_decode_of_the_last_token_matches_its_prefill_row"}


def _run(tmp_path: Path, *args: str, extra_path: Path | None = None):
    """`npu-conformance run` in a subprocess (cwd tmp_path); returns (exit code, stdout lines, all output)."""
    proc = run_cli(tmp_path, "run", *args, pythonpath=extra_path)
    lines = [line.rstrip() for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines, proc.stdout + proc.stderr


def _short_ids(report: dict) -> set[str]:
    return {t["test_id"].split("/")[-1] for t in report["tests"]}


def test_run_end_to_end_writes_the_four_files_and_exits_0(tmp_path):
    out = tmp_path / "rep"
    code, lines, text = _run(tmp_path, "--profile", "dev", "--backend", "emulated", "--out", str(out), "-k", "prefill",
                             "--seed", "12345")
    assert code == 0, text[-4000:]
    assert all((out / name).is_file() and (out / name).stat().st_size > 0 for name in FILES)
    report = load_report(out / "report.json")  # validates against the schema
    assert report["complete"] is True and report["verdict"]["passed"] is True
    assert lines[-1] == report["verdict"]["reason"] and lines[-1].startswith("PASSED: ")
    assert _short_ids(report) == PREFILL_TESTS and {t["outcome"] for t in report["tests"]} == {"passed"}
    assert report["run"]["hypothesis"] == {"profile": "dev", "seed": 12345, "max_examples": 8}
    assert report["run"]["backend"] == "emulated"
    # The graph-padding acknowledgement has nothing to match in a prefill-only run: unused, not stale.
    assert [(a["id"], a["status"]) for a in report["acknowledgements"]] == [("graph-padding-dummy-slot", "unused")]
    # Both tests contribute records, and the printed table has one row per phase x dtype bucket plus "all".
    assert {r["test_id"].split("/")[-1] for r in report["records"]} == PREFILL_TESTS
    for s in report["summaries"]:
        row = next(line for line in lines if line.split()[:2] == [s["phase"], s["dtype"]])
        assert row.split()[2] == str(s["cases"])
    assert any(line.split()[:2] == ["all", str(report["totals"]["cases"])] for line in lines)
    # Plain lines (no TTY): one progress line per finished test.
    assert sum(1 for line in lines if line.startswith("[") and " passed " in line) == 2
    cases = ET.parse(out / "junit.xml").getroot().iter("testcase")
    assert {c.get("name") for c in cases} == {t.split("::")[1] for t in PREFILL_TESTS}
    assert "PASSED:" in (out / "summary.md").read_text(encoding="utf-8").splitlines()[0]
    assert "<title>npu-conformance tolerance report: passed</title>" in (out / "report.html").read_text("utf-8")


def test_run_fails_with_the_worst_ratio_when_cases_are_out_of_tolerance(tmp_path):
    policy = tmp_path / "tight.toml"
    policy.write_text("[policy]\nk = 0\nulps = 0\nfloor = 1e-12\nmean_k = 0\n", encoding="utf-8")
    out = tmp_path / "rep"
    code, lines, text = _run(tmp_path, "--backend", "emulated", "--out", str(out), "-k", "test_prefill_output",
                             "--tolerance-policy", str(policy), "--cann-version", "9.0.0")
    assert code == 1, text[-4000:]
    report = load_report(out / "report.json")
    # The emulated CANN release is recorded, shown, and goes with every saved case.
    assert report["run"]["cann_emulated"]["version"] == "9.0.0"
    assert "CANN - (emulating 9.0.0)" in (out / "summary.md").read_text(encoding="utf-8")
    bad = [r for r in report["records"] if r["verdict"] == "fail"]
    assert bad and report["totals"]["failed"] == len(bad)
    worst = max(bad, key=lambda r: r["ratio"])
    assert lines[-1].startswith(f"FAILED: {len(bad)} of {len(report['records'])} cases out of tolerance (worst ratio ")
    assert lines[-1].endswith(f" in {worst['phase']}/{worst['dtype']})")
    assert report["run"]["tolerance_policy"]["source"] == str(policy)
    # The failing case was saved for replay inside the report folder, and the record points at it.
    assert worst["case_file"] and Path(worst["case_file"]).is_file()
    assert Path(worst["case_file"]).parent == out / "failures"
    assert json.loads(Path(worst["case_file"]).read_text("utf-8"))["judged_with"]["cann_version"] == "9.0.0"


def test_run_fails_when_no_case_ran(tmp_path):
    code, lines, text = _run(tmp_path, "--backend", "emulated", "--out", str(tmp_path / "rep"),
                             "-k", "test_corrupted_contexts")
    assert code == 1, text[-4000:]
    assert lines[-1].startswith("FAILED: no case ran (1 test(s): 1 passed")


@pytest.mark.parametrize("args, option", [(("--backend", "npu"), "--backend npu"),
                                          (("--backend", "npu", "--require-npu"), "--backend npu"),
                                          (("--require-npu",), "--require-npu")])
def test_asking_for_an_npu_without_one_fails_at_once_with_the_probe_reason(tmp_path, args, option):
    if importlib.util.find_spec("torch_npu") is not None:
        pytest.skip("torch_npu is installed here: the probe may find a device")
    code, lines, text = _run(tmp_path, *args, "--out", str(tmp_path / "rep"))
    assert code == 3, text[-4000:]  # exit_codes.NO_NPU
    assert lines[-1] == f"FAILED: {option} but no usable NPU (torch-npu is not installed)"
    assert not (tmp_path / "rep").exists()  # nothing ran


INTERRUPT_PLUGIN = """
    import os
    import pytest

    def pytest_runtest_logfinish(nodeid, location):
        if os.environ.get("STOP_HOW") == "interrupt":
            raise KeyboardInterrupt
        os._exit(9)  # a hard crash: no sessionfinish, nothing more written
"""


@pytest.mark.parametrize("how", ["interrupt", "crash"])
def test_an_interrupted_or_crashed_run_leaves_a_report_marked_incomplete(tmp_path, how, monkeypatch):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "stop_after_first_test.py").write_text(textwrap.dedent(INTERRUPT_PLUGIN), encoding="utf-8")
    out = tmp_path / "rep"
    out.mkdir()
    (out / "summary.md").write_text("## ✅ npu-conformance: PASSED (a stale report from an earlier run)\n")
    monkeypatch.setenv("STOP_HOW", how)
    code, lines, text = _run(tmp_path, "--backend", "emulated", "--out", str(out), "-k", "prefill", "--",
                             "-p", "stop_after_first_test", extra_path=plugin_dir)
    assert code != 0, text[-4000:]
    report = load_report(out / "report.json")
    assert report["complete"] is False and report["verdict"]["status"] == "incomplete"
    assert report["verdict"]["reason"].startswith("INCOMPLETE: ")
    if how == "interrupt":
        assert code == 5 and lines[-1] == report["verdict"]["reason"]  # exit_codes.INTERRUPTED
        assert report["incomplete_reason"] == "interrupted (KeyboardInterrupt)"
        assert len(report["tests"]) == 1 and report["records"]  # the first test's cases are kept
        assert report["verdict"]["reason"].startswith("INCOMPLETE: interrupted (KeyboardInterrupt) after 1 of 2 "
                                                      "test(s)")
        assert "<b>INCOMPLETE REPORT</b>" in (out / "report.html").read_text(encoding="utf-8")
        assert (out / "summary.md").read_text(encoding="utf-8").startswith("## ⚠️ npu-conformance: INCOMPLETE")
    else:
        assert code == 9
        assert report["incomplete_reason"] == "the run stopped before finishing (in-progress snapshot)"
        assert not (out / "summary.md").exists()  # the stale green summary is gone, not left to mislead


def test_plain_pytest_with_conformance_report_writes_the_same_files(tmp_path):
    out = tmp_path / "rep"
    proc = run_process([sys.executable, "-m", "pytest", "--pyargs", "conformance.suite", "-q", "-p",
                        "no:cacheprovider", "--backend", "emulated", "-k", "test_prefill_output",
                        "--conformance-report", str(out)], tmp_path, cli_env())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert all((out / name).is_file() for name in FILES)
    report = load_report(out / "report.json")
    assert (report["verdict"]["passed"]
            and _short_ids(report) == {"test_prefill.py::test_prefill_output_and_cache_write"})
    assert "npu-conformance report" in proc.stdout and report["verdict"]["reason"] in proc.stdout
    # A --junitxml chosen by the user is respected.
    mine = tmp_path / "elsewhere" / "j.xml"
    out2 = tmp_path / "rep2"
    proc = run_process([sys.executable, "-m", "pytest", "--pyargs", "conformance.suite", "-q", "-p",
                        "no:cacheprovider", "--backend", "emulated", "-k", "test_corrupted_contexts",
                        "--conformance-report", str(out2), f"--junitxml={mine}"], tmp_path, cli_env())
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert mine.is_file() and not (out2 / "junit.xml").exists() and (out2 / "report.json").is_file()


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None,
                    reason="pytest-xdist not installed: pip install 'npu-attention-conformance[xdist]'")
def test_records_from_xdist_workers_are_merged(tmp_path):
    out = tmp_path / "rep"
    code, lines, text = _run(tmp_path, "--backend", "emulated", "--out", str(out), "-k", "prefill", "-n", "2")
    assert code == 0, text[-4000:]
    report = load_report(out / "report.json")
    assert report["run"]["workers"] == 2
    assert {t["worker"] for t in report["tests"]} == {"gw0", "gw1"}
    by_test = {}
    for r in report["records"]:
        by_test.setdefault(r["test_id"].split("/")[-1], []).append(r)
    assert set(by_test) == PREFILL_TESTS
    assert report["totals"]["tests"] == {"collected": 2, "finished": 2, "passed": 2, "failed": 0, "skipped": 0,
                                         "error": 0, "xfailed": 0, "xpassed": 0}
    for t in report["tests"]:
        assert t["cases"] == len(by_test[t["test_id"].split("/")[-1]])


def test_run_n_without_xdist_names_the_extra(monkeypatch, capsys, tmp_path):
    from conformance import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xdist" else real(name, *a))
    assert cli.main(["run", "-n", "2", "--out", str(tmp_path / "rep")]) == 2
    out = capsys.readouterr().out
    assert "pytest-xdist, which is not installed: pip install 'npu-attention-conformance[xdist]'" in out
    assert not (tmp_path / "rep").exists()


def test_diff_of_two_passing_runs_with_different_seeds_is_no_regression(tmp_path):
    """Different seeds draw different cases: their worst ratios differ by sampling, not by code."""
    reports = []
    for seed in ("1", "2"):
        out = tmp_path / f"rep{seed}"
        code, _, text = _run(tmp_path, "--backend", "emulated", "--out", str(out), "-k", "test_prefill_output",
                             "--seed", seed)
        assert code == 0, text[-3000:]
        reports.append(out / "report.json")
    proc = run_cli(tmp_path, "diff", *reports)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "drew different cases" in proc.stdout and "no regression" in proc.stdout


def test_every_printed_replay_command_names_a_file_that_exists_and_auto_names_its_backend(tmp_path):
    """A tight policy makes two tests fail with distinct cases; each printed file must exist
    (and replay), and with --backend auto the verdict line says which backend ran and why."""
    policy = tmp_path / "tight.toml"
    policy.write_text("[policy]\nk = 0.01\nmean_k = 0.01\nulps = 0\nfloor = 0\n")
    out = tmp_path / "rep"
    code, lines, text = _run(tmp_path, "--profile", "dev", "--seed", "3", "--out", str(out),
                             "-k", "test_prefill_output or test_decode_eager_output", "--tolerance-policy", str(policy))
    assert code == 1, text[-3000:]
    printed = set(re.findall(r"npu-conformance replay (\S+\.json)", text))
    assert len(printed) >= 2 and all(Path(p).is_file() for p in printed), printed
    assert lines[-1].startswith("FAILED: ") and "[backend emulated: auto: no usable NPU (" in lines[-1]
    replay = run_cli(tmp_path, "replay", sorted(printed)[0])
    assert replay.returncode == 1 and "; replayed: fail" in replay.stdout, replay.stdout[-2000:]
