"""What aclgraph capture of fused infer attention calls: the `.out` overloads and the workspace query.

Schemas (Ascend/op-plugin op_plugin/config/op_plugin_functions.yaml L6182, L6186, L6199, L6203):
`npu_fused_infer_attention_score(_v2).out(<the op's arguments>, Tensor? workspace=None, Tensor(a!)
attention_out, Tensor(b!) softmax_lse) -> (Tensor(a!), Tensor(b!))` and
`_npu_fused_infer_attention_score(_v2)_get_max_workspace(<the op's arguments>) -> Tensor`.

`torch_npu.<op>` is `torch.ops.npu.<op>`, so the out variant is `torch_npu.<op>.out`; callers pass the
two outputs either by name or, as op-plugin's own tests and vllm-ascend do, as `out=[attention_out,
softmax_lse]` (op-plugin test/test_custom_ops/test_npu_fused_infer_attention_score_v2_with_workspace.py
L44-47). The out variant checks and computes exactly as the functional op (the same aclnn operator,
FusedInferAttentionScoreKernelNpuOpApi.cpp L479-548), then writes into the given tensors: attention_out
must have the output's shape and dtype (the tiling's CheckOutShape), softmax_lse the LSE shape and
float32 when the LSE is requested, and is left untouched otherwise. `workspace` is device scratch memory
the emulator does not need; the workspace query checks the call and returns a 1-element tensor of the
query's dtype (the real size is the tiling's maximum, which only a device computes).
"""

from __future__ import annotations

import torch

from conformance.emulator import sources as src
from conformance.emulator.fia import fused_infer_attention, v1_call, v2_call
from conformance.emulator.fia_args import V1_OUT_OP, V1_WORKSPACE_OP, V2_OUT_OP, V2_WORKSPACE_OP, FiaCall
from conformance.emulator.fia_checks import plan_call
from conformance.emulator.fia_output import output_meta
from conformance.emulator.findings import Checker, op_call

_OUT_NAMES = ("attention_out", "softmax_lse")


def _outputs(c: Checker, attention_out, softmax_lse, out) -> tuple[torch.Tensor, torch.Tensor]:
    """The two output tensors, given by name or as out=[attention_out, softmax_lse]."""
    if out is not None:
        c.require(attention_out is None and softmax_lse is None, "out", "give the outputs either as out=[...] or "
                  "as attention_out= and softmax_lse=, not both", src.OP_SCHEMAS)
        c.require(isinstance(out, (list, tuple)) and len(out) == 2, "out", "must be [attention_out, softmax_lse]",
                  src.OP_SCHEMAS, detail=f"got {type(out).__name__}")
        attention_out, softmax_lse = out
    for name, t in zip(_OUT_NAMES, (attention_out, softmax_lse)):
        c.require(isinstance(t, torch.Tensor), name, "is required (schema 'Tensor(a!)')", src.OP_SCHEMAS,
                  detail=f"got {type(t).__name__}")
    return attention_out, softmax_lse


def _check_out_tensors(c: Checker, call: FiaCall, attention_out: torch.Tensor, softmax_lse: torch.Tensor) -> None:
    out_shape, out_dtype, lse_shape = output_meta(
        call.query, call.value, input_layout=call.input_layout, num_heads=int(call.num_heads),
        num_key_value_heads=int(call.num_key_value_heads), paged=call.block_table is not None,
        return_lse=bool(call.return_lse))
    c.require(tuple(attention_out.shape) == tuple(out_shape), "attention_out", "must have the output's shape",
              src.at(src.FIA_TILING, "1188-1233"), detail=f"got {tuple(attention_out.shape)}, expected {out_shape}")
    c.require(attention_out.dtype == out_dtype, "attention_out", "must have the output's dtype (the query's)",
              src.FIA_META, inferred=True, detail=f"got {attention_out.dtype}, expected {out_dtype}")
    if call.return_lse:
        c.require(tuple(softmax_lse.shape) == tuple(lse_shape) and softmax_lse.dtype == torch.float32,
                  "softmax_lse", "must be float32 of the LSE shape when the LSE is requested", src.FIA_META,
                  inferred=True, detail=f"got {tuple(softmax_lse.shape)} {softmax_lse.dtype}, expected {lse_shape}")


def run_out(call: FiaCall, attention_out, softmax_lse, out) -> tuple[torch.Tensor, torch.Tensor]:
    c = Checker(call.op, call.names)
    attention_out, softmax_lse = _outputs(c, attention_out, softmax_lse, out)
    result, lse = fused_infer_attention(call)  # checks the call first, as the functional op does
    _check_out_tensors(c, call, attention_out, softmax_lse)
    attention_out.copy_(result)
    if call.return_lse:
        softmax_lse.copy_(lse)
    return attention_out, softmax_lse


def run_workspace(call: FiaCall) -> torch.Tensor:
    plan_call(call)
    return torch.empty(1, dtype=call.query.dtype, device=call.query.device)


def npu_fused_infer_attention_score_out(
    query, key, value, *, pse_shift=None, atten_mask=None, actual_seq_lengths=None, actual_seq_lengths_kv=None,
    dequant_scale1=None, quant_scale1=None, dequant_scale2=None, quant_scale2=None, quant_offset2=None,
    antiquant_scale=None, antiquant_offset=None, key_antiquant_scale=None, key_antiquant_offset=None,
    value_antiquant_scale=None, value_antiquant_offset=None, block_table=None, query_padding_size=None,
    kv_padding_size=None, key_shared_prefix=None, value_shared_prefix=None, actual_shared_prefix_len=None,
    query_rope=None, key_rope=None, key_rope_antiquant_scale=None, num_heads=1, scale=1.0,
    pre_tokens=2147483647, next_tokens=2147483647, input_layout="BSH", num_key_value_heads=0, sparse_mode=0,
    inner_precise=0, block_size=0, antiquant_mode=0, key_antiquant_mode=0, value_antiquant_mode=0,
    softmax_lse_flag=False, workspace=None, attention_out=None, softmax_lse=None, out=None,
):
    """Emulated torch_npu.npu_fused_infer_attention_score.out: writes and returns (attention_out, softmax_lse)."""
    with op_call():
        return run_out(v1_call(V1_OUT_OP, dict(locals())), attention_out, softmax_lse, out)


def npu_fused_infer_attention_score_v2_out(
    query, key, value, *, query_rope=None, key_rope=None, pse_shift=None, atten_mask=None, actual_seq_qlen=None,
    actual_seq_kvlen=None, block_table=None, dequant_scale_query=None, dequant_scale_key=None,
    dequant_offset_key=None, dequant_scale_value=None, dequant_offset_value=None, dequant_scale_key_rope=None,
    quant_scale_out=None, quant_offset_out=None, quant_scale_p=None, learnable_sink=None, num_query_heads=1,
    num_key_value_heads=0, softmax_scale=1.0, pre_tokens=2147483647, next_tokens=2147483647, input_layout="BSH",
    sparse_mode=0, block_size=0, query_quant_mode=0, key_quant_mode=0, value_quant_mode=0, inner_precise=0,
    return_softmax_lse=False, query_dtype=None, key_dtype=None, value_dtype=None, query_rope_dtype=None,
    key_rope_dtype=None, key_shared_prefix_dtype=None, value_shared_prefix_dtype=None,
    dequant_scale_query_dtype=None, dequant_scale_key_dtype=None, dequant_scale_value_dtype=None,
    dequant_scale_key_rope_dtype=None, out_dtype=None, workspace=None, attention_out=None, softmax_lse=None,
    out=None,
):
    """Emulated torch_npu.npu_fused_infer_attention_score_v2.out: writes and returns (attention_out, softmax_lse)."""
    with op_call():
        return run_out(v2_call(V2_OUT_OP, dict(locals())), attention_out, softmax_lse, out)


def _npu_fused_infer_attention_score_get_max_workspace(
    query, key, value, *, pse_shift=None, atten_mask=None, actual_seq_lengths=None, actual_seq_lengths_kv=None,
    dequant_scale1=None, quant_scale1=None, dequant_scale2=None, quant_scale2=None, quant_offset2=None,
    antiquant_scale=None, antiquant_offset=None, key_antiquant_scale=None, key_antiquant_offset=None,
    value_antiquant_scale=None, value_antiquant_offset=None, block_table=None, query_padding_size=None,
    kv_padding_size=None, key_shared_prefix=None, value_shared_prefix=None, actual_shared_prefix_len=None,
    query_rope=None, key_rope=None, key_rope_antiquant_scale=None, num_heads=1, scale=1.0,
    pre_tokens=2147483647, next_tokens=2147483647, input_layout="BSH", num_key_value_heads=0, sparse_mode=0,
    inner_precise=0, block_size=0, antiquant_mode=0, key_antiquant_mode=0, value_antiquant_mode=0,
    softmax_lse_flag=False,
):
    """Emulated torch_npu._npu_fused_infer_attention_score_get_max_workspace: checks, returns a placeholder."""
    with op_call():
        return run_workspace(v1_call(V1_WORKSPACE_OP, dict(locals())))


def _npu_fused_infer_attention_score_v2_get_max_workspace(
    query, key, value, *, query_rope=None, key_rope=None, pse_shift=None, atten_mask=None, actual_seq_qlen=None,
    actual_seq_kvlen=None, block_table=None, dequant_scale_query=None, dequant_scale_key=None,
    dequant_offset_key=None, dequant_scale_value=None, dequant_offset_value=None, dequant_scale_key_rope=None,
    quant_scale_out=None, quant_offset_out=None, quant_scale_p=None, learnable_sink=None, num_query_heads=1,
    num_key_value_heads=0, softmax_scale=1.0, pre_tokens=2147483647, next_tokens=2147483647, input_layout="BSH",
    sparse_mode=0, block_size=0, query_quant_mode=0, key_quant_mode=0, value_quant_mode=0, inner_precise=0,
    return_softmax_lse=False, query_dtype=None, key_dtype=None, value_dtype=None, query_rope_dtype=None,
    key_rope_dtype=None, key_shared_prefix_dtype=None, value_shared_prefix_dtype=None,
    dequant_scale_query_dtype=None, dequant_scale_key_dtype=None, dequant_scale_value_dtype=None,
    dequant_scale_key_rope_dtype=None, out_dtype=None,
):
    """Emulated torch_npu._npu_fused_infer_attention_score_v2_get_max_workspace: checks, returns a placeholder."""
    with op_call():
        return run_workspace(v2_call(V2_WORKSPACE_OP, dict(locals())))
