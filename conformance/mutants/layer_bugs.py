"""Bugs planted `via` "layer": the layer's own code, with one thing done wrong.

Each is a subclass of the production `Attention` that overrides the one method (or default) the
bug lives in; planted through the `layer_class` hook (conformance.judge.mutation), which builds it
in place of Attention with the same constructor arguments.
"""

from __future__ import annotations

import torch

from npu_attention import Attention, Context
from npu_attention.context import get_context
from npu_attention.kernels import torch_npu


class _WrongDefaultScale(Attention):
    """An explicit `scaling` is kept; only the default the layer computes when it is None is wrong."""

    @staticmethod
    def default_scale(num_heads: int, head_dim: int) -> float:
        raise NotImplementedError

    def __init__(self, num_heads, head_dim, scaling, num_kv_heads):
        super().__init__(num_heads, head_dim, scaling, num_kv_heads)
        if scaling is None:
            self.scale = self.default_scale(num_heads, head_dim)


class ScaleOneOverD(_WrongDefaultScale):
    """softmax scale 1/d instead of 1/sqrt(d)."""

    @staticmethod
    def default_scale(num_heads: int, head_dim: int) -> float:
        return 1.0 / head_dim


class ScaleFromModelWidth(_WrongDefaultScale):
    """softmax scale from the model width (num_heads * head_dim) instead of the head dim."""

    @staticmethod
    def default_scale(num_heads: int, head_dim: int) -> float:
        return (num_heads * head_dim) ** -0.5


class MaskPolarityInverted(Attention):
    """The 2048 mask built in torch's polarity (True = attend: tril) where FIA wants True = masked (~tril)."""

    def __init__(self, num_heads, head_dim, scaling, num_kv_heads):
        super().__init__(num_heads, head_dim, scaling, num_kv_heads)
        self.mask = torch.tril(torch.ones_like(self.mask))


class ScaleAppliedTwice(Attention):
    """q is pre-scaled by the layer and the kernel scales the scores again."""

    def forward(self, q, k, v):
        return super().forward(q * self.scale, k, v)


class AttendBeforeCacheWrite(Attention):
    """Decode attends over the paged cache before the new token's K/V is written into it."""

    def forward(self, q, k, v):
        context = get_context()
        if context.is_prefill:
            return super().forward(q, k, v)
        self.block_size = context.block_size
        batch_size = q.shape[0]
        if k.ndim == 2:
            k = k.view(-1, self.num_kv_heads, self.head_dim)
            v = v.view(-1, self.num_kv_heads, self.head_dim)
            q = q.view(-1, self.num_heads, self.head_dim)
        q_bnsd = q.view(batch_size, 1, self.num_heads, self.head_dim).transpose(1, 2).contiguous()
        if context.is_enforce_eager:
            out = self._decode_eager(q_bnsd, context)
        else:
            out = self._decode_graph(q_bnsd, context)
        self._store_kvcache(k, v, context)  # planted: the write comes after the read
        return out.transpose(1, 2).reshape(batch_size, -1)


class UpstreamFourDimCache(Attention):
    """The decode write sees upstream nano-vllm's 4-D [num_blocks, block_size, num_kv_heads, head_dim]
    cache (what an upstream runner allocates) instead of the 3-D one scatter_update_ was written for."""

    def _store_kvcache(self, k, v, context: Context) -> None:
        if context.is_prefill:
            return super()._store_kvcache(k, v, context)
        num_blocks, block_size = self.k_cache.shape[0], self.k_cache.shape[1]
        shape = (num_blocks, block_size, self.num_kv_heads, self.head_dim)
        key_rows = k.view(k.shape[0], 1, -1).contiguous()
        value_rows = v.view(v.shape[0], 1, -1).contiguous()
        torch_npu.scatter_update_(self.k_cache.view(shape), context.slot_mapping, key_rows, -2)
        torch_npu.scatter_update_(self.v_cache.view(shape), context.slot_mapping, value_rows, -2)
