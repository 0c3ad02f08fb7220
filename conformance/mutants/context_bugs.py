"""Bugs planted `via` "context": the runner builds a Context that breaks the runner contract.

Each is a transform (case, Context) -> Context of what a correct runner builds, planted through the
`transform_context` hook (conformance.judge.mutation): the runner-contract validator, then the layer,
get the changed Context. A transform leaves the phases its bug is not in unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from npu_attention import Context

Transform = Callable[[object, Context], Context]


def _padded_rows(ctx: Context) -> list[int]:
    """The graph batch's padding rows: the runner gives them context length 0."""
    return [] if ctx.context_lens is None else [b for b, n in enumerate(ctx.context_lens.tolist()) if n == 0]


def _in_decode(change: Transform) -> Transform:
    """`change` applied to decode Contexts only."""
    def transform(case, ctx: Context) -> Context:
        return ctx if ctx.is_prefill else change(case, ctx)
    return transform


def _in_padding(change: Callable[[object, Context, list[int]], Context]) -> Transform:
    """`change(case, ctx, padded rows)` applied to graph batches with padding only."""
    def transform(case, ctx: Context) -> Context:
        padded = _padded_rows(ctx)
        if ctx.is_prefill or not padded:
            return ctx
        return change(case, ctx, padded)
    return transform


def cached_prefix_prefill(case, ctx: Context) -> Context:
    """Upstream nano-vllm's prefill on a prefix-cache hit: the cached whole blocks of each prompt are
    not recomputed, so cu_seqlens_q counts only the new tokens while cu_seqlens_k counts the full
    prompt, and slot_mapping covers only the new tokens. (The q/k/v rows still hold every token: the
    NPU runner recomputes whole prompts.)"""
    if not ctx.is_prefill:
        return ctx
    lens = list(case.seq_lens)
    cached = [(n - 1) // case.block_size * case.block_size for n in lens]
    if not any(cached):
        return ctx  # no prompt has a full block before its last token: no prefix hit possible
    starts = ctx.cu_seqlens_k[:-1].tolist()
    keep = [s + c + i for s, c, n in zip(starts, cached, lens) for i in range(n - c)]
    new_q = [0]
    for n, c in zip(lens, cached):
        new_q.append(new_q[-1] + n - c)
    device = ctx.cu_seqlens_q.device
    return dataclasses.replace(
        ctx, cu_seqlens_q=torch.tensor(new_q, dtype=torch.int32, device=device),
        max_seqlen_q=max(n - c for n, c in zip(lens, cached)),
        slot_mapping=ctx.slot_mapping[torch.tensor(keep, dtype=torch.long, device=device)])


@_in_decode
def flat_decode_slots(case, ctx: Context) -> Context:
    """Upstream nano-vllm's decode slot_mapping: flat block*block_size+offset [B], not [B, 2] pairs."""
    pairs = ctx.slot_mapping
    return dataclasses.replace(ctx, slot_mapping=(pairs[:, 0] * case.block_size + pairs[:, 1]).to(torch.int32))


@_in_decode
def decode_offset_plus_one(case, ctx: Context) -> Context:
    """The runner's decode slot is one past the new token: offset = last_block_num_tokens instead of
    last_block_num_tokens - 1 (at a block boundary: an offset equal to block_size)."""
    pairs = ctx.slot_mapping.clone()
    padded = set(_padded_rows(ctx))
    real = [b for b in range(pairs.shape[0]) if b not in padded]
    pairs[real, 1] += 1
    return dataclasses.replace(ctx, slot_mapping=pairs)


@_in_padding
def padding_to_block_zero(case, ctx: Context, padded: list[int]) -> Context:
    """Graph padding rows write slot (0, 0), the null block, instead of the reserved dummy block."""
    pairs = ctx.slot_mapping.clone()
    pairs[padded] = 0
    return dataclasses.replace(ctx, slot_mapping=pairs)


@_in_padding
def padding_context_len_one(case, ctx: Context, padded: list[int]) -> Context:
    """Graph padding rows get context_lens 1 (to avoid zero-length rows) and a block table pointing at
    the dummy block, so they read the dummy slot; a runner without the origin's real_bs field (-1)."""
    lens, tables = ctx.context_lens.clone(), ctx.block_tables.clone()
    lens[padded] = 1
    tables[padded, 0] = case.dummy_block
    return dataclasses.replace(ctx, context_lens=lens, block_tables=tables, real_bs=-1)


@_in_padding
def padding_slot_minus_one(case, ctx: Context, padded: list[int]) -> Context:
    """Upstream's CUDA-graph padding slot -1, converted to (block, offset) with floor division as a
    port would: (-1 // bs, -1 % bs) = (-1, bs - 1), i.e. block -1 read as a Python index (the last
    block)."""
    flat = torch.full((len(padded),), -1, dtype=torch.int32)
    pairs = ctx.slot_mapping.clone()
    pairs[padded] = torch.stack([torch.div(flat, case.block_size, rounding_mode="floor"),
                                 torch.remainder(flat, case.block_size)], 1).to(pairs)
    return dataclasses.replace(ctx, slot_mapping=pairs)
