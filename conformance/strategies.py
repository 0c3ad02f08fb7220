"""Hypothesis strategies for Cases: structure is drawn, values come from a seeded torch.Generator.

Composable pieces, each usable alone: `attention_shapes`, `sequence_lengths`, `block_allocations`,
then `prefill_cases`, `decode_cases` and `graph_cases` that combine them. Rare, expensive draws
(long sequences) are placed so that shrinking moves away from them.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from conformance.cases import Case

#: What the real kernels accept (FIA-v2 docs; see the emulator's cited rules): TND prefill D=128,
#: paged decode D 64/128 with block_size 128, fp16/bf16. The emulator may go wider.
NPU_HEAD_DIMS = {"prefill": (128,), "decode": (64, 128)}
EMULATED_HEAD_DIMS = (16, 32, 64, 128)
EMULATED_BLOCK_SIZES = (16, 32, 64, 128)


def _phase_family(phase: str) -> str:
    return "prefill" if phase == "prefill" else "decode"


@st.composite
def attention_shapes(draw, backend: str = "emulated", phase: str = "prefill", long: bool = False) -> dict:
    """num_heads / num_kv_heads (GQA ratio 1..8, MQA), head_dim, dtype, block_size.

    `long` asks for small head counts so that > 2048-token cases stay cheap for the CPU reference."""
    if backend == "npu":
        head_dim = draw(st.sampled_from(NPU_HEAD_DIMS[_phase_family(phase)]))
        dtype = draw(st.sampled_from(("bfloat16", "float16")))
        block_size = 128
    else:
        head_dim = draw(st.sampled_from(EMULATED_HEAD_DIMS[:2] if long else EMULATED_HEAD_DIMS))
        dtype = draw(st.sampled_from(("bfloat16", "float16", "float32")))
        block_size = draw(st.sampled_from(EMULATED_BLOCK_SIZES))
    num_kv_heads = draw(st.sampled_from((2, 1) if long else (2, 1, 4)))
    group = draw(st.sampled_from((1, 2) if long else (2, 1, 4, 3, 8, 7)))  # 7: non-power-of-two groups
    return {"num_heads": num_kv_heads * group, "num_kv_heads": num_kv_heads, "head_dim": head_dim,
            "dtype": dtype, "block_size": block_size}


def _length(block_size: int, max_len: int) -> st.SearchStrategy[int]:
    """One sequence length: block boundaries (bs-1/bs/bs+1 and multiples), single tokens, anything."""
    near_boundary = st.builds(lambda m, d: max(1, m * block_size + d), st.integers(1, 3), st.sampled_from((0, -1, 1)))
    return st.one_of(st.integers(1, min(max_len, 3 * block_size)), near_boundary, st.just(1)).filter(
        lambda n: n <= max_len)


@st.composite
def sequence_lengths(draw, block_size: int, max_batch: int = 6, max_len: int = 160, long_len: int = 2100) -> list[int]:
    """Ragged batch lengths. Batch is often >= 2; lengths repeat only by chance. Rarely (1 in 20) one
    sequence is long: > 512 or > 2048 positions."""
    batch = draw(st.sampled_from(tuple(dict.fromkeys((2, 3, 1, 4, max_batch)))))
    lengths = [draw(_length(block_size, max_len)) for _ in range(batch)]
    if draw(st.integers(0, 19)) == 19:  # shrinking moves toward 0, i.e. away from the long case
        lengths[draw(st.integers(0, batch - 1))] = draw(st.sampled_from((513, 1025, long_len)))
    return lengths


@st.composite
def block_allocations(draw, seq_lens: list[int], block_size: int, reserve_dummy: bool = True) -> dict:
    """Physical blocks for each sequence from a pool larger than needed: block 0 is never handed out
    (the null block) and the last block is the graph-padding dummy; the rest are shuffled."""
    needed = [math.ceil(n / block_size) for n in seq_lens]
    spare = draw(st.integers(0, max(2, sum(needed))))
    num_blocks = 1 + sum(needed) + spare + (1 if reserve_dummy else 0)
    usable = range(1, num_blocks - (1 if reserve_dummy else 0))
    order = draw(st.permutations(usable))
    tables, cursor = [], 0
    for count in needed:
        tables.append(tuple(order[cursor:cursor + count]))
        cursor += count
    return {"num_blocks": num_blocks, "block_tables": tuple(tables)}


@st.composite
def _values(draw, num_rows: int) -> dict:
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
    return Case(phase="prefill", **structure, **draw(_values(sum(structure["seq_lens"]))))


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
    return Case(phase="decode_graph" if graph else "decode_eager", **structure, **draw(_values(rows)), **extra)


def graph_cases(backend: str = "emulated", **kwargs) -> st.SearchStrategy[Case]:
    return decode_cases(backend, graph=True, **kwargs)
