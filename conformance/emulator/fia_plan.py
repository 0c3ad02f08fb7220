"""The checked form of one fused-infer-attention call: plain Python values, no tensors.

`fia_checks.plan_call` builds a `FiaPlan`; `fia_compute` reads it and checks nothing further.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: pre/next_tokens meaning "unbounded" (the schema default; the tiling sets it where a mode ignores them).
INT_MAX = 2147483647

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
