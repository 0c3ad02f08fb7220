"""Paged attention on the Ascend fused kernels (nanoport's layer)."""

import torch
import torch_npu
import torchair as tng
from torch import nn

from nanoport.utils.context import get_context

CAUSAL_MASK_SIZE = 2048


class Attention(nn.Module):

    def __init__(self, num_heads, head_dim, scale, num_kv_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.scale = scale if scale is not None else head_dim ** -0.5
        self.num_kv_heads = num_kv_heads
        ones = torch.ones(CAUSAL_MASK_SIZE, CAUSAL_MASK_SIZE, dtype=torch.bool, device="npu")
        self.register_buffer("causal_mask", torch.triu(ones, diagonal=1), persistent=False)
        self.k_cache = self.v_cache = torch.tensor([], device="npu")

    def store_kv(self, k, v, ctx):
        if ctx.is_prefill:
            shape = (self.k_cache.shape[0], ctx.block_size, self.num_kv_heads, self.head_dim)
            torch_npu._npu_reshape_and_cache(k, v, self.k_cache.view(shape), self.v_cache.view(shape),
                                             ctx.slot_mapping.to(torch.int32))
            return
        rows = k.shape[0]
        torch_npu.scatter_update_(self.k_cache, ctx.slot_mapping, k.reshape(rows, 1, -1), -2)
        torch_npu.scatter_update_(self.v_cache, ctx.slot_mapping, v.reshape(rows, 1, -1), -2)

    def forward(self, q, k, v):
        ctx = get_context()
        tokens = q.shape[0]
        q = q.view(tokens, self.num_heads, self.head_dim)
        k = k.view(tokens, self.num_kv_heads, self.head_dim)
        v = v.view(tokens, self.num_kv_heads, self.head_dim)
        self.store_kv(k, v, ctx)
        if ctx.is_prefill:
            ends = ctx.cu_seqlens_q[1:].tolist()
            out = torch_npu.npu_fused_infer_attention_score_v2(
                q, k, v, num_query_heads=self.num_heads, num_key_value_heads=self.num_kv_heads, input_layout="TND",
                softmax_scale=self.scale, atten_mask=self.causal_mask, actual_seq_qlen=ends, actual_seq_kvlen=ends,
                sparse_mode=3, inner_precise=1)[0]
            return out.reshape(tokens, -1)
        q = q.unsqueeze(2)  # [B, N, 1, D]
        if ctx.is_enforce_eager:
            out = torch_npu.npu_fused_infer_attention_score_v2(
                q, self.k_cache, self.v_cache, num_query_heads=self.num_heads, num_key_value_heads=self.num_kv_heads,
                input_layout="BNSD", softmax_scale=self.scale, block_table=ctx.block_tables,
                block_size=ctx.block_size, actual_seq_kvlen=ctx.context_lens, inner_precise=1)[0]
        else:
            out = tng.ops.npu_fused_infer_attention_score(
                q, self.k_cache, self.v_cache, num_heads=self.num_heads, num_key_value_heads=self.num_kv_heads,
                input_layout="BNSD", scale=self.scale, block_table=ctx.block_tables, block_size=ctx.block_size,
                actual_seq_lengths_kv=ctx.context_lens.long(), inner_precise=1)[0]
        return out.reshape(tokens, -1)


class OffsetAttention(Attention):
    """A planted bug for the harness's tests: decode writes the new token one slot later."""

    def store_kv(self, k, v, ctx):
        if not ctx.is_prefill:
            ctx.slot_mapping = ctx.slot_mapping + torch.tensor([0, 1], dtype=torch.int32,
                                                               device=ctx.slot_mapping.device)
        super().store_kv(k, v, ctx)
