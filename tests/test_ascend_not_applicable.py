"""Ascend's benchmark standard does not apply to float32 (an emulator-only extension): its metrics are
computed and shown, its verdict is "not applicable", and it never fails a case, whatever gates."""

from __future__ import annotations

import torch

from conformance.cases.case import Case
from conformance.judge.ascend_standard import compare_ascend
from conformance.judge.check import check_case
from conformance.judge.policy import Gating, PolicySet


def test_float32_is_not_applicable_even_far_outside_the_limits():
    golden = torch.randn(4, 2, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    baseline = golden.float()
    out = (golden * 1.5).float()  # far outside every limit
    a = compare_ascend(out, golden, baseline, dtype=torch.float32)
    assert a.verdict == "not applicable" and a.passed and a.margin > 1
    assert a.reasons[0].startswith("not applicable to float32")
    assert any(r.startswith("(would be: max_rel_err ratio") for r in a.reasons[1:]), a.reasons
    assert compare_ascend(out.bfloat16(), golden, baseline.bfloat16(), dtype=torch.bfloat16).verdict == "fail"


def test_a_float32_case_gated_by_the_ascend_standard_is_judged_by_the_dual_reference_only(run_settings):
    run_settings(policies=PolicySet(gating=Gating(standards="both")))
    case = Case(phase="decode_eager", num_heads=4, num_kv_heads=2, head_dim=32, dtype="float32", block_size=16,
                num_blocks=6, seq_lens=(20, 3), block_tables=((2, 4), (1,)), seed=5)
    outcome = check_case(case)
    assert outcome.verdicts["ascend"] == "not applicable" and "ascend" not in outcome.failed_checks
    assert outcome.ratio == max(outcome.output.ratio, outcome.output.mean_ratio), "the n/a margin is not gated"
