"""Ascend's benchmark standard (msprobe's api_accuracy_checker), beside the dual reference.

msprobe judges an NPU op by comparing it, and a second device's result, with a high-precision CPU
benchmark, then dividing each NPU metric by the other device's. Here the "other device" is the
same-dtype baseline and the benchmark is the float64 golden, so a verdict reads in the terms Ascend
engineers use. Every constant below is from Ascend/msprobe at commit 8ff00da3 (paths under
python/msprobe/pytorch/api_accuracy_checker/):

  small-value mask  |golden| <= SMALL_VALUE[dtype], both sides finite        compare/algorithm.py:143-146
  small_value_err_ratio = #(small and |err| > atol) / #small (0 if none)     compare/algorithm.py:85-89,
                                                                             precision_standard/benchmark_compare.py:85
  RMSE over elements neither small nor non-finite                            compare/algorithm.py:66-72
  rel = |err| / (|golden| + eps), max and mean over the same elements        compare/algorithm.py:92-96,116-123,149-153
  EB = |#(out > golden) - #(out < golden)| / N  (reported, not gating)       compare/algorithm.py:76-81,
                                                                             precision_standard/benchmark_compare.py:216
  ratio = |kernel metric| / max(|baseline metric|, MINIMUM_ERR[dtype])       compare/algorithm.py:284-287
  a metric fails when its ratio exceeds its level's limit (no warning band)  precision_standard/benchmark_compare.py:191-197

Two places where this differs from msprobe, on purpose:
  * msprobe masks non-finite elements out of every gating metric (compare/algorithm.py:135-140), so an
    output with a NaN in it can pass. A conformance verdict must not pass NaN: a non-finite output
    element where the golden is finite fails this standard (as it fails the dual reference).
  * msprobe's RMSE rescales a mean over all elements by ~N/(N - masked) with 1e-4 fudge terms; this
    takes the mean over the included elements directly. The two agree to ~1e-4 relative.
"""  # noqa: E501  (a two-column table: the msprobe path in the right column cannot wrap)

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

# precision_standard/standard_config.py:66-71 (small-value threshold), :78-83 (small-value atol)
SMALL_VALUE = {torch.float16: 2.0**-10, torch.bfloat16: 2.0**-10, torch.float32: 2.0**-20}
SMALL_VALUE_ATOL = {torch.float16: 1e-16, torch.bfloat16: 1e-16, torch.float32: 2.0**-30}
# compare/algorithm.py:149-153 with python/msprobe/core/common/const.py:814 (BFLOAT16_EPS): the eps of
# msprobe's benchmark dtype (fp16 is benchmarked in fp32, fp32 in fp64: acc_check/acc_check_utils.py:45-49),
# a fixed 2^-8 for bf16.
REL_EPS = {torch.float16: float(torch.finfo(torch.float32).eps), torch.bfloat16: 2.0**-8,
           torch.float32: float(torch.finfo(torch.float64).eps)}
# precision_standard/standard_config.py:121-126 (the "minmum_err" floor of each ratio's denominator)
MINIMUM_ERR = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float32: 2.0**-14}
# precision_standard/standard_config.py:151-167 (per level), :96-100,116-120 (small value and EB: 2 everywhere).
# Attention (npu_fusion_attention) and scatter_ are L1 (standard_config.py:57-60).
LEVELS = {"L0": {"max_rel_err": 10.0, "mean_rel_err": 2.0, "rmse": 2.0},
          "L1": {"max_rel_err": 5.0, "mean_rel_err": 1.5, "rmse": 1.5},
          "L2": {"max_rel_err": 2.0, "mean_rel_err": 1.2, "rmse": 1.2}}
SMALL_VALUE_LIMIT = 2.0
EB_LIMIT = 2.0  # msprobe computes its status but leaves it out of the verdict
DEFAULT_LEVEL = "L1"
GATING_METRICS = ("max_rel_err", "mean_rel_err", "rmse", "small_value_err_ratio")
#: Dtypes the standard does not apply to, and why: its metrics are computed and shown, its verdict is
#: "not applicable" and never fails a case, whatever gates. float32 is an emulator-only extension (no Ascend
#: attention kernel takes it): the emulated kernel and its float32 baseline are equally precise, so each
#: ratio is one of two like rounding errors, heavy-tailed around 1, and a correct case lands above the
#: L1 limit in a fair share of runs (bench/tolerance_tail.py prints how many).
NOT_APPLICABLE = {torch.float32: "not applicable to float32: no Ascend kernel takes it, and the emulated kernel is "
                                 "exactly as precise as its float32 baseline, so its ratios compare two like rounding "
                                 "errors (bench/tolerance_tail.py)"}
METRICS = GATING_METRICS + ("eb",)


class _Golden:
    """What every metric needs from the golden, computed once for the kernel and the baseline."""

    def __init__(self, golden: torch.Tensor, dtype: torch.dtype):
        self.g = golden.detach().to("cpu", torch.float64).flatten()
        self.finite = torch.isfinite(self.g)
        g_abs = self.g.abs()
        self.small = g_abs <= SMALL_VALUE[dtype]
        self.denominator = g_abs + REL_EPS[dtype]
        # EB compares with the golden in the kernel dtype, except bf16, which msprobe upcasts both sides
        # to fp32 before comparing (compare/compare.py:333-335).
        self.eb_reference = self.g if dtype == torch.bfloat16 else self.g.to(dtype).to(torch.float64)


def benchmark_metrics(actual: torch.Tensor, golden: torch.Tensor | _Golden, dtype: torch.dtype) -> dict:
    """msprobe's five metrics of `actual` (values of `dtype`, any float type) against `golden`."""
    ref = golden if isinstance(golden, _Golden) else _Golden(golden, dtype)
    a = actual.detach().to("cpu", torch.float64).flatten()
    n = a.numel()
    a_finite = torch.isfinite(a)
    finite = a_finite & ref.finite
    err = (a - ref.g).abs_().nan_to_num_(0.0, 0.0, 0.0)  # non-finite spots are masked out below
    small = finite & ref.small
    normal = finite & ~ref.small
    num_small = int(torch.count_nonzero(small))
    num_normal = int(torch.count_nonzero(normal))
    small_bad = int(torch.count_nonzero(small & (err > SMALL_VALUE_ATOL[dtype])))
    normal_err = err * normal  # masked by a product, not indexed: one pass, no gather
    # Masked elements are 0, not 0 / NaN: a NaN golden is left out, as msprobe leaves it (compare/algorithm.py:92-96)
    rel = torch.where(normal, normal_err / ref.denominator, 0.0)
    above = int(torch.count_nonzero(a > ref.eb_reference))
    below = int(torch.count_nonzero(a < ref.eb_reference))
    return {
        "small_value_err_ratio": small_bad / num_small if num_small else 0.0,
        "rmse": math.sqrt(float(normal_err.square_().sum()) / num_normal) if num_normal else 0.0,
        "max_rel_err": float(rel.max()) if num_normal else 0.0,
        "mean_rel_err": float(rel.sum()) / num_normal if num_normal else 0.0,
        "eb": abs(above - below) / n if n else 0.0,
        "elements": n, "small_values": num_small,
        "nonfinite": int(torch.count_nonzero(~a_finite & ref.finite)),
    }


def metric_ratio(kernel: float, baseline: float, dtype: torch.dtype) -> float:
    """compare/algorithm.py:284-287: |kernel| / max(|baseline|, minimum_err)."""
    return abs(kernel) / max(abs(baseline), MINIMUM_ERR[dtype])


def limits(level: str) -> dict[str, float]:
    return {**LEVELS[level], "small_value_err_ratio": SMALL_VALUE_LIMIT, "eb": EB_LIMIT}


@dataclass
class AscendMetrics:
    """One output judged by the benchmark standard. `margin` = the worst gating ratio / its limit (<= 1
    passes), the number to sort and plot by."""

    level: str
    kernel: dict  # benchmark_metrics() of the layer's output
    baseline: dict  # benchmark_metrics() of the same-dtype baseline
    ratios: dict  # per metric: kernel / max(baseline, minimum_err)
    limits: dict
    minimum_err: float
    margin: float
    worst_metric: str
    verdict: str
    reasons: list[str]

    @property
    def passed(self) -> bool:
        """Not failed: "pass", or "not applicable" (NOT_APPLICABLE), which never fails a case."""
        return self.verdict != "fail"

    def as_dict(self) -> dict:
        return asdict(self)


def compare_ascend(out: torch.Tensor, golden: torch.Tensor, baseline: torch.Tensor, *, dtype: torch.dtype,
                   level: str = DEFAULT_LEVEL) -> AscendMetrics:
    """Judge the whole output tensor (padding rows included, as msprobe compares whole outputs: their
    golden is 0, a small value, so anything but 0 there counts against small_value_err_ratio)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {sorted(LEVELS)}, got {level!r}")
    if dtype not in SMALL_VALUE:
        raise ValueError(f"no benchmark-standard constants for {dtype}")
    ref = _Golden(golden, dtype)
    kernel = benchmark_metrics(out, ref, dtype)
    base = benchmark_metrics(baseline, ref, dtype)
    bounds = limits(level)
    ratios = {m: metric_ratio(kernel[m], base[m], dtype) for m in METRICS}
    reasons = [f"{m} ratio {ratios[m]:.3f} exceeds {bounds[m]:g} (kernel {kernel[m]:.3e}, baseline {base[m]:.3e})"
               for m in GATING_METRICS if ratios[m] > bounds[m]]
    if kernel["nonfinite"]:
        reasons.append(f"{kernel['nonfinite']} output element(s) are NaN/Inf where the golden is finite")
    shares = {m: ratios[m] / bounds[m] for m in GATING_METRICS}
    worst = max(shares, key=shares.get)
    margin = math.inf if kernel["nonfinite"] else shares[worst]
    verdict = "fail" if reasons else "pass"
    if dtype in NOT_APPLICABLE:
        verdict, reasons = "not applicable", [NOT_APPLICABLE[dtype]] + [f"(would be: {r})" for r in reasons]
    return AscendMetrics(level=level, kernel=kernel, baseline=base, ratios=ratios, limits=bounds,
                         minimum_err=MINIMUM_ERR[dtype], margin=margin, worst_metric=worst, verdict=verdict,
                         reasons=reasons)
