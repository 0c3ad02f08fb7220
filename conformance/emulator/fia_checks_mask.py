"""Stage 4 of the FIA contract checks: the mask, sparse_mode, pre/next_tokens and inner_precise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from conformance.emulator import sources as src
from conformance.emulator.fia_args import FiaCall
from conformance.emulator.fia_checks_lengths import Lengths
from conformance.emulator.fia_checks_shapes import KvShape, QueryShape
from conformance.emulator.fia_mask import tile_sizes
from conformance.emulator.fia_plan import (
    ALL,
    BAND,
    CAUSAL_BOTTOM_RIGHT,
    CAUSAL_TOP_LEFT,
    INT_MAX,
    MASK_ONLY,
    WINDOW,
)
from conformance.emulator.findings import Checker

MASK_SIZE = 2048  # the "optimized" causal mask of sparse modes 2-4
OPTIMIZED_MASK_SHAPES = ((MASK_SIZE, MASK_SIZE), (1, MASK_SIZE, MASK_SIZE), (1, 1, MASK_SIZE, MASK_SIZE))
_VISIBILITY = {1: MASK_ONLY, 2: CAUSAL_TOP_LEFT, 3: CAUSAL_BOTTOM_RIGHT, 4: BAND}


@dataclass(frozen=True)
class MaskPlan:
    mask_use: str  # "" (not read), "full", "decode" or "compressed" (see FiaPlan)
    mask_batched: bool
    mask_tiles: tuple[int, int] | None
    visibility: str
    pre_tokens: int
    next_tokens: int
    inner_precise: int


@dataclass(frozen=True)
class _Read:
    """How the kernel reads the mask: the part of MaskPlan the mask's shape and content decide."""
    use: str = ""
    batched: bool = False
    tiles: tuple[int, int] | None = None


def check_mask(c: Checker, call: FiaCall, q: QueryShape, kv: KvShape, lengths: Lengths) -> MaskPlan:
    mask, ip = call.atten_mask, int(call.inner_precise)
    if mask is not None:
        _check_mask_dtype(c, mask)
    if q.path == "decode":
        plan = _decode_plan(c, call, kv, lengths, ip)
    else:
        plan = _prompt_plan(c, call, q, kv, lengths, ip)
    if call.query.dtype == torch.bfloat16 and ip & 1 and q.path == "prompt":
        # Bit 0 picks high performance vs high precision for fp16 only; bf16 logs "will not take effect".
        c.note("fia/bf16-inner-precise", "inner_precise", "bfloat16 ignores the precision bit of inner_precise "
               "(the v2 doc lists only 0 for bf16 with TND; the code only warns)", src.at(src.PFA_TILING, "4016-4019"),
               detail=f"got {ip}")
    return plan


def _check_mask_dtype(c: Checker, mask: torch.Tensor) -> None:
    # bool, int8 or uint8; int values 0/1; True/1 = masked (aclnnFusedInferAttentionScoreV4.md).
    c.require(mask.dtype in (torch.bool, torch.int8, torch.uint8), "atten_mask", "dtype must be bool, int8 or uint8",
              src.FIA_ACLNN_V4_DOC, detail=f"got {mask.dtype}")
    if mask.dtype != torch.bool and mask.numel():
        c.require(bool(((mask == 0) | (mask == 1)).all()), "atten_mask", "int8/uint8 mask values must be 0 or 1",
                  src.FIA_ACLNN_V4_DOC)


# ---- decode (IFA)


def _decode_plan(c: Checker, call: FiaCall, kv: KvShape, lengths: Lengths, ip: int) -> MaskPlan:
    # Q_S == 1 without rope: sparse_mode, pre_tokens and next_tokens do not restrict the keys (v2 doc: "Q_S为1
    # 且不带rope输入时该参数无效"); kept keys are j < kv_b and not mask[b][j].
    c.require(ip in (0, 1), "inner_precise", "must be 0 or 1 when Q_S == 1", src.FIA_V2_DOC, detail=f"got {ip}")
    read = _Read()
    if call.atten_mask is not None:
        read = _decode_mask(c, call.atten_mask, int(call.sparse_mode), lengths.batch, kv.kv_s, lengths.kv_lens,
                            kv.paged)
    _flag_sliding_window(c, call, kv, lengths)
    return MaskPlan(mask_use=read.use, mask_batched=read.batched, mask_tiles=None, visibility=ALL,
                    pre_tokens=int(call.pre_tokens), next_tokens=int(call.next_tokens), inner_precise=ip)


def _flag_sliding_window(c: Checker, call: FiaCall, kv: KvShape, lengths: Lengths) -> None:
    # The decode tiling switches to sliding-window mode for BSH with a 3-D paged value cache, same-dtype
    # fp16/bf16, no rope, and int32(pre_tokens) > 0, on Ascend910B only (IFA-T L345-353, the window is FIA's
    # pre_tokens: FIA-T L488); the kernel then attends only the last pre_tokens keys of each sequence (IFA-S
    # L1017-1025). The result depends on the chip, which the emulator does not know: a hazard when the
    # window cuts any sequence's keys (the computed output attends every key, as other chips do).
    window = (int(call.pre_tokens) + 2**31) % 2**32 - 2**31  # the tiling's static_cast<int32_t>
    if not (call.input_layout == "BSH" and kv.paged and call.value.dim() == 3 and 0 < window
            and call.query.dtype == call.key.dtype and call.query.dtype in (torch.float16, torch.bfloat16)):
        return
    cut = [b for b, n in enumerate(lengths.kv_lens) if n > window]
    if cut:
        c.hazard("fia/decode-sliding-window", "pre_tokens", "BSH decode over a 3-D paged cache with pre_tokens "
                 "below a sequence's length: Atlas A2 (Ascend910B) attends only its last pre_tokens keys, other "
                 "chips all of them", src.at(src.IFA_TILING_MAIN, "345-353"),
                 detail=f"pre_tokens {window}; sequences {cut[:4]} are longer; also "
                        f"{src.at(src.IFA_KERNEL_SPLIT, '1017-1025')}, {src.at(src.FIA_TILING, '488')}")


def _decode_mask(c: Checker, mask: torch.Tensor, mode: int, batch: int, kv_s: int,
                 kv_lens: tuple[int, ...], paged: bool) -> _Read:
    shape = tuple(mask.shape)
    if mode in (3, 4):
        return _decode_compressed_mask(c, shape, mode)
    # Other modes: (B, KV_S), (B, 1, KV_S), (B, 1, 1, KV_S) (aclnnFusedInferAttentionScoreV4.md), and the open
    # IFA tiling refuses any dim 0 but B ("batchSize of atten_mask must be equal to batchSize of query").
    c.require(mask.dim() in (2, 3, 4) and all(d == 1 for d in shape[1:-1]), "atten_mask",
              "decode mask must be (B, KV_S), (B, 1, KV_S) or (B, 1, 1, KV_S)", src.FIA_ACLNN_V4_DOC,
              detail=f"got shape {shape}")
    c.require(shape[0] == batch, "atten_mask", "decode mask dim 0 must equal the batch size",
              src.at(src.IFA_TILING, "1456-1462"),
              detail=f"got {shape[0]} for batch {batch}; a (1, 1, 1, S) mask is ignored past position 512 on other "
                     f"stacks ({src.VLLM_ASCEND_15503})")
    # Coverage: paged -> the table's extent (sMax); dense -> the longest actual kv length.
    need = kv_s if paged else max(kv_lens, default=0)
    c.require(shape[-1] >= need, "atten_mask", "decode mask must cover " + (
        "block_table columns x block_size" if paged else "the longest actual_seq_kvlen"),
        src.at(src.IFA_TILING, "1465-1470"), detail=f"mask {shape}, needs {need}")
    return _Read(use="decode", batched=batch > 1)


def _decode_compressed_mask(c: Checker, shape: tuple[int, ...], mode: int) -> _Read:
    # IFA CheckAttenMaskShape: with sparse_mode 3/4 the mask must be the 2-D (2048, 2048) one, then accepted.
    c.require(shape == (MASK_SIZE, MASK_SIZE), "atten_mask", f"decode with sparse_mode {mode} needs the 2-D "
              "(2048, 2048) mask", src.at(src.IFA_TILING, "1446-1453"), detail=f"got shape {shape}")
    # That branch never sets the mask size (only the other branch does, L1465), so it stays 0: the decode
    # kernels read every batch's key mask from offset 0 (bIdx * attenMaskSize), i.e. key j sees
    # M.flat[j], and no IFA kernel reads sparse_mode. With triu(1) only key 0 stays visible. [inferred]
    c.hazard("fia/decode-compressed-mask", "atten_mask", f"decode with sparse_mode {mode} and the 2048 mask: "
             "the decode kernel applies the mask's flat rows as a key mask (key j reads mask.flatten()[j]), "
             "so with triu(1) only key 0 is attended", src.at(src.IFA_TILING, "1443-1465"), inferred=True,
             detail=f"offsets: {src.at(src.IFA_KERNEL_SPLIT, '1488')}; docs say sparse_mode is unused when "
                    f"Q_S is 1 ({src.FIA_V2_DOC})")
    return _Read(use="compressed")


# ---- prompt (PFA)


def _prompt_plan(c: Checker, call: FiaCall, q: QueryShape, kv: KvShape, lengths: Lengths, ip: int) -> MaskPlan:
    mask, mode = call.atten_mask, int(call.sparse_mode)
    pre, nxt = int(call.pre_tokens), int(call.next_tokens)
    _check_sparse_mode(c, mode, mask, q.layout)
    read = _Read()
    if mode in (2, 3, 4):
        read = _optimized_mask(c, mask, mode, q.layout, lengths, kv.value_dim)
    if mode in (0, 1) and mask is not None:
        read = _Read(use="full", batched=_full_mask(c, mask, q, kv, lengths))
    if mode == 4:
        _check_band(c, q.layout, pre, nxt, lengths, kv.value_dim)
    if mode == 3 and q.layout == "TND":
        bad = [b for b in range(lengths.batch) if lengths.q_lens[b] > lengths.kv_lens[b]]
        c.require(not bad, "sparse_mode", "sparse_mode 3 with TND needs q_len <= kv_len for every batch "
                  "(\"need s1 <= s2\")", src.PFA_TILING,
                  detail=f"batch {bad[0]}: q {lengths.q_lens[bad[0]]} > kv {lengths.kv_lens[bad[0]]}" if bad else "")
    visibility = _VISIBILITY.get(mode, WINDOW if mask is not None else ALL)
    if visibility == ALL:
        pre, nxt = INT_MAX, INT_MAX  # mode 0 without a mask ignores pre/next (set to INT_MAX by tiling)
    _check_prompt_inner_precise(c, ip, q.layout)
    return MaskPlan(mask_use=read.use, mask_batched=read.batched, mask_tiles=read.tiles, visibility=visibility,
                    pre_tokens=pre, next_tokens=nxt, inner_precise=ip)


def _check_sparse_mode(c: Checker, mode: int, mask: torch.Tensor | None, layout: str) -> None:
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


def _optimized_mask(c: Checker, mask: torch.Tensor, mode: int, layout: str, lengths: Lengths,
                    value_dim: int) -> _Read:
    c.require(tuple(mask.shape) in OPTIMIZED_MASK_SHAPES, "atten_mask",
              f"sparse_mode {mode} needs the optimized (2048, 2048) mask", src.PFA_TILING,
              detail=f"got shape {tuple(mask.shape)}; (1, 2048, 2048) and (1, 1, 2048, 2048) also accepted")
    if _is_canonical_causal(mask):
        return _Read()
    # The kernel never applies this mask as a matrix: it reads tiles of it along the diagonal
    # (fia_mask), so other content gives a tile-dependent result, not the documented one.
    c.hazard("fia/mask-content", "atten_mask", "the optimized mask must hold True strictly above the diagonal and "
             "False on and below it; the kernel reads other content as a tile pattern",
             src.at(src.PFA_MLA_KERNEL, "1188-1240"), inferred=True,
             detail=f"expected torch.triu(torch.ones(2048, 2048), diagonal=1).bool(); docs: "
                    f"{src.at(src.FIA_V2_DOC, '333')}; offsets: {src.at(src.PFA_MLA_COMMON, '291-299')}")
    tiles = None
    if layout == "TND" and mode == 3:
        tiles = tile_sizes(max(lengths.q_lens, default=0), max(lengths.kv_lens, default=0), value_dim)
    return _Read(use="compressed", tiles=tiles)


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


def _full_mask(c: Checker, mask: torch.Tensor, q: QueryShape, kv: KvShape, lengths: Lengths) -> bool:
    """Checks a mode 0/1 mask; True when it has a leading batch dim of B > 1."""
    # Paged: the mask must cover max(ceil(kv_b / bs)) * bs keys, not the table's width (PFA tiling
    # L2274, L2298-2299). TND never takes a full mask.
    bs = kv.block_size
    need_s2 = max((math.ceil(n / bs) for n in lengths.kv_lens), default=0) * bs if kv.paged else kv.kv_s
    # Modes 0/1 with Q_S > 1: (Q_S, KV_S), (1|B, Q_S, KV_S), (1|B, 1, Q_S, KV_S); the S dims may be larger
    # (tiling checks maskS1 >= sQ, maskS2 >= sK). A larger mask is read from its top-left corner: origin
    # (0, 0), row stride = the mask's own last dim (x910 kernel L1111-1122, SetMaskSize L5981-5990).
    batch, shape = lengths.batch, tuple(mask.shape)
    ok_rank = mask.dim() in (2, 3, 4) and (mask.dim() < 4 or shape[1] == 1)
    lead = shape[0] if mask.dim() >= 3 else 1
    c.require(ok_rank and lead in (1, batch), "atten_mask",
              "sparse_mode 0/1 mask must be (S1, S2), (1|B, S1, S2) or (1|B, 1, S1, S2)", src.FIA_ACLNN_V4_DOC,
              detail=f"got shape {shape}, batch {batch}")
    c.require(shape[-2] >= q.q_s and shape[-1] >= need_s2, "atten_mask", "mask must cover Q_S x KV_S",
              src.PFA_TILING, detail=f"mask {shape}, Q_S {q.q_s}, KV_S {need_s2}")
    return mask.dim() >= 3 and lead == batch and batch > 1


def _check_band(c: Checker, layout: str, pre: int, nxt: int, lengths: Lengths, value_dim: int) -> None:
    if layout != "TND":
        c.require(not (pre < 0 and nxt < 0), "pre_tokens",
                  "band mode rejects negative pre_tokens and next_tokens together", src.PFA_TILING,
                  detail=f"pre {pre}, next {nxt}")
        return
    c.require(value_dim in (64, 128), "sparse_mode", "band mode with TND needs value head dim 64 or 128",
              src.PFA_TILING, detail=f"Dv {value_dim}")
    c.require(pre + nxt >= 0, "pre_tokens", "band mode with TND needs pre_tokens + next_tokens >= 0",
              src.PFA_TILING, detail=f"{pre} + {nxt}")
    # Per batch, skipping empty batches (q or kv 0), as the tiling does (L3883-3885).
    live = [b for b in range(lengths.batch) if lengths.q_lens[b] and lengths.kv_lens[b]]
    c.require(all(pre + lengths.q_lens[b] >= 0 for b in live), "pre_tokens",
              "band mode with TND needs pre_tokens + q_len >= 0 per non-empty batch",
              src.at(src.PFA_TILING, "3876-3893"))
    c.require(all(nxt + lengths.kv_lens[b] >= 0 for b in live), "next_tokens",
              "band mode with TND needs next_tokens + kv_len >= 0 per non-empty batch",
              src.at(src.PFA_TILING, "3876-3893"))


def _check_prompt_inner_precise(c: Checker, ip: int, layout: str) -> None:
    c.require(ip in (0, 1, 2, 3), "inner_precise", "must be 0-3", src.FIA_ACLNN_V4_DOC, detail=f"got {ip}")
    if layout == "TND" and ip in (2, 3):
        # The v2 doc allows 0/1 with TND; the tiling takes bit 1 as "row-invalid correction" for any layout.
        c.hazard("fia/tnd-inner-precise", "inner_precise", "layout TND with inner_precise 2/3: the v2 doc allows "
                 "only 0/1; the tiling accepts it and sets a row-invalid flag the TND kernel applies only in "
                 "sparse_mode 4", src.at(src.PFA_TILING, "4002-4007"), detail=f"got {ip}; also {src.FIA_V2_DOC}")
