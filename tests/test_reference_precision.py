"""compute_dtype and reorder_ops: the low-precision baseline really computes
in the low dtype, and reordering only changes rounding."""

import pytest
import torch

import reference

try:  # tests/ may or may not be a package
    from . import reference_helpers_naive as helpers
except ImportError:
    import reference_helpers_naive as helpers

Case = helpers.Case

PRECISION_CASES = [
    Case("p_decode_gqa", (1, 1), (40, 17), hq=8, hkv=2, d=32, block_size=8, seed=11),
    Case("p_prefill", (33,), (33,), hq=4, hkv=4, d=64, block_size=16, seed=12),
    Case("p_prefix_mqa_3d", (9, 4), (50, 4), hq=4, hkv=1, d=32, block_size=8, cache_ndim=3, seed=13),
    Case("p_overhang", (12, 3), (7, 30), hq=4, hkv=2, d=16, seed=14),
]

# (dtype, loose bound vs fp64, floor the difference must exceed)
LOW = [
    (torch.float32, 1e-5, 1e-12),
    (torch.float16, 1e-2, 1e-6),
    (torch.bfloat16, 8e-2, 1e-5),
]


def _run(fn, case, inputs, **kw):
    if fn == "paged":
        return reference.paged_attention(
            inputs["q"], inputs["k_cache"], inputs["v_cache"],
            query_lens=case.query_lens, context_lens=case.context_lens,
            block_tables=inputs["block_tables"], scale=inputs["scale"], **kw)
    return reference.varlen_attention(
        inputs["q"], inputs["k"], inputs["v"], cu_seqlens_q=inputs["cu_seqlens_q"],
        cu_seqlens_k=inputs["cu_seqlens_k"], scale=inputs["scale"], **kw)


@pytest.mark.parametrize("fn", ["paged", "varlen"])
@pytest.mark.parametrize("case", PRECISION_CASES, ids=str)
def test_reorder_ops_fp64_agrees(case, fn):
    inputs = helpers.build(case)
    a = _run(fn, case, inputs)
    b = _run(fn, case, inputs, reorder_ops=True)
    assert (a - b).abs().max().item() <= 1e-12


@pytest.mark.parametrize("fn", ["paged", "varlen"])
@pytest.mark.parametrize("dtype,bound,floor", LOW, ids=lambda x: str(x).replace("torch.", ""))
@pytest.mark.parametrize("case", PRECISION_CASES, ids=str)
def test_low_precision_close_to_fp64_but_different(case, dtype, bound, floor, fn):
    inputs = helpers.build(case)
    exact = _run(fn, case, inputs)
    for reorder in (False, True):
        low = _run(fn, case, inputs, compute_dtype=dtype, reorder_ops=reorder)
        assert low.dtype == dtype and low.shape == exact.shape
        assert not low.isnan().any()
        err = (low.double() - exact).abs().max().item()
        assert err <= bound, f"{dtype} too far from fp64: {err}"
        assert err > floor, f"{dtype} suspiciously equal to fp64: {err}"
        # Not just fp64 rounded at the end: intermediate roundings show up.
        assert not torch.equal(low, exact.to(dtype))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reorder_ops_changes_low_precision_rounding(dtype):
    differs = []
    for case in PRECISION_CASES:
        inputs = helpers.build(case)
        a = _run("paged", case, inputs, compute_dtype=dtype)
        b = _run("paged", case, inputs, compute_dtype=dtype, reorder_ops=True)
        differs.append(not torch.equal(a, b))
    assert any(differs)


def test_no_visible_key_rows_are_zero_in_every_dtype():
    case = Case("z", (5, 2), (2, 0), hq=4, hkv=2)
    inputs = helpers.build(case)
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        for reorder in (False, True):
            out = _run("paged", case, inputs, compute_dtype=dtype, reorder_ops=reorder)
            assert torch.all(out[:3] == 0) and torch.all(out[5:] == 0)
            assert not out.isnan().any() and out[3:5].abs().sum() > 0
