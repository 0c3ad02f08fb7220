"""How the prompt kernel reads the compressed 2048x2048 mask of sparse_mode 3 with layout TND.

The docs only ask for "the optimized lower-triangular mask" and check nothing. The kernel code shows
that the mask is never applied as a [q, kv] matrix: per batch, query rows are cut into cube tiles of
P rows and keys into tiles of Q columns, and for each tile the kernel

1. never computes keys at or past the tile's causal bound
   `s2End = min(ceil8(min(r0 + P + kv - q, kv)), kv)` (var-len kernel GetS2LoopRange);
2. treats a key tile that lies wholly below the diagonal as visible without reading the mask
   (`delta - s2AlignedSize >= 0` -> NO_NEED_COMPUTE_MODE, mla baseapi GetAttenMaskComputeMode), where
   `delta = s1Offset - s2Offset + (kv - q)` and s1Offset is the first row of the vector sub-tile;
3. reads a straddling tile element by element from an offset along the diagonal: row offset
   `min(delta, Q)` when delta > 0, column offset `min(-delta, vector rows)` when delta <= 0
   (mla_common.h ComputeOffsetForCausal), and sets masked scores to -FLT_MAX (not -inf).

With delta > 0 the element read for (query i, key j) is `M[i + kv - q - c0, j - c0]` (c0 the key
tile start) whatever the vector split; with delta <= 0 it depends on where the vector sub-tile starts,
which depends on UB sizing this emulator does not model. Rows that would read such elements (or sit
where the NO_NEED decision differs across possible sub-tile starts with a different result) are
reported as unknown: the caller poisons them. With the canonical triu(1) mask every branch gives
exactly bottom-right causal attention, so the canonical mask never reaches this module.

Tile sizes (prompt_flash_attention_tiling.cpp MatchTemplate and the TND tiling): P = min(512,
align16(max q)) for value head dim <= 128, else min(256, ...); Q = min(128, align16(max kv)) times
min(4, s2 tiles) (8 for value head dim > 128). [inferred: read from kernel code, not checked on hardware]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: s2AlignedSize = Align(s2RealSize): the kernel aligns the tile width to 16 elements (32 bytes of fp16/bf16).
TILE_ALIGN = 16


def _align(n: int, to: int) -> int:
    return -(-n // to) * to


def tile_sizes(max_q: int, max_kv: int, value_dim: int) -> tuple[int, int]:
    """(P, Q): query rows per cube tile and keys per S2 step, from the batch's longest lengths."""
    s1_best, ratio = (512, 4) if value_dim <= 128 else (256, 8)
    p = min(s1_best, _align(max(max_q, 1), 16))
    s2_basic = min(128, _align(max(max_kv, 1), 16))
    return p, s2_basic * min(ratio, math.ceil(max(max_kv, 1) / s2_basic))


@dataclass
class MaskReading:
    keep: torch.Tensor  # [q, kv] bool: computed and not masked
    computed: torch.Tensor  # [q, kv] bool: inside the S2 loop of the row's tile
    unknown_rows: torch.Tensor  # [q] bool: the result depends on tiling the emulator does not model


def read_flat_key_mask(mask: torch.Tensor, kv_len: int) -> MaskReading:
    """The decode (IFA) kernels' reading of the 2048 mask with sparse_mode 3/4: the mask size is left 0,
    so key j of every batch reads mask.flatten()[j] (the one query row is row 0 of the reading).
    [inferred: incre_flash_attention_tiling_check.cpp never sets attenMaskSize_ on that branch]"""
    flat = mask.reshape(-1)[:kv_len]
    keep = ~flat[None, :]
    return MaskReading(keep=keep, computed=torch.ones_like(keep), unknown_rows=torch.zeros(1, dtype=torch.bool))


def read_compressed_mask(mask: torch.Tensor, q_len: int, kv_len: int, p: int, q_tile: int) -> MaskReading:
    """The kernel's view of the 2048 mask `mask` ([2048, 2048] bool, True = masked) for one batch."""
    device = mask.device
    shift = kv_len - q_len
    i = torch.arange(q_len, device=device)[:, None]
    j = torch.arange(kv_len, device=device)[None, :]
    r0 = (i // p) * p  # cube tile start of each query row
    end = torch.clamp(r0 + p + shift, max=kv_len)
    end = torch.clamp(torch.div(end + 7, 8, rounding_mode="floor") * 8, max=kv_len)
    computed = j < end
    c0 = (j // q_tile) * q_tile  # key tile start
    width = torch.clamp(torch.minimum(torch.full_like(c0, q_tile), end - c0), min=1)
    aligned = torch.div(width + TILE_ALIGN - 1, TILE_ALIGN, rounding_mode="floor") * TILE_ALIGN
    lo = r0 + shift - c0  # delta if the row's vector sub-tile started at the cube tile start
    hi = i + shift - c0  # delta if it started at the row itself
    row = torch.clamp(hi, 0, mask.shape[0] - 1)
    col = torch.clamp(j - c0, 0, mask.shape[1] - 1).expand_as(row)
    masked = mask[row, col]
    no_need = lo >= aligned  # wholly below the diagonal for every possible sub-tile start
    read = (lo >= 0) & (hi < aligned)  # read at M[i + shift - c0, j - c0] for every sub-tile start
    # Both NO_NEED and a read are possible: they agree where the element read is False (visible).
    mixed = (lo >= 0) & (hi >= aligned) & ~no_need
    keep = computed & (no_need | ((read | mixed) & ~masked))
    unknown = computed & ~no_need & ~read & ~(mixed & ~masked)
    return MaskReading(keep=keep, computed=computed, unknown_rows=unknown.any(-1))
