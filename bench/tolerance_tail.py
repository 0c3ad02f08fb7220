"""How far a correct kernel's error strays from its baseline's: the empirical basis of the policy's k.

For N generated cases per dtype (hypothesis' generate phase, no database), the unmutated layer on the
emulator is judged as the suite judges it, and the ratio max|out - golden| / max|baseline - golden|
(and the same for the mean) is collected. The default policy's k must sit well above the largest
ratio a correct kernel shows, or long fuzzing sessions fail correct code; the printed margin is
k / the largest ratio seen. Beside it, the margin of Ascend's benchmark standard (the worst gating metric's
ratio over its limit, <= 1 passes) and how many correct cases fall outside it. Not a timing.

    TORCH_DEVICE_BACKEND_AUTOLOAD=0 python bench/tolerance_tail.py [--cases 1500] [--dtype float32]
"""

from __future__ import annotations

import argparse

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import conformance.platform.backends  # noqa: F401  (registers the emulated kernel backend)
from conformance.cases.case import DTYPES
from conformance.cases.strategies import decode_cases, prefill_cases
from conformance.judge.check import check_case
from conformance.judge.policy import PolicySet
from conformance.judge.settings import configure


def ratios(dtype: str, cases: int) -> tuple[list[float], list[float], list[tuple[float, str]]]:
    worst, mean, ascend = [], [], []

    @settings(max_examples=cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=st.one_of(decode_cases(), prefill_cases()).filter(lambda c: c.dtype == dtype))
    def sample(case):
        outcome = check_case(case)
        out = outcome.output
        ascend.append((outcome.ascend.margin, outcome.ascend.worst_metric))
        if out.baseline_max_abs_err > 0:
            worst.append(out.max_abs_err / out.baseline_max_abs_err)
        if out.baseline_mean_abs_err > 0:
            mean.append(out.mean_abs_err / out.baseline_mean_abs_err)

    sample()
    return sorted(worst), sorted(mean), sorted(ascend)


def quantiles(values: list[float]) -> str:
    n = len(values)
    at = lambda q: values[min(n - 1, int(q * n))]  # noqa: E731
    return f"n {n}  median {at(0.5):.2f}  p99 {at(0.99):.2f}  p99.9 {at(0.999):.2f}  max {values[-1]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1500, help="generated cases per dtype (default 1500)")
    parser.add_argument("--dtype", action="append", choices=("bfloat16", "float16", "float32"),
                        help="dtype(s) to sample (default: all three)")
    args = parser.parse_args()
    configure(backend="emulated")
    policies = PolicySet()
    for dtype in args.dtype or ("bfloat16", "float16", "float32"):
        worst, mean, ascend = ratios(dtype, args.cases)
        policy = policies.for_dtype(DTYPES[dtype])
        print(f"{dtype}: kernel/baseline max-error ratio  {quantiles(worst)}  -> k {policy.k:g}, margin "
              f"{policy.k / worst[-1]:.1f}x")
        print(f"{dtype}: kernel/baseline mean-error ratio {quantiles(mean)}  -> mean_k {policy.mean_k:g} "
              f"(the floor {policy.floor:g} applies to both)")
        outside = [(m, metric) for m, metric in ascend if m > 1]
        print(f"{dtype}: Ascend standard margin {quantiles([m for m, _ in ascend])}; outside it: {len(outside)} of "
              f"{len(ascend)} correct cases"
              + (f" (worst metric: {sorted({x for _, x in outside})})" if outside else ""))


if __name__ == "__main__":
    main()
