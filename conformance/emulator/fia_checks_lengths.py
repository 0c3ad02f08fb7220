"""Stage 3 of the FIA contract checks: the actual lengths, the block table and block_size."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch

from conformance.emulator import sources as src
from conformance.emulator.fia_args import FiaCall
from conformance.emulator.fia_checks_shapes import KvShape, QueryShape
from conformance.emulator.findings import Checker


@dataclass(frozen=True)
class Lengths:
    batch: int
    q_lens: tuple[int, ...]
    kv_lens: tuple[int, ...]
    q_starts: tuple[int, ...]  # TND: first query row of each batch
    kv_starts: tuple[int, ...]  # TND without paging: first key row of each batch


def check_lengths(c: Checker, call: FiaCall, q: QueryShape, kv: KvShape) -> Lengths:
    q_list = _lengths(c, call, "actual_seq_qlen")
    kv_list = _lengths(c, call, "actual_seq_kvlen")
    if q.layout == "TND":
        return _tnd_lengths(c, q, kv, q_list, kv_list)
    return _padded_lengths(c, q, kv, q_list, kv_list)


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
    elif isinstance(raw, torch.Tensor) and call.route == "pfa":
        # npu_prompt_flash_attention types its lengths int[]? (not SymInt[]?): the dispatcher converts a
        # Tensor only for SymInt[] arguments and refuses it here.
        raise c.violation(which, "must be a list of ints (schema 'int[]?': the dispatcher refuses a Tensor)",
                          src.at(src.OP_SCHEMAS, "6759"), detail=f"got a {raw.dtype} tensor")
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
    schema = "int[]?" if call.route == "pfa" else "SymInt[]?"
    c.require(isinstance(raw, (list, tuple)), which, f"must be a list of ints (schema '{schema}')", src.OP_SCHEMAS,
              detail=f"got {type(raw).__name__}")
    return [_int_element(c, which, x) for x in raw]


def _int_element(c: Checker, which: str, x) -> int:
    try:
        value = None if isinstance(x, (bool, float)) else operator.index(x)  # ints, SymInts, 0-d int tensors
    except TypeError:
        value = None
    c.require(value is not None, which, "must be a list of ints", src.OP_SCHEMAS, detail=f"element {x!r}")
    return int(value)


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


def _starts(ends: list[int], lens: list[int]) -> tuple[int, ...]:
    return tuple(end - n for end, n in zip(ends, lens))


def _tnd_lengths(c: Checker, q: QueryShape, kv: KvShape, q_list, kv_list) -> Lengths:
    c.require(q_list is not None, "actual_seq_qlen", "is required with layout TND (cumulative lengths)",
              src.PFA_TILING)
    c.require(kv_list is not None, "actual_seq_kvlen", "is required with layout TND", src.PFA_TILING)
    batch = len(q_list)
    c.require(1 <= batch <= 4096, "actual_seq_qlen", "TND batch (list length) must be in [1, 4096]",
              src.FIA_V2_DOC, detail=f"{batch}")
    c.require(q.total_q <= 1048576, "query", "TND T must be <= 1048576", src.PFA_TILING, detail=f"T {q.total_q}")
    q_lens = _cumulative(c, "actual_seq_qlen", q_list, q.total_q, "query T (query.shape[0])")
    kv_starts: tuple[int, ...] = ()
    if kv.paged:
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
        kv_lens = _cumulative(c, "actual_seq_kvlen", kv_list, kv.kv_s, "key T (key.shape[0])")
        kv_starts = _starts(kv_list, kv_lens)
    return Lengths(batch=batch, q_lens=tuple(q_lens), kv_lens=tuple(kv_lens), q_starts=_starts(q_list, q_lens),
                   kv_starts=kv_starts)


def _padded_lengths(c: Checker, q: QueryShape, kv: KvShape, q_list, kv_list) -> Lengths:
    batch, q_s = q.batch, q.q_s
    if q.path == "decode" or q_list is None:
        q_lens = [q_s] * batch  # with Q_S == 1 actual_seq_qlen is ignored (v2 doc, Q_S=1 constraints)
    else:
        q_lens = _per_batch(c, "actual_seq_qlen", q_list, batch)
        c.require(all(0 <= v <= q_s for v in q_lens), "actual_seq_qlen", "lengths must be in [0, Q_S]",
                  src.PFA_TILING, detail=f"{q_lens}, Q_S {q_s}")
    if kv_list is None:
        c.require(not kv.paged, "actual_seq_kvlen", "is required with block_table (paged KV)", src.FIA_V2_DOC)
        kv_lens = [kv.kv_s] * batch
    else:
        kv_lens = _per_batch(c, "actual_seq_kvlen", kv_list, batch)
        c.require(all(v >= 0 for v in kv_lens), "actual_seq_kvlen", "lengths must be >= 0", src.PFA_TILING,
                  detail=f"{kv_lens}")
        if not kv.paged:
            c.require(all(v <= kv.kv_s for v in kv_lens), "actual_seq_kvlen", "lengths must be <= KV_S",
                      src.PFA_TILING, detail=f"{kv_lens}, KV_S {kv.kv_s}")
    return Lengths(batch=batch, q_lens=tuple(q_lens), kv_lens=tuple(kv_lens), q_starts=(), kv_starts=())


def check_block_table(c: Checker, call: FiaCall, q: QueryShape, kv: KvShape, lengths: Lengths) -> None:
    """The table's extent and ids, the cache's block count and the path's block_size rule."""
    table, batch, block_size = call.block_table, lengths.batch, kv.block_size
    c.require(table.shape[0] == batch, "block_table", "dim 0 must equal the batch size", src.FIA_V2_DOC,
              detail=f"{table.shape[0]} rows for batch {batch}")
    needed = [math.ceil(n / block_size) for n in lengths.kv_lens]
    c.require(table.shape[1] >= max(needed, default=0), "block_table",
              "needs at least max(ceil(kv_len / block_size)) columns", src.FIA_V2_DOC,
              detail=f"{table.shape[1]} columns, {max(needed, default=0)} needed")
    _check_block_ids(c, table, needed, kv.num_blocks)
    _check_block_count(c, q.path, needed, kv.num_blocks)
    if q.path == "decode":
        _check_decode_block_size(c, block_size)
    elif q.layout == "TND":
        _check_tnd_block_size(c, block_size)
    else:
        _check_prompt_block_size(c, block_size)


def _check_block_ids(c: Checker, table: torch.Tensor, needed: list[int], num_blocks: int) -> None:
    # Block ids are not validated by the operator ("不会对blockid的合法性进行校验"): an id outside the cache
    # reads other memory, so the emulator refuses it.
    rows = table.tolist()
    for b, n in enumerate(needed):
        bad = [x for x in rows[b][:n] if not 0 <= x < num_blocks]
        c.require(not bad, "block_table", "block ids in the columns a sequence uses must lie in [0, num_blocks) "
                  "(unchecked on hardware: an out-of-range id reads outside the cache)", src.FIA_V2_DOC,
                  detail=f"batch {b}: {bad[0] if bad else ''} with {num_blocks} blocks")


def _check_block_count(c: Checker, path: str, needed: list[int], num_blocks: int) -> None:
    if sum(needed) <= num_blocks:
        return
    if path == "prompt":
        c.require(False, "key", "the cache must hold at least sum(ceil(kv_len / block_size)) blocks",
                  src.PFA_TILING, detail=f"{num_blocks} < {sum(needed)}")
    c.hazard("fia/shared-blocks", "key",
             "the docs require num_blocks >= sum(ceil(kv_len / block_size)); sequences share blocks",
             src.FIA_V2_DOC, detail=f"{num_blocks} < {sum(needed)}")


def _check_decode_block_size(c: Checker, block_size: int) -> None:
    # IFA: 0 < block_size <= 512, a multiple of 16 for fp16/bf16 KV (CheckPABlockSize).
    c.require(block_size <= 512 and block_size % 16 == 0, "block_size",
              "decode (Q_S == 1) paging needs block_size <= 512 and a multiple of 16", src.IFA_TILING,
              detail=f"got {block_size}")


def _check_tnd_block_size(c: Checker, block_size: int) -> None:
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


def _check_prompt_block_size(c: Checker, block_size: int) -> None:
    c.require(block_size % 128 == 0 and 128 <= block_size <= 1024, "block_size",
              "prompt (Q_S > 1) paging needs a multiple of 128 in [128, 1024]", src.PFA_TILING,
              detail=f"got {block_size}")
    if block_size > 512:
        c.hazard("fia/prompt-block-size", "block_size", "prompt paging block_size above 512: the v1/v2 docs allow "
                 "128-512, the PFA tiling up to 1024", src.FIA_DOCS, detail=f"got {block_size}; also {src.PFA_TILING}")


def note_air_tnd(c: Checker, call: FiaCall, layout: str) -> None:
    """torchair's op with TND and device-side lengths: refused under tiling sinking (a hazard)."""
    if call.lengths_are_tensors and layout == "TND":
        c.hazard("fia/air-tnd-tiling-sink", "input_layout",
                 "TND with device-side length tensors is rejected under tiling sinking "
                 "(\"When layout is TND/NTD_TND, not support tiling_schedule_optimize\")", src.PFA_TILING)
