"""The three fused-infer-attention entry points, reduced to one argument record.

`npu_fused_infer_attention_score` (v1), `..._v2` and torchair's `air::` copy call the same CANN
operator under different argument names (Ascend/op-plugin op_plugin/config/op_plugin_functions.yaml;
Ascend/torchair python/torchair/ops/_npu_fused_infer_attention_score.py). Each entry point builds a
`FiaCall` with the op's own public argument names kept in `names`, so a finding names the argument
as the caller wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

V1_OP = "torch_npu.npu_fused_infer_attention_score"
V2_OP = "torch_npu.npu_fused_infer_attention_score_v2"
AIR_OP = "torchair.ops.npu_fused_infer_attention_score"
V1_OUT_OP = V1_OP + ".out"
V2_OUT_OP = V2_OP + ".out"
V1_WORKSPACE_OP = "torch_npu._npu_fused_infer_attention_score_get_max_workspace"
V2_WORKSPACE_OP = "torch_npu._npu_fused_infer_attention_score_v2_get_max_workspace"
PFA_OP = "torch_npu.npu_prompt_flash_attention"
IFA_OP = "torch_npu.npu_incre_flash_attention"

#: internal name -> public argument name, per entry point.
V1_NAMES = {
    "num_heads": "num_heads",
    "scale": "scale",
    "actual_seq_qlen": "actual_seq_lengths",
    "actual_seq_kvlen": "actual_seq_lengths_kv",
    "return_lse": "softmax_lse_flag",
}
V2_NAMES = {
    "num_heads": "num_query_heads",
    "scale": "softmax_scale",
    "actual_seq_qlen": "actual_seq_qlen",
    "actual_seq_kvlen": "actual_seq_kvlen",
    "return_lse": "return_softmax_lse",
}

#: Optional tensors of v1 / air that select features the emulator does not model (quantization,
#: left padding, shared prefix, rope/MLA, position shift).
V1_UNMODELLED_TENSORS = (
    "pse_shift", "dequant_scale1", "quant_scale1", "dequant_scale2", "quant_scale2", "quant_offset2",
    "antiquant_scale", "antiquant_offset", "key_antiquant_scale", "key_antiquant_offset",
    "value_antiquant_scale", "value_antiquant_offset", "query_padding_size", "kv_padding_size",
    "key_shared_prefix", "value_shared_prefix", "actual_shared_prefix_len", "query_rope", "key_rope",
    "key_rope_antiquant_scale",
)
V1_UNMODELLED_MODES = ("antiquant_mode", "key_antiquant_mode", "value_antiquant_mode")

#: npu_prompt_flash_attention / npu_incre_flash_attention: internal name -> public argument name.
PFA_NAMES = {"num_heads": "num_heads", "scale": "scale_value", "actual_seq_qlen": "actual_seq_lengths",
             "actual_seq_kvlen": "actual_seq_lengths_kv", "return_lse": "(none)"}
IFA_NAMES = {"num_heads": "num_heads", "scale": "scale_value", "actual_seq_qlen": "(none)",
             "actual_seq_kvlen": "actual_seq_lengths", "return_lse": "(none)", "sparse_mode": "(none)"}
#: Their quantization / position-shift / left-padding inputs (padding_mask is reserved and never passed on).
PFA_UNMODELLED_TENSORS = ("pse_shift", "deq_scale1", "quant_scale1", "deq_scale2", "quant_scale2", "quant_offset2")
IFA_UNMODELLED_TENSORS = ("pse_shift", "antiquant_scale", "antiquant_offset", "dequant_scale1", "quant_scale1",
                          "dequant_scale2", "quant_scale2", "quant_offset2", "kv_padding_size")

V2_UNMODELLED_TENSORS = (
    "query_rope", "key_rope", "pse_shift", "dequant_scale_query", "dequant_scale_key", "dequant_offset_key",
    "dequant_scale_value", "dequant_offset_value", "dequant_scale_key_rope", "quant_scale_out",
    "quant_offset_out", "quant_scale_p", "learnable_sink",
)
V2_UNMODELLED_MODES = ("query_quant_mode", "key_quant_mode", "value_quant_mode")
V2_UNMODELLED_DTYPES = (
    "query_dtype", "key_dtype", "value_dtype", "query_rope_dtype", "key_rope_dtype", "key_shared_prefix_dtype",
    "value_shared_prefix_dtype", "dequant_scale_query_dtype", "dequant_scale_key_dtype",
    "dequant_scale_value_dtype", "dequant_scale_key_rope_dtype", "out_dtype",
)


@dataclass
class FiaCall:
    """One FIA call, entry-point independent. Tensors are as given; nothing is checked yet."""

    op: str
    names: dict[str, str]
    query: torch.Tensor
    key: torch.Tensor
    value: torch.Tensor
    atten_mask: torch.Tensor | None
    actual_seq_qlen: Any
    actual_seq_kvlen: Any
    block_table: torch.Tensor | None
    num_heads: int
    num_key_value_heads: int
    scale: float
    pre_tokens: int
    next_tokens: int
    input_layout: str
    sparse_mode: int
    inner_precise: int
    block_size: int
    return_lse: bool
    #: torchair's op takes the lengths as int64 tensors (schema `Tensor?`), torch_npu's as `SymInt[]?`.
    lengths_are_tensors: bool = False
    #: which tiling the entry point runs: "fia" (FIA picks the decode or prompt kernel), "pfa" (the prompt
    #: kernel's own op, npu_prompt_flash_attention) or "ifa" (the decode kernel's, npu_incre_flash_attention).
    route: str = "fia"
    #: public name -> value of every given argument that selects an unmodelled feature.
    unmodelled: dict[str, Any] = field(default_factory=dict)


def unmodelled_arguments(values: dict[str, Any], tensors, modes, dtypes=()) -> dict[str, Any]:
    found = {name: values[name] for name in tensors if values[name] is not None}
    found.update({name: values[name] for name in modes if values[name] != 0})
    found.update({name: values[name] for name in dtypes if values[name] is not None})
    return found
