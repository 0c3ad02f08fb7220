"""Emulated `torch_npu.npu_prompt_flash_attention` (PFA) and `torch_npu.npu_incre_flash_attention` (IFA).

FIA's predecessors. Each op runs one of the two kernels FIA dispatches to: the PFA op the prompt tiling
(prompt_flash_attention_tiling.cpp) whatever Q_S is, the IFA op the decode tiling
(incre_flash_attention_tiling*.cpp). So both share FIA's checks and compute (`fia.fused_infer_attention`
with `FiaCall.route` "pfa" / "ifa"); where they differ (RULES.md, "PFA and IFA"):

* PFA (schema op_plugin_functions.yaml L6759): `next_tokens` defaults to 0, not INT_MAX; no block table,
  no LSE; op-plugin passes inner_precise 1 and maps sparse_mode 10-14 to (sparse_mode - 10,
  inner_precise 0) (FlashAttentionKernelNpuOpApi.cpp L1008-1014); Q_S == 1 still runs the prompt kernel;
  TND stays bfloat16-only at every CANN version (the FIA v3 route is FIA's).
* IFA (schema L6380): `actual_seq_lengths` are the KV lengths; no sparse_mode, pre/next_tokens, q
  lengths or LSE; inner_precise defaults to 1; layouts BSH/BNSD/BSND only; Q_S must be 1 (2-16 is the
  multi-token mode, not modelled).
* `padding_mask` of both is reserved ("预留参数，暂未使用") and op-plugin never passes it to the kernel
  (L1019, L1705): ignored. Both return only the attention output, shaped like the query (L983, L1693).
"""

from __future__ import annotations

from conformance.emulator.fia import fused_infer_attention
from conformance.emulator.fia_args import (
    IFA_NAMES,
    IFA_OP,
    IFA_UNMODELLED_TENSORS,
    PFA_NAMES,
    PFA_OP,
    PFA_UNMODELLED_TENSORS,
    FiaCall,
    unmodelled_arguments,
)
from conformance.emulator.fia_plan import INT_MAX
from conformance.emulator.findings import op_call

#: op-plugin's PFA binding: sparse_mode 10-14 mean 0-4 computed with inner_precise 0 (high precision).
PFA_HIGH_PRECISION_MODES = range(10, 15)


def _pfa_mode(sparse_mode: int) -> tuple[int, int]:
    """(sparse_mode, inner_precise) as op-plugin hands them to aclnnPromptFlashAttentionV3."""
    if int(sparse_mode) in PFA_HIGH_PRECISION_MODES:
        return int(sparse_mode) - 10, 0
    return int(sparse_mode), 1


def npu_prompt_flash_attention(
    query, key, value, *, padding_mask=None, atten_mask=None, pse_shift=None, actual_seq_lengths=None,
    deq_scale1=None, quant_scale1=None, deq_scale2=None, quant_scale2=None, quant_offset2=None, num_heads=1,
    scale_value=1.0, pre_tokens=2147483647, next_tokens=0, input_layout="BSH", num_key_value_heads=0,
    actual_seq_lengths_kv=None, sparse_mode=0,
):
    """Emulated torch_npu.npu_prompt_flash_attention. Returns attention_out."""
    with op_call():
        mode, inner_precise = _pfa_mode(sparse_mode)
        call = FiaCall(
            op=PFA_OP, names=PFA_NAMES, query=query, key=key, value=value, atten_mask=atten_mask,
            actual_seq_qlen=actual_seq_lengths, actual_seq_kvlen=actual_seq_lengths_kv, block_table=None,
            num_heads=num_heads, num_key_value_heads=num_key_value_heads, scale=scale_value, pre_tokens=pre_tokens,
            next_tokens=next_tokens, input_layout=input_layout, sparse_mode=mode, inner_precise=inner_precise,
            block_size=0, return_lse=False, route="pfa",
            unmodelled=unmodelled_arguments(dict(locals()), PFA_UNMODELLED_TENSORS, ()),
        )
        return fused_infer_attention(call)[0]


def npu_incre_flash_attention(
    query, key, value, *, padding_mask=None, atten_mask=None, pse_shift=None, actual_seq_lengths=None,
    antiquant_scale=None, antiquant_offset=None, block_table=None, dequant_scale1=None, quant_scale1=None,
    dequant_scale2=None, quant_scale2=None, quant_offset2=None, kv_padding_size=None, num_heads=1,
    scale_value=1.0, input_layout="BSH", num_key_value_heads=0, block_size=0, inner_precise=1,
):
    """Emulated torch_npu.npu_incre_flash_attention. Returns attention_out."""
    with op_call():
        call = FiaCall(
            op=IFA_OP, names=IFA_NAMES, query=query, key=key, value=value, atten_mask=atten_mask,
            actual_seq_qlen=None, actual_seq_kvlen=actual_seq_lengths, block_table=block_table, num_heads=num_heads,
            num_key_value_heads=num_key_value_heads, scale=scale_value, pre_tokens=INT_MAX, next_tokens=INT_MAX,
            input_layout=input_layout, sparse_mode=0, inner_precise=inner_precise, block_size=block_size,
            return_lse=False, route="ifa",
            unmodelled=unmodelled_arguments(dict(locals()), IFA_UNMODELLED_TENSORS, ()),
        )
        return fused_infer_attention(call)[0]
