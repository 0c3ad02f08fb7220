"""The arithmetic of fused infer attention, given a checked `FiaPlan`. No checks live here.

Per batch b and query row i (0 <= i < q_b), over keys j (0 <= j < kv_b), d = j - i:
  all                  every key (sparse_mode 0 without a mask; decode)
  window               -pre <= d <= next, origin top-left (sparse_mode 0 with a mask)
  mask                 the user mask alone (sparse_mode 1)
  causal_top_left      d <= 0 (sparse_mode 2)
  causal_bottom_right  d <= kv_b - q_b (sparse_mode 3, FlashAttention's bottom-right causal)
  band                 -pre <= d - (kv_b - q_b) <= next (sparse_mode 4, origin bottom-right)
and, where the plan reads the user mask, `not mask[..., i, j]` (True/1 = masked out).
(hicann/ops-transformer docs/context/sparse_mode参数说明.md; prompt_flash_attention_base.h GetSparseParam.)

With the compressed 2048 mask holding anything but triu(1), the plan's `mask_use` is "compressed" and
the kept keys are the kernel's reading of it (fia_mask.read_compressed_mask): a row whose computed keys
are all masked then averages them uniformly (masked scores are -FLT_MAX, not -inf), and rows the
emulator cannot model are NaN.

Scores are `scale * q.k` in float32 (scale first, then the mask, then softmax); query head h reads
KV head h // (num_heads / num_kv_heads) [inferred: the kernels index heads as (n2, g)]. A row with no
visible key gives output 0 and LSE +inf ("数据为inf的代表无效数据", aclnnFusedInferAttentionScoreV4.md);
padding rows past q_b likewise; a decode (IFA) row with kv_len 0 writes LSE -3.40e38
(incre_flash_attention_preload.h InitAllZeroOutput). LSE is max + log(sum(exp(s - max))) over the kept scores.
"""

from __future__ import annotations

import math

import torch

from conformance.emulator.fia_plan import (
    ALL,
    BAND,
    CAUSAL_BOTTOM_RIGHT,
    CAUSAL_TOP_LEFT,
    MASK_ONLY,
    WINDOW,
    FiaPlan,
)

#: Upper bound on score elements materialised at once (rows are chunked to stay under it).
SCORE_CHUNK_ELEMENTS = 1 << 22
#: The LSE the decode kernel writes for a batch with kv_len 0 (`float minf = -3.40E+38`).
IFA_EMPTY_LSE = -3.40e38


def visible_keys(q_len: int, kv_len: int, visibility: str, pre: int, nxt: int,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Bool [q_len, kv_len]: which keys each query row may see before any user mask."""
    if visibility in (ALL, MASK_ONLY):
        return torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
    d = torch.arange(kv_len, device=device)[None, :] - torch.arange(q_len, device=device)[:, None]
    if visibility == WINDOW:
        return (d >= -pre) & (d <= nxt)
    if visibility == CAUSAL_TOP_LEFT:
        return d <= 0
    shift = kv_len - q_len
    if visibility == CAUSAL_BOTTOM_RIGHT:
        return d <= shift
    if visibility == BAND:
        return (d - shift >= -pre) & (d - shift <= nxt)
    raise AssertionError(visibility)


def user_mask_window(plan: FiaPlan, mask: torch.Tensor | None, b: int, q_len: int, kv_len: int):
    """Bool [q_len, kv_len] (True = masked) that the user mask imposes on batch b, or None."""
    if mask is None or not plan.mask_use:
        return None
    lead = b if plan.mask_batched else 0
    if plan.mask_use == "decode":
        row = mask.reshape(mask.shape[0], mask.shape[-1])[lead, :kv_len]
        return row.bool()[None, :].expand(q_len, kv_len)
    m = mask if mask.dim() == 2 else (mask[lead] if mask.dim() == 3 else mask[lead, 0])
    return m[:q_len, :kv_len].bool()  # top-left window [inferred]


def keep_matrix(plan: FiaPlan, mask: torch.Tensor | None, b: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep [q_b, kv_b], visible-before-mask [q_b, kv_b]) for batch b (not for "compressed" masks)."""
    q_len, kv_len = plan.q_lens[b], plan.kv_lens[b]
    base = visible_keys(q_len, kv_len, plan.visibility, plan.pre_tokens, plan.next_tokens, device)
    masked = user_mask_window(plan, mask, b, q_len, kv_len)
    return (base if masked is None else base & ~masked), base


def _dense_rows(layout: str, x: torch.Tensor, b: int, length: int, heads: int, dim: int,
                starts: tuple[int, ...]) -> torch.Tensor:
    """Float32 [heads, length, dim] of batch b of a dense query/key/value in `layout`."""
    if layout == "BSH":
        rows = x[b, :length].reshape(length, heads, dim).transpose(0, 1)
    elif layout == "BSND":
        rows = x[b, :length].transpose(0, 1)
    elif layout == "BNSD":
        rows = x[b, :, :length]
    else:  # TND: batch b starts at row starts[b]
        rows = x[starts[b]:starts[b] + length].transpose(0, 1)
    return rows.float()


def query_rows(plan: FiaPlan, query: torch.Tensor, b: int) -> torch.Tensor:
    """Float32 [N, q_b, D] of batch b."""
    return _dense_rows(plan.layout, query, b, plan.q_lens[b], plan.num_heads, plan.head_dim, plan.q_starts)


def kv_rows(plan: FiaPlan, cache: torch.Tensor, block_table: torch.Tensor | None, b: int,
            dim: int) -> torch.Tensor:
    """Float32 [N_kv, kv_b, dim] of batch b, from dense key/value or through the block table."""
    nkv, kv_len = plan.num_kv_heads, plan.kv_lens[b]
    if plan.paged:
        bs = plan.block_size
        used = block_table[b, : math.ceil(kv_len / bs)].long()
        blocks = cache.index_select(0, used)
        if plan.cache_form == "BnBsH":  # (nb, bs, N*D): token p at [table[p // bs], p % bs]
            rows = blocks.reshape(-1, nkv, dim)[:kv_len].transpose(0, 1)
        else:  # (nb, N, bs, D)
            rows = blocks.permute(1, 0, 2, 3).reshape(nkv, -1, dim)[:, :kv_len]
        return rows.float()
    return _dense_rows(plan.layout, cache, b, kv_len, nkv, dim, plan.kv_starts)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: torch.Tensor,
           scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """q [N, S1, D], k [Nkv, S2, D], v [Nkv, S2, Dv], keep [S1, S2] -> (out [N, S1, Dv], lse [N, S1]), fp32."""
    n, s1, d = q.shape
    nkv, s2, _ = k.shape
    dv = v.shape[-1]
    group = n // nkv
    out = q.new_zeros(n, s1, dv)
    lse = q.new_full((n, s1), math.inf)
    if s1 == 0 or s2 == 0:
        return out, lse
    step = max(1, SCORE_CHUNK_ELEMENTS // (n * s2))
    kt = k.transpose(1, 2)
    for r0 in range(0, s1, step):
        r1 = min(s1, r0 + step)
        r = r1 - r0
        qc = q[:, r0:r1].reshape(nkv, group * r, d)
        scores = torch.bmm(qc, kt).view(nkv, group, r, s2).mul_(scale)  # in place: one score buffer
        kc = keep[r0:r1]
        scores.masked_fill_(~kc, -math.inf)
        has_key = kc.any(-1)[:, None]  # [r, 1]
        peak = torch.where(has_key, scores.amax(-1, keepdim=True), torch.zeros((), dtype=scores.dtype))
        weights = scores.sub_(peak).exp_()
        total = weights.sum(-1, keepdim=True)
        values = torch.bmm(weights.view(nkv, group * r, s2), v).view(nkv, group, r, dv)
        values = torch.where(has_key, values / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)
        row_lse = torch.where(has_key, peak + torch.log(total), math.inf)
        out[:, r0:r1] = values.reshape(n, r, dv)
        lse[:, r0:r1] = row_lse.reshape(n, r)
    return out, lse


def compressed_rows(plan: FiaPlan, reading, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor) -> None:
    """Apply the kernel's reading of a compressed mask to one batch's result, in place: rows whose
    computed keys are all masked average those keys uniformly (masked scores are a finite fill, -FLT_MAX in
    the prompt kernel, -1e12 in decode, and no row-invalid correction exists for these modes at any
    inner_precise); rows the emulator cannot model are NaN."""
    if reading is None:  # outside the modelled tiling: every row is undefined
        o.fill_(math.nan)
        lse.fill_(math.nan)
        return
    uniform = reading.computed.any(-1) & ~reading.keep.any(-1)
    if bool(uniform.any()):
        group = plan.num_heads // plan.num_kv_heads
        weights = reading.computed[uniform].float()
        weights = weights / weights.sum(-1, keepdim=True)  # [rows, kv]
        means = torch.einsum("rk,nkd->nrd", weights, v).repeat_interleave(group, 0)
        o[:, uniform] = means
        lse[:, uniform] = -torch.finfo(torch.float32).max
    o[:, reading.unknown_rows] = math.nan
    lse[:, reading.unknown_rows] = math.nan


def run(plan: FiaPlan, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
        atten_mask: torch.Tensor | None, block_table: torch.Tensor | None,
        readings: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(attention_out, softmax_lse) for a checked call: zero output / +inf LSE where nothing is valid.
    `readings` holds, per batch, the kernel's reading of a "compressed" mask (None: not modelled)."""
    device = query.device
    out = torch.zeros(plan.out_shape, dtype=torch.float32, device=device)
    lse_full = torch.full(_lse_extent(plan), math.inf, dtype=torch.float32, device=device)
    for b in range(plan.batch):
        q_len = plan.q_lens[b]
        if q_len == 0:
            continue
        reading = (readings or {}).get(b)
        if plan.mask_use == "compressed":
            keep = reading.keep if reading is not None else torch.zeros(q_len, plan.kv_lens[b], dtype=torch.bool,
                                                                         device=device)
        else:
            keep, _ = keep_matrix(plan, atten_mask, b, device)
        v = kv_rows(plan, value, block_table, b, plan.value_dim)
        o, batch_lse = attend(query_rows(plan, query, b), kv_rows(plan, key, block_table, b, plan.head_dim), v,
                              keep, plan.scale)
        if plan.mask_use == "compressed":
            compressed_rows(plan, reading, v, o, batch_lse)
        elif plan.path == "decode" and plan.kv_lens[b] == 0:
            batch_lse.fill_(IFA_EMPTY_LSE)
        if plan.layout == "BSH":
            out[b, :q_len] = o.transpose(0, 1).reshape(q_len, -1)
        elif plan.layout == "BSND":
            out[b, :q_len] = o.transpose(0, 1)
        elif plan.layout == "BNSD":
            out[b, :, :q_len] = o
        else:
            start = plan.q_starts[b]
            out[start:start + q_len] = o.transpose(0, 1)
        if plan.layout == "TND":
            lse_full[plan.q_starts[b]:plan.q_starts[b] + q_len, :, 0] = batch_lse.transpose(0, 1)
        else:
            lse_full[b, :, :q_len, 0] = batch_lse
    lse = lse_full if plan.return_lse else torch.empty(0, dtype=torch.float32, device=device)
    return out.to(plan.out_dtype), lse


def _lse_extent(plan: FiaPlan) -> tuple[int, ...]:
    """The LSE shape when requested: (T, N, 1) for TND, (B, N, S, 1) otherwise."""
    shape = plan.out_shape
    if plan.layout == "TND":
        return (shape[0], plan.num_heads, 1)
    q_s = shape[2] if plan.layout == "BNSD" else shape[1]
    return (plan.batch, plan.num_heads, q_s, 1)
