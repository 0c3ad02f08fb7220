"""Small promises a user relies on: live progress, stable test ids, no stale failures, no pointers
outside the project, one ratio format, an engine whose examples all count."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import cli_env, run_cli

from conformance.formatting import fmt_ratio

ROOT = Path(__file__).resolve().parents[1]


def test_ratios_have_one_format():
    assert [fmt_ratio(x) for x in (0.28, 0.0977, 0, 27.04, None, float("inf"))] == [
        "0.280", "0.098", "0.000", "27.040", "-", "inf"]


def test_progress_reports_each_judged_case_while_a_test_runs(capsys):
    from rich.console import Console

    from conformance.cli.progress import Progress

    progress = Progress(Console(file=io.StringIO(), force_terminal=False))
    progress.HEARTBEAT_S = 0.0
    progress.current = "runTest"
    record = {"verdict": "pass", "ratio": 0.25, "phase": "decode_eager", "dtype": "bfloat16"}
    progress.pytest_conformance_case_judged(config=None, record=record, seconds={})
    progress.pytest_conformance_case_judged(config=None, record=record | {"ratio": 0.5}, seconds={})
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("  ... runTest: 2 cases judged in this test, 2 in all, 0 failing, worst ratio 0.500")


def test_no_project_file_points_into_the_development_notes():
    offenders = []
    for path in ROOT.rglob("*"):
        if path.suffix not in (".py", ".md", ".toml", ".ini", ".json", ".txt") or ".tox" in path.parts \
                or ".git" in path.parts or path.name == Path(__file__).name:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if "../shared" in text or "/work/shared" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_every_engine_example_counts():
    """The stateful engine starts with an initialize rule and has no preconditions: hypothesis discards
    an example whose drawn rule is disabled, and most dev examples used to be discarded that way."""
    import inspect

    from hypothesis.stateful import INITIALIZE_RULE_MARKER, PRECONDITIONS_MARKER, RULE_MARKER

    from conformance.suite.test_engine import EngineMachine

    methods = [f for _, f in inspect.getmembers(EngineMachine, inspect.isfunction)]
    assert any(hasattr(f, INITIALIZE_RULE_MARKER) for f in methods)
    rules = [f for f in methods if hasattr(f, RULE_MARKER)]
    assert len(rules) == 3 and not any(getattr(f, PRECONDITIONS_MARKER, ()) for f in rules)


@pytest.mark.parametrize("extra", [[], ["--tolerance-policy", "ABSPOLICY"], ["-n", "2"]])
def test_run_test_ids_do_not_move_with_paths_or_workers(tmp_path, extra):
    if "-n" in extra:
        pytest.importorskip("xdist",
                            reason="pytest-xdist not installed: pip install 'npu-attention-conformance[xdist]'")
    policy = tmp_path / "elsewhere" / "p.toml"
    policy.parent.mkdir()
    policy.write_text("[policy]\nk = 2.5\n")
    extra = [str(policy) if a == "ABSPOLICY" else a for a in extra]
    out = tmp_path / "rep"
    (out / "failures").mkdir(parents=True)
    (out / "failures" / "prefill-000000000000.json").write_text("{}")  # from an earlier run
    proc = run_cli(tmp_path, "run", "--backend", "emulated", "--out", out, "-k", "test_prefill_output", *extra)
    assert proc.returncode == 0, proc.stdout[-3000:]
    from conformance.report import load_report

    report = load_report(out / "report.json")
    assert [t["test_id"] for t in report["tests"]] == [
        "conformance/suite/test_prefill.py::test_prefill_output_and_cache_write"]
    assert not list((out / "failures").glob("*.json")), "an earlier run's failures are gone"


def test_strict_contracts_output_is_plain_and_the_hazard_fails(tmp_path):
    proc = run_cli(tmp_path, "run", "--backend", "emulated", "--out", tmp_path / "rep", "--strict-contracts", "-k",
                   "test_decode_graph_session")
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "DEBUG" not in proc.stdout + proc.stderr
    assert "with an unacknowledged emulator hazard" in proc.stdout.splitlines()[-1] or \
        "with an unacknowledged emulator hazard" in proc.stdout


def test_profiles_do_not_change_when_ci_is_set():
    """Hypothesis loads its own derandomized "ci" profile when CI is set; ours must not inherit it
    (a derandomized dev profile ignores --seed on every CI machine)."""
    code = ("import conformance.harness.plugin\nfrom hypothesis import settings\n"
            "p = settings.get_profile('dev')\nprint(p.derandomize, p.database is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=cli_env(CI="true")).stdout.split()
    assert out == ["False", "True"]
