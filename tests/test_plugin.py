"""The pytest plugin: backend selection, --require-npu, --strict-contracts, policies, profiles, records.

Each scenario runs pytest in a subprocess (the plugin configures process-wide settings).
"""

from __future__ import annotations

import importlib.util
import signal
import textwrap
import xml.etree.ElementTree as ET

import pytest

pytest_plugins = ["pytester"]

PROPERTY = textwrap.dedent('''
    import pytest
    from hypothesis import given, settings
    from conformance.cases.case import Case
    from conformance.harness.verify import verify_case

    pytestmark = pytest.mark.suite
    CASE = Case(phase="decode_eager", num_heads=4, num_kv_heads=2, head_dim=16, dtype="float16",
                block_size=16, num_blocks=6, seq_lens=(20, 5), block_tables=((3, 1), (4,)), seed=2)

    def test_decode_case():
        verify_case(CASE, "decode_eager")
''')

no_npu = pytest.mark.skipif(importlib.util.find_spec("torch_npu") is not None, reason="torch_npu is installed here")


def run(pytester, *args):
    pytester.makepyfile(test_property=PROPERTY)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", *args)


def test_emulated_backend_runs_and_attaches_records_to_junit(pytester):
    result = run(pytester, "--backend", "emulated", "--junitxml", "junit.xml", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*npu-conformance: backend=emulated*hypothesis profile=dev*"])
    tree = ET.parse(pytester.path / "junit.xml")
    names = [p.get("name") for p in tree.iter("property")]
    assert names == ["conformance_case"]
    assert " decode_eager float16 pass ratio=" in next(tree.iter("property")).get("value")


@no_npu
def test_npu_backend_without_a_device_skips_with_the_reason(pytester):
    result = run(pytester, "--backend", "npu", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*--backend npu but no usable NPU*"])


@no_npu
def test_require_npu_without_a_device_fails_at_once_with_the_reason(pytester):
    result = run(pytester, "--backend", "npu", "--require-npu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # before any test ran
    result.stderr.fnmatch_lines(["*--require-npu: no usable NPU (torch-npu is not installed)*"])
    emulated = run(pytester, "--backend", "emulated", "--require-npu")
    assert emulated.ret == pytest.ExitCode.USAGE_ERROR
    emulated.stderr.fnmatch_lines(["*--require-npu: backend emulated (requested with --backend emulated)*"])


GRAPH_PROPERTY = textwrap.dedent('''
    import pytest
    from conformance.cases.case import Case
    from conformance.harness.verify import verify_case

    pytestmark = pytest.mark.suite
    # Two padded rows write the dummy slot: the scu/overlapping-targets hazard the project acknowledges.
    CASE = Case(phase="decode_graph", num_heads=4, num_kv_heads=2, head_dim=16, dtype="float16", block_size=16,
                num_blocks=7, seq_lens=(20, 5), block_tables=((3, 1), (4,)), seed=2, max_num_seqs=4, table_width=3)

    def test_graph_case():
        verify_case(CASE, "decode_graph")
''')


def run_graph(pytester, *args):
    pytester.makepyfile(test_graph_property=GRAPH_PROPERTY)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", *args)


def test_an_acknowledged_hazard_passes_and_strict_contracts_fail_it(pytester):
    result = run_graph(pytester, "--backend", "emulated", "--junitxml", "junit.xml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*acknowledgements=*acknowledged_hazards.toml*"])
    strict = run_graph(pytester, "--backend", "emulated", "--strict-contracts")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*hazard [[]scu/overlapping-targets[]] FAILS: --strict-contracts ignores its "
                                 "acknowledgement graph-padding-dummy-slot*"])


def test_a_hazard_fails_unless_the_ledger_acknowledges_it(pytester):
    pytester.path.joinpath("empty.toml").write_text("# no hazard is accepted\n")
    result = run_graph(pytester, "--backend", "emulated", "--acknowledgements", "empty.toml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*hazard [[]scu/overlapping-targets[]] FAILS: not acknowledged*"])
    pytester.path.joinpath("typo.toml").write_text(
        '[[acknowledge]]\nid = "x"\nop = "torch_npu.scatter_update_"\ncode = "scu/overlaping"\n'
        'reason = "r"\nlink = "l"\n')
    bad = run_graph(pytester, "--backend", "emulated", "--acknowledgements", "typo.toml")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*entry 1: field 'code' must be a hazard code*scu/overlaping*"])


def test_tolerance_policy_file_is_used_and_a_bad_one_is_a_usage_error(pytester):
    pytester.path.joinpath("tight.toml").write_text("[policy]\nk = 0\nulps = 0\nfloor = 1e-30\nmean_k = 0\n")
    result = run(pytester, "--backend", "emulated", "--tolerance-policy", "tight.toml")
    result.stdout.fnmatch_lines(["*tolerance policy=tight.toml*"])
    pytester.path.joinpath("bad.toml").write_text("[policy]\nq = 1\n")
    bad = run(pytester, "--backend", "emulated", "--tolerance-policy", "bad.toml")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*unknown keys*"])


def test_failing_case_is_saved_for_replay(pytester):
    pytester.path.joinpath("tight.toml").write_text("[policy]\nk = 0\nulps = 0\nfloor = 1e-30\nmean_k = 0\n")
    result = run(pytester, "--backend", "emulated", "--tolerance-policy", "tight.toml",
                 "--conformance-failures", "saved")
    # fp16 output rounding alone exceeds a zero bound: the case fails and is kept for replay.
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*replay: npu-conformance replay saved/decode_eager-*.json*"])
    saved = list((pytester.path / "saved").glob("decode_eager-*.json"))
    assert len(saved) == 1
    # The file carries the policy that failed it: replaying it (no options) fails the same way.
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "replay", str(saved[0])], capture_output=True,
                          text=True, env={**__import__("os").environ, "TORCH_DEVICE_BACKEND_AUTOLOAD": "0"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("tolerance policy tight.toml" in proc.stdout
            and "saved verdict: fail (output); replayed: fail" in proc.stdout)


def test_profiles_are_selected_by_environment_and_unknown_ones_refused(pytester, monkeypatch):
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "fuzz")
    run(pytester, "--backend", "emulated").stdout.fnmatch_lines(["*hypothesis profile=fuzz*"])
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "turbo")
    result = run(pytester, "--backend", "emulated")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*HYPOTHESIS_PROFILE='turbo'*"])


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigterm_swallowed_by_a_gc_callback_still_stops_the_run_at_the_next_case():
    """Found under load: SIGTERM landed while hypothesis's gc callback ran, Python printed the handler's
    exception as "unraisable", and the run went on to the end. The signal is kept and acted on next."""
    import functools
    import gc

    from conformance.harness import plugin as harness_plugin
    from conformance.harness.run import RunState

    state = RunState()
    handler = functools.partial(harness_plugin._terminate, state)

    def callback(phase, info):
        handler(signal.SIGTERM, None)

    gc.callbacks.append(callback)
    try:
        gc.collect()  # the raise inside the callback is swallowed
    finally:
        gc.callbacks.remove(callback)
    assert state.sigterm_received
    with pytest.raises(harness_plugin.Terminated):
        harness_plugin.stop_if_terminated(state)
    harness_plugin.stop_if_terminated(RunState())  # no signal: nothing happens
