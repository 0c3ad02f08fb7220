"""The emulated ops as torch.library custom ops, so that a compiled decode graph can hold them.

Dynamo cannot trace the emulated ops themselves (their contract checks read tensor values), so each op
the graph decode path calls is registered as a custom op (one graph node; its fake implementation gives
shapes from shapes alone, conformance.emulator.fia_output), and `torch_npu` / `torchair` here map the real op names to
them. The kernel backend "emulated-graph" (conformance.platform.backends) is these ops.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Optional

import torch

from conformance.emulator import torch_npu as emulated_torch_npu, torchair as emulated_torchair
from conformance.emulator.fia_output import output_meta

_LIB = "npu_conformance"


@torch.library.custom_op(f"{_LIB}::scatter_update_", mutates_args=("data",))
def _scatter_update_op(data: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor, axis: int) -> None:
    emulated_torch_npu.scatter_update_(data, indices, updates, axis)


@_scatter_update_op.register_fake
def _(data, indices, updates, axis):
    return None


@torch.library.custom_op(f"{_LIB}::air_fused_infer_attention_score", mutates_args=())
def _air_fia_op(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, atten_mask: Optional[torch.Tensor],
    actual_seq_lengths: Optional[torch.Tensor], actual_seq_lengths_kv: Optional[torch.Tensor],
    block_table: Optional[torch.Tensor], num_heads: int, scale: float, pre_tokens: int, next_tokens: int,
    input_layout: str, num_key_value_heads: int, sparse_mode: int, inner_precise: int, block_size: int,
    softmax_lse_flag: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    # This body runs when the compiled graph executes, inside CompiledDecode's compiled_graph(mode) block.
    out, lse = emulated_torchair.ops.npu_fused_infer_attention_score(
        query, key, value, atten_mask=atten_mask, actual_seq_lengths=actual_seq_lengths,
        actual_seq_lengths_kv=actual_seq_lengths_kv, block_table=block_table, num_heads=num_heads, scale=scale,
        pre_tokens=pre_tokens, next_tokens=next_tokens, input_layout=input_layout,
        num_key_value_heads=num_key_value_heads, sparse_mode=sparse_mode, inner_precise=inner_precise,
        block_size=block_size, softmax_lse_flag=softmax_lse_flag)
    return out.clone(), lse.clone()  # custom ops may not return views of their inputs


@_air_fia_op.register_fake
def _(query, key, value, atten_mask, actual_seq_lengths, actual_seq_lengths_kv, block_table, num_heads, scale,
      pre_tokens, next_tokens, input_layout, num_key_value_heads, sparse_mode, inner_precise, block_size,
      softmax_lse_flag):
    out_shape, out_dtype, lse_shape = output_meta(query, value, input_layout=input_layout, num_heads=num_heads,
                                                  num_key_value_heads=num_key_value_heads,
                                                  paged=block_table is not None, return_lse=softmax_lse_flag)
    return query.new_empty(out_shape, dtype=out_dtype), query.new_empty(lse_shape, dtype=torch.float32)


def _graph_scatter_update_(self, indices, updates, axis):
    _scatter_update_op(self, indices, updates, axis)
    return self


_GRAPH_MODELLED = ("query", "key", "value", "atten_mask", "actual_seq_lengths", "actual_seq_lengths_kv",
                   "block_table", "num_heads", "scale", "pre_tokens", "next_tokens", "input_layout",
                   "num_key_value_heads", "sparse_mode", "inner_precise", "block_size", "softmax_lse_flag")


def _graph_air_fia(query, key, value, *, atten_mask=None, actual_seq_lengths=None, actual_seq_lengths_kv=None,
                   block_table=None, num_heads=1, scale=1.0, pre_tokens=2147483647, next_tokens=2147483647,
                   input_layout="BSH", num_key_value_heads=0, sparse_mode=0, inner_precise=0, block_size=0,
                   softmax_lse_flag=False, **unmodelled):
    """torchair.ops.npu_fused_infer_attention_score for graph emulation: the arguments the decode
    path can use; anything else must stay at its default (None)."""
    extra = sorted(name for name, value in unmodelled.items() if value is not None)
    if extra:
        raise NotImplementedError(f"graph emulation of npu_fused_infer_attention_score does not model {extra}")
    return _air_fia_op(query, key, value, atten_mask, actual_seq_lengths, actual_seq_lengths_kv, block_table,
                       num_heads, float(scale), pre_tokens, next_tokens, input_layout, num_key_value_heads,
                       sparse_mode, inner_precise, block_size, softmax_lse_flag)


#: `torch_npu` and `torchair` as a compiled decode graph sees them: the graph decode path's ops as custom
#: ops, every other emulated op as it is.
torch_npu = SimpleNamespace(
    **{name: getattr(emulated_torch_npu, name) for name in
       ("npu_fused_infer_attention_score_v2", "npu_fused_infer_attention_score", "_npu_reshape_and_cache",
        "scatter_update")},
    scatter_update_=_graph_scatter_update_)
torchair = SimpleNamespace(ops=SimpleNamespace(npu_fused_infer_attention_score=_graph_air_fia))
