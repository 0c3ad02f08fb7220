"""Prefill on npu_prompt_flash_attention (TND, bottom-right causal), eager decode on
npu_incre_flash_attention (BNSD over the paged cache), graph decode on torchair's fused op."""

import torch
import torch_npu
import torchair
from torch import nn

from pfaifa.context import get_context


class Attention(nn.Module):

    def __init__(self, num_heads, head_dim, scale, num_kv_heads):
        super().__init__()
        self.num_heads, self.head_dim, self.num_kv_heads = num_heads, head_dim, num_kv_heads
        self.scale = head_dim ** -0.5 if scale is None else scale
        mask = torch.ones(2048, 2048, dtype=torch.bool, device="npu").triu(diagonal=1)
        self.register_buffer("mask", mask, persistent=False)
        self.k_cache = self.v_cache = torch.tensor([], device="npu")

    def forward(self, q, k, v):
        ctx = get_context()
        n = q.shape[0]
        q = q.view(n, self.num_heads, self.head_dim)
        k = k.view(n, self.num_kv_heads, self.head_dim)
        v = v.view(n, self.num_kv_heads, self.head_dim)
        if ctx.is_prefill:
            view = (self.k_cache.shape[0], ctx.block_size, self.num_kv_heads, self.head_dim)
            torch_npu._npu_reshape_and_cache(k, v, self.k_cache.view(view), self.v_cache.view(view), ctx.slot_mapping)
            ends = ctx.cu_seqlens_q[1:].tolist()
            out = torch_npu.npu_prompt_flash_attention(
                q, k, v, atten_mask=self.mask, actual_seq_lengths=ends, actual_seq_lengths_kv=ends,
                num_heads=self.num_heads, num_key_value_heads=self.num_kv_heads, scale_value=self.scale,
                input_layout="TND", sparse_mode=3)
            return out.reshape(n, -1)
        torch_npu.scatter_update_(self.k_cache, ctx.slot_mapping, k.reshape(n, 1, -1), -2)
        torch_npu.scatter_update_(self.v_cache, ctx.slot_mapping, v.reshape(n, 1, -1), -2)
        q = q.view(n, self.num_heads, 1, self.head_dim)
        if ctx.is_enforce_eager:
            out = torch_npu.npu_incre_flash_attention(
                q, self.k_cache, self.v_cache, actual_seq_lengths=ctx.context_lens.tolist(),
                block_table=ctx.block_tables, num_heads=self.num_heads, num_key_value_heads=self.num_kv_heads,
                scale_value=self.scale, input_layout="BNSD", block_size=ctx.block_size)
        else:
            out = torchair.ops.npu_fused_infer_attention_score(
                q, self.k_cache, self.v_cache, num_heads=self.num_heads, num_key_value_heads=self.num_kv_heads,
                input_layout="BNSD", scale=self.scale, actual_seq_lengths_kv=ctx.context_lens.to(torch.int64),
                block_table=ctx.block_tables, block_size=ctx.block_size, inner_precise=1)[0]
        return out.reshape(n, -1)


class ScaledTwiceAttention(Attention):
    """A planted mistake for the harness's tests: the query is pre-scaled and the kernel scales again."""

    def forward(self, q, k, v):
        return super().forward(q * self.scale, k, v)
