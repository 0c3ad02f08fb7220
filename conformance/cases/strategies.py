"""Hypothesis strategies for Cases: structure is drawn, values come from a seeded torch.Generator.

Composable pieces, each usable alone: `attention_shapes`, `sequence_lengths`, `block_allocations`,
then `prefill_cases`, `decode_cases` and `graph_cases` that combine them. Rare, expensive draws
(long sequences) are placed so that shrinking moves away from them.
"""

from __future__ import annotations

import functools
import math
import random

from hypothesis import strategies as st

from conformance.cases.case import Case
from conformance.cases.graph_session import GraphSession, SessionStep

#: What the kernels accept (the emulator's rules, conformance/emulator/RULES.md): TND prefill takes only
#: bfloat16 and (D, Dv) in {(64, 64), (128, 128), (192, 192) without GQA, (192, 128)}; the layer's q/k/v
#: share one head dim. Paged decode takes fp16/bf16, D a multiple of 16, block_size <= 512 and 16-aligned.
#: The emulator goes wider only where the extension is a note (float32), and decode head dims 16/32.
PREFILL_HEAD_DIMS = (64, 128)
NPU_HEAD_DIMS = {"prefill": PREFILL_HEAD_DIMS, "decode": (64, 128)}
EMULATED_HEAD_DIMS = {"prefill": PREFILL_HEAD_DIMS, "decode": (16, 32, 64, 128)}
EMULATED_BLOCK_SIZES = (16, 32, 64, 128)
#: Query dtypes per phase family: TND prefill refuses float16 (PFA tiling); float32 is the emulator's note.
NPU_DTYPES = {"prefill": ("bfloat16",), "decode": ("bfloat16", "float16")}
EMULATED_DTYPES = {"prefill": ("bfloat16", "float32"), "decode": ("bfloat16", "float16", "float32")}


def _phase_family(phase: str) -> str:
    """"prefill" for anything that runs a prefill (the stateful engine too), else "decode"."""
    return "prefill" if phase in ("prefill", "engine") else "decode"


def outside_npu_space(case: Case) -> str | None:
    """Why `case` lies outside what the npu strategies draw (an emulator extension), or None."""
    family = _phase_family(case.phase)
    if case.dtype not in NPU_DTYPES[family]:
        return f"{case.phase} in {case.dtype} (the npu shape space takes {', '.join(NPU_DTYPES[family])})"
    if case.head_dim not in NPU_HEAD_DIMS[family]:
        return f"head_dim {case.head_dim} (the npu shape space takes {NPU_HEAD_DIMS[family]})"
    if case.block_size != 128:
        return f"block_size {case.block_size} (the npu shape space takes 128)"
    return None


@st.composite
def attention_shapes(draw, backend: str = "emulated", phase: str = "prefill", long: bool = False) -> dict:
    """num_heads / num_kv_heads (GQA ratio 1..8, MQA), head_dim, dtype, block_size, all accepted by the
    kernels of `phase` ("prefill", "decode_eager", "decode_graph", or "engine": prefill and decode).

    `long` asks for small head counts and head dims so that > 2048-token cases stay cheap for the CPU
    reference."""
    family = _phase_family(phase)
    if backend == "npu":
        head_dims, dtypes, block_size = NPU_HEAD_DIMS[family], NPU_DTYPES[family], 128
    else:
        head_dims, dtypes = EMULATED_HEAD_DIMS[family], EMULATED_DTYPES[family]
        block_size = draw(st.sampled_from(EMULATED_BLOCK_SIZES))
    head_dim = draw(st.sampled_from(head_dims[:1] if long else head_dims))
    dtype = draw(st.sampled_from(dtypes))
    num_kv_heads = draw(st.sampled_from((2, 1) if long else (2, 1, 4)))
    group = draw(st.sampled_from((1, 2) if long else (2, 1, 4, 3, 8, 7)))  # 7: non-power-of-two groups
    return {"num_heads": num_kv_heads * group, "num_kv_heads": num_kv_heads, "head_dim": head_dim,
            "dtype": dtype, "block_size": block_size}


@functools.lru_cache(maxsize=64)
def _length(block_size: int, max_len: int) -> st.SearchStrategy[int]:
    """One sequence length: block boundaries (bs-1/bs/bs+1 and multiples), single tokens, anything.
    Built once per (block_size, max_len): a strategy validates itself on first use, and rebuilt for
    every length that was about a quarter of the eager decode property's time (cProfile, ci profile)."""
    near_boundary = st.builds(lambda m, d: max(1, m * block_size + d), st.integers(1, 3), st.sampled_from((0, -1, 1)))
    return st.one_of(st.integers(1, min(max_len, 3 * block_size)), near_boundary, st.just(1)).filter(
        lambda n: n <= max_len)


@st.composite
def sequence_lengths(draw, block_size: int, max_batch: int = 6, max_len: int = 160, long_len: int = 2100) -> list[int]:
    """Ragged batch lengths. Batch is often >= 2; lengths repeat only by chance. About 1 draw in 20 makes
    one sequence long (513, `long_len` or 1025 positions): ~5 % of draws reach past 512 and ~1.5 % past
    2048 (`python bench/draw_shares.py`: the mean of 5 x 400 draws per strategy)."""
    batch = draw(st.sampled_from(tuple(dict.fromkeys((2, 3, 1, 4, max_batch)))))
    lengths = [draw(_length(block_size, max_len)) for _ in range(batch)]
    # Hypothesis draws the minimum of a small range far more often than the rest (about a third of the
    # time), so 9 of integers(0, 9) comes up in ~6 % of draws; shrinking moves toward 0, away from long.
    if draw(st.integers(0, 9)) == 9:
        lengths[draw(st.integers(0, batch - 1))] = draw(st.sampled_from((513, long_len, 1025)))
    return lengths


def _shuffled(draw, items) -> list[int]:
    """`items` in an order drawn from two choices (shuffled or not, and a seed) instead of one per
    element (st.permutations): every comparison hypothesis makes between choice sequences (shrinking,
    and the pareto front it keeps for target() when there is a database) walks each choice, and a pool
    has up to ~100 blocks. Shrinks to the items in order."""
    items = list(items)
    if len(items) > 1 and draw(st.integers(0, 4)) > 0:
        random.Random(draw(st.integers(0, 2**32 - 1))).shuffle(items)
    return items


@st.composite
def block_allocations(draw, seq_lens: list[int], block_size: int, reserve_dummy: bool = True) -> dict:
    """Physical blocks for each sequence from a pool larger than needed: block 0 is never handed out
    (the null block) and the last block is the graph-padding dummy; the rest are shuffled."""
    needed = [math.ceil(n / block_size) for n in seq_lens]
    spare = draw(st.integers(0, max(2, sum(needed))))
    num_blocks = 1 + sum(needed) + spare + (1 if reserve_dummy else 0)
    usable = range(1, num_blocks - (1 if reserve_dummy else 0))
    order = _shuffled(draw, usable)
    tables, cursor = [], 0
    for count in needed:
        tables.append(tuple(order[cursor:cursor + count]))
        cursor += count
    return {"num_blocks": num_blocks, "block_tables": tuple(tables)}


@st.composite
def _value_draw(draw, num_rows: int) -> dict:
    seed = draw(st.integers(0, 2**32 - 1))
    outliers = draw(st.lists(st.integers(0, max(0, num_rows - 1)), max_size=2, unique=True))
    return {"seed": seed, "outlier_rows": tuple(sorted(outliers)), "outlier_scale": 8.0}


def _block_sizes(backend: str) -> st.SearchStrategy[int]:
    return st.sampled_from((128,) if backend == "npu" else EMULATED_BLOCK_SIZES)


@st.composite
def _structure(draw, backend: str, phase: str, max_batch: int, max_len: int, reserve_dummy: bool) -> dict:
    """Block size first (lengths cluster around its multiples), then lengths, then heads and dtype."""
    block_size = draw(_block_sizes(backend))
    lengths = draw(sequence_lengths(block_size=block_size, max_batch=max_batch, max_len=max_len))
    shape = draw(attention_shapes(backend, phase, long=max(lengths) > 512)) | {"block_size": block_size}
    alloc = draw(block_allocations(lengths, block_size, reserve_dummy=reserve_dummy))
    return {"seq_lens": tuple(lengths), **shape, **alloc}


@st.composite
def prefill_cases(draw, backend: str = "emulated", max_batch: int = 4, max_len: int = 160) -> Case:
    """Whole prompts (cu_seqlens_q == cu_seqlens_k), flat slots over shuffled blocks."""
    structure = draw(_structure(backend, "prefill", max_batch, max_len, reserve_dummy=False))
    return Case(phase="prefill", **structure, **draw(_value_draw(sum(structure["seq_lens"]))))


@st.composite
def decode_cases(draw, backend: str = "emulated", graph: bool = False, max_batch: int = 8,
                 max_len: int = 300) -> Case:
    """Decode batches in the runner's [B, 2] slot form; `graph` pads to max_num_seqs rows with the
    reserved dummy block, a fixed-width -1-filled block table and context_lens 0."""
    structure = draw(_structure(backend, "decode", max_batch, max_len, reserve_dummy=True))
    batch = len(structure["seq_lens"])
    extra = {}
    if graph:
        widest = max(len(t) for t in structure["block_tables"])
        extra = {"max_num_seqs": batch + draw(st.integers(1, 4)), "table_width": widest + draw(st.integers(0, 2))}
        # scatter_update_ takes at most one update row per cache block (updates.shape[0] <= data.shape[0],
        # aclnnInplaceScatterUpdate): a real pool is far larger than max_num_seqs. Grow the pool, keeping
        # the dummy as its last block.
        grow = max(0, extra["max_num_seqs"] - structure["num_blocks"])
        structure["num_blocks"] += grow
    rows = extra.get("max_num_seqs", batch)
    return Case(phase="decode_graph" if graph else "decode_eager", **structure, **draw(_value_draw(rows)), **extra)


def graph_cases(backend: str = "emulated", **kwargs) -> st.SearchStrategy[Case]:
    return decode_cases(backend, graph=True, **kwargs)


#: The engine configurations graph sessions run on. A deployment compiles decode for one model's shapes
#: and replays that graph for its whole life; the property does the same for a few configurations that
#: between them cover the dtypes, GQA/MQA/MHA, block sizes and head dims, so a run compiles each once
#: and spends its time replaying. (Shapes at large are the eager decode property's job.)
GRAPH_ENGINES = {
    "emulated": (
        {"num_heads": 8, "num_kv_heads": 2, "head_dim": 128, "dtype": "bfloat16", "block_size": 128,
         "max_num_seqs": 6, "table_width": 3},
        {"num_heads": 4, "num_kv_heads": 4, "head_dim": 64, "dtype": "float16", "block_size": 16,
         "max_num_seqs": 4, "table_width": 4},
        {"num_heads": 7, "num_kv_heads": 1, "head_dim": 32, "dtype": "float32", "block_size": 32,
         "max_num_seqs": 5, "table_width": 3},
        {"num_heads": 6, "num_kv_heads": 2, "head_dim": 16, "dtype": "bfloat16", "block_size": 64,
         "max_num_seqs": 3, "table_width": 2},
    ),
    "npu": (
        {"num_heads": 8, "num_kv_heads": 2, "head_dim": 128, "dtype": "bfloat16", "block_size": 128,
         "max_num_seqs": 6, "table_width": 3},
        {"num_heads": 4, "num_kv_heads": 4, "head_dim": 64, "dtype": "float16", "block_size": 128,
         "max_num_seqs": 4, "table_width": 2},
        {"num_heads": 8, "num_kv_heads": 1, "head_dim": 128, "dtype": "float16", "block_size": 128,
         "max_num_seqs": 5, "table_width": 2},
    ),
}
#: Blocks beyond what max_num_seqs sequences at max_model_len need: 0 is a pool with exactly enough
#: blocks (the allocator runs dry exactly when the batch is full at its longest), 2 leaves slack.
GRAPH_SPARE_BLOCKS = (0, 2)
#: max_model_len edges: at a multiple of block_size, just below it, just above the one before, and not
#: near a multiple at all. Every one needs the same table width (ceil(max_model_len / block_size)), so a
#: session's graph is the engine configuration's one compile whichever is drawn.
MODEL_LEN_EDGES = ("at a multiple", "just below a multiple", "just above a multiple", "not a multiple")


def model_len(block_size: int, table_width: int, edge: str) -> int:
    top = table_width * block_size
    return {"at a multiple": top, "just below a multiple": top - 1,
            "just above a multiple": top - block_size + 1, "not a multiple": top - block_size // 2}[edge]


def _session_length(block_size: int, max_len: int) -> st.SearchStrategy[int]:
    """A prompt length in a session: the usual edges (1, one block, block boundaries) or max_model_len
    itself and one below (a sequence that reaches max_model_len, or does on its next step)."""
    return st.one_of(_length(block_size, max_len), st.sampled_from((max_len, max_len - 1)))


@st.composite
def graph_sessions(draw, backend: str = "emulated", max_steps: int = 10):
    """A graph decode session: one of GRAPH_ENGINES (the shapes the runner compiles decode for) and up
    to `max_steps` steps in which sequences join and leave while every live one decodes, with blocks
    handed out from a shuffled free list. The configuration is drawn first, then the sequences and steps
    as lists, so shrinking removes steps and sequences before anything else. The engine's edges are drawn
    for every runner: max_model_len at and around a multiple of block_size (MODEL_LEN_EDGES), sequences
    that reach it, a single live sequence or a full batch, a pool with exactly enough blocks, and (by
    leaving and joining) blocks freed and handed out again within the session."""
    engine = draw(st.sampled_from(GRAPH_ENGINES["npu" if backend == "npu" else "emulated"]))
    block_size, max_num_seqs, table_width = engine["block_size"], engine["max_num_seqs"], engine["table_width"]
    max_len = model_len(block_size, table_width, draw(st.sampled_from(MODEL_LEN_EDGES)))
    spare = draw(st.sampled_from(GRAPH_SPARE_BLOCKS))
    num_blocks = 2 + max_num_seqs * table_width + spare  # block 0 and the dummy reserved
    lengths = _session_length(block_size, max_len)
    live = draw(st.sampled_from(("any", "one", "full")))  # a single live sequence, or a full batch
    start = draw(st.lists(lengths, min_size=max_num_seqs if live == "full" else 1,
                          max_size=1 if live == "one" else max_num_seqs))
    steps = draw(st.lists(st.builds(SessionStep, join=st.lists(lengths, max_size=2).map(tuple),
                                    leave=st.lists(st.integers(0, 7), max_size=1).map(tuple)),
                          min_size=1, max_size=max_steps))
    order = _shuffled(draw, range(1, num_blocks - 1))
    return GraphSession(**engine, num_blocks=num_blocks, seed=draw(st.integers(0, 2**32 - 1)),
                        block_order=tuple(order), start=tuple(start), steps=tuple(steps),
                        max_model_len=0 if max_len == table_width * block_size else max_len)
