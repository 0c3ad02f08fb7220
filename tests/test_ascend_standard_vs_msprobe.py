"""conformance.judge.ascend_standard against msprobe itself, on numbers msprobe recorded.

tests/data/msprobe_reference.json holds what mindstudio-probe (Ascend's msprobe; version, build and the command in
that file and in tools/record_msprobe_reference.py) reported through its own api_accuracy_checker for fixed
(golden, baseline, output) triples in fp16, bf16 and fp32: per side the five metrics and msprobe's mask counts,
per level L0/L1/L2 the five ratios, the five statuses and the verdict. msprobe is not needed here: the triples are
rebuilt from the recorded parameters (and must hash to the recorded SHA-256), then judged by this project.

Tolerances, and why they are not wider:
  * small_value_err_ratio and eb are ratios of counts: equal exactly.
  * max_rel_err, mean_rel_err, rmse: relative REL_TOL[dtype]. For fp16/bf16 msprobe computes errors in float32
    (its benchmark dtype for them) and this project in float64; for fp32 both compute in float64.
  * ratios: the same relative tolerance plus RATIO_ABS_TOL, because msprobe's second stage reads the metrics back
    from a CSV, float64 values written with 14 decimals (api_accuracy_checker/config.yaml: precision 14; float32
    ones by their repr), and divides by at least minimum_err >= 2^-14: 0.5e-14 / 2^-14 < 1e-10.

The deliberate differences are explicit expectations below, not tolerances (see the module's docstring):
  1. RMSE: msprobe averages the squared errors over all N elements with the masked ones zeroed and rescales by
     N/(N - masked + 1e-4) + 1e-4 (compare/algorithm.py:66-72); this project averages over the included ones.
     Expected: msprobe rmse == project rmse * sqrt(rmse_fudge(N, masked)), to REL_TOL.
  2. A golden above the dtype's maximum (an fp16 golden above 65504): msprobe tests finiteness on the golden cast
     to the output dtype (compare/algorithm.py:135-140), where it is inf, and masks that element out of every
     gating metric; this project's golden is float64, finite there, so the element counts (and fails when the
     output is inf). Expected: msprobe's gating metrics and verdict == this project's on the triple without those
     elements; EB equal on the whole triple (both compare with the golden in the output dtype: algorithm.py:76-81;
     ascend_standard's eb_reference); this project's verdict on the real triple "fail".
  3. A NaN/Inf output where the golden is finite: msprobe masks it out and can pass; this project fails it.
     Metrics are equal (both leave the element out). Expected: verdict "fail" whatever msprobe says.

A NaN in the golden is left out of the relative errors by both (compare/algorithm.py:92-96, 116-123): this
disagreed once (the project's max_rel_err and mean_rel_err were NaN, so a kernel msprobe fails passed) and was
fixed in conformance/judge/ascend_standard.py; the nan_golden triples now check it.

Where the working tree's standard withholds its verdict for a dtype ("not applicable", float32), the verdict it
says it would give is compared (verdict_of).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from msprobe_triples import DTYPES, build_triple, sha256  # tests/ is on sys.path

from conformance.judge.ascend_standard import (
    GATING_METRICS,
    LEVELS,
    METRICS,
    MINIMUM_ERR,
    REL_EPS,
    SMALL_VALUE,
    SMALL_VALUE_ATOL,
    benchmark_metrics,
    compare_ascend,
    limits,
    metric_ratio,
)

DATA = json.loads((Path(__file__).parent / "data" / "msprobe_reference.json").read_text())
CASES = DATA["cases"]
REL_TOL = {"float16": 1e-5, "bfloat16": 1e-5, "float32": 1e-9}
RATIO_ABS_TOL = 1e-9
# No recorded ratio lies this close (relatively) to its limit, so RMSE's fudge (< 1e-4 relative) and the tolerances
# cannot flip a status: a status that differed would be a real disagreement.
LIMIT_CLEARANCE = 1e-3


_TRIPLES: dict[str, tuple] = {}


def triple(case: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if case["id"] not in _TRIPLES:
        _TRIPLES[case["id"]] = build_triple(case["params"])
    return _TRIPLES[case["id"]]


def msprobe_keeps(golden: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Difference 2: False where msprobe masks an element this project counts, a finite golden that is not finite
    in the output dtype (msprobe tests finiteness on the golden cast to it: compare/algorithm.py:135-140)."""
    return ~(torch.isfinite(golden) & ~torch.isfinite(golden.to(dtype)))


def rmse_fudge(n: int, masked: int) -> float:
    """Difference 1: msprobe's mse is mean(zeroed squares) * (n / (n - masked + 1e-4) + 1e-4) (algorithm.py:66-72),
    i.e. this project's mse (over the n - masked included elements) times the factor returned here."""
    return (n - masked) / n * (n / (n - masked + 1e-4) + 1e-4)


def included(actual: torch.Tensor, golden: torch.Tensor, dtype: torch.dtype) -> int:
    """How many elements this project's RMSE and relative errors average over: both finite, golden not small."""
    a = actual.to(torch.float64)
    return int((torch.isfinite(a) & torch.isfinite(golden) & (golden.abs() > SMALL_VALUE[dtype])).sum())


def expected_msprobe_metrics(actual: torch.Tensor, golden: torch.Tensor, dtype: torch.dtype) -> dict:
    """msprobe's metrics and mask counts as this project predicts them, the documented differences applied."""
    keep = msprobe_keeps(golden, dtype)
    m = benchmark_metrics(actual[keep], golden[keep], dtype)  # difference 2 (a no-op unless the golden overflows)
    full = benchmark_metrics(actual, golden, dtype)
    n = full["elements"]
    masked = n - included(actual[keep], golden[keep], dtype)
    both_finite = torch.isfinite(actual.to(torch.float64)) & torch.isfinite(golden.to(dtype))
    return {**m,
            "eb": full["eb"],  # EB over all n, against the golden in the output dtype: no difference 2
            "rmse": m["rmse"] * math.sqrt(rmse_fudge(n, masked)) if masked < n else 0.0,  # difference 1
            "elements": n, "rmse_masked": masked, "inf_nan": int((~both_finite).sum())}


def verdict_of(res) -> str:
    """"pass" or "fail"; where the working tree's standard withholds its verdict for a dtype ("not applicable",
    e.g. float32), the verdict it states it would give ("(would be: ...)" reasons)."""
    if res.verdict == "not applicable":
        return "fail" if any(r.startswith("(would be:") for r in res.reasons) else "pass"
    return res.verdict


def _close(ours: float, theirs: float, rel: float, abs_: float = 0.0) -> bool:
    return math.isclose(ours, theirs, rel_tol=rel, abs_tol=abs_)


def _settle(case: dict, mismatched: dict) -> None:
    assert not mismatched, mismatched


def _ids(cases):
    return [c["id"] for c in cases]


# ------------------------------------------------------------------------------------------------- the data
def test_reference_was_recorded_by_msprobe_with_all_levels():
    assert DATA["msprobe"]["package"] == "mindstudio-probe" and DATA["msprobe"]["version"]
    assert set(DATA["level_api_names"]) == set(LEVELS)
    kinds = {c["kind"] for c in CASES}
    assert {"correctly_rounded", "rounding", "large_errors_x4", "small_values_exact", "small_values_only",
            "all_equal_exact", "nan_output", "above_fp16_max_cast"} <= kinds
    for dname in DTYPES:
        assert {c["kind"] for c in CASES if c["params"]["dtype"] == dname} == kinds
    for c in CASES:
        assert set(c["msprobe"]["levels"]) == set(LEVELS), c["id"]
    # msprobe's own level of the ops this layer calls (precision_standard/standard_config.py:57-65, 140-146)
    assert {op: DATA["api_levels"][op] for op in ("npu_fused_infer_attention_score", "scatter_update_",
                                                   "_npu_reshape_and_cache")} == dict.fromkeys(
        ("npu_fused_infer_attention_score", "scatter_update_", "_npu_reshape_and_cache"), "L0")


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_triples_rebuild_bit_for_bit(case):
    golden, baseline, output = triple(case)
    assert {"golden": sha256(golden), "baseline": sha256(baseline), "output": sha256(output)} == case["sha256"]


def test_constants_and_limits_are_msprobes():
    for dname, dtype in DTYPES.items():
        c = DATA["constants"][dname]
        assert SMALL_VALUE[dtype] == c["small_value"]
        assert SMALL_VALUE_ATOL[dtype] == c["small_value_atol"]
        assert MINIMUM_ERR[dtype] == c["minimum_err"]
        assert REL_EPS[dtype] == c["rel_eps"]
    for level in LEVELS:
        assert limits(level) == DATA["thresholds"][level]


def test_recorded_ratios_stay_clear_of_the_limits():
    for c in CASES:
        for level, rec in c["msprobe"]["levels"].items():
            for m, r in rec["ratios"].items():
                lim = DATA["thresholds"][level][m]
                assert abs(r - lim) > LIMIT_CLEARANCE * lim, (c["id"], level, m, r)


# ------------------------------------------------------------------------------------------------- metrics
SIDES = [(c, side) for c in CASES for side in ("output", "baseline")]


@pytest.mark.parametrize("case,side", SIDES, ids=[f"{c['id']}-{s}" for c, s in SIDES])
def test_metrics_agree_with_msprobe(case, side):
    dname = case["params"]["dtype"]
    golden, baseline, output = triple(case)
    rec = case["msprobe"][side]
    exp = expected_msprobe_metrics(output if side == "output" else baseline, golden, DTYPES[dname])
    for count in ("elements", "small_values", "inf_nan", "rmse_masked"):  # the masks
        assert exp[count] == rec[count], count
    mismatched = {}
    for m in METRICS:
        exact = m in ("small_value_err_ratio", "eb")  # ratios of counts
        if not (exp[m] == rec[m] if exact else _close(exp[m], rec[m], REL_TOL[dname])):
            mismatched[m] = (exp[m], rec[m])
    _settle(case, mismatched)


def test_fp16_goldens_above_the_maximum_really_differ():
    """Difference 2 is real on the data: on the real golden this project counts those elements."""
    for c in CASES:
        if c["params"]["dtype"] != "float16" or "big_values" not in c["params"]:
            continue
        golden, _, output = triple(c)
        assert not msprobe_keeps(golden, torch.float16).all()
        ours = benchmark_metrics(output, golden, torch.float16)
        if c["params"]["big_output"] == "cast":
            # inf where the golden is finite (but 65520 nudged below the rounding midpoint gives 65504)
            assert ours["nonfinite"] >= 1
        else:  # saturated at 65504 against a golden up to 1e5: a relative error of up to 0.34
            assert ours["max_rel_err"] > 100 * c["msprobe"]["output"]["max_rel_err"]


# ------------------------------------------------------------------------------------------------- verdicts
LEVEL_CASES = [(c, level) for c in CASES for level in LEVELS]


@pytest.mark.parametrize("case,level", LEVEL_CASES, ids=[f"{c['id']}-{lv}" for c, lv in LEVEL_CASES])
def test_ratios_statuses_and_verdict_agree_with_msprobe(case, level):
    dname = case["params"]["dtype"]
    dtype = DTYPES[dname]
    golden, baseline, output = triple(case)
    rec = case["msprobe"]["levels"][level]
    keep = msprobe_keeps(golden, dtype)

    # this project's judgment on the real golden, and on what msprobe keeps of it (difference 2; else the same)
    ours = compare_ascend(output, golden, baseline, dtype=dtype, level=level)
    seen = compare_ascend(output[keep], golden[keep], baseline[keep], dtype=dtype, level=level)
    ratios = {**{m: seen.ratios[m] for m in GATING_METRICS}, "eb": ours.ratios["eb"]}  # EB: no difference 2

    # ratios: msprobe's recorded ones against this project's, RMSE's fudge (difference 1) applied explicitly
    k_exp = expected_msprobe_metrics(output, golden, dtype)
    b_exp = expected_msprobe_metrics(baseline, golden, dtype)
    mismatched = {}
    for m in METRICS:
        expected = metric_ratio(k_exp[m], b_exp[m], dtype)
        if not _close(expected, rec["ratios"][m], REL_TOL[dname], RATIO_ABS_TOL):
            mismatched[m] = (expected, rec["ratios"][m])
        elif m == "rmse":
            assert _close(ratios[m], expected, 1e-4), (ratios[m], expected)  # the fudge moves it by < 1e-4
        else:
            assert ratios[m] == expected, m

    # statuses: this project's own ratios against its own limits give msprobe's status, metric by metric
    for m in METRICS:
        if m not in mismatched:
            assert ("error" if ratios[m] > seen.limits[m] else "pass") == rec["status"][m], (m, ratios[m])
    msprobe_verdict = "pass" if rec["compare_result"] == "pass" else "fail"
    # msprobe's verdict is its gating statuses (EB's status never decides it: benchmark_compare.py:216)
    assert msprobe_verdict == ("fail" if any(rec["status"][m] == "error" for m in GATING_METRICS) else "pass")
    _settle(case, mismatched)

    if not keep.all():  # difference 2: the elements msprobe masks count here (and an inf output fails)
        assert verdict_of(seen) == msprobe_verdict
        assert verdict_of(ours) == "fail", ours.reasons
    elif ours.kernel["nonfinite"]:  # difference 3: msprobe masks a NaN output out, this project fails it
        assert verdict_of(ours) == "fail" and any("NaN/Inf" in r for r in ours.reasons), ours.reasons
    else:
        assert verdict_of(ours) == msprobe_verdict, (ours.reasons, rec["message"])


def test_the_deliberate_differences_occur_in_the_data():
    """Differences 2 and 3 each turn a verdict msprobe passes into a failure here, somewhere in the data."""
    flipped = set()
    for c in CASES:
        dtype = DTYPES[c["params"]["dtype"]]
        golden, baseline, output = triple(c)
        for level, rec in c["msprobe"]["levels"].items():
            ours = compare_ascend(output, golden, baseline, dtype=dtype, level=level)
            if rec["compare_result"] == "pass" and verdict_of(ours) == "fail":
                flipped.add((c["params"]["dtype"], c["kind"]))
    assert {("float16", "above_fp16_max_cast"), ("float16", "above_fp16_max_saturate")} <= flipped
    assert {(d, "nan_output") for d in DTYPES} <= flipped
