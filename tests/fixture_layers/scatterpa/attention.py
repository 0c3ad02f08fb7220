"""Attention whose cache writes go through npu_scatter_pa_kv_cache on 4-D ND caches
[num_blocks, block_size, kv_heads, head_dim], read by the fused op through a 3-D view."""

import torch
import torch_npu
from nanoport.utils.context import get_context
from torch import nn


class Attention(nn.Module):

    def __init__(self, num_heads, head_dim, scale, num_kv_heads):
        super().__init__()
        self.num_heads, self.head_dim, self.num_kv_heads = num_heads, head_dim, num_kv_heads
        self.scale = head_dim ** -0.5 if scale is None else scale
        self.register_buffer("mask", torch.ones(2048, 2048, dtype=torch.bool).triu(1), persistent=False)
        self.k_cache = self.v_cache = torch.tensor([])

    def slots(self, ctx):
        slots = ctx.slot_mapping
        if slots.dim() == 2:  # decode rows (block, offset); graph padding rows (length 0) skipped with -1
            slots = torch.where(ctx.context_lens > 0, slots[:, 0] * ctx.block_size + slots[:, 1], -1)
        return slots.to(torch.int32)

    def forward(self, q, k, v):
        ctx = get_context()
        n = q.shape[0]
        q, k, v = (x.view(n, -1, self.head_dim) for x in (q, k, v))
        blocks = self.k_cache.shape[0]
        torch_npu.npu_scatter_pa_kv_cache(k, v, self.k_cache, self.v_cache, self.slots(ctx), cache_mode="Norm")
        if ctx.is_prefill:
            ends = ctx.cu_seqlens_q[1:].tolist()
            out = torch_npu.npu_fused_infer_attention_score_v2(
                q, k, v, num_query_heads=self.num_heads, num_key_value_heads=self.num_kv_heads, input_layout="TND",
                softmax_scale=self.scale, atten_mask=self.mask, actual_seq_qlen=ends, actual_seq_kvlen=ends,
                sparse_mode=3, inner_precise=1)[0]
            return out.reshape(n, -1)
        out = torch_npu.npu_fused_infer_attention_score_v2(
            q.unsqueeze(2), self.k_cache.view(blocks, ctx.block_size, -1),
            self.v_cache.view(blocks, ctx.block_size, -1),
            num_query_heads=self.num_heads, num_key_value_heads=self.num_kv_heads, input_layout="BNSD",
            softmax_scale=self.scale, block_table=ctx.block_tables, block_size=ctx.block_size,
            actual_seq_kvlen=ctx.context_lens, inner_precise=1)[0]
        return out.reshape(n, -1)


class NextSlotAttention(Attention):
    """A planted mistake for the harness's tests: every token is written one slot later."""

    def slots(self, ctx):
        return super().slots(ctx) + 1
