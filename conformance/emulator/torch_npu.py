"""Emulated `torch_npu`: the ops the attention layer calls, under their real names and signatures."""

from conformance.emulator.fia import npu_fused_infer_attention_score, npu_fused_infer_attention_score_v2
from conformance.emulator.reshape_and_cache import _npu_reshape_and_cache
from conformance.emulator.scatter_update import scatter_update, scatter_update_

__all__ = [
    "_npu_reshape_and_cache",
    "npu_fused_infer_attention_score",
    "npu_fused_infer_attention_score_v2",
    "scatter_update",
    "scatter_update_",
]
