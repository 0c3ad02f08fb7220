"""Shared by the emulator's violation and hazard tables: the ops' qualified names and the 2048 mask."""

import torch

MASK = torch.triu(torch.ones(2048, 2048, dtype=torch.bool), diagonal=1)

V2 = "torch_npu.npu_fused_infer_attention_score_v2"
V1 = "torch_npu.npu_fused_infer_attention_score"
AIR = "torchair.ops.npu_fused_infer_attention_score"
RAC = "torch_npu._npu_reshape_and_cache"
SCU = "torch_npu.scatter_update_"
SPC = "torch_npu.npu_scatter_pa_kv_cache"
