"""Bugs planted `via` "call": the layer's kernel call reaches the op with one argument changed.

What the op receives is what the layer would pass if its code had the bug; the op itself stays the
emulator's. Planted through the `wrap_kernels` hook (conformance.judge.mutation): `prefill_call`,
`decode_call`, `every_attention_call` and `decode_kv_lengths` build it from a change of an FIA call's
keyword arguments (the eager FIA-v2 op and the graph torchair op name some of them differently, hence
the `_v2` / `_air` pairs); the other wrappers here take the op itself, for conformance.mutants.ops.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from conformance.mutants.ops import AIR, V2, OpWrapper, WrapKernels, wrap_ops

Change = Callable[[dict], dict]  # an FIA call's keyword arguments -> the ones the buggy layer passes


def _when_layout(layout: str, change: Change) -> OpWrapper:
    """Wrap a FIA op so that calls with `input_layout == layout` get their keyword arguments changed."""
    def wrapper(op):
        def call(query, key, value, **kwargs):
            if kwargs.get("input_layout") == layout:
                kwargs = change(dict(kwargs))
            return op(query, key, value, **kwargs)
        return call
    return wrapper


def _always(change: Change) -> OpWrapper:
    def wrapper(op):
        def call(query, key, value, **kwargs):
            return op(query, key, value, **change(dict(kwargs)))
        return call
    return wrapper


def prefill_call(change: Change) -> WrapKernels:
    """The layer's prefill FIA-v2 call (layout TND) with `change` applied to its keyword arguments."""
    return wrap_ops({V2: _when_layout("TND", change)})


def decode_call(change_v2: Change, change_air: Change) -> WrapKernels:
    """The layer's decode attention calls: eager FIA-v2 (BNSD) and the graph torchair op."""
    return wrap_ops({V2: _when_layout("BNSD", change_v2)}, {AIR: _always(change_air)})


def every_attention_call(change_v2: Change, change_air: Change) -> WrapKernels:
    return wrap_ops({V2: _always(change_v2)}, {AIR: _always(change_air)})


# --- prefill (TND) argument changes ---------------------------------------------------------------

def per_request_lengths(kw: dict) -> dict:
    """actual_seq_qlen / kvlen as per-request lengths, where TND wants cumulative end offsets."""
    for name in ("actual_seq_qlen", "actual_seq_kvlen"):
        ends = list(kw[name])
        kw[name] = [end - start for start, end in zip([0] + ends[:-1], ends)]
    return kw


def one_sequence(kw: dict) -> dict:
    """The whole batch as one sequence: every token sees the earlier requests' tokens."""
    total = list(kw["actual_seq_qlen"])[-1]
    kw["actual_seq_qlen"], kw["actual_seq_kvlen"] = [total], [total]
    return kw


def causal_disabled(kw: dict) -> dict:
    """sparse_mode 0 and no mask: TND prefill attends to future tokens."""
    kw["sparse_mode"], kw["atten_mask"] = 0, None
    return kw


# --- scale / softmax / heads, every attention call ------------------------------------------------

def zero_scale_v2(kw: dict) -> dict:
    kw["softmax_scale"] = 0.0  # every score 0: softmax gives equal weights, the output is a plain mean
    return kw


def zero_scale_air(kw: dict) -> dict:
    kw["scale"] = 0.0
    return kw


def heads_as_mha_v2(kw: dict) -> dict:
    kw["num_key_value_heads"] = kw["num_query_heads"]
    return kw


def heads_as_mha_air(kw: dict) -> dict:
    kw["num_key_value_heads"] = kw["num_heads"]
    return kw


def _modulo_order(num_heads: int, num_kv_heads: int) -> tuple[list[int], list[int]]:
    """(order, inverse): the kernel reads KV head p // g for query slot p. Putting query head
    h = a*n_kv + j at slot p = j*g + a makes head h read KV head j = h % n_kv (tiled), not h // g."""
    group = num_heads // num_kv_heads
    order = [a * num_kv_heads + j for j in range(num_kv_heads) for a in range(group)]
    inverse = [0] * num_heads
    for slot, head in enumerate(order):
        inverse[head] = slot
    return order, inverse


def gqa_modulo(heads_key: str) -> OpWrapper:
    """Query head h attends with KV head h % n_kv instead of h // g (GQA tiling instead of interleaving).
    The head axis is dim 1 for both TND [T, N, D] and BNSD [B, N, S, D] queries and outputs."""
    def wrapper(op):
        def call(query, key, value, **kwargs):
            heads, kv_heads = int(kwargs[heads_key]), int(kwargs.get("num_key_value_heads") or kwargs[heads_key])
            order, inverse = _modulo_order(heads, kv_heads)
            to_slots = torch.tensor(order, device=query.device)
            out, lse = op(query.index_select(1, to_slots), key, value, **kwargs)
            return out.index_select(1, torch.tensor(inverse, device=out.device)), lse
        return call
    return wrapper


# --- decode (BNSD / torchair) argument changes ----------------------------------------------------

LengthChange = Callable[[torch.Tensor, int], torch.Tensor]  # (kv lengths, block size) -> kv lengths


def _kv_lengths(name: str, change: LengthChange) -> Change:
    def apply(kw: dict) -> dict:
        lengths = kw[name]
        kw[name] = change(lengths if isinstance(lengths, torch.Tensor) else torch.tensor(lengths),
                          int(kw["block_size"]))
        return kw
    return apply


def decode_kv_lengths(change: LengthChange) -> WrapKernels:
    """Both decode calls with their kv lengths changed (FIA-v2 and torchair name them differently)."""
    return decode_call(_kv_lengths("actual_seq_kvlen", change), _kv_lengths("actual_seq_lengths_kv", change))


def newest_dropped(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    return (lengths - 1).clamp_min(0)


def rounded_to_block(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    return (lengths + (block_size - 1)) // block_size * block_size


def full_last_block_dropped(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    """The last block counted as empty when the length is a block multiple (a `len % bs` used as
    the last block's fill): the whole last block goes missing."""
    return torch.where((lengths % block_size == 0) & (lengths > 0), lengths - block_size, lengths)


def shorter_unaligned_lose_newest(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    """Rows shorter than the longest row of the batch and not block-aligned lose their newest token."""
    hit = (lengths < lengths.max()) & (lengths % block_size != 0)
    return torch.where(hit, lengths - 1, lengths)


def query_lengths(lengths: torch.Tensor, block_size: int) -> torch.Tensor:
    """The query length of every decode row (1; 0 for graph padding rows)."""
    return lengths.clamp_max(1)


def row0_table(kw: dict) -> dict:
    table = kw["block_table"]
    kw["block_table"] = table[:1].expand(table.shape[0], table.shape[1]).contiguous()
    return kw


# --- cache writes: wrappers of the write ops themselves (positional arguments) ----------------------

def slots_plus_one(op):
    """_npu_reshape_and_cache with every flat slot one too far."""
    def call(key, value, key_cache, value_cache, slot_indices, *args, **kwargs):
        return op(key, value, key_cache, value_cache, slot_indices + 1, *args, **kwargs)
    return call


def offsets_as_1d_index(op):
    """scatter_update_ given only the offset column of the [B, 2] (block, offset) pairs: the documented
    1-D form, which writes update row i into data row i (block i) at that offset."""
    def call(data, indices, updates, axis):
        if indices.dim() == 2:
            indices = indices[:, 1].contiguous()
        return op(data, indices, updates, axis)
    return call
