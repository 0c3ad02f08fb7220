"""Emulated `torch_npu`: the ops the attention layer calls, under their real names and signatures.

`torch_npu.<op>` is `torch.ops.npu.<op>` (Ascend/pytorch torch_npu/__init__.py), so an op's out variant
is reached as `torch_npu.<op>.out`: the emulated functional ops carry it as an attribute.
"""

from conformance.emulator.fia import npu_fused_infer_attention_score, npu_fused_infer_attention_score_v2
from conformance.emulator.fia_graph_capture import (
    _npu_fused_infer_attention_score_get_max_workspace,
    _npu_fused_infer_attention_score_v2_get_max_workspace,
    npu_fused_infer_attention_score_out,
    npu_fused_infer_attention_score_v2_out,
)
from conformance.emulator.prompt_incre import npu_incre_flash_attention, npu_prompt_flash_attention
from conformance.emulator.reshape_and_cache import _npu_reshape_and_cache, _npu_reshape_and_cache_siso
from conformance.emulator.scatter_pa_kv_cache import npu_scatter_pa_kv_cache
from conformance.emulator.scatter_update import scatter_update, scatter_update_

npu_fused_infer_attention_score.out = npu_fused_infer_attention_score_out
npu_fused_infer_attention_score_v2.out = npu_fused_infer_attention_score_v2_out

__all__ = [
    "_npu_fused_infer_attention_score_get_max_workspace",
    "_npu_fused_infer_attention_score_v2_get_max_workspace",
    "_npu_reshape_and_cache",
    "_npu_reshape_and_cache_siso",
    "npu_fused_infer_attention_score",
    "npu_fused_infer_attention_score_v2",
    "npu_incre_flash_attention",
    "npu_prompt_flash_attention",
    "npu_scatter_pa_kv_cache",
    "scatter_update",
    "scatter_update_",
]
