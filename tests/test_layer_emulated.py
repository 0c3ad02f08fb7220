"""The production Attention layer runs end to end on the emulated kernels and matches the reference.

Batches of 3 sequences with unequal lengths around block boundaries, physical blocks shuffled in a
pool larger than needed with block 0 reserved, bf16/fp16/fp32, GQA and MQA. Prefill, decode eager and
decode graph (the torchair op called eagerly: a recorded hazard). Cache writes are checked bit-exactly
over the whole cache. The layer paired with upstream nano-vllm's runner contract (flat decode slots,
or a 4-D cache in decode) must be refused with a ContractViolation, not silently miscomputed.
"""

import math
import random

import pytest
import torch

import conformance.platform.backends  # noqa: F401  (registers the "emulated" kernel backend)
import reference
from conformance import emulator
from conformance.cases.contexts import allocate_kv_cache, decode_context, prefill_context
from conformance.emulator import ContractViolation
from npu_attention import Attention
from npu_attention.context import use_context
from npu_attention.kernels import use_backend

BLOCK_SIZE = 16
SEQ_LENS = [5, 17, 33]
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
#: (dtype, num_heads, num_kv_heads, head_dim): GQA 4, MHA, MQA.
CONFIGS = [
    (torch.bfloat16, 8, 2, 64),
    (torch.float16, 4, 4, 32),
    (torch.float32, 8, 1, 64),
]
IDS = [f"{str(c[0])[6:]}-{c[1]}x{c[2]}x{c[3]}" for c in CONFIGS]
#: Prefill (TND) takes only bfloat16 (float32: the emulator's note) and head dims 64/128/192.
PREFILL_CONFIGS = [c for c in CONFIGS if c[0] != torch.float16 and c[3] in (64, 128)]
PREFILL_IDS = [f"{str(c[0])[6:]}-{c[1]}x{c[2]}x{c[3]}" for c in PREFILL_CONFIGS]


def allocate_blocks(seq_lens, seed, spare=3):
    """Per sequence, its physical blocks in logical order: shuffled, block 0 reserved, spare blocks left over."""
    needed = [math.ceil(n / BLOCK_SIZE) for n in seq_lens]
    num_blocks = 1 + sum(needed) + spare
    pool = list(range(1, num_blocks))
    random.Random(seed).shuffle(pool)
    tables, it = [], iter(pool)
    for n in needed:
        tables.append([next(it) for _ in range(n)])
    return tables, num_blocks


def rand(gen, *shape, dtype):
    return torch.randn(*shape, generator=gen).to(dtype)


def assert_close_to(got, gold, dtype):
    tol = TOL[dtype] * max(1.0, gold.abs().max().item())
    err = (got.double() - gold).abs().max().item()
    assert err <= tol, f"max error {err:.3g} > {tol:.3g}"


def make_layer(heads, kv_heads, head_dim, num_blocks, dtype):
    layer = Attention(heads, head_dim, None, kv_heads)
    layer.k_cache, layer.v_cache = allocate_kv_cache(num_blocks, BLOCK_SIZE, kv_heads, head_dim, dtype)
    return layer


def fill_history(layer, tables, lengths, gen, dtype):
    """Write `lengths[b]` earlier tokens of each sequence into the caches (with the reference's scatter)."""
    heads_kv, d = layer.num_kv_heads, layer.head_dim
    slots = [tables[b][p // BLOCK_SIZE] * BLOCK_SIZE + p % BLOCK_SIZE for b, n in enumerate(lengths) for p in range(n)]
    k = rand(gen, len(slots), heads_kv, d, dtype=dtype)
    v = rand(gen, len(slots), heads_kv, d, dtype=dtype)
    layer.k_cache, layer.v_cache = reference.scatter_kv(layer.k_cache, layer.v_cache, k, v,
                                                        torch.tensor(slots, dtype=torch.int32))


@pytest.mark.parametrize("dtype, heads, kv_heads, head_dim", PREFILL_CONFIGS, ids=PREFILL_IDS)
def test_prefill_matches_reference_and_writes_the_cache_exactly(dtype, heads, kv_heads, head_dim):
    gen = torch.Generator().manual_seed(1)
    tables, num_blocks = allocate_blocks(SEQ_LENS, seed=1)
    layer = make_layer(heads, kv_heads, head_dim, num_blocks, dtype)
    ctx = prefill_context(SEQ_LENS, tables, BLOCK_SIZE)
    total = sum(SEQ_LENS)
    q = rand(gen, total, heads * head_dim, dtype=dtype)
    k = rand(gen, total, kv_heads * head_dim, dtype=dtype)
    v = rand(gen, total, kv_heads * head_dim, dtype=dtype)
    before_k, before_v = layer.k_cache.clone(), layer.v_cache.clone()
    with use_backend("emulated"), use_context(ctx), emulator.record_hazards() as hazards:
        out = layer(q, k, v)
    assert out.shape == (total, heads * head_dim) and out.dtype == dtype
    cu = ctx.cu_seqlens_q.tolist()
    gold = reference.varlen_attention(q.view(total, heads, head_dim), k.view(total, kv_heads, head_dim),
                                      v.view(total, kv_heads, head_dim), cu_seqlens_q=cu, cu_seqlens_k=cu,
                                      scale=layer.scale)
    assert_close_to(out.view(total, heads, head_dim), gold, dtype)
    exp_k, exp_v = reference.scatter_kv(before_k, before_v, k.view(total, kv_heads, head_dim),
                                        v.view(total, kv_heads, head_dim), ctx.slot_mapping)
    assert torch.equal(layer.k_cache, exp_k) and torch.equal(layer.v_cache, exp_v)
    assert list(hazards) == []
    # The seed's inner_precise=1 has no effect with bf16 (a note, never a failure).
    assert ("fia/bf16-inner-precise" in {n.code for n in hazards.notes}) == (dtype == torch.bfloat16)


def test_prefill_of_a_float16_model_is_refused_by_the_tnd_kernel():
    """The seed layer always prefills through TND, which the kernel takes in bfloat16 only: a float16
    model cannot prefill on hardware, and the emulator says so instead of computing it."""
    dtype, heads, kv_heads, head_dim = torch.float16, 4, 2, 64
    tables, num_blocks = allocate_blocks(SEQ_LENS, seed=6)
    layer = make_layer(heads, kv_heads, head_dim, num_blocks, dtype)
    total = sum(SEQ_LENS)
    gen = torch.Generator().manual_seed(6)
    q, k, v = (rand(gen, total, n * head_dim, dtype=dtype) for n in (heads, kv_heads, kv_heads))
    with use_backend("emulated"), use_context(prefill_context(SEQ_LENS, tables, BLOCK_SIZE)):
        with pytest.raises(ContractViolation) as info:
            layer(q, k, v)
    assert info.value.argument == "query" and "layout TND needs bfloat16" in info.value.rule


def _decode_inputs(dtype, heads, kv_heads, head_dim, seed, rows):
    gen = torch.Generator().manual_seed(seed)
    return (rand(gen, rows, heads * head_dim, dtype=dtype), rand(gen, rows, kv_heads * head_dim, dtype=dtype),
            rand(gen, rows, kv_heads * head_dim, dtype=dtype), gen)


@pytest.mark.parametrize("dtype, heads, kv_heads, head_dim", CONFIGS, ids=IDS)
def test_decode_eager_matches_reference_and_writes_the_cache_exactly(dtype, heads, kv_heads, head_dim):
    tables, num_blocks = allocate_blocks(SEQ_LENS, seed=2)
    layer = make_layer(heads, kv_heads, head_dim, num_blocks, dtype)
    batch = len(SEQ_LENS)
    q, k, v, gen = _decode_inputs(dtype, heads, kv_heads, head_dim, 2, batch)
    fill_history(layer, tables, [n - 1 for n in SEQ_LENS], gen, dtype)
    ctx = decode_context(SEQ_LENS, tables, BLOCK_SIZE, eager=True)
    before_k, before_v = layer.k_cache.clone(), layer.v_cache.clone()
    with use_backend("emulated"), use_context(ctx), emulator.record_hazards() as hazards:
        out = layer(q, k, v)
    exp_k, exp_v = reference.scatter_kv(before_k, before_v, k.view(batch, kv_heads, head_dim),
                                        v.view(batch, kv_heads, head_dim), ctx.slot_mapping)
    assert torch.equal(layer.k_cache, exp_k) and torch.equal(layer.v_cache, exp_v)  # the whole cache
    gold = reference.paged_attention(q.view(batch, heads, head_dim), exp_k, exp_v, query_lens=[1] * batch,
                                     context_lens=SEQ_LENS, block_tables=ctx.block_tables, scale=layer.scale)
    assert_close_to(out.view(batch, heads, head_dim), gold, dtype)
    # The seed passes context_lens (an int32 tensor) where the schema says SymInt[]: the dispatcher
    # converts it (a note, not a hazard).
    assert list(hazards) == []
    assert any(n.argument == "actual_seq_kvlen" and n.code == "fia/length-tensor" for n in hazards.notes)


@pytest.mark.parametrize("dtype, heads, kv_heads, head_dim", CONFIGS, ids=IDS)
def test_decode_graph_called_eagerly_matches_reference_and_records_the_hazard(dtype, heads, kv_heads, head_dim):
    tables, num_blocks = allocate_blocks(SEQ_LENS, seed=3)
    layer = make_layer(heads, kv_heads, head_dim, num_blocks, dtype)
    batch, padded = len(SEQ_LENS), len(SEQ_LENS) + 2
    width = 4  # max_model_len // block_size
    q, k, v, gen = _decode_inputs(dtype, heads, kv_heads, head_dim, 3, padded)
    fill_history(layer, tables, [n - 1 for n in SEQ_LENS], gen, dtype)
    ctx = decode_context(SEQ_LENS, tables, BLOCK_SIZE, eager=False, max_num_seqs=padded, dummy_block=0,
                         table_width=width)
    before_k, before_v = layer.k_cache.clone(), layer.v_cache.clone()
    with use_backend("emulated"), use_context(ctx), emulator.record_hazards() as hazards:
        out = layer(q, k, v)
    out = out.view(padded, heads, head_dim)
    assert out[batch:].abs().sum() == 0  # padded rows have context_lens 0
    exp_k, exp_v = reference.scatter_kv(before_k, before_v, k[:batch].view(batch, kv_heads, head_dim),
                                        v[:batch].view(batch, kv_heads, head_dim), ctx.slot_mapping[:batch])
    # Everything but the dummy slot (block 0, offset 0) is bit-exact; the dummy slot holds a padding row.
    dummy = torch.zeros(layer.k_cache.shape[:2], dtype=torch.bool)
    dummy[0, 0] = True
    assert torch.equal(layer.k_cache[~dummy], exp_k[~dummy]) and torch.equal(layer.v_cache[~dummy], exp_v[~dummy])
    assert any(torch.equal(layer.k_cache[0, 0], row) for row in k[batch:])
    gold = reference.paged_attention(q[:batch].view(batch, heads, head_dim), exp_k, exp_v, query_lens=[1] * batch,
                                     context_lens=SEQ_LENS, block_tables=ctx.block_tables[:batch], scale=layer.scale)
    assert_close_to(out[:batch], gold, dtype)
    codes = {h.code for h in hazards}
    assert codes == {"fia/graph-op-eager", "scu/overlapping-targets"}  # padded rows share the dummy slot
    with use_backend("emulated"), use_context(ctx), emulator.strict_contracts():
        with pytest.raises(emulator.HazardError):
            layer(q, k, v)


def test_upstream_flat_decode_slots_are_refused_not_miscomputed():
    """nano-vllm's runner writes decode slots as flat block*bs+offset; scatter_update_ reads offsets."""
    dtype, heads, kv_heads, head_dim = torch.float16, 4, 2, 32
    tables, num_blocks = allocate_blocks(SEQ_LENS, seed=4)
    layer = make_layer(heads, kv_heads, head_dim, num_blocks, dtype)
    q, k, v, gen = _decode_inputs(dtype, heads, kv_heads, head_dim, 4, len(SEQ_LENS))
    fill_history(layer, tables, [n - 1 for n in SEQ_LENS], gen, dtype)
    ctx = decode_context(SEQ_LENS, tables, BLOCK_SIZE, eager=True)
    pairs = ctx.slot_mapping
    ctx.slot_mapping = (pairs[:, 0] * BLOCK_SIZE + pairs[:, 1]).to(torch.int32)  # upstream's flat [B]
    before = layer.k_cache.clone()
    with use_backend("emulated"), use_context(ctx), pytest.raises(ContractViolation) as info:
        layer(q, k, v)
    assert info.value.op == "torch_npu.scatter_update_" and info.value.argument == "indices"
    assert "not a flat slot" in str(info.value)
    assert torch.equal(layer.k_cache, before)  # refused before anything was written


def test_four_d_cache_in_decode_is_refused():
    dtype, heads, kv_heads, head_dim = torch.float16, 4, 2, 32
    tables, num_blocks = allocate_blocks(SEQ_LENS, seed=5)
    layer = make_layer(heads, kv_heads, head_dim, num_blocks, dtype)
    layer.k_cache = layer.k_cache.view(num_blocks, BLOCK_SIZE, kv_heads, head_dim)
    layer.v_cache = layer.v_cache.view(num_blocks, BLOCK_SIZE, kv_heads, head_dim)
    q, k, v, _ = _decode_inputs(dtype, heads, kv_heads, head_dim, 5, len(SEQ_LENS))
    ctx = decode_context(SEQ_LENS, tables, BLOCK_SIZE, eager=True)
    with use_backend("emulated"), use_context(ctx), pytest.raises(ContractViolation) as info:
        layer(q, k, v)
    assert info.value.op == "torch_npu.scatter_update_" and "rank of self" in info.value.rule
