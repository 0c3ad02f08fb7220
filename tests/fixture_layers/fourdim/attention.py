"""Attention with 4-D paged caches [num_blocks, block_size, kv_heads, head_dim].

The cache is written with _npu_reshape_and_cache in every phase (flat slots), and read by the fused
attention through a 3-D view of the same storage.
"""

from dataclasses import dataclass

import torch
import torch_npu
import torchair
from torch import nn

from fourdim.metadata import current


@dataclass(frozen=True)
class AttnConfig:
    heads: int
    kv_heads: int
    head_size: int
    softmax_scale: float


class PagedAttention(nn.Module):

    def __init__(self, config: AttnConfig):
        super().__init__()
        self.config = config
        self.register_buffer("mask", torch.ones(2048, 2048, dtype=torch.bool, device="npu").triu(1), persistent=False)
        self.key_cache = torch.empty(0, device="npu")
        self.value_cache = torch.empty(0, device="npu")

    def _flat_slots(self, meta):
        slots = meta.slot_mapping
        if slots.dim() == 2:  # decode: (block, offset) rows; padded rows (length 0) are skipped with -1
            slots = torch.where(meta.context_lens > 0, slots[:, 0] * meta.block_size + slots[:, 1], -1)
        return slots.to(torch.int32)

    def forward(self, query, key, value):
        meta, cfg = current(), self.config
        n = query.shape[0]
        query = query.reshape(n, cfg.heads, cfg.head_size)
        key = key.reshape(n, cfg.kv_heads, cfg.head_size)
        value = value.reshape(n, cfg.kv_heads, cfg.head_size)
        torch_npu._npu_reshape_and_cache(key, value, self.key_cache, self.value_cache, self._flat_slots(meta))
        if meta.is_prefill:
            ends = meta.cu_seqlens_q[1:].tolist()
            out, _ = torch_npu.npu_fused_infer_attention_score_v2(
                query, key, value, num_query_heads=cfg.heads, num_key_value_heads=cfg.kv_heads, input_layout="TND",
                softmax_scale=cfg.softmax_scale, atten_mask=self.mask, actual_seq_qlen=ends, actual_seq_kvlen=ends,
                sparse_mode=3, inner_precise=1)
            return out.reshape(n, -1)
        blocks = self.key_cache.shape[0]
        k3 = self.key_cache.view(blocks, meta.block_size, -1)
        v3 = self.value_cache.view(blocks, meta.block_size, -1)
        q = query.view(n, cfg.heads, 1, cfg.head_size)
        if meta.is_enforce_eager:
            out, _ = torch_npu.npu_fused_infer_attention_score_v2(
                q, k3, v3, num_query_heads=cfg.heads, num_key_value_heads=cfg.kv_heads, input_layout="BNSD",
                softmax_scale=cfg.softmax_scale, block_table=meta.block_tables, block_size=meta.block_size,
                actual_seq_kvlen=meta.context_lens, inner_precise=1)
        else:
            out, _ = torchair.ops.npu_fused_infer_attention_score(
                q, k3, v3, num_heads=cfg.heads, num_key_value_heads=cfg.kv_heads, input_layout="BNSD",
                scale=cfg.softmax_scale, block_table=meta.block_tables, block_size=meta.block_size,
                actual_seq_lengths_kv=meta.context_lens.to(torch.int64), inner_precise=1)
        return out.reshape(n, -1)
