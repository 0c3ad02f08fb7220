"""reference.paged_attention / varlen_attention against two independent
expectations (SDPA with explicit masks, and a naive per-row loop), fp64.

Data-driven: every test runs over CASES, a list of case descriptions."""

import pytest
import torch

import reference
from reference import _core

try:  # tests/ may or may not be a package
    from . import reference_helpers_naive as helpers
except ImportError:
    import reference_helpers_naive as helpers

Case = helpers.Case
TOL = 1e-12

HAND_CASES = [
    # decode (query_len 1)
    Case("decode_ctx1", (1,), (1,)),
    Case("decode_ctx7", (1,), (7,)),
    Case("decode_bs_minus_1", (1,), (3,), block_size=4),
    Case("decode_bs", (1,), (4,), block_size=4),
    Case("decode_bs_plus_1", (1,), (5,), block_size=4),
    Case("decode_batch", (1, 1, 1, 1), (9, 1, 16, 4), block_size=4),
    # prefill (query_len == context_len)
    Case("prefill_len1", (1,), (1,)),
    Case("prefill_bs_minus_1", (7,), (7,), block_size=8),
    Case("prefill_bs", (8,), (8,), block_size=8),
    Case("prefill_bs_plus_1", (9,), (9,), block_size=8),
    Case("prefill_long", (37,), (37,), block_size=16, hq=2, hkv=2),
    # prefix (query_len < context_len)
    Case("prefix_3_of_10", (3,), (10,)),
    Case("prefix_at_boundary", (4,), (8,), block_size=4),
    Case("prefix_across_boundary", (5,), (13,), block_size=4),
    # query_len > context_len: leading rows see no key -> 0
    Case("overhang_6_over_4", (6,), (4,)),
    Case("overhang_3_over_1", (3,), (1,)),
    Case("overhang_ctx0", (5,), (0,)),
    Case("ctx0_decode", (1,), (0,)),
    # GQA ratios and MQA
    Case("gqa1_prefill", (6,), (6,), hq=4, hkv=4),
    Case("gqa2_prefix", (3,), (9,), hq=4, hkv=2),
    Case("gqa4_decode", (1,), (11,), hq=8, hkv=2),
    Case("gqa8_prefill", (5,), (5,), hq=16, hkv=2),
    Case("gqa8_prefix", (2,), (10,), hq=8, hkv=1),
    Case("mqa_decode", (1,), (13,), hq=8, hkv=1),
    Case("mqa_prefill", (12,), (12,), hq=4, hkv=1),
    Case("mqa_overhang", (4,), (2,), hq=4, hkv=1),
    # several sequences, mixed kinds, including empty ones
    Case("mixed_batch", (1, 5, 3), (9, 5, 12), hq=4, hkv=2),
    Case("mixed_with_ctx0", (2, 1, 3), (0, 6, 3)),
    Case("mixed_with_q0", (0, 4, 0), (5, 4, 0)),
    Case("mixed_overhang_and_prefix", (6, 2, 1), (3, 7, 1), hq=8, hkv=4),
    Case("no_sequences", (), ()),
    # 3-D caches [num_blocks, block_size, Hkv*D]
    Case("cache3d_decode", (1,), (6,), cache_ndim=3),
    Case("cache3d_prefill_gqa", (9,), (9,), hq=8, hkv=2, cache_ndim=3),
    Case("cache3d_mixed", (1, 4, 7), (8, 4, 3), hq=4, hkv=1, cache_ndim=3),
    Case("cache3d_boundaries", (3, 4, 5), (3, 4, 5), block_size=4, cache_ndim=3),
    # shapes and scales
    Case("block_size_1", (3,), (5,), block_size=1),
    Case("block_size_16_multi", (17, 1), (33, 16), block_size=16, hq=2, hkv=1),
    Case("head_dim_1", (4,), (6,), d=1),
    Case("head_dim_64", (3,), (7,), d=64, hq=2, hkv=2),
    Case("scale_1", (4,), (9,), scale=1.0),
    Case("scale_small", (4,), (9,), scale=0.01),
    Case("scale_large", (4,), (9,), scale=3.0),
    Case("tight_pool_no_pad", (5,), (8,), extra_blocks=0, table_pad=0),
]
CASES = HAND_CASES + helpers.random_cases(24, seed=20240601)


def _paged(case, inputs, **kw):
    return reference.paged_attention(
        inputs["q"], inputs["k_cache"], inputs["v_cache"],
        query_lens=list(case.query_lens), context_lens=list(case.context_lens),
        block_tables=inputs["block_tables"], scale=inputs["scale"], **kw)


def _varlen(case, inputs, **kw):
    return reference.varlen_attention(
        inputs["q"], inputs["k"], inputs["v"],
        cu_seqlens_q=inputs["cu_seqlens_q"], cu_seqlens_k=inputs["cu_seqlens_k"],
        scale=inputs["scale"], **kw)


def _check_against_sdpa(case, inputs, out):
    expected, visible = helpers.sdpa_expected(case, inputs)
    assert out.dtype == torch.float64 and out.shape == inputs["q"].shape
    assert not out.isnan().any()
    assert torch.all(out[~visible] == 0), "rows with no visible key must be exactly 0"
    if visible.any():
        err = (out[visible] - expected[visible]).abs().max().item()
        assert err <= TOL, f"max |ref - sdpa| = {err}"


def test_case_count():
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_paged_matches_sdpa(case):
    inputs = helpers.build(case)
    _check_against_sdpa(case, inputs, _paged(case, inputs))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_varlen_matches_sdpa(case):
    inputs = helpers.build(case)
    _check_against_sdpa(case, inputs, _varlen(case, inputs))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_paged_matches_naive_loop(case):
    inputs = helpers.build(case)
    out = _paged(case, inputs)
    expected = helpers.naive_expected(case, inputs)
    if out.numel():
        err = (out - expected).abs().max().item()
        assert err <= TOL, f"max |ref - naive| = {err}"


@pytest.mark.parametrize("case", [c for c in HAND_CASES if c.context_lens], ids=str)
def test_chunked_rows_match_unchunked(case, monkeypatch):
    """Force chunks of a single query row: same answer as one chunk."""
    inputs = helpers.build(case)
    whole = _paged(case, inputs)
    monkeypatch.setattr(_core, "SCORE_ELEMS_PER_CHUNK", 1)
    assert torch.allclose(_paged(case, inputs), whole, rtol=0, atol=TOL)
    assert torch.allclose(_varlen(case, inputs), whole, rtol=0, atol=TOL)


@pytest.mark.parametrize("rows", [1, 3, 7, 64])
def test_long_sequence_chunked(rows, monkeypatch):
    """A sequence longer than a chunk, several chunk sizes, against SDPA."""
    case = Case("long", (90, 1, 40), (120, 50, 40), hq=4, hkv=2, block_size=8, seed=7)
    inputs = helpers.build(case)
    monkeypatch.setattr(_core, "MAX_ROWS_PER_CHUNK", rows)
    _check_against_sdpa(case, inputs, _paged(case, inputs))
    _check_against_sdpa(case, inputs, _varlen(case, inputs))


def test_inputs_not_modified():
    case = Case("mixed", (1, 5, 3), (9, 5, 12), hq=4, hkv=2, cache_ndim=3)
    inputs = helpers.build(case)
    before = {k: v.clone() for k, v in inputs.items() if isinstance(v, torch.Tensor)}
    _paged(case, inputs, reorder_ops=True)
    _varlen(case, inputs, compute_dtype=torch.float16)
    for k, v in before.items():
        # Bitwise, so the NaN-filled unused cache slots compare equal too.
        a = inputs[k]
        assert a.dtype == v.dtype and torch.equal(a.view(torch.int64), v.view(torch.int64)), k


def test_length_and_table_forms_agree():
    """Lists, int64 tensors and int32 tensors for the lengths and tables give
    the same bits."""
    case = Case("forms", (1, 5, 3), (9, 5, 12), hq=4, hkv=2)
    inputs = helpers.build(case)
    base = _paged(case, inputs)
    for dtype in (torch.int64, torch.int32):
        out = reference.paged_attention(
            inputs["q"], inputs["k_cache"], inputs["v_cache"],
            query_lens=torch.tensor(case.query_lens, dtype=dtype),
            context_lens=torch.tensor(case.context_lens, dtype=dtype),
            block_tables=inputs["block_tables"].to(dtype), scale=inputs["scale"])
        assert torch.equal(out, base)
    out = reference.varlen_attention(
        inputs["q"], inputs["k"], inputs["v"],
        cu_seqlens_q=torch.tensor(inputs["cu_seqlens_q"], dtype=torch.int32),
        cu_seqlens_k=torch.tensor(inputs["cu_seqlens_k"], dtype=torch.int32),
        scale=inputs["scale"])
    assert torch.allclose(out, base, rtol=0, atol=TOL)


def test_table_entries_past_needed_columns_are_ignored():
    case = Case("pad", (2,), (5,), block_size=4, table_pad=3)
    inputs = helpers.build(case)
    base = _paged(case, inputs)
    tables = inputs["block_tables"].clone()
    tables[:, 2:] = 10**9  # garbage, not even a valid id
    inputs["block_tables"] = tables
    assert torch.equal(_paged(case, inputs), base)


@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_low_precision_inputs_are_converted_first(in_dtype):
    """Inputs of any float dtype are converted to compute_dtype: same result as
    upcasting them by hand."""
    case = Case("conv", (3, 1), (7, 4), hq=4, hkv=2, cache_ndim=3)
    inputs = helpers.build(case)
    low = {k: (v.to(in_dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
           for k, v in inputs.items()}
    up = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
          for k, v in low.items()}
    assert torch.equal(_paged(case, low), _paged(case, up))
    assert torch.equal(_varlen(case, low), _varlen(case, up))
