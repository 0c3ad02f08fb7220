"""The planted-bug catalogue: one entry per mutant, each a real bug class with a public source.

An entry names the bug, the phase it lives in, how it is planted (`via`: a family of bugs with a
module of its own, see conformance.mutants), where the bug lives (its `location`, see LOCATIONS), the
bug class it stands for, public sources (issues, PRs, repositories) where that class was seen, and
what a case needs for the bug to show. Only bugs that can be observed in THIS layer are listed:
prefill here always has q_len == kv_len (so top-left vs bottom-right causal cannot differ), decode
ignores sparse_mode and a missing transpose of a [B, N, 1, D] tensor changes nothing, so those are
not mutants here. `npu-conformance mutants` runs the suite against each entry (see
conformance.mutants.runner).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from conformance.judge.mutation import Mutation
from conformance.mutants import call_bugs, context_bugs, kernel_bugs, layer_bugs, ops, replay_bugs, runner_bugs

NANO_VLLM = "https://github.com/GeeeekExplorer/nano-vllm"
ORIGIN = "https://github.com/linzm1007/nano-vllm-ascend"

#: Where a bug lives (Mutant.location), in the order tables list them, and what that place covers.
LOCATIONS = {"layer": "its code and its kernel calls", "runner": "Context, graph capture and replay",
             "kernel": "the op itself misbehaves; the layer's call is right"}
#: How a bug is planted (Mutant.via) -> where it lives.
VIA_LOCATION = {"layer": "layer", "call": "layer", "context": "runner", "runner": "runner", "replay": "runner",
                "op": "kernel"}


@dataclass(frozen=True)
class Mutant(Mutation):
    """A catalogued planted bug: its name and hooks (a Mutation; hooks by keyword) and what it stands for."""

    phase: str  # "prefill" | "decode" | "graph" | "all": the phase it breaks
    via: str  # how it is planted: a key of VIA_LOCATION
    bug_class: str
    sources: tuple[str, ...]
    summary: str  # what is wrong, in one sentence
    needs: str  # what a case must contain for the bug to show

    @property
    def location(self) -> str:
        """Where the bug lives: a key of LOCATIONS."""
        return VIA_LOCATION[self.via]

    def mutation(self) -> Mutation:
        """The bare Mutation, without the catalogue's description: what a run's settings carry."""
        return Mutation(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Mutation)})


CATALOGUE: tuple[Mutant, ...] = (
    # --- prefill -------------------------------------------------------------------------------
    Mutant(
        "tnd_per_request_lengths", "prefill", "call",
        "cumulative vs per-request lengths in TND (right at batch 1 by accident)",
        ("https://github.com/sgl-project/sglang/pull/31867", "https://github.com/vllm-project/vllm-ascend/pull/9632"),
        "actual_seq_qlen/kvlen are per-request lengths where FIA TND wants cumulative end offsets",
        "batch >= 2",
        wrap_kernels=call_bugs.prefill_call(call_bugs.per_request_lengths)),
    Mutant(
        "prefill_batch_as_one_sequence", "prefill", "call",
        "cross-request contamination: result depends on batch composition",
        ("https://github.com/vllm-project/flash-attention/pull/176", "https://github.com/tenstorrent/tt-metal/issues/50512"),
        "the whole ragged batch is attended as one causal sequence (lengths [T], [T])",
        "batch >= 2",
        wrap_kernels=call_bugs.prefill_call(call_bugs.one_sequence)),
    Mutant(
        "prefill_causal_disabled", "prefill", "call",
        "causal masking disabled (sparse_mode 0, no mask)",
        ("https://github.com/lightseekorg/tokenspeed/pull/178", "https://github.com/mlx-node/mlx-node/pull/24",
         "https://github.com/vllm-project/vllm-ascend/issues/13699"),
        "prefill calls FIA TND with sparse_mode=0 and no mask: tokens see the future",
        "a prompt of >= 2 tokens",
        wrap_kernels=call_bugs.prefill_call(call_bugs.causal_disabled)),
    Mutant(
        "prefill_mask_polarity_inverted", "prefill", "layer",
        "mask polarity inverted (torch's True = attend where the kernel reads True = masked)",
        ("https://github.com/pytorch/pytorch/blob/main/torch/nn/functional.py (scaled_dot_product_attention: a "
         "boolean attn_mask is True where attention is taken)",
         "https://github.com/hicann/ops-transformer/blob/master/docs/context/sparse_mode参数说明.md (True = masked)"),
        "the 2048 mask is torch.tril(...) instead of ~torch.tril(...): on hardware each row attends to its "
        "future inside the diagonal tile and loses its own token",
        "a prompt of >= 2 tokens (one token attends to itself either way)",
        layer_class=layer_bugs.MaskPolarityInverted),
    Mutant(
        "prefill_slot_off_by_one", "prefill", "call",
        "slot mapping off by one (writes one slot later)",
        ("https://github.com/Wenyueh/MinivLLM/issues/76", "https://github.com/microsoft/onnxruntime-genai/pull/2354"),
        "_npu_reshape_and_cache gets slot + 1 for every token",
        "any prefill (seen only by the whole-cache bit-exact check: prefill attends to the fresh k/v)",
        wrap_kernels=ops.wrap_ops({ops.RESHAPE_AND_CACHE: call_bugs.slots_plus_one})),
    Mutant(
        "prefill_cached_prefix", "prefill", "context",
        "prefix-cache hit path differs from a fresh prefill (upstream runner: cu_seqlens_k > cu_seqlens_q)",
        (f"{NANO_VLLM} (nanovllm/engine/model_runner.py prepare_prefill)",
         "https://github.com/vllm-project/vllm-ascend/issues/5269", "https://github.com/vllm-project/vllm/issues/5678"),
        "only the uncached tokens are counted in cu_seqlens_q and slot_mapping; cu_seqlens_k counts the prefix",
        "a prompt longer than one block",
        transform_context=context_bugs.cached_prefix_prefill),
    # --- every phase ---------------------------------------------------------------------------
    Mutant(
        "softmax_scale_1_over_d", "all", "layer",
        "wrong softmax scale (1/d instead of 1/sqrt(d))",
        ("https://github.com/charliezchen/scaling-matrix-preconditioning/issues/2",),
        "the layer's default scale is 1/head_dim",
        "randn inputs (tiny inputs flatten the softmax and hide it)",
        layer_class=layer_bugs.ScaleOneOverD),
    Mutant(
        "softmax_scale_from_model_width", "all", "layer",
        "wrong softmax scale (model width instead of head dim)",
        ("https://github.com/lucidrains/vit-pytorch/issues/65", "https://github.com/karpathy/ng-video-lecture/pull/6"),
        "the layer's default scale is (num_heads*head_dim)^-0.5",
        "num_heads >= 2",
        layer_class=layer_bugs.ScaleFromModelWidth),
    Mutant(
        "softmax_scale_applied_twice", "all", "layer",
        "softmax scale applied twice (pre-scaled q and kernel scale)",
        ("https://github.com/AI-Hypercomputer/maxtext/issues/3138",),
        "q is multiplied by the scale before a kernel that scales the scores again",
        "randn inputs",
        layer_class=layer_bugs.ScaleAppliedTwice),
    Mutant(
        "softmax_skipped", "all", "call",
        "softmax effectively skipped: uniform average over visible keys",
        ("https://github.com/vllm-project/vllm-ascend/issues/13699",),
        "every attention call gets softmax scale 0, so all visible keys weigh the same",
        "a row with >= 2 visible keys and score spread",
        wrap_kernels=call_bugs.every_attention_call(call_bugs.zero_scale_v2, call_bugs.zero_scale_air)),
    Mutant(
        "gqa_head_mapping_modulo", "all", "call",
        "GQA head mapping h % n_kv instead of h // g",
        ("https://github.com/onnx/onnx/pull/7274", "https://github.com/HazyResearch/HipKittens/pull/22",
         "https://github.com/FlashML-org/FreeToken/pull/177"),
        "query head h attends with KV head h % num_kv_heads",
        "num_kv_heads >= 2 and group >= 2",
        wrap_kernels=ops.wrap_ops({ops.V2: call_bugs.gqa_modulo("num_query_heads")},
                                  {ops.AIR: call_bugs.gqa_modulo("num_heads")})),
    Mutant(
        "num_kv_heads_as_num_heads", "all", "call",
        "wrong num_key_value_heads passed to the kernel",
        ("https://github.com/vllm-project/vllm-ascend/pull/6532", "https://github.com/vllm-project/vllm-ascend/pull/3366"),
        "num_key_value_heads = num_heads (MHA assumed) in every attention call",
        "group >= 2",
        wrap_kernels=call_bugs.every_attention_call(call_bugs.heads_as_mha_v2, call_bugs.heads_as_mha_air)),
    Mutant(
        "output_rounded_through_bf16", "all", "op",
        "precision loss inside the kernel (an intermediate buffer narrower than the output dtype)",
        ("https://github.com/MinghuasLab/flash-attention-npu/issues/135",),
        "every attention output is rounded to bf16 and back",
        "a float16 or float32 case (bf16 cases cannot see it); caught by the tolerance policy",
        wrap_kernels=ops.attention_ops(kernel_bugs.output_through_bf16)),
    # --- decode (eager and graph) --------------------------------------------------------------
    Mutant(
        "decode_newest_token_dropped", "decode", "call",
        "reading short of the sequence: the newest token dropped",
        ("https://github.com/openvinotoolkit/openvino/pull/38034", "https://github.com/harvard-edge/cs249r_book/pull/1953"),
        "actual_seq_kvlen = context_lens - 1",
        "any decode",
        wrap_kernels=call_bugs.decode_kv_lengths(call_bugs.newest_dropped)),
    Mutant(
        "decode_kv_len_rounded_to_block", "decode", "call",
        "reading past the sequence: kv length rounded up to a block multiple",
        ("https://github.com/pegainfer-project/pegainfer/issues/291", "https://github.com/vllm-project/vllm/pull/2231"),
        "actual_seq_kvlen = ceil(context_lens / block_size) * block_size",
        "a length that is not a block multiple, unused slots poisoned",
        wrap_kernels=call_bugs.decode_kv_lengths(call_bugs.rounded_to_block)),
    Mutant(
        "decode_full_last_block_dropped", "decode", "call",
        "slot/length arithmetic off at a block boundary: a full last block counted as empty",
        ("https://github.com/Wenyueh/MinivLLM/issues/76",),
        "actual_seq_kvlen loses block_size tokens when the length is a multiple of block_size",
        "a decode length that is an exact block multiple",
        wrap_kernels=call_bugs.decode_kv_lengths(call_bugs.full_last_block_dropped)),
    Mutant(
        "decode_shorter_unaligned_lose_newest", "decode", "call",
        "reading short of the sequence for some rows only (shorter, unaligned sequences of a batch)",
        ("https://github.com/openvinotoolkit/openvino/pull/38034",),
        "rows shorter than the batch's longest and not block-aligned get context_lens - 1",
        "batch >= 2 with unequal lengths, a shorter one not block-aligned",
        wrap_kernels=call_bugs.decode_kv_lengths(call_bugs.shorter_unaligned_lose_newest)),
    Mutant(
        "decode_kv_lengths_are_query_lengths", "decode", "call",
        "KV lengths confused with query lengths",
        ("https://github.com/vllm-project/vllm-ascend/pull/3652",),
        "actual_seq_kvlen = the query lengths (1 per row)",
        "a decode row with history (length >= 2)",
        wrap_kernels=call_bugs.decode_kv_lengths(call_bugs.query_lengths)),
    Mutant(
        "decode_attend_before_cache_write", "decode", "layer",
        "the new token's K/V is not visible to its own step (attention before the cache write)",
        ("https://github.com/harvard-edge/cs249r_book/pull/1953", "https://github.com/hw-native-sys/pypto-lib/pull/482"),
        "decode attends over the paged cache, then writes the new token",
        "any decode (the new token's slot is NaN-poisoned before the write)",
        layer_class=layer_bugs.AttendBeforeCacheWrite),
    Mutant(
        "decode_block_table_of_row0", "decode", "call",
        "cross-request contamination: every row folded onto sequence 0",
        ("https://github.com/vllm-project/flash-attention/pull/176", "https://github.com/sgl-project/sglang-jax/issues/1297"),
        "the decode kernel gets row 0 of block_tables for every row",
        "batch >= 2 with different blocks",
        wrap_kernels=call_bugs.decode_call(call_bugs.row0_table, call_bugs.row0_table)),
    Mutant(
        "decode_slot_offset_plus_one", "decode", "context",
        "slot mapping off by one at a block boundary (decode writes at L+1)",
        ("https://github.com/microsoft/onnxruntime-genai/pull/2354", "https://github.com/Wenyueh/MinivLLM/issues/76"),
        "the runner's [block, offset] row for the new token has offset + 1",
        "any decode (offset block_size at a boundary)",
        transform_context=context_bugs.decode_offset_plus_one),
    Mutant(
        "upstream_flat_decode_slots", "decode", "context",
        "runner contract mismatch: upstream nano-vllm's flat decode slot mapping",
        (f"{NANO_VLLM} (nanovllm/engine/model_runner.py prepare_decode)",
         f"{ORIGIN} (nanovllm/engine/model_runner.py)"),
        "decode slot_mapping is flat [B] (block*block_size+offset); scatter_update_ reads it as per-row offsets",
        "any decode (batch >= 2 writes into the wrong blocks on hardware)",
        transform_context=context_bugs.flat_decode_slots),
    Mutant(
        "upstream_4d_cache", "decode", "layer",
        "runner contract mismatch: upstream nano-vllm's 4-D KV cache",
        (f"{NANO_VLLM} (nanovllm/engine/model_runner.py allocate_kv_cache)",
         "https://github.com/vllm-project/vllm/pull/22036"),
        "the decode write gets [num_blocks, block_size, num_kv_heads, head_dim] caches",
        "any decode",
        layer_class=layer_bugs.UpstreamFourDimCache),
    Mutant(
        "decode_scatter_1d_offsets", "decode", "call",
        "slot/block namespace mismatch: the 1-D scatter_update_ index form (offset within data row i)",
        ("Ascend/op-plugin: docs/context/torch_npu-scatter_update_.md (1-D indices: row i of data)",
         "https://github.com/vllm-project/vllm/pull/47056"),
        "scatter_update_ gets only the offsets, so row i writes into block i",
        "any decode whose block is not its row index",
        wrap_kernels=ops.wrap_ops({ops.SCATTER: call_bugs.offsets_as_1d_index})),
    # --- the runner's own code: an engine step turned into a Context with one mistake ------------
    Mutant(
        "runner_stale_decode_lengths", "decode", "runner",
        "stale length: decode lengths and slots from the previous step (a consistent but wrong Context)",
        ("https://github.com/xLLM-AI/xllm/issues/1466", "https://github.com/Wenyueh/MinivLLM/issues/76"),
        "context_lens and the decode slot are computed from the length before the new token was appended",
        "a decode sequence of >= 2 tokens",
        runner=runner_bugs.stale_decode_lengths),
    Mutant(
        "runner_cu_seqlens_shifted", "prefill", "runner",
        "cumulative lengths off by one (cu_seqlens shifted by one)",
        ("https://github.com/vllm-project/vllm-ascend/pull/6403", "https://github.com/sgl-project/sglang/pull/31867"),
        "cu_seqlens_q/k start at 1 instead of 0",
        "any prefill",
        runner=runner_bugs.cu_seqlens_shifted),
    Mutant(
        "runner_block_table_padded_with_zero", "graph", "runner",
        "block-table rows padded with 0 (a valid block) instead of -1",
        (f"{NANO_VLLM}/issues/175", f"{NANO_VLLM}/pull/253"),
        "prepare_block_tables pads rows with 0; the graph's padding rows then name block 0",
        "a graph batch with padding, or a row shorter than the table",
        runner=runner_bugs.block_tables_padded_with_zero),
    Mutant(
        "runner_finished_length_in_padding", "graph", "runner",
        "a finished sequence's length left in a padded graph row (persistent buffer not cleared)",
        ("https://github.com/vllm-project/vllm-ascend/pull/7290", f"{NANO_VLLM}/pull/176"),
        "padded graph rows keep a live length instead of 0",
        "a graph batch with padding",
        runner=runner_bugs.finished_length_left_in_padding),
    Mutant(
        "runner_padded_count_off_by_one", "graph", "runner",
        "wrong padded row count (padded to max_num_seqs - 1)",
        ("https://github.com/vllm-project/vllm-ascend/pull/7460",
         f"{ORIGIN} (nanovllm/engine/model_runner.py prepare_decode_padding)"),
        "the graph batch has one row fewer than the shape it was compiled for",
        "a graph batch with padding",
        runner=runner_bugs.padded_count_off_by_one),
    Mutant(
        "runner_prefill_blocks_in_id_order", "prefill", "runner",
        "prefill slots in the wrong block order after a block is reused (blocks sorted by id)",
        (f"{NANO_VLLM}/issues/20", f"{NANO_VLLM}/issues/208"),
        "each prompt's blocks are taken in id order, not the block manager's order",
        "a prompt of >= 2 blocks not allocated in ascending order",
        runner=runner_bugs.prefill_blocks_in_id_order),
    Mutant(
        "runner_table_width_floored", "graph", "runner",
        "graph block table max_model_len // block_size wide (floor): a sequence at max_model_len loses its last block",
        (f"{ORIGIN} (nanovllm/engine/model_runner.py prepare_decode_padding)",),
        "the fixed block table is floor(max_model_len / block_size) columns wide",
        "max_model_len not a multiple of block_size, a sequence past the last full block",
        runner=runner_bugs.table_width_floored),
    # --- graph padding -------------------------------------------------------------------------
    Mutant(
        "graph_padding_to_block0", "graph", "context",
        "padding rows overwrite a reserved slot (block 0 instead of the dummy block)",
        ("https://github.com/sgl-project/sglang/issues/36207", "https://github.com/sgl-project/sglang/pull/32477"),
        "padded graph rows write slot (0, 0) instead of the reserved dummy block",
        "a graph batch with padding",
        transform_context=context_bugs.padding_to_block_zero),
    Mutant(
        "graph_padding_context_len_1", "graph", "context",
        "padding lanes with context_len 1 read the dummy block",
        (f"{NANO_VLLM}/issues/175", f"{NANO_VLLM}/pull/176", f"{NANO_VLLM}/pull/253"),
        "padded graph rows get context_lens 1 and the dummy block in their table row",
        "a graph batch with padding",
        transform_context=context_bugs.padding_context_len_one),
    Mutant(
        "graph_padding_slot_minus_one", "graph", "context",
        "padding slot -1 used as a Python index (writes the last block)",
        ("https://github.com/vllm-project/vllm/pull/43869", "https://github.com/vllm-project/vllm-ascend/pull/17214",
         f"{NANO_VLLM}/issues/175"),
        "padded rows get upstream's slot -1 converted to (-1 // bs, -1 % bs) = (-1, bs-1)",
        "a graph batch with padding",
        transform_context=context_bugs.padding_slot_minus_one),
    Mutant(
        "graph_empty_rows_nan", "graph", "op",
        "fully masked / zero-length rows give NaN (no empty-row guard)",
        ("https://github.com/pytorch/pytorch/issues/103749", "https://github.com/Dao-AILab/flash-attention/issues/2842"),
        "the graph op returns NaN for rows with actual_seq_lengths_kv 0",
        "a graph batch with padding",
        wrap_kernels=ops.wrap_ops(air_ops={ops.AIR: kernel_bugs.empty_rows_nan})),
    # --- graph capture and replay (the runner's static buffers) ---------------------------------
    Mutant(
        "graph_context_lens_frozen", "graph", "replay",
        "graph inputs frozen at capture: lengths replayed stale",
        ("https://github.com/xLLM-AI/xllm/issues/1466",),
        "the compiled graph keeps the context_lens of the step it was captured on",
        "a later step through the same compiled graph with other lengths",
        graph_call=replay_bugs.context_lens_frozen),
    Mutant(
        "graph_block_tables_frozen", "graph", "replay",
        "graph inputs frozen at capture: block table replayed stale",
        ("https://github.com/xLLM-AI/xllm/issues/1466",),
        "the compiled graph keeps the block table of the step it was captured on",
        "a later step whose block tables differ (a new block, a new sequence)",
        graph_call=replay_bugs.block_tables_frozen),
    Mutant(
        "graph_stale_length_tail", "graph", "replay",
        "padded tail of the length list not refreshed when the batch shrinks",
        ("https://github.com/vllm-project/vllm-ascend/issues/7290",),
        "only the live rows of the persistent context_lens buffer are written each step",
        "a session whose live batch shrinks under the fixed padding",
        graph_call=replay_bugs.stale_length_tail),
    Mutant(
        "graph_wrong_padded_count", "graph", "replay",
        "wrong padded request count: the graph shape follows the live batch",
        ("https://github.com/vllm-project/vllm-ascend/issues/7460",),
        "the batch is padded to real_bs + 1 rows instead of max_num_seqs (a recompile per batch size)",
        "a session whose live batch size changes",
        graph_call=replay_bugs.padded_to_live_plus_one),
    Mutant(
        "graph_host_list_lengths", "graph", "replay",
        "a host-side value that changes per step passed into the graph (recompiles every step)",
        ("https://github.com/vllm-project/vllm-ascend/issues/7290", "https://github.com/xLLM-AI/xllm/issues/1466"),
        "context_lens reach the compiled graph as a Python list, which Dynamo specializes and guards on",
        "two steps through the same compiled graph with different lengths",
        layer_class=replay_bugs.LengthsFromHostList, graph_call=replay_bugs.host_context_lens),
    # --- the kernel itself (a CANN / torch_npu regression; the layer's call is right) ----------------
    Mutant(
        "fia_block16_corrupts_output", "decode", "op",
        "FIA silently corrupts output at page (block) size 16 only; 128 is fine",
        ("https://github.com/sgl-project/sglang/issues/38196",),
        "with block_size 16 the paged FIA reads each 128-token tile as 8 physically adjacent pages",
        "decode with block_size 16, a context longer than one block and blocks not handed out in order",
        wrap_kernels=ops.attention_ops(kernel_bugs.tiles_assume_contiguous_pages)),
    Mutant(
        "paged_attention_not_run_large_batch", "decode", "op",
        "the op fails (only in a log) and never runs: the output buffer is left as it was",
        ("https://github.com/vllm-project/vllm-ascend/issues/4803",),
        f"eager paged decode with more than {kernel_bugs.NOT_RUN_ABOVE_BATCH} rows returns an output it never wrote",
        f"an eager decode batch of more than {kernel_bugs.NOT_RUN_ABOVE_BATCH} sequences",
        wrap_kernels=ops.wrap_ops({ops.V2: kernel_bugs.silently_not_run})),
    Mutant(
        "cache_scatter_skipped_some_calls", "decode", "op",
        "the KV-cache write did not happen on some calls",
        ("https://github.com/DeepLink-org/dlinfer/issues/158",),
        f"every {kernel_bugs.SKIP_EVERY}rd eager scatter_update_ call returns without writing",
        "an eager decode step (two scatter calls per step)",
        wrap_kernels=ops.wrap_ops({ops.SCATTER: kernel_bugs.writes_skipped_sometimes})),
    Mutant(
        "prefill_output_buffer_reused", "prefill", "op",
        "a reused output buffer read before the kernel finished: long inputs show the previous call's result",
        ("https://github.com/vllm-project/vllm-ascend/pull/334",),
        f"prefill rows from {kernel_bugs.LONG_INPUT} on hold the previous prefill's output",
        f"a prefill of more than {kernel_bugs.LONG_INPUT} tokens",
        wrap_kernels=ops.wrap_ops({ops.V2: kernel_bugs.reused_output_buffer})),
    Mutant(
        "slot_mapping_int64_read_as_int32", "prefill", "op",
        "an int64 slot buffer read as int32 (high words taken as slots)",
        ("https://github.com/vllm-project/vllm-ascend/pull/16775",),
        "_npu_reshape_and_cache reads the slots' int64 words as int32: odd tokens land in slot 0",
        "a prefill of >= 2 tokens",
        wrap_kernels=ops.wrap_ops({ops.RESHAPE_AND_CACHE: kernel_bugs.slots_read_as_int32})),
    Mutant(
        "paged_read_kernel_block_size", "decode", "op",
        "past a block-size threshold the kernel's own block size indexes an unconverted block table",
        ("https://github.com/vllm-project/vllm-ascend/pull/10442",),
        f"block sizes above {kernel_bugs.KERNEL_BLOCK} are read as {kernel_bugs.KERNEL_BLOCK}-token blocks "
        "through the same table",
        f"decode with block_size > {kernel_bugs.KERNEL_BLOCK} and a context longer than "
        f"{kernel_bugs.KERNEL_BLOCK} tokens",
        wrap_kernels=ops.attention_ops(kernel_bugs.wrong_block_size_above)),
    Mutant(
        "fia_nondeterministic_reduction", "all", "op",
        "nondeterministic kernel: the result depends on the order the cores finish in",
        ("https://github.com/flashinfer-ai/flashinfer/pull/1675 "
         "(split-KV reductions can make attention nondeterministic)",
         "https://github.com/Dao-AILab/flash-attention/issues/1897 (split-KV and reduction order)"),
        "about 1 element in 32 of every eager attention output differs in its last bit from call to call",
        "any eager case (only a second run on the same inputs shows it)",
        wrap_kernels=ops.wrap_ops({ops.V2: kernel_bugs.nondeterministic_reduction})),
)

BY_NAME = {m.name: m for m in CATALOGUE}


def get(name: str) -> Mutant:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no mutant named {name!r}; choose from {sorted(BY_NAME)}") from None
