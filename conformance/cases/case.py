"""A Case: plain data that rebuilds the same tensors on any machine and device.

Hypothesis draws the structure (heads, lengths, block allocation, padding); values come from a CPU
torch.Generator seeded by `seed`, so a case replays bit-identically from its JSON anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, fields
from functools import cached_property

import torch

from conformance.cases.contexts import build_context
from conformance.cases.engine import EngineConfig, EngineStep, ScheduledSequence
from conformance.names import DTYPE_NAMES, PHASES
from npu_attention.context import Context

DTYPES = {name: getattr(torch, name) for name in DTYPE_NAMES}  # "float16" -> torch.float16, ...
#: The largest case a file may describe: its tensors (both caches and q/k/v) in bytes. A case file
#: is data from anywhere; one claiming 1e12 blocks must be refused, not allocated.
MEMORY_BUDGET_BYTES = 4 * 2**30
SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed takes a 64-bit seed


class CaseError(ValueError):
    """A case that cannot be built; the message names the field and the rule."""


def check_int(name: str, value, low: int, high: int | None = None, owner: str = "Case") -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CaseError(f"{owner}.{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise CaseError(f"{owner}.{name} must be {bound}, got {value}")


def check_int_tuple(name: str, values, low: int, owner: str = "Case") -> None:
    if not isinstance(values, tuple):
        raise CaseError(f"{owner}.{name} must be a list of ints, got {type(values).__name__}")
    for i, value in enumerate(values):
        check_int(f"{name}[{i}]", value, low, owner=owner)


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
    #: the engine's max_model_len (0: the graph table's capacity, table_width * block_size; eager and
    #: prefill: the longest sequence). Left out of the JSON when 0, so earlier cases keep their ids.
    max_model_len: int = 0

    def __post_init__(self):
        """Check every field by type and range (a case file is data from anywhere), then the structure."""
        if self.phase not in PHASES:
            raise CaseError(f"Case.phase must be one of {PHASES}, got {self.phase!r}")
        if self.dtype not in DTYPES:
            raise CaseError(f"Case.dtype must be one of {tuple(DTYPES)}, got {self.dtype!r}")
        for name in ("num_heads", "num_kv_heads", "head_dim", "block_size", "num_blocks"):
            check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0, SEED_MAX)
        check_int("max_num_seqs", self.max_num_seqs, 0)
        check_int("table_width", self.table_width, 0)
        check_int("max_model_len", self.max_model_len, 0)
        check_int_tuple("seq_lens", self.seq_lens, 1)
        check_int_tuple("outlier_rows", self.outlier_rows, 0)
        if not isinstance(self.block_tables, tuple) or not all(isinstance(t, tuple) for t in self.block_tables):
            raise CaseError("Case.block_tables must be a list of lists of block ids")
        for b, blocks in enumerate(self.block_tables):
            check_int_tuple(f"block_tables[{b}]", blocks, 0)
        for name in ("outlier_scale", "scale"):
            value = getattr(self, name)
            if value is None and name == "scale":
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                    or value <= 0:
                raise CaseError(f"Case.{name} must be a finite number > 0, got {value!r}")
        if self.num_heads % self.num_kv_heads:
            raise CaseError(f"Case.num_heads ({self.num_heads}) must be a multiple of num_kv_heads "
                            f"({self.num_kv_heads})")
        if len(self.seq_lens) != len(self.block_tables) or not self.seq_lens:
            raise CaseError("Case.seq_lens and Case.block_tables need one entry per sequence (B >= 1)")
        for b, (length, blocks) in enumerate(zip(self.seq_lens, self.block_tables)):
            if len(blocks) < math.ceil(length / self.block_size):
                raise CaseError(f"Case sequence {b}: {length} tokens need "
                                f"{math.ceil(length / self.block_size)} blocks, has {len(blocks)}")
            if any(not 0 <= blk < self.num_blocks for blk in blocks):
                raise CaseError(f"Case.block_tables[{b}]: block ids must be in [0, {self.num_blocks})")
        owner: dict[int, int] = {}
        for b, (length, blocks) in enumerate(zip(self.seq_lens, self.block_tables)):
            for blk in blocks[: math.ceil(length / self.block_size)]:
                if owner.setdefault(blk, b) != b or blocks.count(blk) > 1:
                    raise CaseError(f"Case.block_tables: block {blk} is used twice (sequences {owner[blk]} and {b}); "
                                    "each block belongs to one sequence (this runner has no prefix sharing)")
        if self.phase == "decode_graph" and (self.max_num_seqs < self.batch or self.table_width < 1):
            raise CaseError("Case decode_graph needs max_num_seqs >= batch and table_width >= 1")
        if self.phase == "decode_graph" and self.table_width < max(len(t) for t in self.block_tables):
            raise CaseError(f"Case.table_width ({self.table_width}) must hold the widest block table "
                            f"({max(len(t) for t in self.block_tables)})")
        rows = self.num_new_tokens
        past = [r for r in self.outlier_rows if r >= rows]
        if past:
            raise CaseError(f"Case.outlier_rows: row {past[0]} is past the case's {rows} q/k/v row(s) (rows are "
                            "token indices of this step: every prompt token in prefill, one per (padded) decode row)")
        if self.max_model_len and max(self.seq_lens) > self.max_model_len:
            raise CaseError(f"Case.seq_lens: a sequence of {max(self.seq_lens)} tokens is longer than max_model_len "
                            f"({self.max_model_len})")
        if self.max_model_len and self.phase == "decode_graph" and \
                self.table_width != math.ceil(self.max_model_len / self.block_size):
            raise CaseError(f"Case.table_width ({self.table_width}) must be ceil(max_model_len / block_size) = "
                            f"{math.ceil(self.max_model_len / self.block_size)}")
        if self.memory_bytes > MEMORY_BUDGET_BYTES:
            raise CaseError(f"Case needs {self.memory_bytes / 2**30:.1f} GiB of tensors (num_blocks "
                            f"{self.num_blocks} x block_size {self.block_size} x heads/dims), over the "
                            f"{MEMORY_BUDGET_BYTES // 2**30} GiB budget for one case")

    @property
    def memory_bytes(self) -> int:
        """Bytes of the case's tensors: both caches, q/k/v, and the reference's float64 scores."""
        item = DTYPES[self.dtype].itemsize
        caches = 2 * self.num_blocks * self.block_size * self.num_kv_heads * self.head_dim * item
        rows = sum(self.seq_lens) if self.phase == "prefill" else max(self.max_num_seqs, self.batch)
        qkv = rows * (self.num_heads + 2 * self.num_kv_heads) * self.head_dim * item
        scores = 8 * self.num_heads * max(self.seq_lens) ** 2 if self.phase == "prefill" else 0
        return caches + qkv + scores

    # --- plain-data round trip -------------------------------------------------------------
    def to_dict(self) -> dict:
        data = asdict(self)
        if not data["max_model_len"]:
            del data["max_model_len"]  # the default: ids of cases from before the field stay what they were
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> Case:
        """A case from plain data (JSON), every field checked; raises CaseError naming the field."""
        if not isinstance(data, dict):
            raise CaseError(f"a case must be a JSON object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [n for n in required if n not in data]
        if missing:
            raise CaseError(f"Case is missing field(s) {missing}")
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise CaseError(f"Case has unknown field(s) {unknown}; fields are {names}")
        data = dict(data)
        for key in ("seq_lens", "outlier_rows"):
            if key in data:
                if not isinstance(data[key], list | tuple):
                    raise CaseError(f"Case.{key} must be a list of ints, got {type(data[key]).__name__}")
                data[key] = tuple(data[key])
        rows = data["block_tables"]
        if not isinstance(rows, list | tuple) or not all(isinstance(r, list | tuple) for r in rows):
            raise CaseError("Case.block_tables must be a list of lists of block ids")
        data["block_tables"] = tuple(tuple(row) for row in rows)
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> Case:
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

    @property
    def model_len_limit(self) -> int:
        """The engine's max_model_len: as given, else the graph table's capacity, else the longest sequence."""
        if self.max_model_len:
            return self.max_model_len
        return self.table_width * self.block_size if self.table_width else max(self.seq_lens)

    def engine_step(self) -> EngineStep:
        """The engine step this case is (its sequences in batch order, ids 0..B-1): what a runner is given."""
        prefill = self.is_prefill
        config = EngineConfig(block_size=self.block_size, num_blocks=self.num_blocks,
                              max_num_seqs=self.max_num_seqs or self.batch, max_model_len=self.model_len_limit,
                              enforce_eager=self.phase != "decode_graph", dummy_block=self.dummy_block)
        sequences = tuple(ScheduledSequence(seq_id=b, num_tokens=length, num_scheduled_tokens=length if prefill else 1,
                                            block_table=tuple(blocks))
                          for b, (length, blocks) in enumerate(zip(self.seq_lens, self.block_tables)))
        return EngineStep(is_prefill=prefill, config=config, sequences=sequences)

    def context(self, device="cpu") -> Context:
        """The Context the project's own runner builds for this case (conformance.cases.contexts)."""
        return build_context(self.engine_step(), device=device)

    def materialise(self, device="cpu") -> Tensors:
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
    def build(cls, case: Case, device: torch.device) -> Tensors:
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
