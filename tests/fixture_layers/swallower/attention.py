"""Attention that tries the fused prefill kernel with per-request lengths and, when the kernel refuses
the call, quietly computes the same attention in plain PyTorch. Decode uses the fused kernels."""

import logging

import torch
import torch.nn.functional as F
import torch_npu
from torch import nn

from swallower.forward_context import get_context

log = logging.getLogger(__name__)


class Attention(nn.Module):

    def __init__(self, num_heads, head_dim, scale, num_kv_heads):
        super().__init__()
        self.num_heads, self.head_dim, self.num_kv_heads = num_heads, head_dim, num_kv_heads
        self.scale = scale or head_dim ** -0.5
        self.register_buffer("mask", torch.ones(2048, 2048, dtype=torch.bool).triu(1), persistent=False)
        self.k_cache = self.v_cache = torch.tensor([])

    def forward(self, q, k, v):
        ctx = get_context()
        t = q.shape[0]
        q, k, v = (x.view(t, -1, self.head_dim) for x in (q, k, v))
        if ctx.is_prefill:
            nb = self.k_cache.shape[0]
            view = (nb, ctx.block_size, self.num_kv_heads, self.head_dim)
            torch_npu._npu_reshape_and_cache(k, v, self.k_cache.view(view), self.v_cache.view(view), ctx.slot_mapping)
            lens = (ctx.cu_seqlens_q[1:] - ctx.cu_seqlens_q[:-1]).tolist()
            try:
                out = torch_npu.npu_fused_infer_attention_score_v2(
                    q, k, v, num_query_heads=self.num_heads, num_key_value_heads=self.num_kv_heads,
                    input_layout="TND", softmax_scale=self.scale, atten_mask=self.mask, actual_seq_qlen=lens,
                    actual_seq_kvlen=lens, sparse_mode=3, inner_precise=1)[0]
            except Exception as exc:  # noqa: BLE001 - the fallback this fixture exists to show
                log.debug("fused prefill failed (%s), using the PyTorch path", exc)
                out = self._prefill_torch(q, k, v, lens)
            return out.reshape(t, -1)
        torch_npu.scatter_update_(self.k_cache, ctx.slot_mapping, k.reshape(t, 1, -1), -2)
        torch_npu.scatter_update_(self.v_cache, ctx.slot_mapping, v.reshape(t, 1, -1), -2)
        out = torch_npu.npu_fused_infer_attention_score_v2(
            q.unsqueeze(2), self.k_cache, self.v_cache, num_query_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads, input_layout="BNSD", softmax_scale=self.scale,
            block_table=ctx.block_tables, block_size=ctx.block_size, actual_seq_kvlen=ctx.context_lens,
            inner_precise=1)[0]
        return out.reshape(t, -1)

    def _prefill_torch(self, q, k, v, lens):
        group = self.num_heads // self.num_kv_heads
        outs, start = [], 0
        for n in lens:
            qs, ks, vs = (x[start:start + n].transpose(0, 1).float() for x in (q, k, v))
            ks, vs = ks.repeat_interleave(group, 0), vs.repeat_interleave(group, 0)
            outs.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=self.scale).transpose(0, 1))
            start += n
        return torch.cat(outs).to(q.dtype)
