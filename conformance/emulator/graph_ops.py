"""The emulated ops as torch.library custom ops, so that a compiled decode graph can hold them.

Dynamo cannot trace the emulated ops themselves (their contract checks read tensor values), so each op
the graph decode path calls is registered as a custom op (one graph node; its fake implementation gives
shapes from shapes alone, conformance.emulator.fia_output), and `torch_npu` / `torchair` here map the real op names to
them. The kernel backend "emulated-graph" (conformance.platform.backends) is these ops.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from conformance.emulator import torch_npu as emulated_torch_npu
from conformance.emulator import torchair as emulated_torchair
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
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, atten_mask: torch.Tensor | None,
    actual_seq_lengths: torch.Tensor | None, actual_seq_lengths_kv: torch.Tensor | None,
    block_table: torch.Tensor | None, num_heads: int, scale: float, pre_tokens: int, next_tokens: int,
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


@torch.library.custom_op(f"{_LIB}::reshape_and_cache", mutates_args=("key_cache", "value_cache"))
def _reshape_and_cache_op(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                          slot_indices: torch.Tensor) -> None:
    emulated_torch_npu._npu_reshape_and_cache(key, value, key_cache, value_cache, slot_indices)


@_reshape_and_cache_op.register_fake
def _(key, value, key_cache, value_cache, slot_indices):
    return None


def _graph_reshape_and_cache(key, value, key_cache, value_cache, slot_indices):
    _reshape_and_cache_op(key, value, key_cache, value_cache, slot_indices)


@torch.library.custom_op(f"{_LIB}::fused_infer_attention_score_v2", mutates_args=())
def _v2_fia_op(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, atten_mask: torch.Tensor | None,
    qlen_list: list[int] | None, kvlen_list: list[int] | None, qlen_tensor: torch.Tensor | None,
    kvlen_tensor: torch.Tensor | None, block_table: torch.Tensor | None, num_query_heads: int,
    num_key_value_heads: int, softmax_scale: float, pre_tokens: int, next_tokens: int, input_layout: str,
    sparse_mode: int, block_size: int, inner_precise: int, return_softmax_lse: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    # A length list or a length tensor (the schema takes SymInt[]; a layer may pass its int32 tensor).
    out, lse = emulated_torch_npu.npu_fused_infer_attention_score_v2(
        query, key, value, atten_mask=atten_mask,
        actual_seq_qlen=qlen_tensor if qlen_tensor is not None else qlen_list,
        actual_seq_kvlen=kvlen_tensor if kvlen_tensor is not None else kvlen_list, block_table=block_table,
        num_query_heads=num_query_heads, num_key_value_heads=num_key_value_heads, softmax_scale=softmax_scale,
        pre_tokens=pre_tokens, next_tokens=next_tokens, input_layout=input_layout, sparse_mode=sparse_mode,
        block_size=block_size, inner_precise=inner_precise, return_softmax_lse=return_softmax_lse)
    return out.clone(), lse.clone()  # custom ops may not return views of their inputs


@_v2_fia_op.register_fake
def _(query, key, value, atten_mask, qlen_list, kvlen_list, qlen_tensor, kvlen_tensor, block_table, num_query_heads,
      num_key_value_heads, softmax_scale, pre_tokens, next_tokens, input_layout, sparse_mode, block_size,
      inner_precise, return_softmax_lse):
    out_shape, out_dtype, lse_shape = output_meta(query, value, input_layout=input_layout, num_heads=num_query_heads,
                                                  num_key_value_heads=num_key_value_heads,
                                                  paged=block_table is not None, return_lse=return_softmax_lse)
    return query.new_empty(out_shape, dtype=out_dtype), query.new_empty(lse_shape, dtype=torch.float32)


def _graph_v2_fia(query, key, value, *, atten_mask=None, actual_seq_qlen=None, actual_seq_kvlen=None,
                  block_table=None, num_query_heads=1, num_key_value_heads=0, softmax_scale=1.0,
                  pre_tokens=2147483647, next_tokens=2147483647, input_layout="BSH", sparse_mode=0, block_size=0,
                  inner_precise=0, return_softmax_lse=False, **unmodelled):
    """torch_npu.npu_fused_infer_attention_score_v2 inside a compiled graph: the arguments a layer's
    attention uses; anything else must stay at its default (None)."""
    extra = sorted(name for name, value in unmodelled.items() if value is not None)
    if extra:
        raise NotImplementedError(f"graph emulation of npu_fused_infer_attention_score_v2 does not model {extra}")

    def split(lengths):
        return (None, lengths) if isinstance(lengths, torch.Tensor) else (lengths, None)

    (q_list, q_tensor), (kv_list, kv_tensor) = split(actual_seq_qlen), split(actual_seq_kvlen)
    return _v2_fia_op(query, key, value, atten_mask, q_list, kv_list, q_tensor, kv_tensor, block_table,
                      num_query_heads, num_key_value_heads, float(softmax_scale), pre_tokens, next_tokens,
                      input_layout, sparse_mode, block_size, inner_precise, return_softmax_lse)


@torch.library.custom_op(f"{_LIB}::scatter_pa_kv_cache", mutates_args=("key_cache", "value_cache"))
def _scatter_pa_kv_cache_op(key: torch.Tensor, value: torch.Tensor, key_cache: torch.Tensor, value_cache: torch.Tensor,
                            slot_mapping: torch.Tensor, cache_mode: str | None) -> None:
    emulated_torch_npu.npu_scatter_pa_kv_cache(key, value, key_cache, value_cache, slot_mapping, cache_mode=cache_mode)


@_scatter_pa_kv_cache_op.register_fake
def _(key, value, key_cache, value_cache, slot_mapping, cache_mode):
    return None


def _graph_scatter_pa_kv_cache(key, value, key_cache, value_cache, slot_mapping, *, cache_mode="PA_NZ", **unmodelled):
    extra = sorted(name for name, value in unmodelled.items() if value is not None)
    if extra:
        raise NotImplementedError(f"graph emulation of npu_scatter_pa_kv_cache does not model {extra}")
    _scatter_pa_kv_cache_op(key, value, key_cache, value_cache, slot_mapping, cache_mode)


def _eager_only(name: str):
    """An emulated op that has no graph form here: inside a compiled graph it fails with one line."""
    op = getattr(emulated_torch_npu, name)

    def call(*args, **kwargs):
        if torch.compiler.is_compiling():
            raise NotImplementedError(f"torch_npu.{name} inside a compiled graph is not modelled by the CPU op "
                                      "emulator (it runs eagerly only; the graph forms are "
                                      f"{', '.join(sorted(GRAPH_FORMS))})")
        return op(*args, **kwargs)
    call.__name__ = name
    return call


#: `torch_npu` and `torchair` as a compiled decode graph sees them: the graph decode path's ops as custom
#: ops, every other emulated op as it is.
#: The ops with a graph form (a custom op a compiled graph holds as one node).
GRAPH_FORMS = {"scatter_update_": _graph_scatter_update_, "_npu_reshape_and_cache": _graph_reshape_and_cache,
               "npu_fused_infer_attention_score_v2": _graph_v2_fia,
               "npu_scatter_pa_kv_cache": _graph_scatter_pa_kv_cache}
torch_npu = SimpleNamespace(**({name: _eager_only(name) for name in emulated_torch_npu.__all__} | GRAPH_FORMS))
torchair = SimpleNamespace(ops=SimpleNamespace(npu_fused_infer_attention_score=_graph_air_fia))
