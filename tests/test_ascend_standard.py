"""msprobe's benchmark standard (conformance.judge.ascend_standard): each metric on hand-made tensors, the
ratio floor, the level limits, and the places where this standard deliberately differs from msprobe."""

import math

import pytest
import torch

from conformance.judge.ascend_standard import (
    LEVELS,
    MINIMUM_ERR,
    REL_EPS,
    SMALL_VALUE,
    benchmark_metrics,
    compare_ascend,
    metric_ratio,
)


def test_small_values_are_judged_by_share_with_absolute_error_above_atol():
    golden = torch.tensor([2.0**-11, 2.0**-12, 0.0, 1.0], dtype=torch.float64)
    actual = golden.clone()
    actual[0] += 1e-12  # a small value, off by more than atol 1e-16
    m = benchmark_metrics(actual, golden, torch.float16)
    assert m["small_values"] == 3 and m["small_value_err_ratio"] == pytest.approx(1 / 3)
    # the small value is left out of the relative errors and RMSE: the rest is exact
    assert m["max_rel_err"] == 0 and m["rmse"] == 0


def test_small_value_threshold_differs_per_dtype():
    golden = torch.tensor([2.0**-15, 1.0], dtype=torch.float64)
    assert benchmark_metrics(golden, golden, torch.float16)["small_values"] == 1  # fp16: |g| <= 2^-10
    assert benchmark_metrics(golden, golden, torch.float32)["small_values"] == 0  # fp32: |g| <= 2^-20
    assert SMALL_VALUE[torch.float32] == 2.0**-20 and SMALL_VALUE[torch.bfloat16] == 2.0**-10


def test_relative_errors_rmse_and_error_balance():
    golden = torch.tensor([1.0, 2.0, -4.0, 0.5], dtype=torch.float64)
    actual = golden + torch.tensor([0.01, -0.02, 0.04, 0.0], dtype=torch.float64)
    m = benchmark_metrics(actual, golden, torch.bfloat16)
    eps = REL_EPS[torch.bfloat16]
    rel = [0.01 / (1 + eps), 0.02 / (2 + eps), 0.04 / (4 + eps), 0.0]
    assert m["max_rel_err"] == pytest.approx(max(rel)) and m["mean_rel_err"] == pytest.approx(sum(rel) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0.01**2 + 0.02**2 + 0.04**2) / 4))
    # two above the golden, one below, one equal: |2 - 1| / 4
    assert m["eb"] == pytest.approx(0.25)


def test_ratio_floors_the_baseline_at_minimum_err():
    assert metric_ratio(2.0**-10, 0.0, torch.float16) == pytest.approx(2.0)  # 2^-10 / 2^-11
    assert metric_ratio(2.0**-8, 2.0**-6, torch.bfloat16) == pytest.approx(0.25)
    assert MINIMUM_ERR == {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float32: 2.0**-14}


def _outputs(dtype, n=4096, seed=0):
    g = torch.Generator().manual_seed(seed)
    golden = torch.randn(n // 64, 4, 16, generator=g, dtype=torch.float64)
    return golden, golden.to(dtype)


# float32: the standard does not apply (tests/test_ascend_not_applicable.py), its would-be verdict is checked there
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_correctly_rounded_kernel_passes_and_a_wrong_one_fails_at_l1(dtype):
    golden, baseline = _outputs(dtype)
    good = compare_ascend(baseline.clone(), golden, baseline, dtype=dtype)
    assert good.passed and good.margin <= 1 and good.reasons == []
    wrong = baseline.clone()
    wrong[3] = wrong[3] * 1.5  # one row off by half its value
    bad = compare_ascend(wrong, golden, baseline, dtype=dtype)
    assert not bad.passed and "max_rel_err" in " ".join(bad.reasons) and bad.margin > 1


def test_levels_are_msprobes():
    assert LEVELS["L1"] == {"max_rel_err": 5.0, "mean_rel_err": 1.5, "rmse": 1.5}
    golden, baseline = _outputs(torch.float16)
    slightly = golden * (1 + 1.5 * 2.0**-11)  # mean relative error 1.5x the fp16 floor of 2^-11
    l0 = compare_ascend(slightly, golden, baseline, dtype=torch.float16, level="L0")
    l2 = compare_ascend(slightly, golden, baseline, dtype=torch.float16, level="L2")
    assert l0.ratios == l2.ratios and l0.passed and not l2.passed
    with pytest.raises(ValueError, match="level must be one of"):
        compare_ascend(baseline, golden, baseline, dtype=torch.float16, level="L3")


def test_a_nan_output_fails_although_msprobe_would_mask_it_out():
    golden, baseline = _outputs(torch.bfloat16)
    out = baseline.clone()
    out[0, 0, 0] = math.nan
    result = compare_ascend(out, golden, baseline, dtype=torch.bfloat16)
    # every gating metric alone is within its limit (the NaN element is masked out, as msprobe does) ...
    assert all(result.ratios[m] <= result.limits[m] for m in ("max_rel_err", "mean_rel_err", "rmse"))
    # ... and the verdict fails anyway
    assert not result.passed and result.kernel["nonfinite"] == 1 and result.margin == math.inf


def test_nonzero_padding_rows_count_against_small_values():
    golden, baseline = _outputs(torch.float16)
    golden[-2:], baseline[-2:] = 0, 0  # padded rows: no key, must be exactly 0
    out = baseline.clone()
    out[-1] = 1e-3
    result = compare_ascend(out, golden, baseline, dtype=torch.float16)
    assert not result.passed and result.worst_metric == "small_value_err_ratio"
