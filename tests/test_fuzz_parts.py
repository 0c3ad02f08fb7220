"""The parts of a fuzz session, without a session: durations, device lists and pinning, failure
signatures, merging reports and timelines, counted-only cases, promotion into the corpus, and the
fuzz command's refusals of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from cli_helpers import run_cli
from sample_report import _run, sample_records, sample_tests  # tests/ is on sys.path

from conformance.fuzz.budget import BudgetError, format_duration, parse_duration
from conformance.fuzz.signatures import failed_test_signature, record_signature
from conformance.harness.corpus import PromoteError, case_paths, promote
from conformance.platform import devices
from conformance.report import build_report, validate_report
from conformance.report.merge import merge_reports, merge_timelines
from conformance.report.model import summarise, tally_records


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("8h", 28800), ("1h30m", 5400),
                                           ("1.5m", 90), (" 2D ", 172800)])
def test_durations_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "ten minutes", "5x", "-3s", "1h 30m", "45"])  # 45 what? a unit is required
def test_bad_durations_are_refused_naming_the_option(text):
    with pytest.raises(BudgetError, match="--budget"):
        parse_duration(text)


def test_durations_format_back():
    assert (format_duration(5), format_duration(125), format_duration(3725)) == ("5s", "2m05s", "1h02m05s")


def test_device_lists_parse_ranges_and_refuse_repeats():
    assert devices.parse_devices("0-3") == ["0", "1", "2", "3"]
    assert devices.parse_devices("0,2,5-6") == ["0", "2", "5", "6"]
    for bad in ("a", "3-1", "0,0", "0-", ""):
        with pytest.raises(devices.DeviceSpecError, match="--devices"):
            devices.parse_devices(bad)


def test_cards_are_found_from_the_visible_list_or_the_device_nodes(tmp_path):
    for name in ("davinci0", "davinci1", "davinci3", "davinci_manager", "hisi_hdc"):
        (tmp_path / name).touch()
    assert devices.detect_devices({devices.DEV_DIR: str(tmp_path)}) == ["0", "1", "3"]
    assert devices.detect_devices({devices.DEV_DIR: str(tmp_path), devices.VISIBLE: "4,5"}) == ["4", "5"]
    assert devices.detect_devices({devices.DEV_DIR: str(tmp_path / "missing")}) == []


def test_workers_get_distinct_cards_round_robin_and_none_on_cpu():
    cards = ["4", "5"]
    assert [devices.device_for_worker(k, cards) for k in range(4)] == ["4", "5", "4", "5"]
    env: dict = {}
    assert devices.pin_environment(env, 1, cards) == "5" and env[devices.VISIBLE] == "5"
    env = {}
    assert devices.pin_environment(env, 0, []) is None and env == {}


def test_an_xdist_worker_pins_itself_before_torch_loads():
    """The real order: a fresh interpreter with xdist's worker variable, the plugin module imported
    first; torch must see only the card, and torch must not have been imported before the pin."""
    code = ("import os, sys; import conformance.platform.devices as d; card = d.pin_this_xdist_worker(); "
            "print(card, os.environ.get('ASCEND_RT_VISIBLE_DEVICES'), 'torch' in sys.modules)")
    env = {**os.environ, "PYTEST_XDIST_WORKER": "gw1", devices.WORKER_DEVICES: "6,7"}
    env.pop(devices.PINNED, None)
    env.pop(devices.VISIBLE, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["7", "7", "False"]


def test_signatures_blank_the_numbers_and_name_what_failed():
    base = {"test_id": "t::p", "phase": "decode_eager", "dtype": "float16", "verdict": "fail",
            "failed_checks": ["output", "k_cache"], "hazards": [{"code": "fia/x", "accepted": False},
                                                               {"code": "fia/ok", "accepted": True}]}
    assert record_signature(base) == "t::p | decode_eager/float16 | failed output,k_cache [fia/x]"
    e1 = base | {"verdict": "error", "error": "ContextError: slot 17 out of range [0, 640)"}
    e2 = base | {"verdict": "error", "error": "ContextError: slot 3 out of range [0, 64)"}
    assert record_signature(e1) == record_signature(e2) != record_signature(base)
    assert (failed_test_signature("t::m", "relation broke at row 5\nmore")
            == "t::m | test failed: relation broke at row N")


def test_merged_timelines_sum_cumulative_counts_and_keep_the_worst():
    a = [{"t": 1, "cases": 10, "failures": 0, "worst": {"prefill/float16": 0.2}},
         {"t": 3, "cases": 30, "failures": 1, "worst": {"prefill/float16": 0.5}}]
    b = [{"t": 2, "cases": 5, "failures": 0, "worst": {"prefill/float16": 0.9}}]
    merged = merge_timelines([a, b])
    assert [(p["t"], p["cases"], p["failures"]) for p in merged] == [(1, 10, 0), (2, 15, 0), (3, 35, 1)]
    assert merged[-1]["worst"] == {"prefill/float16": 0.9}


def test_counted_only_cases_keep_the_totals_and_buckets_right():
    records = sample_records()
    passing = [r for r in records if r["verdict"] == "pass"]
    kept, dropped = [r for r in records if r not in passing[5:]], passing[5:]
    full = build_report(_run(True), records, sample_tests(records), complete=True)
    compact = build_report(_run(True), kept, sample_tests(records), complete=True, tally=tally_records(dropped))
    validate_report(compact)
    assert (compact["totals"]["cases"] == full["totals"]["cases"]
            and compact["totals"]["passed"] == full["totals"]["passed"])
    by = {(s["phase"], s["dtype"]): s["cases"] for s in summarise(kept, tally_records(dropped))}
    assert by == {(s["phase"], s["dtype"]): s["cases"] for s in full["summaries"]}


def test_merging_two_reports_adds_cases_and_keeps_each_tests_worst_outcome():
    records = sample_records(seed=3)
    green = [r for r in records if r["verdict"] == "pass"]
    tests_green = [dict(t, outcome="passed", reason=None) if t["outcome"] == "failed" else t
                   for t in sample_tests(green)]
    a = build_report(_run(True), green, tests_green, complete=True)
    b = build_report(_run(True), records, sample_tests(records), complete=True)
    merged = merge_reports([a, b], sources=["a.json", "b.json"])
    validate_report(merged)
    assert merged["totals"]["cases"] == a["totals"]["cases"] + b["totals"]["cases"]
    outcome = {t["test_id"]: t["outcome"] for t in merged["tests"]}
    assert outcome == {t["test_id"]: t["outcome"] for t in b["tests"]}  # b holds the failures
    assert merged["verdict"]["passed"] is False and [m["source"] for m in merged["run"]["merged_from"]] == ["a.json",
                                                                                                          "b.json"]
    with pytest.raises(ValueError, match="nothing to merge"):
        merge_reports([])


def test_report_merge_command_writes_one_folder(tmp_path):
    from conformance import cli

    records = sample_records(seed=4)
    green = [r for r in records if r["verdict"] == "pass"]
    for name in ("a", "b"):
        report = build_report(_run(True), green, [dict(t, outcome="passed", reason=None)
                                                  for t in sample_tests(green)], complete=True)
        (tmp_path / f"{name}.json").write_text(json.dumps(report))
    out = tmp_path / "merged"
    assert cli.main(["report", "merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out)]) == 0
    merged = json.loads((out / "report.json").read_text())
    assert merged["totals"]["cases"] == 2 * len(green)
    assert all((out / n).is_file() for n in ("report.html", "summary.md", "junit.xml"))
    assert cli.main(["report", "merge", str(tmp_path / "a.json"), "--out", str(out)]) == 2  # needs two
    assert cli.main(["report", "merge", str(tmp_path / "a.json"), str(tmp_path / "nope.json"), "--out", str(out)]) == 2


def test_promote_copies_checked_case_files_and_refuses_bad_ones(tmp_path):
    found = case_paths()[0]  # the package corpus holds at least the float32 tail case
    corpus = tmp_path / "corpus"
    assert promote([found], corpus) == [(corpus / found.name, "added")]
    assert promote([found], corpus) == [(corpus / found.name, "already there")]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(PromoteError, match="bad.json"):
        promote([found, bad], tmp_path / "other")
    assert not (tmp_path / "other").exists()  # nothing copied unless every file is good
    assert case_paths(corpus) == [corpus / found.name]


@pytest.mark.parametrize("args, message", [
    (["--budget", "0s"], "--budget '0s': must be more than 0 seconds"),
    (["--budget", "soon"], "--budget 'soon'"),
    (["--devices", "1-0"], "--devices '1-0'"),
    (["--max-cases", "0"], "--max-cases must be at least 1"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--tolerance-policy", "/nonexistent.toml"], "--tolerance-policy /nonexistent.toml: no such file"),
    (["--database", "redis://127.0.0.1:1/0"], "no Redis server answers"),
])
def test_fuzz_refuses_bad_input_before_starting_anything(tmp_path, args, message):
    if args[:1] == ["--database"]:
        pytest.importorskip("redis", reason="the redis client (pip install redis) is not installed")
    proc = run_cli(tmp_path, "fuzz", "--out", tmp_path / "o", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "o" / "workers").exists()


@pytest.mark.parametrize("args, message", [
    (["-k", "no_such_property"], "-k 'no_such_property' matched no test: nothing ran"),
    (["--plant", "no_such_bug"], "--plant 'no_such_bug': no such planted bug"),
])
def test_fuzz_stops_at_once_when_its_workers_cannot_start(tmp_path, args, message):
    import time

    started = time.monotonic()
    proc = run_cli(tmp_path, "fuzz", "--budget", "5m", "--backend", "emulated", "--out", tmp_path / "o", *args)
    assert proc.returncode == 2 and message in proc.stdout, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert time.monotonic() - started < 120  # not the five-minute budget


def test_a_report_with_counted_only_cases_says_its_plots_leave_them_out():
    from conformance.report import render_html, render_markdown

    records = sample_records()
    passing = [r for r in records if r["verdict"] == "pass"]
    kept = [r for r in records if r not in passing[5:]]
    report = build_report(_run(True), kept, sample_tests(records), complete=True, tally=tally_records(passing[5:]))
    assert f"{len(passing) - 5} more passing cases are only counted" in render_html(report)
    full = build_report(_run(True), records, sample_tests(records), complete=True)
    assert "only counted" not in render_html(full) and "Fuzz session" not in render_markdown(full)
