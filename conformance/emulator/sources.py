"""Public sources the emulator's rules come from, cited in every finding.

Each constant names a public repository and a path in it (GitHub mirrors of the GitCode/Gitee
originals), or an issue. Findings carry one of these strings in `source`, usually with the lines
that show the rule: `at(PFA_TILING, "3813-3815")`. Line numbers are of the commits RULES.md lists.
"""


def at(source: str, lines: str) -> str:
    """`source` narrowed to the lines that show the rule."""
    return f"{source} L{lines}"


# torch_npu user docs and bindings (Ascend/op-plugin).
FIA_V2_DOC = "Ascend/op-plugin docs/zh/custom_APIs/torch_npu/torch_npu-npu_fused_infer_attention_score_v2.md"
FIA_DOCS = "Ascend/op-plugin docs/zh/custom_APIs/torch_npu/torch_npu-npu_fused_infer_attention_score{,_v2}.md"
OP_SCHEMAS = "Ascend/op-plugin op_plugin/config/op_plugin_functions.yaml"
FIA_META = "Ascend/op-plugin op_plugin/python/meta/_meta_registrations.py"
SCATTER_TORCH_NPU_DOC = "Ascend/op-plugin docs/zh/custom_APIs/torch_npu/torch_npu-scatter_update_.md"
TORCH_NPU_BINDING = "Ascend/pytorch torch_npu/__init__.py (torch_npu.<op> is torch.ops.npu.<op>)"

# CANN operator docs, host tiling and kernels (hicann/ops-transformer).
FIA_ACLNN_V4_DOC = (
    "hicann/ops-transformer attention/fused_infer_attention_score/docs/aclnnFusedInferAttentionScoreV4.md"
)
FIA_TILING = (
    "hicann/ops-transformer attention/fused_infer_attention_score/op_host/fused_infer_attention_score_tiling.cpp"
)
PFA_TILING = "hicann/ops-transformer attention/prompt_flash_attention/op_host/prompt_flash_attention_tiling.cpp"
PFA_VARLEN_KERNEL = (
    "hicann/ops-transformer attention/prompt_flash_attention/op_kernel/"
    "prompt_flash_attention_var_len_score_sab_baseapi.h"
)
PFA_KERNEL = "hicann/ops-transformer attention/prompt_flash_attention/op_kernel/prompt_flash_attention.cpp"
PFA_MLA_KERNEL = (
    "hicann/ops-transformer attention/prompt_flash_attention/op_kernel/prompt_flash_attention_s1s2_bns1_mla_baseapi.h"
)
PFA_MLA_COMMON = "hicann/ops-transformer attention/prompt_flash_attention/op_kernel/mla_common.h"
IFA_TILING = "hicann/ops-transformer attention/incre_flash_attention/op_host/incre_flash_attention_tiling_check.cpp"
#: The IFA tiling proper (IFATiling: shapes, head dims), beside its checks file above.
IFA_TILING_MAIN = "hicann/ops-transformer attention/incre_flash_attention/op_host/incre_flash_attention_tiling.cpp"
IFA_KERNEL_SPLIT = (
    "hicann/ops-transformer attention/incre_flash_attention/op_kernel/incre_flash_attention_split_Bbn2s2_Us2.h"
)

# Later CANN releases (cannmirror/ops-transformer tags; see conformance.emulator.cann).
FIA_TILING_V3_850 = (
    "cannmirror/ops-transformer@v8.5.0 attention/fused_infer_attention_score/op_host/arch32/"
    "fused_infer_attention_score_tiling_v3.cpp"
)
SPC_DOC = "cannmirror/ops-transformer@v8.5.0 attention/scatter_pa_kv_cache/docs/aclnnScatterPaKvCache.md"
SPC_ND_KERNEL = "cannmirror/ops-transformer@v8.5.0 attention/scatter_pa_kv_cache/op_kernel/scatter_pa_kv_cache_nd.h"

# torchair (Ascend/torchair).
TORCHAIR_DOC = "Ascend/torchair docs/zh/ascend_ir/api/ops/npu_fused_infer_attention_score.md"
TORCHAIR_OP = "Ascend/torchair python/torchair/ops/_npu_fused_infer_attention_score.py"

# ATB ReshapeAndCache (hicann/ascend-transformer-boost).
ATB_DOC = "hicann/ascend-transformer-boost docs/doxygen/atb_document.txt"
ATB_OPERATION = (
    "hicann/ascend-transformer-boost src/ops/ops_infer/reshape_and_cache/reshape_and_cache_operation.cpp"
)
ATB_MIX_OPERATION = (
    "hicann/ascend-transformer-boost src/kernels/mixkernels/reshape_and_cache/reshape_and_cache_operation.cpp"
)
ATB_ND = (
    "hicann/ascend-transformer-boost src/kernels/mixkernels/reshape_and_cache/op_kernel/reshape_and_cache_nd.cpp"
)
ATB_TILING = (
    "hicann/ascend-transformer-boost src/kernels/mixkernels/reshape_and_cache/tiling/reshape_and_cache_tiling.cpp"
)

# Scatter (the kernel behind scatter_update_, hicann/ops-nn).
SCATTER_DOC = "hicann/ops-nn index/scatter/docs/aclnnInplaceScatterUpdate.md"
SCATTER_API = "hicann/ops-nn index/scatter/op_api/aclnn_scatter_update.cpp"
SCATTER_PROTO = "hicann/ops-nn index/scatter/op_graph/scatter_proto.h"
SCATTER_GOLDEN = "hicann/ops-nn index/scatter/tests/assets/golden.py"
#: The A2/A3 TIK kernel; public code whose repository was not recorded by the audit (a weaker citation).
SCATTER_KERNEL = "CANN TBE impl/dynamic/scatter.py _set_dst_offset_neg2 (rank-2 branch); also " + SCATTER_GOLDEN

# Issues that document hardware behaviour.
VLLM_ASCEND_4373 = "vllm-project/vllm-ascend#4373 (a CANN stack refusing TND with a block table)"
VLLM_ASCEND_15503 = "vllm-project/vllm-ascend#15503 (decode mask without a batch dim)"
