"""`npu-conformance fuzz` end to end, as real processes: a planted bug is found, saved, replayed and
promoted into the corpus that later runs replay first; the unmutated layer passes the same session;
workers are pinned to distinct cards (`fuzz --workers 2`, `run -n 2`, with a fake device count); a
worker killed in the middle of a case is a failure of that case, and is restarted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from cli_helpers import CEILING_BUDGET, cli, fuzz_budget, worker_startup_s

from conformance.harness.case_files import read_case_file
from conformance.report import load_report

PLANT = "decode_newest_token_dropped"  # killed by the eager decode property on its first case


def test_a_planted_bug_is_found_saved_replayed_and_promoted_into_every_later_run(tmp_path):
    out, corpus = tmp_path / "s1", tmp_path / "corpus"
    # Stopped by its budget: about ten seconds of fuzzing, after the worker's startup (measured, not assumed).
    budget = fuzz_budget(10, worker_startup_s(tmp_path, "test_decode_eager"))
    code, text = cli(tmp_path, "fuzz", "--budget", budget, "--plant", PLANT, "-k", "test_decode_eager",
                     "--out", out, "--database", tmp_path / "db", "--backend", "emulated")
    assert code == 1, text[-3000:]
    report = load_report(out / "report.json")  # schema-valid
    assert report["complete"] and report["verdict"]["status"] == "failed"
    fuzz = report["fuzz"]
    assert fuzz["planted"] == PLANT and fuzz["stopped"].startswith("budget") and fuzz["cases"] >= 1
    assert len(fuzz["timeline"]) >= 2 and fuzz["timeline"][-1]["failures"] >= 1
    found = [f for f in fuzz["failures"] if "test_decode_eager" in f["signature"]]
    # One entry per signature (a signature is per phase x dtype bucket: the bug shows in each dtype drawn).
    assert found and len({f["signature"] for f in found}) == len(found), fuzz["failures"]
    assert all(f["count"] >= 1 for f in found)
    case_file = Path(found[0]["case_file"])
    assert case_file.is_file() and f"replay: npu-conformance replay {case_file}" in text
    assert (out / "summary.md").read_text().count("### Fuzz session") == 1
    assert "Fuzz session" in (out / "report.html").read_text()

    # The printed replay command reproduces the verdict (the file names the planted bug).
    code, replay = cli(tmp_path, "replay", case_file)
    assert code == 1 and "replayed: fail" in replay, replay[-2000:]

    # Promoted, it is replayed first by a later run and judged with that run's settings: without the
    # planted bug it passes; a fuzz session with the bug still planted fails on it before anything else.
    code, promoted = cli(tmp_path, "promote", case_file, "--corpus", corpus)
    assert code == 0 and f"added: {corpus / case_file.name}" in promoted
    code, text = cli(tmp_path, "run", "--profile", "dev", "--backend", "emulated", "-k",
                     "test_regression or test_decode_eager", "--out", tmp_path / "r",
                     NPU_CONFORMANCE_CORPUS=str(corpus))
    assert code == 0, text[-3000:]
    run = load_report(tmp_path / "r" / "report.json")
    ids = [t["test_id"] for t in run["tests"]]
    assert any(case_file.stem in i for i in ids), ids
    # Only the corpus test is selected: the session stops once it ran, the budget only bounds it.
    code, text = cli(tmp_path, "fuzz", "--budget", CEILING_BUDGET, "--plant", PLANT, "-k", "test_regression",
                     "--out", tmp_path / "s2", "--database", tmp_path / "db2", "--backend", "emulated",
                     NPU_CONFORMANCE_CORPUS=str(corpus))
    again = load_report(tmp_path / "s2" / "report.json")
    assert code == 1 and again["records"][0]["case_id"] == read_case_file(case_file).case.case_id, text[-3000:]
    assert again["records"][0]["verdict"] == "fail"


def test_two_workers_on_two_cards_pass_the_unmutated_layer(tmp_path):
    out = tmp_path / "s"
    # One case each at least (--max-cases 2: a share of 1 per worker), however long the workers take to start.
    code, text = cli(tmp_path, "fuzz", "--budget", CEILING_BUDGET, "--max-cases", "2", "--workers", "2", "--devices",
                     "0-1", "-k", "test_decode_eager", "--out", out, "--database", tmp_path / "db", "--backend",
                     "emulated")
    assert code == 0, text[-3000:]
    assert "worker 0 on NPU 0, worker 1 on NPU 1" in text
    report = load_report(out / "report.json")
    fuzz = report["fuzz"]
    assert report["verdict"]["passed"] and not fuzz["failures"]
    assert sorted(w["device"] for w in fuzz["workers"]) == ["0", "1"]
    assert {r.get("device_pin") for r in report["records"]} == {"0", "1"}  # both cards judged cases
    assert (out / "junit.xml").is_file() and len(list((out / "workers").iterdir())) == 2


def test_run_with_xdist_pins_each_worker_to_its_own_card(tmp_path):
    nodes = tmp_path / "dev"
    nodes.mkdir()
    for name in ("davinci0", "davinci1", "davinci_manager"):  # a fake two-card machine
        (nodes / name).touch()
    pytest.importorskip("xdist", reason="pytest-xdist is not installed (pip install pytest-xdist)")
    code, text = cli(tmp_path, "run", "--profile", "dev", "--backend", "emulated", "-n", "2", "-k",
                     "test_decode_eager", "--out", tmp_path / "r", "--", "--dist=each",
                     NPU_CONFORMANCE_DEV_DIR=str(nodes))
    assert code == 0, text[-3000:]
    report = load_report(tmp_path / "r" / "report.json")
    assert {r.get("device_pin") for r in report["records"]} == {"0", "1"}


CRASHING_KERNEL = textwrap.dedent("""
    # A kernel that kills its process (as a device fault can) on the third eager decode case, once.
    import os, signal
    from pathlib import Path
    from conformance.judge import check

    MARK = Path(os.environ["CRASH_MARK"])
    _inner, _seen = check.run_layer, []

    def run_layer(case, *args, **kwargs):
        if case.phase == "decode_eager" and not MARK.exists():
            _seen.append(case.case_id)
            if len(_seen) == 3:
                MARK.write_text(case.case_id)
                os.kill(os.getpid(), signal.SIGKILL)
        return _inner(case, *args, **kwargs)

    check.run_layer = run_layer
""")


def test_a_worker_killed_mid_case_is_a_failure_of_that_case_and_is_restarted(tmp_path):
    (tmp_path / "crashing_kernel.py").write_text(CRASHING_KERNEL)
    mark, out = tmp_path / "crashed-on", tmp_path / "s"
    # Stopped by work, not time: the worker cannot reach 3 cases without the crash (the kernel's third call),
    # and its restart judges 3 cases; the budget only bounds the session (a restart needs 15 s of it left).
    code, text = cli(tmp_path, "fuzz", "--budget", CEILING_BUDGET, "--max-cases", "3", "-k", "test_decode_eager",
                     "--out", out, "--database", tmp_path / "db", "--backend", "emulated", "--", "-p",
                     "crashing_kernel", pythonpath=tmp_path, CRASH_MARK=str(mark))
    assert code == 1, text[-3000:]
    report = load_report(out / "report.json")
    fuzz = report["fuzz"]
    crash = [f for f in fuzz["failures"] if "worker crashed: killed by SIGKILL" in f["signature"]]
    assert len(crash) == 1, fuzz["failures"]
    saved = read_case_file(crash[0]["case_file"])  # a replayable case file
    assert saved.case.case_id == mark.read_text() and saved.verdict["verdict"] == "crash"
    assert fuzz["workers"][0]["restarts"] == 1 and report["complete"]
    assert any(r["verdict"] == "error" and r["error"].startswith("WorkerCrashed") for r in report["records"])
    assert any(r["verdict"] == "pass" for r in report["records"])  # the restarted worker went on judging
