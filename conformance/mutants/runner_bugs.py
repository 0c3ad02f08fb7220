"""Bugs planted `via` "runner": the runner's own code turns an engine step into a Context with one mistake.

Each is a runner adapter (conformance.adapters.runner: EngineStep -> Context), the project's own runner
(conformance.cases.contexts.build_context) with one thing a real runner gets wrong, planted through the
`runner` hook (conformance.judge.mutation). The harness computes the expected output and cache from the
engine step itself, so a Context that passes the validator but encodes the step wrongly still fails
against it. A bug leaves the steps it is not about unchanged.
"""

from __future__ import annotations

import dataclasses

import torch

from conformance.cases.contexts import build_context
from conformance.cases.engine import EngineStep, ScheduledSequence
from npu_attention import Context


def _with_sequences(step: EngineStep, change) -> EngineStep:
    return dataclasses.replace(step, sequences=tuple(change(s) for s in step.sequences))


def stale_decode_lengths(step: EngineStep) -> Context:
    """Decode lengths and slots from the previous step: the runner reads each sequence's length before
    the scheduler appended the new token, so the new token's K/V overwrite the token before it and the
    kernel attends over one token too few (a consistent Context: only the ground truth shows it)."""
    if step.is_prefill or any(s.num_tokens < 2 for s in step.sequences):
        return build_context(step)
    return build_context(_with_sequences(step, lambda s: dataclasses.replace(s, num_tokens=s.num_tokens - 1)))


def cu_seqlens_shifted(step: EngineStep) -> Context:
    """Cumulative lengths shifted by one: built from [1, ...] instead of [0, ...] (an off-by-one in the
    running sum), with the slots left right."""
    ctx = build_context(step)
    if not step.is_prefill:
        return ctx
    shifted = ctx.cu_seqlens_q + 1
    return dataclasses.replace(ctx, cu_seqlens_q=shifted, cu_seqlens_k=shifted.clone())


def block_tables_padded_with_zero(step: EngineStep) -> Context:
    """Block-table rows padded with 0 (a valid block id) instead of -1."""
    ctx = build_context(step)
    if step.is_prefill:
        return ctx
    return dataclasses.replace(ctx, block_tables=torch.where(ctx.block_tables < 0, 0, ctx.block_tables))


def finished_length_left_in_padding(step: EngineStep) -> Context:
    """Graph padding rows keep the length of the sequence that last used the row (the runner refreshes
    only the live rows of its persistent context_lens buffer): here, the longest live length."""
    ctx = build_context(step)
    if step.is_prefill or step.config.enforce_eager or len(step.sequences) == step.config.max_num_seqs:
        return ctx
    lens = ctx.context_lens.clone()
    lens[len(step.sequences):] = max(s.num_tokens for s in step.sequences)
    return dataclasses.replace(ctx, context_lens=lens)


def padded_count_off_by_one(step: EngineStep) -> Context:
    """The graph batch is padded to max_num_seqs - 1 rows (the runner counts the dummy block's row as a
    sequence slot)."""
    if step.is_prefill or step.config.enforce_eager or len(step.sequences) == step.config.max_num_seqs:
        return build_context(step)
    config = dataclasses.replace(step.config, max_num_seqs=step.config.max_num_seqs - 1)
    return build_context(dataclasses.replace(step, config=config))


def prefill_blocks_in_id_order(step: EngineStep) -> Context:
    """Prefill slots and block table built from each sequence's blocks sorted by id: the block manager's
    logical order is lost once freed blocks are handed out again out of order. The Context is consistent;
    the cache holds every token in the wrong block."""
    if not step.is_prefill:
        return build_context(step)
    return build_context(_with_sequences(step, lambda s: ScheduledSequence(
        s.seq_id, s.num_tokens, s.num_scheduled_tokens, tuple(sorted(s.block_table)))))


def table_width_floored(step: EngineStep) -> Context:
    """The graph's block table is max_model_len // block_size wide (the origin's floor division): when
    max_model_len is not a multiple of block_size, a sequence at max_model_len loses its last block."""
    if step.is_prefill or step.config.enforce_eager:
        return build_context(step)
    ctx = build_context(step)
    width = step.config.max_model_len // step.config.block_size
    return dataclasses.replace(ctx, block_tables=ctx.block_tables[:, :width].contiguous())
