"""The project's own runner: builds Contexts the way the NPU runner does (linzm1007/nano-vllm-ascend,
model_runner.py), and is the default runner adapter (`build_context(step)`, conformance.adapters.runner).

prepare_prefill -> prefill_context, prepare_decode -> decode_context(eager=True),
prepare_decode_padding -> decode_context(eager=False, max_num_seqs=..., dummy_block=...).
A sequence is described by its length and its block list (physical block ids, in logical order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from conformance.cases.engine import EngineStep, slot_of
from npu_attention.context import Context


def allocate_kv_cache(
    num_blocks: int, block_size: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype, device="cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-filled 3-D caches [num_blocks, block_size, num_kv_heads*head_dim], as the runner allocates."""
    shape = (num_blocks, block_size, num_kv_heads * head_dim)
    return torch.zeros(shape, dtype=dtype, device=device), torch.zeros(shape, dtype=dtype, device=device)


def _check_blocks(seq_lens: Sequence[int], block_tables: Sequence[Sequence[int]], block_size: int) -> None:
    if len(seq_lens) != len(block_tables):
        raise ValueError(f"seq_lens ({len(seq_lens)}) and block_tables ({len(block_tables)}) differ in length")
    for b, (length, blocks) in enumerate(zip(seq_lens, block_tables)):
        if len(blocks) < math.ceil(length / block_size):
            raise ValueError(f"sequence {b}: {length} tokens need {math.ceil(length / block_size)} blocks, "
                             f"got {len(blocks)}")


def block_table_tensor(block_tables: Sequence[Sequence[int]], width: int | None = None, rows: int | None = None,
                       device="cpu") -> torch.Tensor:
    """int32 [rows, width], -1 padded (prepare_block_tables); width defaults to the widest row."""
    width = max((len(t) for t in block_tables), default=0) if width is None else width
    rows = len(block_tables) if rows is None else rows
    table = torch.full((rows, width), -1, dtype=torch.int32)
    for b, blocks in enumerate(block_tables):
        if len(blocks) > width:
            raise ValueError(f"sequence {b} has {len(blocks)} blocks, more than the table width {width}")
        table[b, : len(blocks)] = torch.tensor(list(blocks), dtype=torch.int32)
    return table.to(device)


def prefill_context(seq_lens: Sequence[int], block_tables: Sequence[Sequence[int]], block_size: int,
                    device="cpu") -> Context:
    """Whole prompts are recomputed: cu_seqlens_q == cu_seqlens_k, a flat slot for every token."""
    _check_blocks(seq_lens, block_tables, block_size)
    cu = [0]
    for length in seq_lens:
        cu.append(cu[-1] + length)
    slots = [
        block * block_size + offset
        for length, blocks in zip(seq_lens, block_tables)
        for block, offset in (slot_of(blocks, p, block_size) for p in range(length))
    ]
    cu_seqlens = torch.tensor(cu, dtype=torch.int32, device=device)
    return Context(
        is_prefill=True,
        cu_seqlens_q=cu_seqlens,
        cu_seqlens_k=cu_seqlens.clone(),
        max_seqlen_q=max(seq_lens),
        max_seqlen_k=max(seq_lens),
        slot_mapping=torch.tensor(slots, dtype=torch.int32, device=device),
        context_lens=None,
        block_tables=block_table_tensor(block_tables, device=device),
        is_enforce_eager=None,
        real_bs=None,
        block_size=block_size,
    )


def decode_context(
    seq_lens: Sequence[int],
    block_tables: Sequence[Sequence[int]],
    block_size: int,
    *,
    eager: bool = True,
    max_num_seqs: int | None = None,
    dummy_block: int | None = None,
    table_width: int | None = None,
    device="cpu",
) -> Context:
    """One new token per sequence, at position seq_len - 1 (seq_lens include it).

    Graph mode pads the batch to `max_num_seqs` rows: context_lens 0, slot (dummy_block, 0), and a
    fixed-width block table (`table_width` = max_model_len // block_size) filled with -1.
    """
    _check_blocks(seq_lens, block_tables, block_size)
    if any(length < 1 for length in seq_lens):
        raise ValueError(f"decode sequences include the new token, so every length is >= 1: {list(seq_lens)}")
    pairs = [list(slot_of(blocks, length - 1, block_size)) for length, blocks in zip(seq_lens, block_tables)]
    lens = list(seq_lens)
    rows = len(seq_lens)
    if not eager:
        if max_num_seqs is None or dummy_block is None or table_width is None:
            raise ValueError("graph decode needs max_num_seqs, dummy_block and table_width")
        if max_num_seqs < rows:
            raise ValueError(f"max_num_seqs ({max_num_seqs}) is smaller than the batch ({rows})")
        pairs += [[dummy_block, 0]] * (max_num_seqs - rows)
        lens += [0] * (max_num_seqs - rows)
        rows = max_num_seqs
    return Context(
        is_prefill=False,
        slot_mapping=torch.tensor(pairs, dtype=torch.int32, device=device).reshape(-1, 2),
        context_lens=torch.tensor(lens, dtype=torch.int32, device=device),
        block_tables=block_table_tensor(block_tables, width=table_width, rows=rows, device=device),
        is_enforce_eager=eager,
        real_bs=len(seq_lens),
        block_size=block_size,
    )


def build_context(step: EngineStep, device="cpu") -> Context:
    """The Context of an engine step: prefill recomputes whole prompts; eager decode gives one [block,
    offset] slot per live sequence; graph decode pads to max_num_seqs rows and a block table
    ceil(max_model_len / block_size) wide (the origin floors it, which drops the last block of a
    sequence at max_model_len when max_model_len is not a multiple of block_size)."""
    lens = [s.num_tokens for s in step.sequences]
    tables = [s.block_table for s in step.sequences]
    config = step.config
    if step.is_prefill:
        return prefill_context(lens, tables, config.block_size, device=device)
    if config.enforce_eager:
        return decode_context(lens, tables, config.block_size, device=device)
    return decode_context(lens, tables, config.block_size, eager=False, max_num_seqs=config.max_num_seqs,
                          dummy_block=config.dummy_block, table_width=config.table_width, device=device)
