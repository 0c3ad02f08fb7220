"""Case files: a failing case saved with what judged it replays to the same verdict; a bad file is refused
with the field and the rule (exit 2), never a traceback; the engine's failures replay on their cache."""

from __future__ import annotations

import json

import pytest
import torch

from conformance import cli
from conformance.cases.case import Case
from conformance.cli import exit_codes
from conformance.emulator import ContractViolation
from conformance.harness.case_files import CaseFileError, read_case_file, write_case_file
from conformance.judge.policy import PolicySet, TolerancePolicy
from conformance.judge.settings import RunSettings
from conformance.mutants import get

CASE = Case(phase="decode_eager", num_heads=4, num_kv_heads=2, head_dim=16, dtype="float16", block_size=16,
            num_blocks=6, seq_lens=(20, 5), block_tables=((3, 1), (4,)), seed=2)
TIGHT = PolicySet(TolerancePolicy(k=0.0, mean_k=0.0, ulps=0.0, floor=1e-12, source="tight (test)"), {})


def test_a_saved_case_round_trips_with_its_settings_and_cache_state(tmp_path):
    run = RunSettings(strict_contracts=True, policies=TIGHT)
    state = {"k_cache": torch.randn(6, 16, 32).half(), "v_cache": torch.randn(6, 16, 32).half()}
    path = write_case_file(tmp_path, CASE, run, {"verdict": "fail"}, state)
    assert path.name.startswith(f"decode_eager-{CASE.case_id}-") and path.with_suffix(".safetensors").is_file()
    saved = read_case_file(path)
    assert saved.case == CASE and saved.verdict == {"verdict": "fail"}
    assert saved.judged_with["strict_contracts"] is True and saved.judged_with["backend"] == "emulated"
    assert saved.judged_with["policies"].default.k == 0.0 and saved.judged_with["mutation"] is None
    assert [a.id for a in saved.judged_with["acknowledgements"].entries] == ["graph-padding-dummy-slot"]
    tensors = saved.tensors("cpu")
    assert torch.equal(tensors.k_cache, state["k_cache"]) and torch.equal(tensors.q, CASE.materialise("cpu").q)


def test_an_infinite_ratio_is_saved_as_report_json_writes_it(tmp_path):
    path = write_case_file(tmp_path, CASE, RunSettings(), {"verdict": "fail", "ratio": float("inf")})
    assert json.loads(path.read_text())["verdict"]["ratio"] == "inf"
    assert read_case_file(path).verdict["ratio"] == "inf"


def test_replay_reproduces_the_saved_verdict(tmp_path, capsys):
    failing = write_case_file(tmp_path, CASE, RunSettings(policies=TIGHT), {"verdict": "fail"})
    assert cli.main(["replay", str(failing)]) == exit_codes.FAILED
    assert "tolerance policy tight (test)" in capsys.readouterr().out
    # The same case judged with the default policy passes: the verdict came from the saved policy.
    passing = write_case_file(tmp_path / "default", CASE, RunSettings(), {"verdict": "pass"})
    assert cli.main(["replay", str(passing)]) == exit_codes.PASSED
    # A bare Case (an old file) still replays, with the defaults.
    old = tmp_path / "old.json"
    old.write_text(CASE.to_json())
    assert cli.main(["replay", str(old)]) == exit_codes.PASSED


def _saved(tmp_path, **case_changes):
    data = json.loads(write_case_file(tmp_path, CASE, RunSettings(), {}).read_text())
    for key, value in case_changes.items():
        if value is KeyError:
            del data["case"][key]
        else:
            data["case"][key] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"seed": KeyError}, "missing field(s) ['seed']"),
    ({"num_heads": "4"}, "Case.num_heads must be an int, got str '4'"),
    ({"head_dim": 0}, "Case.head_dim must be >= 1, got 0"),
    ({"block_size": 0}, "Case.block_size must be >= 1, got 0"),
    ({"seq_lens": [20.0, 5]}, "Case.seq_lens[0] must be an int, got float 20.0"),
    ({"scale": -1.0}, "Case.scale must be a finite number > 0, got -1.0"),
    ({"scale": 0}, "Case.scale must be a finite number > 0"),
    ({"seed": 2**70}, "Case.seed must be in [0, 9223372036854775807]"),
    ({"block_tables": [[3, 1], [1]]}, "block 1 is used twice (sequences 0 and 1)"),
    ({"num_blocks": 10**12}, "over the 4 GiB budget"),
    ({"phase": "decode"}, "Case.phase must be one of"),
    ({"extra": 1}, "unknown field(s) ['extra']"),
])
def test_bad_case_files_are_refused_by_field_and_rule(tmp_path, capsys, changes, message):
    path = _saved(tmp_path, **changes)
    with pytest.raises(CaseFileError, match=None) as info:
        read_case_file(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert cli.main(["replay", str(path)]) == exit_codes.USAGE
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_nan_scale_and_broken_files_are_refused(tmp_path, capsys):
    path = _saved(tmp_path)
    path.write_text(path.read_text().replace('"scale": null', '"scale": NaN'))
    assert cli.main(["replay", str(path)]) == exit_codes.USAGE
    assert "Case.scale must be a finite number > 0, got nan" in capsys.readouterr().err
    for text, message in (("{", "not valid JSON"), ("[1]", "expected a JSON object"),
                          ('{"format": "x", "version": 9}', "is not 'npu-conformance case' version 2")):
        path.write_text(text)
        assert cli.main(["replay", str(path)]) == exit_codes.USAGE
        assert message in capsys.readouterr().err
    assert cli.main(["replay", str(tmp_path / "nope.json")]) == exit_codes.USAGE
    assert "cannot read case file" in capsys.readouterr().err


def test_a_bad_saved_policy_is_refused_by_name(tmp_path, capsys):
    path = write_case_file(tmp_path, CASE, RunSettings(), {})
    data = json.loads(path.read_text())
    data["judged_with"]["tolerance_policy"]["default"]["k"] = 1e300
    path.write_text(json.dumps(data))
    assert cli.main(["replay", str(path)]) == exit_codes.USAGE
    assert "judged_with.tolerance_policy.default.k: 1e+300 is above 100" in capsys.readouterr().err


def test_an_engine_failure_replays_on_the_cache_it_ran_on(tmp_path, capsys, run_settings):
    """The stateful engine judges steps on its live cache: the saved file carries that cache and the
    planted bug that failed it, so replay fails the same step; without the bug it passes on that cache."""
    from hypothesis import HealthCheck, Phase
    from hypothesis import settings as hyp_settings
    from hypothesis.stateful import run_state_machine_as_test

    from conformance.harness.run import current_config, run_state
    from conformance.suite.test_engine import EngineMachine

    run_settings(mutation=get("decode_block_table_of_row0").mutation(), failures_dir=tmp_path)
    written = run_state(current_config())  # the case files this pytest run saved
    written.drain_written()
    with pytest.raises((AssertionError, ContractViolation)):  # out of tolerance, or refused by the kernel
        run_state_machine_as_test(EngineMachine, settings=hyp_settings(
            max_examples=30, phases=[Phase.generate], database=None, derandomize=True, deadline=None,
            suppress_health_check=list(HealthCheck), stateful_step_count=10))
    path = written.drain_written()[-1]
    saved = read_case_file(path)
    assert saved.state is not None and saved.judged_with["mutation"] == "decode_block_table_of_row0"
    assert cli.main(["replay", str(path)]) == exit_codes.FAILED
    out = capsys.readouterr().out
    assert "on the saved cache state" in out and "planted bug decode_block_table_of_row0" in out
    data = json.loads(path.read_text())
    data["judged_with"]["mutation"] = None
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(data))
    assert cli.main(["replay", str(clean)]) == exit_codes.PASSED
