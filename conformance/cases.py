"""A Case: plain data that rebuilds the same tensors on any machine and device.

Hypothesis draws the structure (heads, lengths, block allocation, padding); values come from a CPU
torch.Generator seeded by `seed`, so a case replays bit-identically from its JSON anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from functools import cached_property

import torch

from conformance.runner import decode_context, prefill_context
from npu_attention.context import Context

PHASES = ("prefill", "decode_eager", "decode_graph")
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


@dataclass(frozen=True)
class Case:
    phase: str  # "prefill" | "decode_eager" | "decode_graph"
    num_heads: int
    num_kv_heads: int
    head_dim: int
    dtype: str  # "float16" | "bfloat16" | "float32"
    block_size: int
    num_blocks: int
    seq_lens: tuple[int, ...]  # prefill: prompt lengths; decode: lengths including the new token
    block_tables: tuple[tuple[int, ...], ...]  # physical blocks of each sequence, logical order
    seed: int
    outlier_rows: tuple[int, ...] = ()  # q/k/v rows (token index) scaled by outlier_scale
    outlier_scale: float = 8.0
    max_num_seqs: int = 0  # decode_graph: batch padded to this many rows
    table_width: int = 0  # decode_graph: fixed block-table width (max_model_len // block_size)
    scale: float | None = None  # softmax scale; None = 1/sqrt(head_dim), the layer's default

    def __post_init__(self):
        if self.phase not in PHASES:
            raise ValueError(f"Case.phase must be one of {PHASES}, got {self.phase!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"Case.dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        if len(self.seq_lens) != len(self.block_tables) or not self.seq_lens:
            raise ValueError("Case.seq_lens and Case.block_tables need one entry per sequence (B >= 1)")
        for b, (length, blocks) in enumerate(zip(self.seq_lens, self.block_tables)):
            if length < 1 or len(blocks) < math.ceil(length / self.block_size):
                raise ValueError(f"Case sequence {b}: {length} tokens need "
                                 f"{math.ceil(length / self.block_size)} blocks, has {len(blocks)}")
            if any(not 0 <= blk < self.num_blocks for blk in blocks):
                raise ValueError(f"Case sequence {b}: block ids must be in [0, {self.num_blocks})")
        if self.phase == "decode_graph" and (self.max_num_seqs < self.batch or self.table_width < 1):
            raise ValueError("Case decode_graph needs max_num_seqs >= batch and table_width >= 1")

    # --- plain-data round trip -------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "Case":
        data = dict(data)
        for key in ("seq_lens", "outlier_rows"):
            if key in data:
                data[key] = tuple(data[key])
        data["block_tables"] = tuple(tuple(row) for row in data["block_tables"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "Case":
        return cls.from_dict(json.loads(text))

    @property
    def case_id(self) -> str:
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:12]

    # --- derived structure -----------------------------------------------------------------
    @property
    def batch(self) -> int:
        return len(self.seq_lens)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def softmax_scale(self) -> float:
        return self.scale if self.scale is not None else 1.0 / self.head_dim**0.5

    @property
    def is_prefill(self) -> bool:
        return self.phase == "prefill"

    @property
    def dummy_block(self) -> int:
        """The block reserved for graph padding rows: the last one, as the origin runner reserves it."""
        return self.num_blocks - 1

    @property
    def num_new_tokens(self) -> int:
        """Rows of q/k/v given to forward(): every prompt token, or one per (padded) decode row."""
        if self.is_prefill:
            return sum(self.seq_lens)
        return self.max_num_seqs if self.phase == "decode_graph" else self.batch

    def context(self, device="cpu") -> Context:
        if self.is_prefill:
            return prefill_context(self.seq_lens, self.block_tables, self.block_size, device=device)
        return decode_context(self.seq_lens, self.block_tables, self.block_size,
                              eager=self.phase == "decode_eager", max_num_seqs=self.max_num_seqs or None,
                              dummy_block=self.dummy_block, table_width=self.table_width or None, device=device)

    def materialise(self, device="cpu") -> "Tensors":
        return Tensors.build(self, torch.device(device))

    def summary(self) -> str:
        lens = ",".join(map(str, self.seq_lens))
        return (f"{self.phase} {self.dtype} Hq={self.num_heads} Hkv={self.num_kv_heads} D={self.head_dim} "
                f"bs={self.block_size} B={self.batch} lens=[{lens}]")


def _values(gen: torch.Generator, shape, rows_scaled, scale) -> torch.Tensor:
    """randn, with whole token rows scaled up: large logits expose masking and softmax bugs."""
    x = torch.randn(shape, generator=gen, dtype=torch.float32)
    if rows_scaled:
        index = torch.tensor([r for r in rows_scaled if r < shape[0]], dtype=torch.long)
        x[index] *= scale
    return x


@dataclass
class Tensors:
    """Everything the layer and the reference need for one case, on one device."""

    case: Case
    q: torch.Tensor  # [num_new_tokens, Hq, D] in the case dtype
    k: torch.Tensor  # [num_new_tokens, Hkv, D]
    v: torch.Tensor
    k_cache: torch.Tensor  # 3-D cache before the layer's write: history rows, NaN elsewhere
    v_cache: torch.Tensor

    @classmethod
    def build(cls, case: Case, device: torch.device) -> "Tensors":
        gen = torch.Generator().manual_seed(case.seed)
        dtype, hq, hkv, d = case.torch_dtype, case.num_heads, case.num_kv_heads, case.head_dim
        n = case.num_new_tokens
        q = _values(gen, (n, hq, d), case.outlier_rows, case.outlier_scale).to(dtype)
        k = _values(gen, (n, hkv, d), case.outlier_rows, case.outlier_scale).to(dtype)
        v = _values(gen, (n, hkv, d), (), 1.0).to(dtype)
        # Poison: every slot not holding history is NaN, so a stray read shows as NaN or a gross error.
        shape = (case.num_blocks, case.block_size, hkv, d)
        k_cache = torch.full(shape, math.nan, dtype=dtype)
        v_cache = torch.full(shape, math.nan, dtype=dtype)
        if not case.is_prefill:
            slots_k = k_cache.view(-1, hkv, d)
            slots_v = v_cache.view(-1, hkv, d)
            for length, blocks in zip(case.seq_lens, case.block_tables):
                pos = torch.arange(length - 1)
                slots = torch.tensor(blocks, dtype=torch.long)[pos // case.block_size] * case.block_size
                slots += pos % case.block_size
                slots_k[slots] = _values(gen, (length - 1, hkv, d), (), 1.0).to(dtype)
                slots_v[slots] = _values(gen, (length - 1, hkv, d), (), 1.0).to(dtype)
        flat = (case.num_blocks, case.block_size, hkv * d)
        return cls(case, q.to(device), k.to(device), v.to(device), k_cache.reshape(flat).to(device),
                   v_cache.reshape(flat).to(device))

    @cached_property
    def row_seq(self) -> list[int]:
        """Sequence index of each real output row."""
        if self.case.is_prefill:
            return [b for b, length in enumerate(self.case.seq_lens) for _ in range(length)]
        return list(range(self.case.batch))
