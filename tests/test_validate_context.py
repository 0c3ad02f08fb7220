"""validate_context: valid runner Contexts pass; each out-of-contract input names its field and rule."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conformance.cases.contexts import allocate_kv_cache, decode_context, prefill_context
from npu_attention import ContextError, validate_context

HEADS, KV_HEADS, HEAD_DIM, BLOCK, NUM_BLOCKS = 8, 2, 16, 4, 12
# Physical blocks shuffled; block 0 unused; block 11 is the graph-padding dummy.
TABLES = [[5, 2, 9], [3], [7, 1]]
PREFILL_LENS = [9, 4, 5]  # 9 = 2*BLOCK+1, 4 = BLOCK, 5 = BLOCK+1
DECODE_LENS = [10, 3, 8]


def caches():
    return allocate_kv_cache(NUM_BLOCKS, BLOCK, KV_HEADS, HEAD_DIM, torch.float16)


def prefill():
    return prefill_context(PREFILL_LENS, TABLES, BLOCK)


def eager():
    return decode_context(DECODE_LENS, TABLES, BLOCK)


def graph():
    return decode_context(DECODE_LENS, TABLES, BLOCK, eager=False, max_num_seqs=5, dummy_block=11, table_width=4)


def check(ctx, k=None, v=None, *, num_tokens=None, heads=HEADS, kv_heads=KV_HEADS):
    kc, vc = caches()
    validate_context(ctx, kc if k is None else k, vc if v is None else v, heads, kv_heads, HEAD_DIM,
                     num_tokens=num_tokens)


@pytest.mark.parametrize("build, tokens", [(prefill, sum(PREFILL_LENS)), (eager, 3), (graph, 5)])
def test_runner_contexts_are_valid(build, tokens):
    check(build(), num_tokens=tokens)


def edit(build, **fields):
    return lambda: dataclasses.replace(build(), **fields)


def with_tensor(build, field, fn):
    def make():
        ctx = build()
        return dataclasses.replace(ctx, **{field: fn(getattr(ctx, field).clone())})
    return make


def set_item(index, value):
    def fn(t):
        t[index] = value
        return t
    return fn


# (id, context builder, extra kwargs for check, field named, rule fragment)
CORRUPTIONS = [
    ("flat-decode-slots", with_tensor(eager, "slot_mapping", lambda t: t[:, 0] * BLOCK + t[:, 1]), {},
     "Context.slot_mapping", "flat [B] mapping"),
    ("decode-slots-3-cols", with_tensor(eager, "slot_mapping", lambda t: torch.cat([t, t[:, :1]], 1)), {},
     "Context.slot_mapping", "[B, 2] rows"),
    ("decode-slot-int64", with_tensor(eager, "slot_mapping", lambda t: t.long()), {},
     "Context.slot_mapping", "int32"),
    ("decode-slot-wrong-position", with_tensor(eager, "slot_mapping", set_item((0, 1), 0)), {},
     "Context.slot_mapping", "new token's slot"),
    ("decode-slot-block-out-of-range", with_tensor(eager, "slot_mapping", set_item((1, 0), NUM_BLOCKS)), {},
     "Context.slot_mapping", "block must be in"),
    ("decode-slot-offset-out-of-range", with_tensor(eager, "slot_mapping", set_item((1, 1), BLOCK)), {},
     "Context.slot_mapping", "offset must be in"),
    ("cu-seqlens-k-prefix",
     with_tensor(prefill, "cu_seqlens_k", lambda t: t + torch.tensor([0, 2, 2, 2], dtype=torch.int32)),
     {}, "Context.cu_seqlens_k", "must equal cu_seqlens_q"),
    ("cu-seqlens-not-from-0", edit(prefill, cu_seqlens_q=torch.tensor([1, 10], dtype=torch.int32),
                                   cu_seqlens_k=torch.tensor([1, 10], dtype=torch.int32)), {},
     "Context.cu_seqlens_q", "start at 0"),
    ("cu-seqlens-empty-prompt", edit(prefill, cu_seqlens_q=torch.tensor([0, 9, 9, 18], dtype=torch.int32),
                                     cu_seqlens_k=torch.tensor([0, 9, 9, 18], dtype=torch.int32)), {},
     "Context.cu_seqlens_q", "strictly increasing"),
    ("cu-seqlens-int64", with_tensor(prefill, "cu_seqlens_q", lambda t: t.long()), {},
     "Context.cu_seqlens_q", "int32"),
    ("prefill-token-count", prefill, {"num_tokens": 17}, "Context.cu_seqlens_q", "number of tokens"),
    ("max-seqlen-wrong", edit(prefill, max_seqlen_q=4), {}, "Context.max_seqlen_q", "longest prompt"),
    ("missing-block-size", edit(eager, block_size=None), {}, "Context.block_size", "is required"),
    ("block-size-mismatch", edit(eager, block_size=8), {}, "k_cache", "Context.block_size"),
    ("prefill-pair-slots", with_tensor(prefill, "slot_mapping", lambda t: torch.stack([t // BLOCK, t % BLOCK], 1)),
     {}, "Context.slot_mapping", "flat [T]"),
    ("prefill-slot-negative", with_tensor(prefill, "slot_mapping", set_item(3, -1)), {},
     "Context.slot_mapping", "no -1 padding"),
    ("prefill-slot-out-of-range", with_tensor(prefill, "slot_mapping", set_item(0, NUM_BLOCKS * BLOCK)), {},
     "Context.slot_mapping", "[0, num_blocks*block_size"),
    ("prefill-slot-duplicate", with_tensor(prefill, "slot_mapping", lambda t: set_item(1, int(t[0]))(t)), {},
     "Context.slot_mapping", "distinct"),
    ("prefill-slot-count", with_tensor(prefill, "slot_mapping", lambda t: t[:-1]), {},
     "Context.slot_mapping", "one slot per prompt token"),
    ("prefill-slot-off-table", with_tensor(prefill, "slot_mapping", set_item(0, 0)), {},
     "Context.slot_mapping", "must map to"),
    ("table-too-narrow", with_tensor(eager, "block_tables", lambda t: t[:, :2]), {},
     "Context.block_tables", "needs 3 blocks"),
    ("table-block-out-of-range", with_tensor(eager, "block_tables", set_item((2, 1), NUM_BLOCKS + 3)), {},
     "Context.block_tables", "block id must be in"),
    ("table-negative-needed", with_tensor(eager, "block_tables", set_item((0, 1), -1)), {},
     "Context.block_tables", "block id must be in"),
    ("table-rows", with_tensor(eager, "block_tables", lambda t: t[:2]), {},
     "Context.block_tables", "one row per slot_mapping row"),
    ("context-lens-count", with_tensor(eager, "context_lens", lambda t: t[:2]), {},
     "Context.context_lens", "one entry per slot_mapping row"),
    ("context-lens-int64", with_tensor(eager, "context_lens", lambda t: t.long()), {},
     "Context.context_lens", "int32"),
    ("eager-padded-row", with_tensor(eager, "context_lens", set_item(1, 0)), {},
     "Context.context_lens", "no padded rows"),
    ("decode-needs-mode", edit(eager, is_enforce_eager=None), {}, "Context.is_enforce_eager", "True"),
    ("decode-token-count", eager, {"num_tokens": 4}, "Context.slot_mapping", "one row per decoded token"),
    ("graph-dummy-in-use", with_tensor(graph, "slot_mapping", set_item((4, 0), 5)), {},
     "Context.slot_mapping", "must all point at the one reserved dummy block"),
    ("graph-dummy-owned",
     with_tensor(graph, "slot_mapping", lambda t: set_item(slice(3, 5), torch.tensor([9, 0], dtype=torch.int32))(t)),
     {}, "Context.slot_mapping", "must not belong to a real sequence"),
    ("graph-padded-table", with_tensor(graph, "block_tables", set_item((4, 0), 11)), {},
     "Context.block_tables", "padded rows must be all -1"),
    ("graph-real-bs", edit(graph, real_bs=5), {}, "Context.real_bs", "real rows"),
    ("graph-padding-first", with_tensor(graph, "context_lens", lambda t: t.flip(0)), {},
     "Context.context_lens", "come after"),
    ("4d-cache", eager, {"k": torch.zeros(NUM_BLOCKS, BLOCK, KV_HEADS, HEAD_DIM, dtype=torch.float16)},
     "k_cache", "4-D"),
    ("cache-width", eager, {"k": torch.zeros(NUM_BLOCKS, BLOCK, 3 * HEAD_DIM, dtype=torch.float16)},
     "k_cache", "num_kv_heads*head_dim"),
    ("cache-dtype-mismatch", eager, {"v": torch.zeros(NUM_BLOCKS, BLOCK, KV_HEADS * HEAD_DIM, dtype=torch.bfloat16)},
     "v_cache", "match k_cache"),
    ("cache-int-dtype", eager, {"k": torch.zeros(NUM_BLOCKS, BLOCK, KV_HEADS * HEAD_DIM, dtype=torch.int8)},
     "k_cache", "dtype"),
    ("gqa-not-divisible", eager, {"heads": 6, "kv_heads": 4}, "num_heads", "multiple of num_kv_heads"),
    ("not-a-context", lambda: {"is_prefill": True}, {}, "context", "npu_attention.Context"),
    # Types that Python would let through (True == 1, 1 == True, a tensor, a float) are refused by name.
    ("num-heads-bool", eager, {"heads": True, "kv_heads": 1}, "num_heads", "positive int"),
    ("is-prefill-int", edit(prefill, is_prefill=1), {}, "Context.is_prefill", "must be a bool"),
    ("is-prefill-tensor", edit(prefill, is_prefill=torch.tensor(True)), {}, "Context.is_prefill", "must be a bool"),
    ("enforce-eager-int", edit(eager, is_enforce_eager=1), {}, "Context.is_enforce_eager", "bool True"),
    ("max-seqlen-float", edit(prefill, max_seqlen_q=9.0), {}, "Context.max_seqlen_q", "must be an int"),
    ("max-seqlen-tensor", edit(prefill, max_seqlen_k=torch.tensor(9)), {}, "Context.max_seqlen_k", "must be an int"),
    ("num-tokens-float", prefill, {"num_tokens": 18.0}, "num_tokens", "non-negative int"),
    ("num-tokens-tensor", prefill, {"num_tokens": torch.tensor(18)}, "num_tokens", "non-negative int"),
    ("slot-mapping-list", edit(prefill, slot_mapping=list(range(18))), {}, "Context.slot_mapping",
     "must be a torch.Tensor"),
    ("slot-mapping-numpy", lambda: dataclasses.replace(prefill(), slot_mapping=prefill().slot_mapping.numpy()), {},
     "Context.slot_mapping", "must be a torch.Tensor"),
    # Row 1 writes its new token into block 2, which row 0 also reads: cross-request corruption.
    ("decode-writes-another-rows-block", lambda: decode_context([10, 3, 8], [[5, 2, 9], [2], [7, 1]], BLOCK), {},
     "Context.slot_mapping", "which row 0's block table also lists"),
]


@pytest.mark.parametrize("build, kwargs, field, rule", [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_out_of_contract_inputs_are_named(build, kwargs, field, rule):
    with pytest.raises(ContextError) as info:
        check(build(), **kwargs)
    assert info.value.field == field, str(info.value)
    assert rule in info.value.rule, str(info.value)
    assert str(info.value).startswith(field)


def test_context_error_is_a_value_error():
    assert issubclass(ContextError, ValueError)


def test_check_case_validates_the_runner_contract_before_the_oracle_runs():
    """An out-of-contract case is refused by validate_context, naming the field, not by a ValueError
    from deep inside the reference (which would run first otherwise)."""
    from conformance.cases.case import Case
    from conformance.judge.check import check_case

    bad = Case(phase="decode_eager", num_heads=4, num_kv_heads=2, head_dim=16, dtype="float16", block_size=16,
               num_blocks=6, seq_lens=(20, 5), block_tables=((3, 1), (4,)), seed=2)
    object.__setattr__(bad, "num_heads", 5)  # Case refuses it itself; force one past it
    with pytest.raises(ContextError) as info:
        check_case(bad)
    assert info.value.field == "num_heads"
