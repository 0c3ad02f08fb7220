"""Bugs planted `via` "op": an emulated op that misbehaves the way a real CANN / torch_npu kernel did.

The layer's call is correct here; the op itself is wrong (a kernel regression on hardware is exactly
this). Each is an op wrapper planted through the `wrap_kernels` hook (conformance.judge.mutation): the
catalogue (which names each one's public source) puts it in place of the emulated op with
conformance.mutants.ops. A wrapper keeps the op's signature and returns what the broken kernel
returned. The ones that keep state between calls (a previous result, a call count) leave compiled
graphs alone: state read at trace time would be frozen into the graph, which is a different bug. On
hardware these are what the harness exists to catch; planted on the emulator they measure its power
on them.
"""

from __future__ import annotations

import math

import torch


def _is_paged(kwargs: dict) -> bool:
    return kwargs.get("block_table") is not None


def _eager() -> bool:
    return not torch.compiler.is_compiling()


def output_through_bf16(op):
    """The attention output passes through a bf16 buffer (8 mantissa bits) before the output dtype:
    precision lost in the kernel, invisible in bf16 cases, visible in fp16 / fp32 ones."""
    def call(query, key, value, **kwargs):
        out, lse = op(query, key, value, **kwargs)
        return out.to(torch.bfloat16).to(out.dtype), lse
    return call


def empty_rows_nan(op):
    """The graph op without an empty-row guard: rows with no key (padding, context_lens 0) give NaN
    (0/0 in a naive softmax) instead of 0."""
    def call(query, key, value, **kwargs):
        out, lse = op(query, key, value, **kwargs)
        empty = (kwargs["actual_seq_lengths_kv"] == 0).view(-1, 1, 1, 1)
        return torch.where(empty, torch.full_like(out, math.nan), out), lse
    return call


def tiles_assume_contiguous_pages(op):
    """With block_size 16 the kernel loads keys in 128-token tiles and, as if the 8 pages of a tile were
    physically adjacent, reads page j of a tile at (first page of the tile + j). Right whenever the
    allocator happened to hand out consecutive blocks; wrong otherwise. Other block sizes are untouched."""
    def call(query, key, value, **kwargs):
        if _is_paged(kwargs) and kwargs.get("block_size") == 16:
            table = kwargs["block_table"]
            j = torch.arange(table.shape[1], device=table.device)
            first = table[:, (j // 8) * 8]
            kwargs["block_table"] = torch.where(table >= 0, (first + j % 8) % key.shape[0], table).to(table.dtype)
        return op(query, key, value, **kwargs)
    return call


NOT_RUN_ABOVE_BATCH = 3  # the real threshold was 8K padded requests; scaled to the batches drawn here


def silently_not_run(op):
    """Above NOT_RUN_ABOVE_BATCH rows the paged decode op returns without running: its output buffer
    holds whatever the last call of that shape left there, or zeros on first use (fresh device pages
    are zeroed by the driver: *inferred*)."""
    left: dict[tuple, torch.Tensor] = {}

    def call(query, key, value, **kwargs):
        if not (_is_paged(kwargs) and _eager() and query.shape[0] > NOT_RUN_ABOVE_BATCH):
            out, lse = op(query, key, value, **kwargs)
            left[tuple(out.shape) + (out.dtype,)] = out.detach().clone()
            return out, lse
        shape = tuple(query.shape)
        stale = left.get(shape + (query.dtype,))
        out = stale.clone() if stale is not None else torch.zeros(shape, dtype=query.dtype, device=query.device)
        return out, torch.zeros(shape[:-1] + (1,), dtype=torch.float32, device=query.device)
    return call


SKIP_EVERY = 3


def writes_skipped_sometimes(op):
    """Every SKIP_EVERY-th call of scatter_update_ in the process returns without writing."""
    calls = [0]

    def call(data, indices, updates, axis):
        if _eager():
            calls[0] += 1
            if calls[0] % SKIP_EVERY == 0:
                return data
        return op(data, indices, updates, axis)
    return call


LONG_INPUT = 256  # tokens: below this the copy wins the race


def reused_output_buffer(op):
    """Prefill (TND) returns the kernel's output buffer before the kernel finished writing rows from
    LONG_INPUT on: those rows still hold the previous call's result (zeros where it had none)."""
    buffer: list[torch.Tensor | None] = [None]

    def call(query, key, value, **kwargs):
        out, lse = op(query, key, value, **kwargs)
        if kwargs.get("input_layout") != "TND" or not _eager():
            return out, lse
        seen, previous = out.clone(), buffer[0]
        buffer[0] = out.detach().clone()
        rows = out.shape[0]
        if rows > LONG_INPUT:
            stale = torch.zeros_like(out[LONG_INPUT:])
            if previous is not None and previous.shape[1:] == out.shape[1:]:
                n = min(rows, previous.shape[0]) - LONG_INPUT
                if n > 0:
                    stale[:n] = previous[LONG_INPUT:LONG_INPUT + n]
            seen[LONG_INPUT:] = stale
        return seen, lse
    return call


def slots_read_as_int32(op):
    """_npu_reshape_and_cache reads the runner's int64 slot buffer as int32 words: little-endian, the
    i-th word is slot i/2 for even i and a high word (0) for odd i."""
    def call(key, value, key_cache, value_cache, slot_indices, *args, **kwargs):
        words = slot_indices.to(torch.int64).contiguous().view(torch.int32)[: slot_indices.shape[0]]
        return op(key, value, key_cache, value_cache, words.contiguous(), *args, **kwargs)
    return call


KERNEL_BLOCK = 64


def wrong_block_size_above(op):
    """Block sizes above KERNEL_BLOCK are split into KERNEL_BLOCK-token kernel blocks, but the block table
    is passed on unconverted: logical kernel block j reads kernel block table[j] (the first half of a
    cache block, or the second half of the one before), past the table's width its entries again."""
    def call(query, key, value, **kwargs):
        block_size = kwargs.get("block_size", 0)
        if _is_paged(kwargs) and block_size > KERNEL_BLOCK and block_size % KERNEL_BLOCK == 0:
            split = block_size // KERNEL_BLOCK
            key = key.reshape(key.shape[0] * split, KERNEL_BLOCK, *key.shape[2:])
            value = value.reshape(value.shape[0] * split, KERNEL_BLOCK, *value.shape[2:])
            table = kwargs["block_table"]
            kwargs["block_table"] = torch.cat([table] * split, dim=1)
            kwargs["block_size"] = KERNEL_BLOCK
        return op(query, key, value, **kwargs)
    return call


_INT_OF = {2: torch.int16, 4: torch.int32}


def nondeterministic_reduction(op):
    """Attention whose split-KV combine runs in whichever order the cores finish: about 1 output element
    in 32 differs in its last bit from one call to the next (a different seed per call), well inside
    any tolerance. Only running the same inputs twice shows it."""
    calls = [0]

    def call(query, key, value, **kwargs):
        out, lse = op(query, key, value, **kwargs)
        if not _eager():
            return out, lse
        calls[0] += 1
        g = torch.Generator().manual_seed(calls[0])
        flip = (torch.rand(out.shape, generator=g) < 1 / 32).to(out.device)
        bits = out.contiguous().view(_INT_OF[out.element_size()])
        return torch.where(flip, bits ^ 1, bits).view(out.dtype), lse
    return call
