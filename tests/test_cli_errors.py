"""Errors at the terminal end on their cause, one meaning per exit code; a run can be reproduced and
survives SIGTERM; junit.xml stays XML whatever a failure message holds; a case file names only rows it has."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_helpers import TIMEOUT_S, cli, cli_env, run_cli

from conformance.cli import exit_codes
from conformance.report import load_report
from conformance.report.junit import render_junit


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() and "Warning" not in line and "warner(" not in line]
    return lines[-1]


def test_a_policy_file_error_is_the_last_line(tmp_path):
    (tmp_path / "bad.toml").write_text('[policy]\nk = "two"\n')
    proc = run_cli(tmp_path, "run", "--backend", "emulated", "--tolerance-policy", "bad.toml", "-k", "prefill_output",
                   "--out", "r")
    assert proc.returncode == exit_codes.USAGE, proc.stdout[-2000:] + proc.stderr[-2000:]
    # pytest's own "ERROR:" line goes to stderr before it; the command's last word is the cause.
    assert _last_line(proc.stdout) == \
        f"FAILED: {tmp_path / 'bad.toml'} [policy].k: must be a finite number >= 0, got 'two'"


@pytest.mark.parametrize("command", ["run", "fuzz"])
def test_a_k_that_matches_nothing_is_bad_input_in_run_and_fuzz(tmp_path, command):
    extra = ("--budget", "5m") if command == "fuzz" else ()
    code, text = cli(tmp_path, command, "--backend", "emulated", "-k", "no_such_property", "--out", "r", *extra)
    assert code == exit_codes.USAGE, text[-2000:]
    assert "-k 'no_such_property' matched no test" in _last_line(text), text[-2000:]


@pytest.mark.parametrize(("args", "expected"), [
    (("run", "--bogus"), "npu-conformance run: error: unrecognized arguments: --bogus"),
    (("run", "--backend", "emulated", "--", "--bogus"), "FAILED: unrecognized arguments: --bogus"),
    (("fuzz", "--budget", "1m", "--", "--bogus"), "a worker could not start: unrecognized arguments: --bogus"),
    (("run", "-n", "abc"), "-n takes a number of workers or 'auto', got 'abc'"),
    (("run", "--devices", "0-7"), "--devices 0-7 pins pytest-xdist workers to cards: give -n WORKERS too"),
    (("replay", "x.json", "--nope"), "npu-conformance replay: error: unrecognized arguments: --nope"),
    (("fuzz", "--budget", "10"), "--budget '10': give a unit, e.g. 10s or 10m"),
    (("fuzz", "--budget", "1m", "--database", "redis:/localhost:6379"),
     "--database redis:/localhost:6379: looks like a URL but is not a Redis one"),
])
def test_usage_errors_name_the_subcommand_and_the_rule(tmp_path, args, expected):
    proc = run_cli(tmp_path, *args)
    text = proc.stdout + proc.stderr
    # The command's last word, on whichever stream it writes it (argparse: stderr; the run's verdict: stdout).
    last = [_last_line(stream) for stream in (proc.stdout, proc.stderr) if stream.strip()]
    assert proc.returncode == exit_codes.USAGE and any(expected in line for line in last), text[-2000:]
    assert "Traceback" not in text


REPORT = "report-v1.json"
DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize(("args", "expected"), [
    (("run", "--backend", "emulated", "--out", "afile"), "--out afile: not a directory"),
    (("run", "--backend", "emulated", "--out", "afile/sub"), "afile is not a directory"),
    (("fuzz", "--budget", "1m", "--out", "afile"), "--out afile: not a directory"),
    (("mutants", "--out", "afile"), "--out afile: not a directory"),
    (("promote", "x.json", "--corpus", "afile"), "--corpus afile: not a directory"),
    (("report", REPORT, "--md", "afile/summary.md"), "afile is not a directory"),
    (("report", REPORT, "--html", "."), "--html .: is a directory"),
    (("report", "merge", REPORT, REPORT, "--out", "afile"), "--out afile: not a directory"),
    (("diff", REPORT, REPORT, "--threshold", "nan"), "--threshold must be a finite number >= 0"),
    (("mutants", "--only", ","), "--only ',': names no mutant"),
    (("report", "empty.json"), "empty.json: not a valid report (first problem: 'schema_version' is a required"),
])
def test_a_place_that_cannot_be_written_or_a_bad_value_is_refused_before_any_work(tmp_path, args, expected):
    (tmp_path / "afile").write_text("a file where a folder is wanted\n")
    (tmp_path / "empty.json").write_text("{}\n")
    args = [str(DATA / a) if a == REPORT else a for a in args]
    code, text = cli(tmp_path, *args)
    assert code == exit_codes.USAGE, text[-2000:]
    assert expected in _last_line(text) and "Traceback" not in text, text[-2000:]


def test_promote_into_another_corpus_says_how_runs_find_it(tmp_path):
    from conformance.harness.corpus import case_paths

    case = case_paths()[0]
    code, text = cli(tmp_path, "promote", case, "--corpus", tmp_path / "corpus")
    assert code == exit_codes.PASSED, text
    assert f"when NPU_CONFORMANCE_CORPUS={tmp_path / 'corpus'} is set" in text
    assert "every run now replays them first" not in text


def test_the_seed_a_run_used_is_printed_and_recorded_and_draws_the_same_cases(tmp_path):
    code, text = cli(tmp_path, "run", "--backend", "emulated", "-k", "test_prefill_output", "--out", "a")
    assert code == exit_codes.PASSED, text[-2000:]
    seed = int(text.split("seed ", 1)[1].split()[0])
    first = load_report(tmp_path / "a" / "report.json")
    assert first["run"]["hypothesis"]["seed"] == seed
    code, text = cli(tmp_path, "run", "--backend", "emulated", "-k", "test_prefill_output", "--out", "b",
                     "--seed", str(seed))
    again = load_report(tmp_path / "b" / "report.json")
    assert [r["case_id"] for r in again["records"]] == [r["case_id"] for r in first["records"]]


def test_sigterm_leaves_the_whole_report_folder_marked_incomplete(tmp_path):
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "conformance.cli", "run", "--backend", "emulated", "--profile", "ci",
                             "--out", str(out)], cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        # Wait for the first finished test (its snapshot), however long the machine takes to get there.
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and proc.poll() is None:
            report = out / "report.json"
            if report.exists() and json.loads(report.read_text()).get("tests"):
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before it could be terminated"
        proc.send_signal(signal.SIGTERM)
        text, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == exit_codes.INTERRUPTED, text[-3000:]
    for name in ("report.json", "report.html", "summary.md", "junit.xml"):
        assert (out / name).is_file(), f"{name} missing after SIGTERM:\n{text[-2000:]}"
    report = load_report(out / "report.json")
    assert not report["complete"] and "SIGTERM" in report["incomplete_reason"], report["incomplete_reason"]


def test_junit_stays_xml_whatever_a_failure_message_holds():
    from sample_report import sample_report

    report = sample_report()
    report["tests"][0] |= {"outcome": "failed", "reason": "colour \x1b[31mred\x1b[0m and a NUL \x00 here\x07"}
    root = ET.fromstring(render_junit(report))
    failure = root.find(".//failure")
    assert failure is not None and "\\x1b[31mred" in failure.text and "\\x00" in failure.text


def test_a_case_file_naming_a_row_the_case_lacks_is_refused(tmp_path):
    data = {"phase": "decode_eager", "num_heads": 2, "num_kv_heads": 1, "head_dim": 64, "dtype": "bfloat16",
            "block_size": 16, "num_blocks": 4, "seq_lens": [1, 1], "block_tables": [[1], [2]], "seed": 0,
            "outlier_rows": [100]}
    (tmp_path / "case.json").write_text(json.dumps(data))
    code, text = cli(tmp_path, "replay", "case.json", "--backend", "emulated")
    assert code == exit_codes.USAGE, text
    assert "Case.outlier_rows: row 100 is past the case's 2 q/k/v row(s)" in text and "Traceback" not in text


def test_a_graph_session_naming_a_sequence_longer_than_max_model_len_is_refused():
    from conformance.cases.case import CaseError
    from conformance.cases.graph_session import GraphSession

    with pytest.raises(CaseError, match="longer than max_model_len"):
        GraphSession(num_heads=2, num_kv_heads=1, head_dim=64, dtype="bfloat16", block_size=16, num_blocks=6,
                     max_num_seqs=2, table_width=2, seed=0, block_order=(1, 2, 3, 4), start=(40,))
