"""Attention for the NPU runner: paged causal attention on torch_npu fused kernels.

The flow is the NPU port of nano-vllm's layer (linzm1007/nano-vllm-ascend, nanovllm/layers/attention.py):
  prefill       _npu_reshape_and_cache on the 4-D cache view, then FIA-v2 "TND" on the fresh q/k/v
                with cumulative lengths, sparse_mode=3 (bottom-right causal) and the 2048x2048 mask;
  decode eager  scatter_update_ with [B, 2] (block, offset) slots, then FIA-v2 "BNSD" on the paged cache;
  decode graph  the same write, then torchair's npu_fused_infer_attention_score (int64 length tensors),
                which only runs inside a torchair-compiled graph on hardware.
Which implementation those names mean (real kernels or the CPU emulator) is decided in kernels.py.
"""

from __future__ import annotations

import torch
from torch import nn

from npu_attention.context import Context, get_context
from npu_attention.kernels import torch_npu
from npu_attention.kernels import torchair as tng

#: Size of the "optimized" causal mask FIA requires for sparse_mode 2/3/4.
MASK_SIZE = 2048


class Attention(nn.Module):
    def __init__(self, num_heads: int, head_dim: int, scaling: float | None, num_kv_heads: int):
        super().__init__()
        if num_heads <= 0 or num_kv_heads <= 0 or head_dim <= 0:
            raise ValueError(
                f"num_heads ({num_heads}), num_kv_heads ({num_kv_heads}) and head_dim ({head_dim}) "
                "must be positive"
            )
        if num_heads % num_kv_heads:
            raise ValueError(
                f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads}) for GQA"
            )
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.block_size = 0
        self.scale = scaling if scaling is not None else 1.0 / (head_dim**0.5)
        # True = masked, strictly above the diagonal. Created on the default device (the runner sets
        # it), so the module works wherever it is built; .to() moves it like any buffer.
        self.register_buffer(
            "mask", ~torch.tril(torch.ones((MASK_SIZE, MASK_SIZE), dtype=torch.bool)), persistent=False
        )
        # [num_blocks, block_size, num_kv_heads * head_dim] each, assigned by the runner.
        self.k_cache = torch.tensor([])
        self.v_cache = torch.tensor([])

    def _store_kvcache(self, k: torch.Tensor, v: torch.Tensor, context: Context) -> None:
        block_size = self.block_size
        if context.is_prefill:
            num_blocks = self.k_cache.shape[0]
            torch_npu._npu_reshape_and_cache(
                k,
                v,
                self.k_cache.view(num_blocks, block_size, self.num_kv_heads, self.head_dim),
                self.v_cache.view(num_blocks, block_size, self.num_kv_heads, self.head_dim),
                context.slot_mapping.int(),
            )
        else:
            # slot_mapping is [B, 2] rows of (block, offset): the 2-D "discrete" index form.
            key_rows = k.view(k.shape[0], 1, -1).contiguous()
            value_rows = v.view(v.shape[0], 1, -1).contiguous()
            torch_npu.scatter_update_(self.k_cache, context.slot_mapping, key_rows, -2)
            torch_npu.scatter_update_(self.v_cache, context.slot_mapping, value_rows, -2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        context = get_context()
        self.block_size = context.block_size
        batch_size = q.shape[0]
        if k.ndim == 2:
            k = k.view(-1, self.num_kv_heads, self.head_dim)
            v = v.view(-1, self.num_kv_heads, self.head_dim)
            q = q.view(-1, self.num_heads, self.head_dim)
        self._store_kvcache(k, v, context)
        if context.is_prefill:
            return self._prefill(q, k, v, context).reshape(batch_size, -1)
        q_bnsd = q.view(batch_size, 1, self.num_heads, self.head_dim).transpose(1, 2).contiguous()
        if context.is_enforce_eager:
            out = self._decode_eager(q_bnsd, context)
        else:
            out = self._decode_graph(q_bnsd, context)
        return out.transpose(1, 2).reshape(batch_size, -1)

    def _prefill(self, q, k, v, context: Context) -> torch.Tensor:
        # TND takes cumulative end offsets (cu_seqlens without the leading 0).
        actual_qlen = context.cu_seqlens_q[1:].to(torch.int32).tolist()
        actual_kvlen = context.cu_seqlens_k[1:].to(torch.int32).tolist()
        return torch_npu.npu_fused_infer_attention_score_v2(
            q,
            k,
            v,
            num_query_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            input_layout="TND",
            softmax_scale=self.scale,
            atten_mask=self.mask,
            actual_seq_qlen=actual_qlen,
            actual_seq_kvlen=actual_kvlen,
            sparse_mode=3,
            inner_precise=1,
        )[0]

    def _decode_eager(self, q_bnsd: torch.Tensor, context: Context) -> torch.Tensor:
        return torch_npu.npu_fused_infer_attention_score_v2(
            q_bnsd,
            self.k_cache,
            self.v_cache,
            num_query_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            input_layout="BNSD",
            softmax_scale=self.scale,
            block_table=context.block_tables,
            block_size=self.block_size,
            actual_seq_kvlen=context.context_lens,
            sparse_mode=0,
            inner_precise=1,
        )[0]

    def _decode_graph(self, q_bnsd: torch.Tensor, context: Context) -> torch.Tensor:
        out, _ = tng.ops.npu_fused_infer_attention_score(
            q_bnsd,
            self.k_cache,
            self.v_cache,
            num_heads=self.num_heads,
            num_key_value_heads=self.num_kv_heads,
            input_layout="BNSD",
            scale=self.scale,
            actual_seq_lengths_kv=context.context_lens.to(torch.int64),
            block_table=context.block_tables,
            block_size=self.block_size,
            inner_precise=1,
        )
        return out
