"""conformance.cases.contexts builds Contexts in the origin runner's forms."""

from __future__ import annotations

import pytest
import torch

from conformance.cases.contexts import block_table_tensor, decode_context, prefill_context


def test_prefill_context_matches_the_runner():
    ctx = prefill_context([3, 5], [[4], [2, 7]], block_size=4)
    assert ctx.is_prefill and ctx.is_enforce_eager is None and ctx.block_size == 4
    assert ctx.cu_seqlens_q.tolist() == ctx.cu_seqlens_k.tolist() == [0, 3, 8]
    assert ctx.cu_seqlens_q.dtype == torch.int32 and ctx.slot_mapping.dtype == torch.int32
    assert ctx.slot_mapping.tolist() == [16, 17, 18, 8, 9, 10, 11, 28]
    assert ctx.block_tables.tolist() == [[4, -1], [2, 7]]
    assert (ctx.max_seqlen_q, ctx.max_seqlen_k) == (5, 5)


def test_eager_decode_uses_block_offset_pairs():
    ctx = decode_context([4, 6], [[4], [2, 7]], block_size=4)
    assert ctx.slot_mapping.tolist() == [[4, 3], [7, 1]]
    assert ctx.context_lens.tolist() == [4, 6] and ctx.context_lens.dtype == torch.int32
    assert ctx.is_enforce_eager is True and ctx.phase == "decode_eager"


def test_graph_decode_pads_to_max_num_seqs_with_the_dummy_block():
    ctx = decode_context([4, 6], [[4], [2, 7]], block_size=4, eager=False, max_num_seqs=4, dummy_block=9,
                         table_width=3)
    assert ctx.slot_mapping.tolist() == [[4, 3], [7, 1], [9, 0], [9, 0]]
    assert ctx.context_lens.tolist() == [4, 6, 0, 0]
    assert ctx.block_tables.tolist() == [[4, -1, -1], [2, 7, -1], [-1, -1, -1], [-1, -1, -1]]
    assert ctx.phase == "decode_graph" and ctx.real_bs == 2


@pytest.mark.parametrize("call, message", [
    (lambda: prefill_context([9], [[1, 2]], 4), "need 3 blocks"),
    (lambda: decode_context([0], [[1]], 4), ">= 1"),
    (lambda: decode_context([3], [[1]], 4, eager=False, max_num_seqs=2, dummy_block=5), "table_width"),
    (lambda: block_table_tensor([[1, 2, 3]], width=2), "more than the table width"),
])
def test_builder_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
