"""Contract checks of fused infer attention: a `FiaCall` in, a `FiaPlan` (plain data) out.

Everything the kernel would refuse raises `ContractViolation`; everything it accepts but leaves
undefined or version-dependent is recorded as a hazard. The plan holds only Python values (lengths,
offsets, the visibility rule), so the compute in `fia_compute` needs no further checks
(`fia_output.output_meta` gives output shapes from shapes alone, for a fake/meta implementation).

The rule notes below cite the public source of each rule; "[inferred]" marks observed practice
where the docs are silent. Path selection follows the FIA tiling (hicann/ops-transformer
attention/fused_infer_attention_score/op_host/fused_infer_attention_score_tiling.cpp, IsUsingIFA):
non-TND layouts with Q_S == 1 take the decode ("incre", IFA) path, everything else the prompt
(PFA) path.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch

from conformance.emulator import sources as src
from conformance.emulator.fia_args import FiaCall
from conformance.emulator.fia_output import LAYOUT_MAP, output_meta
from conformance.emulator.fia_mask import tile_sizes
from conformance.emulator.findings import Checker

INT_MAX = 2147483647
MASK_SIZE = 2048  # the "optimized" causal mask of sparse modes 2-4
OPTIMIZED_MASK_SHAPES = ((MASK_SIZE, MASK_SIZE), (1, MASK_SIZE, MASK_SIZE), (1, 1, MASK_SIZE, MASK_SIZE))

EMULATED_LAYOUTS = ("BSH", "BSND", "BNSD", "TND")

#: visibility rules (what a query row may see), see fia_compute.visible_keys.
ALL, WINDOW, MASK_ONLY, CAUSAL_TOP_LEFT, CAUSAL_BOTTOM_RIGHT, BAND = (
    "all", "window", "mask", "causal_top_left", "causal_bottom_right", "band")


@dataclass(frozen=True)
class FiaPlan:
    op: str
    layout: str  # BSH / BSND / BNSD / TND
    path: str  # "decode" (IFA) or "prompt" (PFA)
    batch: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    value_dim: int
    q_lens: tuple[int, ...]
    kv_lens: tuple[int, ...]
    q_starts: tuple[int, ...]  # TND: first query row of each batch
    kv_starts: tuple[int, ...]  # TND without paging: first key row of each batch
    paged: bool
    cache_form: str  # "" (no paging), "BnBsH" (nb, bs, N*D) or "BnNBsD" (nb, N, bs, D)
    block_size: int
    visibility: str
    pre_tokens: int
    next_tokens: int
    mask_use: str  # "" (not read), "full" (S1 x S2 per batch), "decode" (a row per batch), "compressed" (2048 tiles)
    mask_batched: bool  # the mask has a leading batch dim of B (else dim 0 is broadcast)
    #: "compressed" masks: (P, Q) tile sizes where the emulator models the kernel's reading, else None
    mask_tiles: tuple[int, int] | None
    scale: float
    inner_precise: int
    return_lse: bool
    out_dtype: torch.dtype
    out_shape: tuple[int, ...]
    lse_shape: tuple[int, ...]


# ----------------------------------------------------------------------------------------------
# helpers


def _lengths(c: Checker, call: FiaCall, which: str) -> list[int] | None:
    raw = getattr(call, which)
    if raw is None:
        return None
    if call.lengths_are_tensors:
        # torchair's air op: schema `Tensor?`, and the doc requires int64 (usually device) tensors.
        c.require(isinstance(raw, torch.Tensor), which, "must be a Tensor (schema 'Tensor?')", src.TORCHAIR_OP,
                  detail=f"got {type(raw).__name__}")
        c.require(raw.dtype == torch.int64, which, "must be an int64 tensor", src.TORCHAIR_DOC,
                  detail=f"got {raw.dtype}")
    elif isinstance(raw, torch.Tensor):
        c.require(not raw.is_floating_point() and not raw.is_complex() and raw.dtype != torch.bool, which,
                  "must hold integers", src.OP_SCHEMAS, detail=f"got a {raw.dtype} tensor")
        # The schema is SymInt[]?, and torch_npu.<op> is torch.ops.npu.<op>: the dispatcher turns an int
        # tensor into the list (element by element, one device->host sync each); a graph capture breaks on it.
        c.note("fia/length-tensor", which, "a Tensor passed for a SymInt[] length list is converted by the "
               "dispatcher (a host sync per call; breaks graph capture)", src.TORCH_NPU_BINDING,
               detail=f"got a {raw.dtype} tensor")
    if isinstance(raw, torch.Tensor):
        c.require(raw.dim() <= 1, which, "must be a 1-D list of lengths", src.OP_SCHEMAS,
                  detail=f"got shape {tuple(raw.shape)}")
        return [int(x) for x in raw.reshape(-1).tolist()]
    c.require(isinstance(raw, (list, tuple)), which, "must be a list of ints (schema 'SymInt[]?')", src.OP_SCHEMAS,
              detail=f"got {type(raw).__name__}")
    values = []
    for x in raw:
        try:
            value = None if isinstance(x, (bool, float)) else operator.index(x)  # ints, SymInts, 0-d int tensors
        except TypeError:
            value = None
        c.require(value is not None, which, "must be a list of ints", src.OP_SCHEMAS, detail=f"element {x!r}")
        values.append(int(value))
    return values


def _per_batch(c: Checker, which: str, values: list[int], batch: int) -> list[int]:
    # Non-TND: one entry is broadcast, >= B entries are cut to B, anything in between is rejected
    # (prompt_flash_attention_tiling.cpp: "must equal to 1 or greater than or equal to batch size").
    c.require(len(values) == 1 or len(values) >= batch, which,
              "must have 1 entry or at least batch-size entries", src.PFA_TILING,
              detail=f"{len(values)} entries for batch {batch}")
    return values * batch if len(values) == 1 else values[:batch]


def _cumulative(c: Checker, which: str, values: list[int], total: int, total_name: str) -> list[int]:
    # TND: cumulative end offsets; >= 0, non-decreasing, last == T (PFA tiling CheckActSeqWhenLayoutIsTND,
    # CheckInputShapeWhenLayoutIsTND; v2 doc "每个元素的值表示当前Batch与之前所有Batch的seqlen和").
    c.require(all(v >= 0 for v in values), which, "cumulative TND lengths must be non-negative", src.PFA_TILING,
              detail=f"{values}")
    c.require(all(b >= a for a, b in zip(values, values[1:])), which,
              "cumulative TND lengths must be non-decreasing (they are end offsets, not per-sequence lengths)",
              src.PFA_TILING, detail=f"{values}")
    c.require(bool(values) and values[-1] == total, which,
              f"the last cumulative TND length must equal {total_name}", src.PFA_TILING,
              detail=f"last {values[-1] if values else None}, {total_name} = {total}")
    return [b - a for a, b in zip([0] + values[:-1], values)]


def _check_mask_dtype(c: Checker, mask: torch.Tensor) -> None:
    # bool, int8 or uint8; int values 0/1; True/1 = masked (aclnnFusedInferAttentionScoreV4.md).
    c.require(mask.dtype in (torch.bool, torch.int8, torch.uint8), "atten_mask", "dtype must be bool, int8 or uint8",
              src.FIA_ACLNN_V4_DOC, detail=f"got {mask.dtype}")
    if mask.dtype != torch.bool and mask.numel():
        c.require(bool(((mask == 0) | (mask == 1)).all()), "atten_mask", "int8/uint8 mask values must be 0 or 1",
                  src.FIA_ACLNN_V4_DOC)


_TRIU_CACHE: dict[torch.device, torch.Tensor] = {}
# The layer passes the same mask buffer on every call: remember the last verdict per tensor, keyed
# by identity and version counter (an in-place edit bumps _version); holding the tensor keeps its
# storage from being reused by another tensor with the same data_ptr.
_LAST_CHECKED: dict = {"mask": None, "version": -1, "canonical": False}


def _is_canonical_causal(mask: torch.Tensor) -> bool:
    if _LAST_CHECKED["mask"] is mask and _LAST_CHECKED["version"] == mask._version:
        return _LAST_CHECKED["canonical"]
    ref = _TRIU_CACHE.get(mask.device)
    if ref is None:
        ref = torch.triu(torch.ones(MASK_SIZE, MASK_SIZE, dtype=torch.bool, device=mask.device), diagonal=1)
        _TRIU_CACHE[mask.device] = ref
    canonical = torch.equal(mask.reshape(MASK_SIZE, MASK_SIZE).bool(), ref)
    _LAST_CHECKED.update(mask=mask, version=mask._version, canonical=canonical)
    return canonical


# ----------------------------------------------------------------------------------------------
# the checks


def plan_call(call: FiaCall) -> FiaPlan:
    c = Checker(call.op, call.names)
    if call.unmodelled:
        name = next(iter(call.unmodelled))
        raise c.unsupported(name, "this feature (quantization, rope/MLA, pse, left padding, shared prefix, sink)")

    # ---- attributes
    num_heads = int(call.num_heads)
    c.require(num_heads > 0, "num_heads", "must be > 0", src.FIA_META, detail=f"got {num_heads}")
    nkv_attr = int(call.num_key_value_heads)
    c.require(nkv_attr >= 0, "num_key_value_heads", "must be >= 0 (0 means num_heads)", src.FIA_DOCS,
              detail=f"got {nkv_attr}")
    num_kv_heads = nkv_attr or num_heads  # 0 means "same as the query" (docs; meta)
    c.require(num_heads % num_kv_heads == 0, "num_key_value_heads", "must divide the number of query heads (GQA)",
              src.FIA_DOCS, detail=f"{num_heads} % {num_kv_heads} != 0")
    c.require(num_heads // num_kv_heads <= 64, "num_key_value_heads", "GQA group size must be <= 64",
              src.FIA_DOCS, detail=f"group {num_heads // num_kv_heads}")
    c.require(num_heads <= 256, "num_heads", "must be <= 256", src.FIA_DOCS, detail=f"got {num_heads}")
    scale = float(call.scale)  # applied as given: the op never uses 1/sqrt(D) by itself (docs)

    # ---- layout and query shape
    layout = call.input_layout
    c.require(layout in LAYOUT_MAP, "input_layout", "unknown layout", src.FIA_META, detail=f"{layout!r}")
    if layout not in EMULATED_LAYOUTS:
        raise c.unsupported("input_layout", f"layout {layout!r}")
    query, key, value = call.query, call.key, call.value
    rank = LAYOUT_MAP[layout][2]
    c.require(query.dim() == rank, "query", f"layout {layout} needs a {rank}-D query", src.FIA_META,
              detail=f"got shape {tuple(query.shape)}")

    # ---- dtypes (docs: query fp16/bf16, int8 only with quantization; key/value as the query without antiquant)
    if query.dtype == torch.int8:
        raise c.unsupported("query", "an int8 (quantized) query")
    if key.dtype in (torch.int8, torch.int32) or value.dtype in (torch.int8, torch.int32):
        raise c.unsupported("key", "int8/int4 key/value (antiquant)")
    c.require(query.dtype in (torch.float16, torch.bfloat16, torch.float32), "query",
              "dtype must be float16 or bfloat16", src.FIA_V2_DOC, detail=f"got {query.dtype}")
    c.require(key.dtype == query.dtype and value.dtype == query.dtype, "key",
              "key and value must have the query's dtype (no quantization)", src.FIA_V2_DOC,
              detail=f"query {query.dtype}, key {key.dtype}, value {value.dtype}")
    if query.dtype == torch.float32:
        c.note("fia/float32", "query", "float32 is an emulator-only extension: the kernel refuses it (\"can not be "
               "DT_FLOAT\"), so a float32 result says nothing about the hardware", src.at(src.PFA_TILING, "3967"),
               detail="emulated in float32")
    if layout == "TND":
        # Code and aclnn doc: bf16 only; the op-plugin v2 doc still lists fp16 for MHA (the code wins).
        c.require(query.dtype in (torch.bfloat16, torch.float32), "query", "layout TND needs bfloat16 (the tiling "
                  "refuses float16: \"When layout is TND, inputDataType should be bf16\")",
                  src.at(src.PFA_TILING, "3813-3815"),
                  detail=f"got {query.dtype}; also {src.at(src.FIA_ACLNN_V4_DOC, '1417')}")

    # ---- query dims
    if layout == "BSH":
        batch, q_s, hidden = query.shape
        c.require(hidden % num_heads == 0, "query", "hidden size must be a multiple of num_heads (D = H / N)",
                  src.FIA_META, detail=f"H {hidden}, N {num_heads}")
        head_dim = hidden // num_heads
    elif layout == "BSND":
        batch, q_s, n_axis, head_dim = query.shape
    elif layout == "BNSD":
        batch, n_axis, q_s, head_dim = query.shape
    else:  # TND
        total_q, n_axis, head_dim = query.shape
        batch, q_s = None, None
    if layout != "BSH":
        c.require(n_axis == num_heads, "num_heads", "must equal the query's N axis", src.FIA_DOCS,
                  detail=f"num_heads {num_heads}, query N {n_axis}")
    c.require(0 < head_dim <= 512, "query", "head dim D must be in (0, 512]", src.PFA_TILING, detail=f"D {head_dim}")
    if batch is not None:
        c.require(batch <= 65536, "query", "batch must be <= 65536", src.FIA_DOCS, detail=f"B {batch}")

    paged = call.block_table is not None
    path = "prompt" if layout == "TND" or q_s != 1 else "decode"

    # ---- key / value shapes
    cache_form = ""
    block_size = int(call.block_size)
    block_table = call.block_table
    if paged:
        c.require(block_table.dtype == torch.int32, "block_table", "dtype must be int32", src.FIA_V2_DOC,
                  detail=f"got {block_table.dtype}")
        c.require(block_table.dim() == 2, "block_table", "must be 2-D [batch, max blocks per sequence]",
                  src.FIA_V2_DOC, detail=f"got shape {tuple(block_table.shape)}")
        if key.dim() == 5:
            raise c.unsupported("key", "an NZ (5-D) paged cache")
        c.require(key.dim() in (3, 4), "key", "a paged cache must be 3-D (num_blocks, block_size, N*D) or "
                  "4-D (num_blocks, N, block_size, D)", src.FIA_META, detail=f"got shape {tuple(key.shape)}")
        c.require(key.shape == value.shape, "value", "key and value caches must have identical shapes",
                  src.FIA_V2_DOC, detail=f"{tuple(key.shape)} vs {tuple(value.shape)}")
        c.require(block_size > 0, "block_size", "must be > 0 when block_table is given", src.FIA_V2_DOC,
                  detail=f"got {block_size}")
        if key.dim() == 3:
            cache_form = "BnBsH"
            c.require(key.shape[1] == block_size, "key", "cache dim 1 must equal block_size", src.FIA_V2_DOC,
                      detail=f"cache {tuple(key.shape)}, block_size {block_size}")
            c.require(key.shape[2] == num_kv_heads * head_dim, "key",
                      "cache dim 2 must equal num_key_value_heads * D", src.FIA_V2_DOC,
                      detail=f"cache {tuple(key.shape)}, N {num_kv_heads}, D {head_dim}")
            c.require(key.shape[2] <= 65535, "key", "num_key_value_heads * D must be <= 65535 in a 3-D cache",
                      src.FIA_V2_DOC, detail=f"{key.shape[2]}")
        else:
            cache_form = "BnNBsD"
            c.require(layout in ("BNSD", "TND"), "key",
                      "a 4-D (num_blocks, N, block_size, D) cache needs a BNSD or TND query", src.FIA_V2_DOC,
                      detail=f"layout {layout}")
            c.require(key.shape[1] == num_kv_heads and key.shape[2] == block_size and key.shape[3] == head_dim,
                      "key", "4-D cache must be (num_blocks, num_key_value_heads, block_size, D)", src.FIA_V2_DOC,
                      detail=f"cache {tuple(key.shape)}, N {num_kv_heads}, block_size {block_size}, D {head_dim}")
            if layout == "TND":
                c.hazard("fia/tnd-4d-cache", "key",
                         "TND with a 4-D cache: the v2 doc allows only (num_blocks, block_size, N*D) for "
                         "D != 512 while the PFA tiling accepts 3-D/4-D/5-D caches", src.FIA_V2_DOC,
                         detail=f"also {src.PFA_TILING}")
        num_blocks = key.shape[0]
        value_dim = head_dim
        kv_s = block_table.shape[1] * block_size  # the logical KV extent the mask must cover
    else:
        c.require(key.dim() == query.dim() and value.dim() == query.dim(), "key",
                  "without block_table key/value must have the query's rank", src.FIA_META,
                  detail=f"query {query.dim()}-D, key {key.dim()}-D, value {value.dim()}-D")
        if layout == "BSH":
            c.require(key.shape[2] == num_kv_heads * head_dim, "key", "key H must equal num_key_value_heads * D",
                      src.FIA_DOCS, detail=f"key {tuple(key.shape)}, N {num_kv_heads}, D {head_dim}")
            c.require(value.shape[2] % num_kv_heads == 0, "value", "value H must be a multiple of "
                      "num_key_value_heads", src.FIA_META, detail=f"value {tuple(value.shape)}")
            value_dim = value.shape[2] // num_kv_heads
            kv_batch, kv_s = key.shape[0], key.shape[1]
            same = value.shape[:2] == key.shape[:2]
        elif layout == "BSND":
            c.require(key.shape[2] == num_kv_heads and key.shape[3] == head_dim, "key",
                      "key must be (B, KV_S, num_key_value_heads, D)", src.FIA_DOCS,
                      detail=f"key {tuple(key.shape)}, N {num_kv_heads}, D {head_dim}")
            value_dim = value.shape[3]
            kv_batch, kv_s = key.shape[0], key.shape[1]
            same = value.shape[:3] == key.shape[:3]
        elif layout == "BNSD":
            c.require(key.shape[1] == num_kv_heads and key.shape[3] == head_dim, "key",
                      "key must be (B, num_key_value_heads, KV_S, D)", src.FIA_DOCS,
                      detail=f"key {tuple(key.shape)}, N {num_kv_heads}, D {head_dim}")
            value_dim = value.shape[3]
            kv_batch, kv_s = key.shape[0], key.shape[2]
            same = value.shape[:3] == key.shape[:3]
        else:  # TND
            c.require(key.shape[1] == num_kv_heads and key.shape[2] == head_dim, "key",
                      "key must be (T_kv, num_key_value_heads, D)", src.PFA_TILING,
                      detail=f"key {tuple(key.shape)}, N {num_kv_heads}, D {head_dim}")
            value_dim = value.shape[2]
            kv_batch, kv_s = None, key.shape[0]
            same = value.shape[:2] == key.shape[:2]
        c.require(same, "value", "value must match key in every dim but the head dim", src.FIA_DOCS,
                  detail=f"key {tuple(key.shape)}, value {tuple(value.shape)}")
        if kv_batch is not None:
            c.require(kv_batch == batch, "key", "key batch must equal query batch", src.FIA_DOCS,
                      detail=f"{kv_batch} vs {batch}")
        num_blocks = 0
    c.require(0 < value_dim <= 512, "value", "value head dim must be in (0, 512]", src.PFA_TILING,
              detail=f"Dv {value_dim}")

    # ---- head-dim hazards (docs disagree with each other or across CANN versions)
    if head_dim % 16:
        c.hazard("fia/head-dim-alignment", "query",
                 "head dim not a multiple of 16: the v2 doc asks 16-element alignment, the v1 doc "
                 "16-byte alignment, and unaligned D is allowed only for B <= 128", src.FIA_DOCS,
                 detail=f"D {head_dim}")
    if layout == "TND":
        c.require((head_dim == 192 and value_dim in (192, 128)) or head_dim == value_dim in (128, 64), "query",
                  "layout TND needs (D, Dv) of (192, 192), (192, 128), (128, 128) or (64, 64)",
                  src.at(src.PFA_TILING, "3799-3802"), detail=f"D {head_dim}, Dv {value_dim}")
        c.require(not (value_dim == 192 and num_heads != num_kv_heads), "value",
                  "layout TND with GQA (G != 1) refuses value head dim 192", src.at(src.PFA_TILING, "3803-3806"),
                  detail=f"G {num_heads // num_kv_heads}, Dv {value_dim}")

    # ---- lengths
    q_list = _lengths(c, call, "actual_seq_qlen")
    kv_list = _lengths(c, call, "actual_seq_kvlen")
    q_starts: list[int] = []
    kv_starts: list[int] = []
    if layout == "TND":
        c.require(q_list is not None, "actual_seq_qlen", "is required with layout TND (cumulative lengths)",
                  src.PFA_TILING)
        c.require(kv_list is not None, "actual_seq_kvlen", "is required with layout TND", src.PFA_TILING)
        batch = len(q_list)
        c.require(1 <= batch <= 4096, "actual_seq_qlen", "TND batch (list length) must be in [1, 4096]",
                  src.FIA_V2_DOC, detail=f"{batch}")
        c.require(total_q <= 1048576, "query", "TND T must be <= 1048576", src.PFA_TILING, detail=f"T {total_q}")
        q_lens = _cumulative(c, "actual_seq_qlen", q_list, total_q, "query T (query.shape[0])")
        q_starts = [end - n for end, n in zip(q_list, q_lens)]
        if paged:
            # With paging the kv list holds per-sequence totals, not cumulative offsets (kernel reads
            # kvList[b] directly in the pageAttention template; tiling "should be equal to batch").
            c.require(len(kv_list) == batch, "actual_seq_kvlen",
                      "with block_table must have one per-sequence length per batch", src.PFA_VARLEN_KERNEL,
                      detail=f"{len(kv_list)} entries for batch {batch}")
            c.require(all(v >= 0 for v in kv_list), "actual_seq_kvlen", "lengths must be >= 0", src.PFA_TILING,
                      detail=f"{kv_list}")
            kv_lens = list(kv_list)
        else:
            c.require(len(kv_list) == batch, "actual_seq_kvlen",
                      "must have as many entries as actual_seq_qlen", src.PFA_TILING,
                      detail=f"{len(kv_list)} vs {batch}")
            kv_lens = _cumulative(c, "actual_seq_kvlen", kv_list, kv_s, "key T (key.shape[0])")
            kv_starts = [end - n for end, n in zip(kv_list, kv_lens)]
    else:
        if path == "decode" or q_list is None:
            q_lens = [q_s] * batch  # with Q_S == 1 actual_seq_qlen is ignored (v2 doc, Q_S=1 constraints)
        else:
            q_lens = _per_batch(c, "actual_seq_qlen", q_list, batch)
            c.require(all(0 <= v <= q_s for v in q_lens), "actual_seq_qlen", "lengths must be in [0, Q_S]",
                      src.PFA_TILING, detail=f"{q_lens}, Q_S {q_s}")
        if kv_list is None:
            c.require(not paged, "actual_seq_kvlen", "is required with block_table (paged KV)", src.FIA_V2_DOC)
            kv_lens = [kv_s] * batch
        else:
            kv_lens = _per_batch(c, "actual_seq_kvlen", kv_list, batch)
            c.require(all(v >= 0 for v in kv_lens), "actual_seq_kvlen", "lengths must be >= 0", src.PFA_TILING,
                      detail=f"{kv_lens}")
            if not paged:
                c.require(all(v <= kv_s for v in kv_lens), "actual_seq_kvlen", "lengths must be <= KV_S",
                          src.PFA_TILING, detail=f"{kv_lens}, KV_S {kv_s}")

    # ---- paging: the block table and block_size
    if paged:
        _check_block_table(c, path, layout, block_table, batch, kv_lens, block_size, num_blocks, query.dtype)

    # ---- sparse mode, mask, pre/next, inner_precise
    mask = call.atten_mask
    mode = int(call.sparse_mode)
    ip = int(call.inner_precise)
    pre, nxt = int(call.pre_tokens), int(call.next_tokens)
    mask_use, mask_batched, mask_tiles = "", False, None
    if mask is not None:
        _check_mask_dtype(c, mask)
    if path == "decode":
        # Q_S == 1 without rope: sparse_mode, pre_tokens and next_tokens do not restrict the keys (v2 doc: "Q_S为1
        # 且不带rope输入时该参数无效"); kept keys are j < kv_b and not mask[b][j].
        c.require(ip in (0, 1), "inner_precise", "must be 0 or 1 when Q_S == 1", src.FIA_V2_DOC, detail=f"got {ip}")
        visibility = ALL
        if mask is not None:
            mask_use, mask_batched, visibility = _decode_mask(c, mask, mode, batch, kv_s, kv_lens, paged)
    else:
        c.require(mode not in (5, 6, 7, 8), "sparse_mode", "modes 5-8 are not implemented (\"请勿使用\", do not use)",
                  src.at(src.FIA_V2_DOC, "153"), detail=f"got {mode}")
        if mode == 9:
            raise c.unsupported("sparse_mode", "sparse_mode 9 (tree mask, MLA with rope)")
        c.require(mode in (0, 1, 2, 3, 4), "sparse_mode", "must be one of 0-4 (9 with rope)", src.FIA_V2_DOC,
                  detail=f"got {mode}")
        if layout == "TND":
            c.require(mode in (0, 3, 4), "sparse_mode", "layout TND supports only sparse_mode 0, 3 and 4",
                      src.PFA_TILING, detail=f"got {mode}")
            c.require(not (mode == 0 and mask is not None), "atten_mask",
                      "layout TND with sparse_mode 0 takes no mask", src.PFA_TILING)
        if mode in (1, 2, 3, 4):
            c.require(mask is not None, "atten_mask", f"is required when sparse_mode is {mode}", src.PFA_TILING,
                      detail="\"attenMask should not be null when sparse_mode is %d\"")
        if mode in (2, 3, 4):
            c.require(tuple(mask.shape) in OPTIMIZED_MASK_SHAPES, "atten_mask",
                      f"sparse_mode {mode} needs the optimized (2048, 2048) mask", src.PFA_TILING,
                      detail=f"got shape {tuple(mask.shape)}; (1, 2048, 2048) and (1, 1, 2048, 2048) also accepted")
            if not _is_canonical_causal(mask):
                # The kernel never applies this mask as a matrix: it reads tiles of it along the diagonal
                # (fia_mask), so other content gives a tile-dependent result, not the documented one.
                _mask_content_hazard(c, "the optimized mask must hold True strictly above the diagonal and False "
                                     "on and below it; the kernel reads other content as a tile pattern")
                mask_use = "compressed"
                if layout == "TND" and mode == 3:
                    mask_tiles = tile_sizes(max(q_lens, default=0), max(kv_lens, default=0), value_dim)
        if mode in (0, 1) and mask is not None:
            mask_use = "full"
            # Paged: the mask must cover max(ceil(kv_b / bs)) * bs keys, not the table's width (PFA tiling
            # L2274, L2298-2299). TND never takes a full mask.
            need_s2 = max((math.ceil(n / block_size) for n in kv_lens), default=0) * block_size if paged else kv_s
            mask_batched = _check_full_mask(c, mask, batch, q_s, need_s2)
            # A mask larger than Q_S x KV_S is read from its top-left corner: origin (0, 0), row stride = the
            # mask's own last dim (x910 kernel L1111-1122, SetMaskSize L5981-5990); fia_compute slices it.
        if mode == 4:
            if layout == "TND":
                c.require(value_dim in (64, 128), "sparse_mode", "band mode with TND needs value head dim 64 or 128",
                          src.PFA_TILING, detail=f"Dv {value_dim}")
                c.require(pre + nxt >= 0, "pre_tokens", "band mode with TND needs pre_tokens + next_tokens >= 0",
                          src.PFA_TILING, detail=f"{pre} + {nxt}")
                # Per batch, skipping empty batches (q or kv 0), as the tiling does (L3883-3885).
                live = [b for b in range(batch) if q_lens[b] and kv_lens[b]]
                c.require(all(pre + q_lens[b] >= 0 for b in live), "pre_tokens",
                          "band mode with TND needs pre_tokens + q_len >= 0 per non-empty batch",
                          src.at(src.PFA_TILING, "3876-3893"))
                c.require(all(nxt + kv_lens[b] >= 0 for b in live), "next_tokens",
                          "band mode with TND needs next_tokens + kv_len >= 0 per non-empty batch",
                          src.at(src.PFA_TILING, "3876-3893"))
            else:
                c.require(not (pre < 0 and nxt < 0), "pre_tokens",
                          "band mode rejects negative pre_tokens and next_tokens together", src.PFA_TILING,
                          detail=f"pre {pre}, next {nxt}")
        if mode == 3 and layout == "TND":
            bad = [b for b in range(batch) if q_lens[b] > kv_lens[b]]
            c.require(not bad, "sparse_mode", "sparse_mode 3 with TND needs q_len <= kv_len for every batch "
                      "(\"need s1 <= s2\")", src.PFA_TILING,
                      detail=f"batch {bad[0]}: q {q_lens[bad[0]]} > kv {kv_lens[bad[0]]}" if bad else "")
        visibility = {0: WINDOW if mask is not None else ALL, 1: MASK_ONLY, 2: CAUSAL_TOP_LEFT,
                      3: CAUSAL_BOTTOM_RIGHT, 4: BAND}[mode]
        if visibility == ALL:
            pre, nxt = INT_MAX, INT_MAX  # mode 0 without a mask ignores pre/next (set to INT_MAX by tiling)
        c.require(ip in (0, 1, 2, 3), "inner_precise", "must be 0-3", src.FIA_ACLNN_V4_DOC, detail=f"got {ip}")
        if layout == "TND" and ip in (2, 3):
            # The v2 doc allows 0/1 with TND; the tiling takes bit 1 as "row-invalid correction" for any layout.
            c.hazard("fia/tnd-inner-precise", "inner_precise", "layout TND with inner_precise 2/3: the v2 doc allows "
                     "only 0/1; the tiling accepts it and sets a row-invalid flag the TND kernel applies only in sparse_mode 4",
                     src.at(src.PFA_TILING, "4002-4007"), detail=f"got {ip}; also {src.FIA_V2_DOC}")
    if query.dtype == torch.bfloat16 and ip & 1 and path == "prompt":
        # Bit 0 picks high performance vs high precision for fp16 only; bf16 logs "will not take effect".
        c.note("fia/bf16-inner-precise", "inner_precise", "bfloat16 ignores the precision bit of inner_precise "
               "(the v2 doc lists only 0 for bf16 with TND; the code only warns)", src.at(src.PFA_TILING, "4016-4019"),
               detail=f"got {ip}")

    if call.lengths_are_tensors and layout == "TND":
        c.hazard("fia/air-tnd-tiling-sink", "input_layout",
                 "TND with device-side length tensors is rejected under tiling sinking "
                 "(\"When layout is TND/NTD_TND, not support tiling_schedule_optimize\")", src.PFA_TILING)

    out_shape, out_dtype, lse_shape = output_meta(
        query, value, input_layout=layout, num_heads=num_heads, num_key_value_heads=num_kv_heads, paged=paged,
        return_lse=bool(call.return_lse))
    return FiaPlan(
        op=call.op, layout=layout, path=path, batch=batch, num_heads=num_heads, num_kv_heads=num_kv_heads,
        head_dim=head_dim, value_dim=value_dim, q_lens=tuple(q_lens), kv_lens=tuple(kv_lens),
        q_starts=tuple(q_starts), kv_starts=tuple(kv_starts), paged=paged, cache_form=cache_form,
        block_size=block_size, visibility=visibility, pre_tokens=pre, next_tokens=nxt, mask_use=mask_use,
        mask_batched=mask_batched, mask_tiles=mask_tiles, scale=scale, inner_precise=ip, return_lse=bool(call.return_lse),
        out_dtype=out_dtype, out_shape=tuple(out_shape), lse_shape=tuple(lse_shape),
    )


def _check_block_table(c: Checker, path: str, layout: str, table: torch.Tensor, batch: int, kv_lens: list[int],
                       block_size: int, num_blocks: int, dtype: torch.dtype) -> None:
    c.require(table.shape[0] == batch, "block_table", "dim 0 must equal the batch size", src.FIA_V2_DOC,
              detail=f"{table.shape[0]} rows for batch {batch}")
    needed = [math.ceil(n / block_size) for n in kv_lens]
    c.require(table.shape[1] >= max(needed, default=0), "block_table",
              "needs at least max(ceil(kv_len / block_size)) columns", src.FIA_V2_DOC,
              detail=f"{table.shape[1]} columns, {max(needed, default=0)} needed")
    # Block ids are not validated by the operator ("不会对blockid的合法性进行校验"): an id outside the cache
    # reads other memory, so the emulator refuses it.
    rows = table.tolist()
    for b, n in enumerate(needed):
        bad = [x for x in rows[b][:n] if not 0 <= x < num_blocks]
        c.require(not bad, "block_table", "block ids in the columns a sequence uses must lie in [0, num_blocks) "
                  "(unchecked on hardware: an out-of-range id reads outside the cache)", src.FIA_V2_DOC,
                  detail=f"batch {b}: {bad[0] if bad else ''} with {num_blocks} blocks")
    if sum(needed) > num_blocks:
        if path == "prompt":
            c.require(False, "key", "the cache must hold at least sum(ceil(kv_len / block_size)) blocks",
                      src.PFA_TILING, detail=f"{num_blocks} < {sum(needed)}")
        c.hazard("fia/shared-blocks", "key",
                 "the docs require num_blocks >= sum(ceil(kv_len / block_size)); sequences share blocks",
                 src.FIA_V2_DOC, detail=f"{num_blocks} < {sum(needed)}")
    if path == "decode":
        # IFA: 0 < block_size <= 512, a multiple of 16 for fp16/bf16 KV (CheckPABlockSize).
        c.require(block_size <= 512 and block_size % 16 == 0, "block_size",
                  "decode (Q_S == 1) paging needs block_size <= 512 and a multiple of 16", src.IFA_TILING,
                  detail=f"got {block_size}")
    elif layout == "TND":
        # Code: a multiple of 128 in [128, 1024] (checkPABlockSizeAndBlockTable); the v2 doc says 16-aligned
        # <= 1024 and the aclnn doc 128/512/1024 only (the code wins; the gap is a hazard).
        c.require(block_size % 128 == 0 and 128 <= block_size <= 1024, "block_size",
                  "TND paging needs block_size a multiple of 128 in [128, 1024]", src.at(src.PFA_TILING, "2052-2057"),
                  detail=f"got {block_size}; the v2 doc's 16-aligned rule is not what the code checks")
        if block_size not in (128, 512, 1024):
            c.hazard("fia/tnd-paged-block-size", "block_size", "TND paging block_size accepted by the tiling but "
                     "outside the aclnn doc's 128, 512, 1024", src.at(src.FIA_ACLNN_V4_DOC, "1427"),
                     detail=f"got {block_size}; also {src.at(src.PFA_TILING, '2052-2057')}")
        c.hazard("fia/tnd-paged", "block_table", "TND with a block table: the open kernel has paged TND "
                 "templates, other CANN stacks refuse the call", src.VLLM_ASCEND_4373,
                 detail=f"also {src.at(src.PFA_KERNEL, '466-545')}")
    else:
        c.require(block_size % 128 == 0 and 128 <= block_size <= 1024, "block_size",
                  "prompt (Q_S > 1) paging needs a multiple of 128 in [128, 1024]", src.PFA_TILING,
                  detail=f"got {block_size}")
        if block_size > 512:
            c.hazard("fia/prompt-block-size", "block_size", "prompt paging block_size above 512: the v1/v2 docs allow 128-512, the PFA "
                     "tiling up to 1024", src.FIA_DOCS, detail=f"got {block_size}; also {src.PFA_TILING}")


def _check_full_mask(c: Checker, mask: torch.Tensor, batch: int, q_s: int, kv_s: int) -> bool:
    # Modes 0/1 with Q_S > 1: (Q_S, KV_S), (1|B, Q_S, KV_S), (1|B, 1, Q_S, KV_S); the S dims may be larger
    # (tiling checks maskS1 >= sQ, maskS2 >= sK); with paging KV_S = block_table.shape[1] * block_size.
    shape = tuple(mask.shape)
    ok_rank = mask.dim() in (2, 3, 4) and (mask.dim() < 4 or shape[1] == 1)
    lead = shape[0] if mask.dim() >= 3 else 1
    c.require(ok_rank and lead in (1, batch), "atten_mask",
              "sparse_mode 0/1 mask must be (S1, S2), (1|B, S1, S2) or (1|B, 1, S1, S2)", src.FIA_ACLNN_V4_DOC,
              detail=f"got shape {shape}, batch {batch}")
    c.require(shape[-2] >= q_s and shape[-1] >= kv_s, "atten_mask", "mask must cover Q_S x KV_S", src.PFA_TILING,
              detail=f"mask {shape}, Q_S {q_s}, KV_S {kv_s}")
    return mask.dim() >= 3 and lead == batch and batch > 1


def _mask_content_hazard(c: Checker, rule: str) -> None:
    c.hazard("fia/mask-content", "atten_mask", rule, src.at(src.PFA_MLA_KERNEL, "1188-1240"), inferred=True,
             detail=f"expected torch.triu(torch.ones(2048, 2048), diagonal=1).bool(); docs: "
                    f"{src.at(src.FIA_V2_DOC, '333')}; offsets: {src.at(src.PFA_MLA_COMMON, '291-299')}")


def _decode_mask(c: Checker, mask: torch.Tensor, mode: int, batch: int, kv_s: int,
                 kv_lens: list[int], paged: bool) -> tuple[str, bool, str]:
    """(mask_use, mask_batched, visibility) of a decode (IFA) call with a mask."""
    shape = tuple(mask.shape)
    if mode in (3, 4):
        # IFA CheckAttenMaskShape: with sparse_mode 3/4 the mask must be the 2-D (2048, 2048) one, then accepted.
        c.require(shape == (MASK_SIZE, MASK_SIZE), "atten_mask", f"decode with sparse_mode {mode} needs the 2-D "
                  "(2048, 2048) mask", src.at(src.IFA_TILING, "1443-1452"), detail=f"got shape {shape}")
        # That branch never sets the mask size (only the other branch does, L1465), so it stays 0: the decode
        # kernels read every batch's key mask from offset 0 (bIdx * attenMaskSize), i.e. key j sees
        # M.flat[j], and no IFA kernel reads sparse_mode. With triu(1) only key 0 stays visible. [inferred]
        c.hazard("fia/decode-compressed-mask", "atten_mask", f"decode with sparse_mode {mode} and the 2048 mask: "
                 "the decode kernel applies the mask's flat rows as a key mask (key j reads mask.flatten()[j]), "
                 "so with triu(1) only key 0 is attended", src.at(src.IFA_TILING, "1443-1465"), inferred=True,
                 detail=f"offsets: {src.at(src.IFA_KERNEL_SPLIT, '1488')}; docs say sparse_mode is unused when "
                        f"Q_S is 1 ({src.FIA_V2_DOC})")
        return "compressed", False, ALL
    # Other modes: (B, KV_S), (B, 1, KV_S), (B, 1, 1, KV_S) (aclnnFusedInferAttentionScoreV4.md), and the open
    # IFA tiling refuses any dim 0 but B ("batchSize of atten_mask must be equal to batchSize of query").
    c.require(mask.dim() in (2, 3, 4) and all(d == 1 for d in shape[1:-1]), "atten_mask",
              "decode mask must be (B, KV_S), (B, 1, KV_S) or (B, 1, 1, KV_S)", src.FIA_ACLNN_V4_DOC,
              detail=f"got shape {shape}")
    c.require(shape[0] == batch, "atten_mask", "decode mask dim 0 must equal the batch size",
              src.at(src.IFA_TILING, "1457-1462"),
              detail=f"got {shape[0]} for batch {batch}; a (1, 1, 1, S) mask is ignored past position 512 on other "
                     f"stacks ({src.VLLM_ASCEND_15503})")
    # Coverage: paged -> the table's extent (sMax); dense -> the longest actual kv length.
    need = kv_s if paged else max(kv_lens, default=0)
    c.require(shape[-1] >= need, "atten_mask", "decode mask must cover " + (
        "block_table columns x block_size" if paged else "the longest actual_seq_kvlen"),
        src.at(src.IFA_TILING, "1465-1470"), detail=f"mask {shape}, needs {need}")
    return "decode", batch > 1, ALL
