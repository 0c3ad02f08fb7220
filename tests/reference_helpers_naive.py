"""Test-only helpers for the reference oracle tests: case descriptions, input
builders and two independent expectations (SDPA and a naive per-row loop).

Nothing here imports `reference`: the expectations must not share code with
the thing they check.
"""

import dataclasses
import math
import random

import torch
import torch.nn.functional as F

F64 = torch.float64


@dataclasses.dataclass(frozen=True)
class Case:
    """One attention case. Sequence b has query_lens[b] queries that are the
    last of its context_lens[b] positions."""

    name: str
    query_lens: tuple
    context_lens: tuple
    hq: int = 4
    hkv: int = 4
    d: int = 16
    block_size: int = 4
    cache_ndim: int = 4
    seed: int = 0
    extra_blocks: int = 3  # pool larger than needed, so some blocks are never read
    table_pad: int = 1  # extra -1 columns at the end of every block-table row
    scale: float = None  # None: 1/sqrt(d)

    def __str__(self):
        return self.name


def build(case):
    """Random fp64 inputs for `case`, both paged and packed (varlen) forms.

    Block ids are a random permutation of 1..num_blocks-1 (block 0 and the
    spare blocks are never used) and every cache slot that no sequence owns is
    NaN, so reading a wrong slot poisons the output.
    """
    g = torch.Generator().manual_seed(case.seed)
    bs, hkv, d = case.block_size, case.hkv, case.d
    needed = [math.ceil(c / bs) for c in case.context_lens]
    num_blocks = 1 + sum(needed) + case.extra_blocks
    width = max(needed, default=0) + case.table_pad

    perm = (torch.randperm(num_blocks - 1, generator=g) + 1).tolist()
    block_tables = torch.full((len(needed), width), -1, dtype=torch.int64)
    k_cache = torch.full((num_blocks, bs, hkv, d), float("nan"), dtype=F64)
    v_cache = torch.full((num_blocks, bs, hkv, d), float("nan"), dtype=F64)
    ks, vs = [], []
    for b, ctx in enumerate(case.context_lens):
        for col in range(needed[b]):
            block_tables[b, col] = perm.pop()
        k = torch.randn(ctx, hkv, d, generator=g, dtype=F64)
        v = torch.randn(ctx, hkv, d, generator=g, dtype=F64)
        for p in range(ctx):
            k_cache[block_tables[b, p // bs], p % bs] = k[p]
            v_cache[block_tables[b, p // bs], p % bs] = v[p]
        ks.append(k)
        vs.append(v)
    if case.cache_ndim == 3:
        k_cache = k_cache.reshape(num_blocks, bs, hkv * d)
        v_cache = v_cache.reshape(num_blocks, bs, hkv * d)

    q = torch.randn(sum(case.query_lens), case.hq, d, generator=g, dtype=F64)
    return dict(
        q=q, k_cache=k_cache, v_cache=v_cache, block_tables=block_tables,
        k_seqs=ks, v_seqs=vs,
        k=torch.cat(ks) if ks else torch.zeros(0, hkv, d, dtype=F64),
        v=torch.cat(vs) if vs else torch.zeros(0, hkv, d, dtype=F64),
        cu_seqlens_q=[0] + list(_cumsum(case.query_lens)),
        cu_seqlens_k=[0] + list(_cumsum(case.context_lens)),
        scale=case.scale if case.scale is not None else 1.0 / math.sqrt(d),
    )


def _cumsum(xs):
    total = 0
    for x in xs:
        total += x
        yield total


def sdpa_expected(case, inputs):
    """Per-sequence SDPA with an explicit boolean mask.

    Returns (expected, visible): rows where `visible` is False see no key;
    SDPA gives NaN there, so callers compare those rows to 0 separately.
    """
    q = inputs["q"]
    expected = torch.zeros_like(q)
    visible = torch.zeros(q.shape[0], dtype=torch.bool)
    start = 0
    for b, (lq, lk) in enumerate(zip(case.query_lens, case.context_lens)):
        rows = slice(start, start + lq)
        start += lq
        if lq == 0 or lk == 0:
            continue
        group = case.hq // case.hkv
        # Query head h uses KV head h // group: repeat each KV head `group` times.
        k = inputs["k_seqs"][b].repeat_interleave(group, dim=1)
        v = inputs["v_seqs"][b].repeat_interleave(group, dim=1)
        i = torch.arange(lq)[:, None]
        j = torch.arange(lk)[None, :]
        mask = j <= i + (lk - lq)  # True = may attend
        out = F.scaled_dot_product_attention(
            q[rows].transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
            attn_mask=mask, scale=inputs["scale"])
        expected[rows] = out[0].transpose(0, 1)
        visible[rows] = mask.any(dim=1)
    return expected, visible


def naive_expected(case, inputs):
    """Deliberately slow: one Python iteration per (query row, head), keys
    read position by position from the paged cache via the block table."""
    q, bs = inputs["q"], case.block_size
    k_cache = inputs["k_cache"].reshape(-1, bs, case.hkv, case.d)
    v_cache = inputs["v_cache"].reshape(-1, bs, case.hkv, case.d)
    table = inputs["block_tables"]
    scale = inputs["scale"]
    group = case.hq // case.hkv
    out = torch.zeros_like(q)
    start = 0
    for b, (lq, lk) in enumerate(zip(case.query_lens, case.context_lens)):
        # Position p of sequence b lives at block table[b, p // bs], offset p % bs.
        keys = torch.stack([k_cache[int(table[b, p // bs]), p % bs] for p in range(lk)]) if lk else None
        vals = torch.stack([v_cache[int(table[b, p // bs]), p % bs] for p in range(lk)]) if lk else None
        for i in range(lq):
            last = i + (lk - lq)  # last visible key position
            if last < 0:
                continue  # no visible key: the row stays 0
            for h in range(case.hq):
                kvh = h // group
                s = ((keys[:last + 1, kvh] @ q[start + i, h]) * scale).tolist()
                m = max(s)
                e = [math.exp(x - m) for x in s]
                total = math.fsum(e)
                weights = torch.tensor([x / total for x in e], dtype=F64)
                out[start + i, h] = weights @ vals[:last + 1, kvh]
        start += lq
    return out


def random_cases(count, seed):
    """Seeded random case descriptions covering the same axes as the hand-built ones."""
    rng = random.Random(seed)
    cases = []
    for n in range(count):
        hkv = rng.choice([1, 2, 4])
        group = rng.choice([1, 2, 4, 8])
        bs = rng.choice([1, 2, 4, 8, 16])
        batch = rng.randint(1, 4)
        ctx, ql = [], []
        for _ in range(batch):
            c = rng.choice([0, 1, bs - 1, bs, bs + 1, rng.randint(1, 40)])
            c = max(c, 0)
            kind = rng.choice(["decode", "prefill", "prefix", "overhang"])
            q = {"decode": 1 if c else rng.randint(0, 2), "prefill": c,
                 "prefix": rng.randint(0, c) if c else 0,
                 "overhang": c + rng.randint(1, 4)}[kind]
            ctx.append(c)
            ql.append(q)
        cases.append(Case(
            name=f"random{n}_b{batch}_bs{bs}_h{hkv * group}x{hkv}",
            query_lens=tuple(ql), context_lens=tuple(ctx),
            hq=hkv * group, hkv=hkv, d=rng.choice([8, 16, 32]), block_size=bs,
            cache_ndim=rng.choice([3, 4]), seed=1000 + n,
            extra_blocks=rng.randint(0, 4), table_pad=rng.randint(0, 2)))
    return cases
