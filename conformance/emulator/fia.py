"""Emulated `npu_fused_infer_attention_score` (v1) and `npu_fused_infer_attention_score_v2`.

Signatures are the real schemas (Ascend/op-plugin op_plugin/config/op_plugin_functions.yaml): the
first three arguments positional, everything after `*` keyword-only, same names, order and defaults.
Both return `(attention_out, softmax_lse)`. A call is checked first (`fia_checks.plan_call`), then
computed in float32 (`fia_compute.run`) and cast to the output dtype.
"""

from __future__ import annotations

import torch

from conformance.emulator import sources as src
from conformance.emulator.fia_args import (
    V1_NAMES,
    V1_OP,
    V1_UNMODELLED_MODES,
    V1_UNMODELLED_TENSORS,
    V2_NAMES,
    V2_OP,
    V2_UNMODELLED_DTYPES,
    V2_UNMODELLED_MODES,
    V2_UNMODELLED_TENSORS,
    FiaCall,
    unmodelled_arguments,
)
from conformance.emulator.fia_checks import plan_call
from conformance.emulator.fia_compute import keep_matrix, run
from conformance.emulator.fia_mask import read_compressed_mask, read_flat_key_mask
from conformance.emulator.findings import Checker, op_call


def fused_infer_attention(call: FiaCall) -> tuple[torch.Tensor, torch.Tensor]:
    """Check, then compute, one FIA call of any entry point."""
    plan = plan_call(call)
    _flag_user_masked_rows(plan, call)
    readings = _read_compressed_mask(plan, call) if plan.mask_use == "compressed" else None
    return run(plan, call.query, call.key, call.value, call.atten_mask, call.block_table, readings)


def _read_compressed_mask(plan, call: FiaCall) -> dict:
    """Per batch, the kernel's reading of a non-canonical 2048 mask, or None where it is not modelled;
    records the hazard when any row's result is unknown (those rows come out NaN)."""
    mask = call.atten_mask.reshape(2048, 2048).bool()
    readings, unknown = {}, []
    for b in range(plan.batch):
        if plan.path == "decode":  # every batch's key mask is the mask's flat prefix (see fia_checks)
            readings[b] = read_flat_key_mask(mask, plan.kv_lens[b])
            continue
        if plan.mask_tiles is None:
            readings[b] = None
            unknown.append(f"batch {b}: all {plan.q_lens[b]} rows")
            continue
        reading = read_compressed_mask(mask, plan.q_lens[b], plan.kv_lens[b], *plan.mask_tiles)
        readings[b] = reading
        if bool(reading.unknown_rows.any()):
            unknown.append(f"batch {b}: {int(reading.unknown_rows.sum())} rows")
    if unknown:
        why = ("the emulator models only layout TND with sparse_mode 3" if plan.mask_tiles is None else
               "these rows read mask elements whose position depends on the vector sub-tiling")
        Checker(call.op, call.names).hazard(
            "fia/mask-unmodelled", "atten_mask", "mask content read where the emulator cannot reproduce the "
            f"kernel's tiling ({why}): those output rows are NaN", src.at(src.PFA_MLA_COMMON, "291-299"),
            inferred=True, detail="; ".join(unknown[:4]) + (" ..." if len(unknown) > 4 else ""))
    return readings


def _flag_user_masked_rows(plan, call: FiaCall) -> None:
    # Rows that see keys before the user mask but none after it: with inner_precise 0/1 the hardware
    # averages over whatever tiles it computed ("精度可能会有损失"); only 2/3 (row-invalid correction)
    # define them as 0. The emulator outputs 0 / LSE +inf and records the hazard.
    if plan.mask_use in ("", "compressed") or plan.inner_precise in (2, 3):
        return
    device = call.query.device
    for b in range(plan.batch):
        if plan.q_lens[b] == 0 or plan.kv_lens[b] == 0:
            continue
        keep, base = keep_matrix(plan, call.atten_mask, b, device)
        rows = base.any(-1) & ~keep.any(-1)
        if bool(rows.any()):
            Checker(call.op, call.names).hazard(
                "fia/user-mask-empty-rows", "atten_mask", "rows fully masked by atten_mask with inner_precise 0/1 have "
                "an implementation-defined output (use inner_precise 2/3 for 0)", src.FIA_ACLNN_V4_DOC,
                detail=f"batch {b}, {int(rows.sum())} row(s); emulator gives 0 and LSE +inf")
            return


def npu_fused_infer_attention_score(
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
    """Emulated torch_npu.npu_fused_infer_attention_score (v1). Returns (attention_out, softmax_lse)."""
    with op_call():
        return fused_infer_attention(v1_call(V1_OP, dict(locals())))


def v1_call(op: str, a: dict, *, lengths_are_tensors: bool = False) -> FiaCall:
    """A FiaCall from the arguments of a v1-schema entry point (v1, its .out and workspace ops, torchair's)."""
    return FiaCall(
        op=op, names=V1_NAMES, query=a["query"], key=a["key"], value=a["value"], atten_mask=a["atten_mask"],
        actual_seq_qlen=a["actual_seq_lengths"], actual_seq_kvlen=a["actual_seq_lengths_kv"],
        block_table=a["block_table"], num_heads=a["num_heads"], num_key_value_heads=a["num_key_value_heads"],
        scale=a["scale"], pre_tokens=a["pre_tokens"], next_tokens=a["next_tokens"],
        input_layout=a["input_layout"], sparse_mode=a["sparse_mode"], inner_precise=a["inner_precise"],
        block_size=a["block_size"], return_lse=a["softmax_lse_flag"], lengths_are_tensors=lengths_are_tensors,
        unmodelled=unmodelled_arguments(a, V1_UNMODELLED_TENSORS, V1_UNMODELLED_MODES),
    )


def v2_call(op: str, a: dict) -> FiaCall:
    """A FiaCall from the arguments of a v2-schema entry point (v2, its .out and workspace ops)."""
    return FiaCall(
        op=op, names=V2_NAMES, query=a["query"], key=a["key"], value=a["value"], atten_mask=a["atten_mask"],
        actual_seq_qlen=a["actual_seq_qlen"], actual_seq_kvlen=a["actual_seq_kvlen"], block_table=a["block_table"],
        num_heads=a["num_query_heads"], num_key_value_heads=a["num_key_value_heads"], scale=a["softmax_scale"],
        pre_tokens=a["pre_tokens"], next_tokens=a["next_tokens"], input_layout=a["input_layout"],
        sparse_mode=a["sparse_mode"], inner_precise=a["inner_precise"], block_size=a["block_size"],
        return_lse=a["return_softmax_lse"],
        unmodelled=unmodelled_arguments(a, V2_UNMODELLED_TENSORS, V2_UNMODELLED_MODES, V2_UNMODELLED_DTYPES),
    )


def npu_fused_infer_attention_score_v2(
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
    """Emulated torch_npu.npu_fused_infer_attention_score_v2. Returns (attention_out, softmax_lse)."""
    with op_call():
        return fused_infer_attention(v2_call(V2_OP, dict(locals())))
