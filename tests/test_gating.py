"""Which standards fail a case: the policy file's [gating] table, every record carrying every verdict,
and the determinism check (the layer run twice on the same inputs) catching a nondeterministic kernel."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conformance.cases.case import Case
from conformance.judge.ascend_standard import compare_ascend
from conformance.judge.check import Outcome, check_case
from conformance.judge.policy import Gating, PolicyFileError, PolicySet, load_policy
from conformance.judge.settings import settings
from conformance.judge.tolerance import compare_output
from conformance.mutants import get

PREFILL = Case(phase="prefill", num_heads=4, num_kv_heads=2, head_dim=64, dtype="bfloat16", block_size=16,
               num_blocks=10, seq_lens=(19, 7), block_tables=((7, 2), (5,)), seed=11)


def test_gating_table_in_a_policy_file(tmp_path):
    path = tmp_path / "ascend.toml"
    path.write_text('[gating]\nstandards = "both"\ndeterminism = "report"\nascend_level = "L2"\n')
    gating = load_policy(path).gating
    assert gating == Gating(standards="both", determinism="report", ascend_level="L2")
    assert gating.gates("dual") and gating.gates("ascend") and not gating.gates("determinism")
    assert PolicySet.from_dict(load_policy(path).as_dict()).gating == gating  # case files keep it
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_policy(empty).gating == Gating()
    default = Gating()
    assert default.gates("dual") and not default.gates("ascend") and default.gates("determinism")


@pytest.mark.parametrize("text, message", [
    ('[gating]\nstandards = "ascend-only"\n', r"\[gating\].standards: must be one of \['dual', 'ascend', 'both'\]"),
    ('[gating]\ndeterminism = true\n', r"\[gating\].determinism: must be one of \['gate', 'report'\]"),
    ('[gating]\nascend_level = "L3"\n', r"\[gating\].ascend_level: must be one of \['L0', 'L1', 'L2'\]"),
    ('[gating]\nstrict = 1\n', "unknown keys \\['strict'\\]"),
    ("gating = 2\n", "'gating' must be a table"),
])
def test_bad_gating_is_refused_naming_the_key(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(PolicyFileError, match=message):
        load_policy(path)


def _outputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    golden = torch.randn(48, 4, 64, generator=g, dtype=torch.float64)
    return golden, golden.to(torch.bfloat16)


def _outcome(out, golden, baseline, gating):
    output = compare_output(out, golden, baseline, dtype=torch.bfloat16, row_seq=[0] * golden.shape[0])
    ascend = compare_ascend(out, golden, baseline, dtype=torch.bfloat16)
    return Outcome(PREFILL, "emulated", output, [], [], ascend=ascend, gating=gating)


def test_each_standard_gates_only_when_the_policy_says_so():
    golden, baseline = _outputs()
    # Three times the baseline's error: out of the dual reference (k = 2), inside Ascend L1 (max_rel <= 5).
    out = golden + 3 * (baseline.to(torch.float64) - golden)
    verdicts = {}
    for standards in ("dual", "ascend", "both"):
        o = _outcome(out, golden, baseline, Gating(standards=standards))
        assert o.verdicts == {"dual": "fail", "ascend": "pass", "determinism": "not run"}
        verdicts[standards] = o.failed_checks
        assert o.record()["verdicts"] == o.verdicts and o.record()["ascend"]["verdict"] == "pass"
    assert verdicts == {"dual": ["output"], "ascend": [], "both": ["output"]}


def test_the_ascend_standard_can_fail_what_the_dual_reference_passes():
    golden, baseline = _outputs()
    golden[:, :, :8] = 2.0**-12  # small values the baseline gets exactly ...
    baseline = baseline.clone()
    baseline[:, :, :8] = 2.0**-12
    out = baseline.to(torch.float64)
    out[:, :, :8] += 1e-9  # ... and the kernel misses by far less than any dual bound
    for standards, failed in (("dual", []), ("ascend", ["ascend"]), ("both", ["ascend"])):
        o = _outcome(out, golden, baseline, Gating(standards=standards))
        assert o.verdicts["dual"] == "pass" and o.verdicts["ascend"] == "fail"
        assert o.failed_checks == failed, standards
        assert o.ascend.worst_metric == "small_value_err_ratio"
    assert "Ascend benchmark standard L1 (reported, not gating): FAIL" in _outcome(
        out, golden, baseline, Gating()).explain()


def test_a_case_under_an_ascend_policy_is_judged_by_it(tmp_path, run_settings):
    path = tmp_path / "ascend.toml"
    path.write_text('[gating]\nstandards = "ascend"\n')
    run_settings(policies=load_policy(path))
    outcome = check_case(PREFILL)
    assert outcome.passed and outcome.gating.standards == "ascend"
    assert outcome.ratio == outcome.ascend.margin  # the gating standard's ratio is the case's ratio


def test_the_determinism_check_runs_on_every_case_and_catches_a_nondeterministic_kernel(run_settings):
    outcome = check_case(PREFILL)
    assert outcome.determinism.runs == 2 and outcome.determinism.passed and outcome.passed
    run_settings(mutation=get("fia_nondeterministic_reduction").mutation())
    caught = check_case(PREFILL)
    assert caught.output.passed and caught.ascend.passed  # last-bit flips stay inside both standards
    assert caught.failed_checks == ["determinism"]
    first = caught.determinism.differences[0]
    assert first["tensor"] == "output" and {"row", "seq", "head", "dim"} <= set(first)
    assert "nondeterministic:" in caught.explain() and f"row {first['row']}" in caught.explain()
    # Under "report" it still shows on the record, and no longer fails the case.
    run_settings(policies=dataclasses.replace(settings().policies, gating=Gating(determinism="report")))
    reported = check_case(PREFILL)
    assert reported.passed and reported.verdicts["determinism"] == "fail"
    assert reported.record()["determinism"]["verdict"] == "fail"
