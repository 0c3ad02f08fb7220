"""Paged and varlen causal attention: validate, then run the shared dense core
one sequence at a time (so at most one sequence's scores exist at once)."""

import torch

from . import _checks
from ._core import causal_attention


def _check_q(q):
    _checks.float_tensor("q", q, (3,))
    if q.shape[1] < 1 or q.shape[2] < 1:
        raise ValueError(f"q must be [T, Hq, D] with Hq >= 1 and D >= 1, got shape {tuple(q.shape)}")
    return q.shape


def paged_attention(q, k_cache, v_cache, *, query_lens, context_lens, block_tables, scale,
                    compute_dtype=torch.float64, reorder_ops=False):
    """Causal attention over a paged KV cache -> [sum(query_lens), Hq, D] in compute_dtype.

    q [sum(query_lens), Hq, D]; caches [num_blocks, block_size, Hkv, D] or
    [num_blocks, block_size, Hkv*D]; block_tables [B, W] integer. Sequence b
    holds context_lens[b] tokens, token p at
    cache[block_tables[b, p // block_size], p % block_size]; its queries are the
    last query_lens[b] of those positions (bottom-right causal alignment).
    Table entries past the ceil(context_lens[b] / block_size) needed columns are
    ignored (they may be -1).
    """
    total, hq, d = _check_q(q)
    _checks.float_tensor("k_cache", k_cache, (3, 4))
    _checks.float_tensor("v_cache", v_cache, (3, 4))
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"v_cache shape must equal k_cache shape, got {tuple(v_cache.shape)} "
                         f"vs {tuple(k_cache.shape)}")
    hkv = _checks.kv_heads("k_cache", k_cache, d)
    _checks.head_counts(hq, hkv, "k_cache")
    num_blocks, block_size = k_cache.shape[:2]
    if block_size < 1:
        raise ValueError(f"k_cache block_size (dim 1) must be >= 1, got shape {tuple(k_cache.shape)}")
    scale = _checks.scale_value(scale)
    dtype = _checks.compute_dtype_value(compute_dtype)

    q_lens = _checks.int_list("query_lens", query_lens)
    ctx_lens = _checks.int_list("context_lens", context_lens)
    _checks.integer_tensor("block_tables", block_tables, (2,))
    if len(q_lens) != len(ctx_lens) or len(q_lens) != block_tables.shape[0]:
        raise ValueError(f"len(query_lens), len(context_lens) and block_tables.shape[0] must all "
                         f"equal the batch size, got {len(q_lens)}, {len(ctx_lens)}, "
                         f"{block_tables.shape[0]}")
    _checks.non_negative("query_lens", q_lens)
    _checks.non_negative("context_lens", ctx_lens)
    if sum(q_lens) != total:
        raise ValueError(f"sum(query_lens) must equal q.shape[0], got {sum(q_lens)} vs {total}")
    _check_block_tables(block_tables, ctx_lens, block_size, num_blocks)

    # [num_blocks * block_size, Hkv, D]: row s is slot s = block * block_size + offset.
    k_slots = k_cache.reshape(num_blocks * block_size, hkv, d)
    v_slots = v_cache.reshape(num_blocks * block_size, hkv, d)

    out = torch.empty(total, hq, d, dtype=dtype, device=q.device)
    start = 0
    for b, (q_len, ctx_len) in enumerate(zip(q_lens, ctx_lens)):
        pos = torch.arange(ctx_len, device=block_tables.device)
        slots = block_tables[b, pos // block_size].long() * block_size + pos % block_size
        slots = slots.to(k_cache.device)
        out[start:start + q_len] = causal_attention(
            q[start:start + q_len], _gather(k_slots, slots), _gather(v_slots, slots),
            scale=scale, compute_dtype=dtype, reorder_ops=reorder_ops)
        start += q_len
    return out


def _gather(slot_rows, slots):
    """Rows `slots` of [S, Hkv, D] as a [L, Hkv, D] view of head-major storage.

    Whole rows are gathered from the contiguous slot array (fast), then laid out
    head-major once, the layout the core wants, so the core does not copy again.
    The row-major intermediate is freed as soon as the head-major copy exists.
    """
    return slot_rows.index_select(0, slots).permute(1, 0, 2).contiguous().permute(1, 0, 2)


def _check_block_tables(block_tables, ctx_lens, block_size, num_blocks):
    width = block_tables.shape[1]
    for b, ctx_len in enumerate(ctx_lens):
        needed = -(-ctx_len // block_size)  # ceil
        if needed > width:
            raise ValueError(f"block_tables has {width} columns but context_lens[{b}]={ctx_len} "
                             f"needs {needed} blocks of block_size {block_size}")
        ids = block_tables[b, :needed]
        bad = (ids < 0) | (ids >= num_blocks)
        if bool(bad.any()):
            col = int(bad.nonzero()[0, 0])
            raise ValueError(f"block_tables[{b}, {col}]={int(ids[col])} must be a block id in "
                             f"[0, num_blocks={num_blocks}) (needed for context_lens[{b}]={ctx_len})")


def varlen_attention(q, k, v, *, cu_seqlens_q, cu_seqlens_k, scale,
                     compute_dtype=torch.float64, reorder_ops=False):
    """Causal attention over packed variable-length sequences -> [T_q, Hq, D].

    q [T_q, Hq, D], k/v [T_k, Hkv, D]; sequence b is q[cu_seqlens_q[b]:cu_seqlens_q[b+1]]
    against k/v[cu_seqlens_k[b]:cu_seqlens_k[b+1]], bottom-right causal aligned.
    """
    total_q, hq, d = _check_q(q)
    _checks.float_tensor("k", k, (3,))
    _checks.float_tensor("v", v, (3,))
    if k.shape != v.shape:
        raise ValueError(f"v shape must equal k shape, got {tuple(v.shape)} vs {tuple(k.shape)}")
    if k.shape[2] != d:
        raise ValueError(f"k head_dim (last dim) must equal q head_dim {d}, got shape {tuple(k.shape)}")
    _checks.head_counts(hq, k.shape[1], "k")
    scale = _checks.scale_value(scale)
    dtype = _checks.compute_dtype_value(compute_dtype)
    cu_q = _cu_seqlens("cu_seqlens_q", cu_seqlens_q, total_q, "q.shape[0]")
    cu_k = _cu_seqlens("cu_seqlens_k", cu_seqlens_k, k.shape[0], "k.shape[0]")
    if len(cu_q) != len(cu_k):
        raise ValueError(f"cu_seqlens_q and cu_seqlens_k must have the same length (B+1), "
                         f"got {len(cu_q)} vs {len(cu_k)}")

    out = torch.empty(total_q, hq, d, dtype=dtype, device=q.device)
    for b in range(len(cu_q) - 1):
        qs, qe, ks, ke = cu_q[b], cu_q[b + 1], cu_k[b], cu_k[b + 1]
        out[qs:qe] = causal_attention(q[qs:qe], k[ks:ke], v[ks:ke], scale=scale,
                                      compute_dtype=dtype, reorder_ops=reorder_ops)
    return out


def _cu_seqlens(name, value, extent, extent_name):
    cu = _checks.int_list(name, value)
    if not cu or cu[0] != 0:
        raise ValueError(f"{name} must start at 0 (shape [B+1]), got {cu[:1]}")
    for i in range(1, len(cu)):
        if cu[i] < cu[i - 1]:
            raise ValueError(f"{name} must be non-decreasing, got {name}[{i - 1}]={cu[i - 1]} > "
                             f"{name}[{i}]={cu[i]}")
    if cu[-1] != extent:
        raise ValueError(f"{name} last value must equal {extent_name}={extent}, got {cu[-1]}")
    return cu
