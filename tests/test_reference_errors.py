"""Every bad input to paged_attention / varlen_attention raises a ValueError
that names the argument and the rule."""

import pytest
import torch

import reference

try:  # tests/ may or may not be a package
    from . import reference_helpers_naive as helpers
except ImportError:
    import reference_helpers_naive as helpers

CASE = helpers.Case("base", (2, 1), (9, 4), hq=4, hkv=2, d=8, block_size=4, table_pad=1)


def _paged_kwargs():
    x = helpers.build(CASE)
    return dict(q=x["q"], k_cache=x["k_cache"], v_cache=x["v_cache"],
                query_lens=list(CASE.query_lens), context_lens=list(CASE.context_lens),
                block_tables=x["block_tables"], scale=x["scale"])


def _varlen_kwargs():
    x = helpers.build(CASE)
    return dict(q=x["q"], k=x["k"], v=x["v"], cu_seqlens_q=x["cu_seqlens_q"],
                cu_seqlens_k=x["cu_seqlens_k"], scale=x["scale"])


def _with(**changes):
    """Mutation: replace arguments; a callable value gets the old kwargs."""
    def mutate(kw):
        for name, value in changes.items():
            kw[name] = value(kw) if callable(value) else value
        return kw
    return mutate


def _table(fn):
    def value(kw):
        t = kw["block_tables"].clone()
        fn(t)
        return t
    return value


SHARED = [  # apply to both functions
    ("q_2d", _with(q=lambda kw: kw["q"][0]), r"q must be 3-D"),
    ("q_int", _with(q=lambda kw: kw["q"].long()), r"q must have a floating-point dtype"),
    ("q_not_tensor", _with(q=lambda kw: kw["q"].tolist()), r"q must be a torch.Tensor"),
    ("q_zero_heads", _with(q=lambda kw: kw["q"][:, :0]), r"q must be \[T, Hq, D\] with Hq >= 1"),
    ("q_heads_not_divisible", _with(q=lambda kw: kw["q"][:, :3]), r"q heads \(3\) must be divisible"),
    ("q_head_dim_mismatch", _with(q=lambda kw: torch.cat([kw["q"], kw["q"][..., :1]], -1)),
     r"head_dim"),
    ("scale_zero", _with(scale=0.0), r"scale must be a positive finite float"),
    ("scale_negative", _with(scale=-0.5), r"scale must be a positive finite float"),
    ("scale_nan", _with(scale=float("nan")), r"scale must be a positive finite float"),
    ("scale_inf", _with(scale=float("inf")), r"scale must be a positive finite float"),
    ("scale_str", _with(scale="0.3"), r"scale must be a positive finite float"),
    ("scale_none", _with(scale=None), r"scale must be a positive finite float"),
    ("scale_bool", _with(scale=True), r"scale must be a positive finite float"),
    ("compute_dtype_int", _with(compute_dtype=torch.int32), r"compute_dtype must be one of"),
    ("compute_dtype_complex", _with(compute_dtype=torch.complex128), r"compute_dtype must be one of"),
    ("compute_dtype_str", _with(compute_dtype="float64"), r"compute_dtype must be one of"),
]

PAGED = [
    ("k_cache_int", _with(k_cache=lambda kw: kw["k_cache"].long()),
     r"k_cache must have a floating-point dtype"),
    ("v_cache_int", _with(v_cache=lambda kw: kw["v_cache"].int()),
     r"v_cache must have a floating-point dtype"),
    ("k_cache_2d", _with(k_cache=lambda kw: kw["k_cache"][0, 0]), r"k_cache must be 3-D or 4-D"),
    ("v_cache_shape", _with(v_cache=lambda kw: kw["v_cache"][:-1]),
     r"v_cache shape must equal k_cache shape"),
    ("cache3d_width", _with(k_cache=lambda kw: kw["k_cache"].flatten(2)[..., :-1],
                            v_cache=lambda kw: kw["v_cache"].flatten(2)[..., :-1]),
     r"k_cache last dim must be a positive multiple of q head_dim 8"),
    ("cache3d_heads_not_divisible", _with(k_cache=lambda kw: kw["k_cache"][:, :, :1].flatten(2).repeat(1, 1, 3),
                                          v_cache=lambda kw: kw["v_cache"][:, :, :1].flatten(2).repeat(1, 1, 3)),
     r"q heads \(4\) must be divisible by k_cache KV heads \(3\)"),
    ("block_size_0", _with(k_cache=lambda kw: kw["k_cache"][:, :0], v_cache=lambda kw: kw["v_cache"][:, :0]),
     r"k_cache block_size \(dim 1\) must be >= 1"),
    ("sum_query_lens", _with(query_lens=[2, 2]), r"sum\(query_lens\) must equal q.shape\[0\]"),
    ("negative_query_len", _with(query_lens=[4, -1]), r"query_lens\[1\] must be >= 0"),
    ("negative_context_len", _with(context_lens=[-1, 4]), r"context_lens\[0\] must be >= 0"),
    ("batch_query_vs_context", _with(context_lens=[9]),
     r"len\(query_lens\), len\(context_lens\) and block_tables.shape\[0\] must all equal"),
    ("batch_table_rows", _with(block_tables=lambda kw: kw["block_tables"][:1]),
     r"len\(query_lens\), len\(context_lens\) and block_tables.shape\[0\] must all equal"),
    ("query_lens_float", _with(query_lens=[2.0, 1.0]), r"query_lens\[0\] must be an int"),
    ("query_lens_bool", _with(query_lens=[True, 2]), r"query_lens\[0\] must be an int, got bool"),
    ("query_lens_float_tensor", _with(query_lens=torch.tensor([2.0, 1.0])),
     r"query_lens must have an integer dtype"),
    ("context_lens_2d_tensor", _with(context_lens=torch.tensor([[9, 4]])), r"context_lens must be 1-D"),
    ("context_lens_scalar", _with(context_lens=13), r"context_lens must be a sequence of ints"),
    ("table_float", _with(block_tables=lambda kw: kw["block_tables"].double()),
     r"block_tables must have an integer dtype"),
    ("table_1d", _with(block_tables=lambda kw: kw["block_tables"][0]), r"block_tables must be 2-D"),
    ("table_too_short", _with(block_tables=lambda kw: kw["block_tables"][:, :2]),
     r"block_tables has 2 columns but context_lens\[0\]=9 needs 3 blocks of block_size 4"),
    ("table_negative_id", _with(block_tables=_table(lambda t: t.__setitem__((0, 2), -1))),
     r"block_tables\[0, 2\]=-1 must be a block id in \[0, num_blocks=8\)"),
    ("table_id_too_big", _with(block_tables=_table(lambda t: t.__setitem__((1, 0), 8))),
     r"block_tables\[1, 0\]=8 must be a block id in \[0, num_blocks=8\)"),
]

VARLEN = [
    ("k_2d", _with(k=lambda kw: kw["k"][0]), r"k must be 3-D"),
    ("v_int", _with(v=lambda kw: kw["v"].long()), r"v must have a floating-point dtype"),
    ("v_shape", _with(v=lambda kw: kw["v"][:-1]), r"v shape must equal k shape"),
    ("k_head_dim", _with(k=lambda kw: kw["k"][..., :4], v=lambda kw: kw["v"][..., :4]),
     r"k head_dim \(last dim\) must equal q head_dim 8"),
    ("k_heads_not_divisible", _with(k=lambda kw: kw["k"][:, :1].repeat(1, 3, 1),
                                    v=lambda kw: kw["v"][:, :1].repeat(1, 3, 1)),
     r"q heads \(4\) must be divisible by k KV heads \(3\)"),
    ("cu_q_not_zero_start", _with(cu_seqlens_q=[1, 2, 3]), r"cu_seqlens_q must start at 0"),
    ("cu_k_empty", _with(cu_seqlens_k=[]), r"cu_seqlens_k must start at 0"),
    ("cu_k_decreasing", _with(cu_seqlens_k=[0, 9, 8, 13]), r"cu_seqlens_k must be non-decreasing"),
    ("cu_q_decreasing", _with(cu_seqlens_q=[0, 3, 2, 3]), r"cu_seqlens_q must be non-decreasing"),
    ("cu_q_last", _with(cu_seqlens_q=[0, 2, 2]), r"cu_seqlens_q last value must equal q.shape\[0\]=3"),
    ("cu_k_last", _with(cu_seqlens_k=[0, 9, 12]), r"cu_seqlens_k last value must equal k.shape\[0\]=13"),
    ("cu_lengths_differ", _with(cu_seqlens_q=[0, 3], cu_seqlens_k=[0, 9, 13]),
     r"cu_seqlens_q and cu_seqlens_k must have the same length"),
    ("cu_float_tensor", _with(cu_seqlens_q=torch.tensor([0.0, 2.0, 3.0])),
     r"cu_seqlens_q must have an integer dtype"),
    ("cu_float_list", _with(cu_seqlens_k=[0, 9.0, 13]), r"cu_seqlens_k\[1\] must be an int"),
]


def test_bases_are_valid():
    reference.paged_attention(**_paged_kwargs())
    reference.varlen_attention(**_varlen_kwargs())


@pytest.mark.parametrize("name,mutate,match", SHARED + PAGED, ids=[c[0] for c in SHARED + PAGED])
def test_paged_attention_rejects(name, mutate, match):
    with pytest.raises(ValueError, match=match):
        reference.paged_attention(**mutate(_paged_kwargs()))


@pytest.mark.parametrize("name,mutate,match", SHARED + VARLEN, ids=[c[0] for c in SHARED + VARLEN])
def test_varlen_attention_rejects(name, mutate, match):
    with pytest.raises(ValueError, match=match):
        reference.varlen_attention(**mutate(_varlen_kwargs()))
