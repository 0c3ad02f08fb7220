"""The stable codes of every hazard and note the emulator can record.

A finding's `code` is what an acknowledgement (conformance.judge.acknowledgements) names, so a code never
changes meaning; the rule text beside it may be reworded. RULES.md lists the same codes with sources.
"""

from __future__ import annotations

#: Every modelled op: (public name, one-line summary). `npu-conformance info` prints this list.
MODELLED_OPS = (
    ("torch_npu.npu_fused_infer_attention_score", "fused infer attention, v1 schema (prompt and decode kernels)"),
    ("torch_npu.npu_fused_infer_attention_score.out", "its out variant: writes preallocated outputs (graph capture)"),
    ("torch_npu._npu_fused_infer_attention_score_get_max_workspace",
     "the workspace query of graph capture: checks the call, returns a placeholder"),
    ("torch_npu.npu_fused_infer_attention_score_v2", "fused infer attention, v2 schema"),
    ("torch_npu.npu_fused_infer_attention_score_v2.out", "its out variant: writes preallocated outputs"),
    ("torch_npu._npu_fused_infer_attention_score_v2_get_max_workspace", "the v2 workspace query"),
    ("torch_npu.npu_prompt_flash_attention", "PFA: the prompt kernel's own op (FIA's predecessor)"),
    ("torch_npu.npu_incre_flash_attention", "IFA: the decode kernel's own op, Q_S == 1 (FIA's predecessor)"),
    ("torchair.ops.npu_fused_infer_attention_score", "torchair's graph-mode FIA (int64 length tensors)"),
    ("torch_npu._npu_reshape_and_cache", "ATB paged cache write of key and value (ND caches)"),
    ("torch_npu._npu_reshape_and_cache_siso", "ATB paged cache write of the key only (ND cache)"),
    ("torch_npu.npu_scatter_pa_kv_cache", "paged cache write, cache_mode 'Norm' (ND); the NZ format is not modelled"),
    ("torch_npu.scatter_update_", "in-place Scatter(update) along an axis (1-D offsets or [n, 2] pairs)"),
    ("torch_npu.scatter_update", "out-of-place scatter_update"),
)

#: The emulated ops, by the names findings carry.
OPS = tuple(name for name, _ in MODELLED_OPS)

#: code -> one-line summary. Hazards fail a case unless acknowledged.
HAZARDS = {
    "fia/mask-content": "the optimized 2048 mask holds something other than triu(1): the kernel reads it as tiles",
    "fia/mask-unmodelled": "mask content read where the emulator cannot reproduce the kernel's tiling: output NaN",
    "fia/decode-sliding-window": "BSH decode over a 3-D paged cache with pre_tokens below a sequence's length: "
                                 "Atlas A2 attends only the last pre_tokens keys (chip-dependent)",
    "fia/decode-compressed-mask": "decode with sparse_mode 3/4 and the 2048 mask: the kernel reads it as a flat "
                                  "key mask (triu(1): only key 0 seen)",
    "fia/head-dim-alignment": "head dim not a multiple of 16 (the docs disagree on the alignment rule)",
    "fia/tnd-4d-cache": "TND with a 4-D paged cache (doc: 3-D only; tiling accepts)",
    "fia/tnd-paged": "TND with a block table: supported by the open kernel, refused by some CANN stacks",
    "fia/tnd-paged-block-size": "TND paged block_size 640/768/896 (code accepts; aclnn doc lists 128/512/1024)",
    "fia/tnd-inner-precise": "TND with inner_precise 2/3 (code accepts; doc allows 0/1)",
    "fia/prompt-block-size": "prompt paging block_size above 512 (tiling accepts up to 1024; docs 512)",
    "fia/shared-blocks": "decode cache smaller than sum(ceil(kv_len / block_size)) blocks",
    "fia/user-mask-empty-rows": "rows fully masked by a user mask with inner_precise 0/1",
    "fia/graph-op-eager": "torchair's graph-only op called outside a compiled graph",
    "fia/air-tnd-tiling-sink": "torchair op with TND and device-side lengths",
    "rac/duplicate-slots": "_npu_reshape_and_cache with duplicate slots (write order across cores undefined)",
    "scu/overlapping-targets": "scatter_update_ with overlapping targets (result not guaranteed)",
    "scu/negative-axis": "scatter_update_ with a negative axis other than -1/-2",
    "spc/duplicate-slots": "npu_scatter_pa_kv_cache with duplicate slots (\"重复时不保证正确性\"; emulator: last wins)",
}

#: code -> one-line summary. Notes are informational only.
NOTES = {
    "fia/float32": "float32: an emulator-only extension the hardware refuses",
    "fia/bf16-inner-precise": "bfloat16 with inner_precise bit 0 set: no effect on the kernel",
    "fia/length-tensor": "a Tensor for a SymInt[] length list: converted by the dispatcher (one host sync)",
    "spc/negative-slot": "npu_scatter_pa_kv_cache slot < 0: outside the doc's range, skipped by the ND kernel",
    "rac/float32": "float32 cache write: an emulator-only extension the hardware refuses",
    "rac/negative-slot-outside-doc": "a slot <= -num_blocks*block_size: outside the doc's domain, skipped by "
                                     "the kernel like every negative slot",
}


def known(code: str, kind: str) -> str:
    """`code`, checked against the catalogue of `kind` ("hazard" or "note")."""
    table = HAZARDS if kind == "hazard" else NOTES
    if code not in table:
        raise KeyError(f"unknown emulator {kind} code {code!r}: add it to conformance/emulator/catalogue.py")
    return code
