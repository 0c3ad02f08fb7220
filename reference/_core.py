"""Masked attention of one sequence on dense tensors: the core shared by
paged_attention and varlen_attention.

Causal mask aligned bottom-right: with offset = Lk - Lq, query row i sees keys
j <= i + offset. Rows with i + offset < 0 (only when Lq > Lk) see no key and
give exactly 0.
"""

import torch

# Upper bound on score elements per chunk (per query-row chunk, all heads).
# 2**23 fp64 elements = 64 MiB per scores tensor; a few such tensors are alive
# at once, which keeps a 16k-token 8-head prefill far below 1 GiB.
# Tests shrink this to force many chunks.
SCORE_ELEMS_PER_CHUNK = 1 << 23
MAX_ROWS_PER_CHUNK = 1024


def causal_attention(q, k, v, *, scale, compute_dtype, reorder_ops):
    """q [Lq, Hq, D], k/v [Lk, Hkv, D] -> [Lq, Hq, D] in compute_dtype.

    Inputs must already be validated (Hq % Hkv == 0, same D).
    """
    lq, hq, d = q.shape
    lk, hkv, _ = k.shape
    group = hq // hkv
    offset = lk - lq
    out = torch.zeros(lq, hq, d, dtype=compute_dtype, device=q.device)

    # Rows before first_row see no key; they stay 0, and every row we do compute
    # sees key 0, so no softmax row is all -inf (no NaN to patch up later).
    first_row = max(0, -offset)
    if first_row >= lq:
        return out

    # Head-major copies [Hkv, Lk, D] so each chunk is a batched matmul over
    # KV heads. If the caller already passes a head-major layout, no copy.
    k_h = k.to(compute_dtype).permute(1, 0, 2).contiguous()
    v_h = v.to(compute_dtype).permute(1, 0, 2).contiguous()

    rows = max(1, min(MAX_ROWS_PER_CHUNK, SCORE_ELEMS_PER_CHUNK // max(1, hq * lk)))
    for r0 in range(first_row, lq, rows):
        r1 = min(lq, r0 + rows)
        # The last row of the chunk sees keys up to (r1 - 1) + offset; later
        # keys are masked for every row of the chunk, so skip them.
        kmax = min(lk, r1 + offset)
        out[r0:r1] = _chunk(q[r0:r1], k_h[:, :kmax], v_h[:, :kmax], r0 + offset,
                            group, scale, compute_dtype, reorder_ops)
    return out


def _chunk(q, k_h, v_h, limit0, group, scale, dtype, reorder_ops):
    """Rows of one chunk. Row c of the chunk sees keys j <= limit0 + c."""
    c, hq, d = q.shape
    hkv, kmax, _ = k_h.shape
    # Query head h = kv * group + g reads KV head h // group = kv:
    # [C, Hq, D] -> [Hkv, group*C, D] pairs each KV head with its query heads.
    q_g = (q.to(dtype).reshape(c, hkv, group, d)
           .permute(1, 2, 0, 3).reshape(hkv, group * c, d))

    if reorder_ops:
        # Scale q before the matmul: rounds differently from scaling scores.
        scores = torch.matmul(q_g * scale, k_h.transpose(1, 2))
    else:
        scores = torch.matmul(q_g, k_h.transpose(1, 2)).mul_(scale)

    key = torch.arange(kmax, device=q.device)
    limit = torch.arange(c, device=q.device) + limit0
    hidden = key[None, :] > limit[:, None]  # [C, kmax]
    scores.view(hkv, group, c, kmax).masked_fill_(hidden, float("-inf"))

    if reorder_ops:
        # Unfused softmax, each step rounded to dtype.
        scores -= scores.amax(dim=-1, keepdim=True)
        probs = scores.exp_()
        probs /= probs.sum(dim=-1, keepdim=True)
    else:
        probs = torch.softmax(scores, dim=-1)
    del scores
    # probs is already in dtype: P is rounded to the compute dtype before P@V.
    o = torch.matmul(probs, v_h)  # [Hkv, group*C, D]
    return o.reshape(hkv, group, c, d).permute(2, 0, 1, 3).reshape(c, hq, d)
