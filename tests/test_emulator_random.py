"""The emulator's attention against independent computations on seeded random cases.

Every case is drawn from its seed (layout BSH/BSND/BNSD/TND, paged or dense, GQA ratio 1/2/4/8/MQA,
fp32/fp16/bf16, prompt or decode, sparse mode, unequal lengths, shuffled physical blocks with block 0
reserved in a pool larger than needed). Causal cases (sparse_mode 3 and decode) are checked against
`reference.paged_attention` / `reference.varlen_attention` in float64; the others (full attention,
top-left causal, band) against a small float64 per-row oracle written here. Slots that must not be
read are poisoned with NaN.
"""

import math
import random
from dataclasses import dataclass, field

import pytest
import torch

import reference
from conformance import emulator

tn = emulator.torch_npu
MASK = torch.triu(torch.ones(2048, 2048, dtype=torch.bool), diagonal=1)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
HEADS = ((4, 4), (4, 2), (8, 2), (8, 1), (16, 2), (4, 1), (8, 8))  # group 1, 2, 4, 8, 8, MQA, 1
NUM_CASES = 120


@dataclass
class Spec:
    seed: int
    layout: str
    paged: bool
    dtype: torch.dtype
    heads: int
    kv_heads: int
    head_dim: int
    q_lens: list
    kv_lens: list
    decode: bool
    mode: int
    pre: int = 2147483647
    nxt: int = 2147483647
    block_size: int = 0
    four_d: bool = False
    api: str = "v2"
    extra: dict = field(default_factory=dict)

    def __str__(self):
        kind = "decode" if self.decode else f"mode{self.mode}"
        page = f"paged{self.block_size}{'x4d' if self.four_d else ''}" if self.paged else "dense"
        return (f"s{self.seed}-{self.layout}-{page}-{kind}-{str(self.dtype)[6:]}-"
                f"{self.heads}x{self.kv_heads}x{self.head_dim}-{self.api}")


def draw(seed: int) -> Spec:
    rng = random.Random(seed)
    layout = ("BSH", "BSND", "BNSD", "TND")[seed % 4]
    paged = (seed // 4) % 2 == 1
    dtype = DTYPES[(seed // 8) % 3]
    heads, kv_heads = HEADS[rng.randrange(len(HEADS))]
    head_dim = rng.choice((16, 32, 64))
    if layout == "TND":  # the TND tiling takes only bf16 (float32: the emulator's note) and D 64/128/192
        dtype = (torch.bfloat16, torch.float32)[(seed // 8) % 2]
        head_dim = 64
    batch = rng.randint(1, 3)
    decode = layout != "TND" and rng.random() < 0.4
    if decode:
        q_lens = [1] * batch
        kv_lens = [rng.choice((0, 1, 2, 15, 16, 17, 33)) if rng.random() < 0.3 else rng.randint(1, 40)
                   for _ in range(batch)]
        mode = rng.choice((0, 3))  # ignored by the decode path
    else:
        q_lens = [rng.randint(1, 9) for _ in range(batch)]
        if layout == "TND" and not paged and rng.random() < 0.5:
            kv_lens = list(q_lens)  # a plain causal prefill, as the layer issues it
        else:
            kv_lens = [q + rng.randint(0, 30) for q in q_lens]
        mode = rng.choice((0, 3, 3)) if (layout == "TND" or paged) else rng.choice((0, 2, 3, 3, 4))
    spec = Spec(seed, layout, paged, dtype, heads, kv_heads, head_dim, q_lens, kv_lens, decode, mode)
    if mode == 4:
        spec.pre, spec.nxt = rng.randint(0, 6), rng.randint(0, 3)
    if paged:
        if decode:
            spec.block_size = rng.choice((16, 32))
        elif layout == "TND":
            spec.block_size = 128  # TND paging: a multiple of 128 in [128, 1024]
        else:
            spec.block_size = 128
        spec.four_d = layout == "BNSD" and rng.random() < 0.5
    if layout != "TND":
        spec.api = rng.choice(("v1", "v2", "air")) if (decode and paged) else rng.choice(("v1", "v2"))
    return spec


SPECS = [draw(seed) for seed in range(NUM_CASES)]


# ---- building the inputs


def _values(gen, shape, dtype):
    return torch.randn(*shape, generator=gen).to(dtype)


def build(spec: Spec):
    """(kwargs for the op, per-batch float64-able row tensors q_rows/k_rows/v_rows, block data)."""
    gen = torch.Generator().manual_seed(1000 + spec.seed)
    n, nkv, d, dtype = spec.heads, spec.kv_heads, spec.head_dim, spec.dtype
    batch = len(spec.q_lens)
    q_rows = [_values(gen, (ql, n, d), dtype) for ql in spec.q_lens]
    k_rows = [_values(gen, (kl, nkv, d), dtype) for kl in spec.kv_lens]
    v_rows = [_values(gen, (kl, nkv, d), dtype) for kl in spec.kv_lens]
    nan = float("nan")
    kw = dict(scale=1.0 / math.sqrt(d))
    if spec.layout == "TND":
        query = torch.cat(q_rows)
        kw["actual_seq_qlen"] = list(_cumsum(spec.q_lens))
    else:
        q_s = 1 if spec.decode else max(spec.q_lens) + random.Random(spec.seed).randint(0, 2)
        query = torch.full((batch, q_s, n, d), nan, dtype=dtype)
        for b, rows in enumerate(q_rows):
            query[b, : rows.shape[0]] = rows
        if not spec.decode:
            kw["actual_seq_qlen"] = list(spec.q_lens)
        query = _to_layout(query, spec.layout)
    table = None
    if spec.paged:
        bs = spec.block_size
        needed = [math.ceil(kl / bs) for kl in spec.kv_lens]
        rng = random.Random(spec.seed + 7)
        pool = list(range(1, sum(needed) + 3))  # block 0 reserved, two spare blocks
        rng.shuffle(pool)
        width = max(needed, default=0) + rng.randint(0, 1)
        width = max(width, 1)
        table = torch.full((batch, width), -1, dtype=torch.int32)
        num_blocks = len(pool) + 1
        kc = torch.full((num_blocks, bs, nkv, d), nan, dtype=dtype)
        vc = torch.full((num_blocks, bs, nkv, d), nan, dtype=dtype)
        taken = iter(pool)
        for b, kl in enumerate(spec.kv_lens):
            for c in range(needed[b]):
                blk = next(taken)
                table[b, c] = blk
                rows = slice(c * bs, min(kl, (c + 1) * bs))
                kc[blk, : rows.stop - rows.start] = k_rows[b][rows]
                vc[blk, : rows.stop - rows.start] = v_rows[b][rows]
        ref_caches = (kc, vc)
        if spec.four_d:
            key, value = kc.permute(0, 2, 1, 3).contiguous(), vc.permute(0, 2, 1, 3).contiguous()
        else:
            key, value = kc.reshape(num_blocks, bs, nkv * d), vc.reshape(num_blocks, bs, nkv * d)
        kw.update(block_table=table, block_size=bs, actual_seq_kvlen=list(spec.kv_lens))
    else:
        ref_caches = None
        if spec.layout == "TND":
            key, value = torch.cat(k_rows), torch.cat(v_rows)
            kw["actual_seq_kvlen"] = list(_cumsum(spec.kv_lens))
        else:
            kv_s = max(spec.kv_lens) + 1
            key = torch.full((batch, kv_s, nkv, d), nan, dtype=dtype)
            value = torch.full((batch, kv_s, nkv, d), nan, dtype=dtype)
            for b in range(batch):
                key[b, : spec.kv_lens[b]] = k_rows[b]
                value[b, : spec.kv_lens[b]] = v_rows[b]
            key, value = _to_layout(key, spec.layout), _to_layout(value, spec.layout)
            kw["actual_seq_kvlen"] = list(spec.kv_lens)
    if not spec.decode and spec.mode in (2, 3, 4):
        kw["atten_mask"] = MASK
    kw.update(sparse_mode=spec.mode, pre_tokens=spec.pre, next_tokens=spec.nxt)
    return query, key, value, kw, (q_rows, k_rows, v_rows), table, ref_caches


def _cumsum(lens):
    total = 0
    for n in lens:
        total += n
        yield total


def _to_layout(bsnd, layout):
    if layout == "BSH":
        return bsnd.reshape(bsnd.shape[0], bsnd.shape[1], -1)
    if layout == "BNSD":
        return bsnd.transpose(1, 2).contiguous()
    return bsnd


def _from_layout(out, layout, heads):
    if layout == "BSH":
        return out.reshape(out.shape[0], out.shape[1], heads, -1)
    if layout == "BNSD":
        return out.transpose(1, 2)
    return out


def call(spec: Spec, query, key, value, kw):
    common = dict(input_layout=spec.layout, num_key_value_heads=spec.kv_heads, block_size=kw.get("block_size", 0),
                  block_table=kw.get("block_table"), atten_mask=kw.get("atten_mask"), sparse_mode=kw["sparse_mode"],
                  pre_tokens=kw["pre_tokens"], next_tokens=kw["next_tokens"])
    if spec.api == "v2":
        return tn.npu_fused_infer_attention_score_v2(
            query, key, value, num_query_heads=spec.heads, softmax_scale=kw["scale"],
            actual_seq_qlen=kw.get("actual_seq_qlen"), actual_seq_kvlen=kw.get("actual_seq_kvlen"),
            return_softmax_lse=True, **common)
    if spec.api == "v1":
        return tn.npu_fused_infer_attention_score(
            query, key, value, num_heads=spec.heads, scale=kw["scale"], actual_seq_lengths=kw.get("actual_seq_qlen"),
            actual_seq_lengths_kv=kw.get("actual_seq_kvlen"), softmax_lse_flag=True, **common)
    return emulator.torchair.ops.npu_fused_infer_attention_score(
        query, key, value, num_heads=spec.heads, scale=kw["scale"],
        actual_seq_lengths_kv=torch.tensor(kw["actual_seq_kvlen"], dtype=torch.int64), softmax_lse_flag=True,
        **common)


# ---- independent expectations


def golden_causal(spec: Spec, rows, table, ref_caches, scale):
    """float64 [sum(q_lens), N, D] from the reference (bottom-right causal; decode = all keys)."""
    q_rows, k_rows, v_rows = rows
    q = torch.cat(q_rows)
    if spec.paged:
        kc, vc = ref_caches
        return reference.paged_attention(q, kc, vc, query_lens=spec.q_lens, context_lens=spec.kv_lens,
                                         block_tables=table, scale=scale)
    cu_q = [0] + list(_cumsum(spec.q_lens))
    cu_k = [0] + list(_cumsum(spec.kv_lens))
    return reference.varlen_attention(q, torch.cat(k_rows), torch.cat(v_rows), cu_seqlens_q=cu_q,
                                      cu_seqlens_k=cu_k, scale=scale)


def seen(spec: Spec, q_len, kv_len, i, j):
    d = j - i
    if spec.mode == 0:
        return True
    if spec.mode == 2:
        return d <= 0
    if spec.mode == 4:
        return -spec.pre <= d - (kv_len - q_len) <= spec.nxt
    raise AssertionError(spec.mode)


def golden_rows(spec: Spec, rows, scale):
    """float64 ([sum(q_lens), N, D], lse [sum(q_lens), N]) by a per-row loop over explicitly visible keys."""
    outs, lses = [], []
    for q, k, v in zip(*rows):
        q_len, kv_len = q.shape[0], k.shape[0]
        group = q.shape[1] // k.shape[1]
        out = torch.zeros(q_len, q.shape[1], v.shape[2], dtype=torch.float64)
        lse = torch.full((q_len, q.shape[1]), math.inf, dtype=torch.float64)
        for i in range(q_len):
            keys = [j for j in range(kv_len) if seen(spec, q_len, kv_len, i, j)]
            if not keys:
                continue
            kk = k[keys].double()
            vv = v[keys].double()
            for h in range(q.shape[1]):
                s = scale * (kk[:, h // group] @ q[i, h].double())
                lse[i, h] = torch.logsumexp(s, 0)
                out[i, h] = torch.softmax(s, 0) @ vv[:, h // group]
        outs.append(out)
        lses.append(lse)
    return torch.cat(outs), torch.cat(lses)


def packed(spec: Spec, out, lse):
    """Valid rows of the emulator's output and LSE, packed [sum(q_lens), N, ...]; checks the padding rows."""
    if spec.layout == "TND":
        return out, lse[:, :, 0]
    out4 = _from_layout(out, spec.layout, spec.heads)  # [B, S, N, D]
    lse4 = lse[..., 0].transpose(1, 2)  # [B, S, N]
    rows_o, rows_l = [], []
    for b, ql in enumerate(spec.q_lens):
        assert out4[b, ql:].abs().sum() == 0, "padding query rows must be 0"
        assert torch.isposinf(lse4[b, ql:]).all(), "padding query rows must have LSE +inf"
        rows_o.append(out4[b, :ql])
        rows_l.append(lse4[b, :ql])
    return torch.cat(rows_o), torch.cat(rows_l)


@pytest.mark.parametrize("spec", SPECS, ids=[str(s) for s in SPECS])
def test_emulator_matches_independent_attention(spec):
    query, key, value, kw, rows, table, ref_caches = build(spec)
    with emulator.record_hazards():
        out, lse = call(spec, query, key, value, kw)
    assert out.dtype == spec.dtype and lse.dtype == torch.float32
    got, got_lse = packed(spec, out, lse)
    assert torch.isfinite(got).all()
    if spec.decode or spec.mode == 3:
        gold = golden_causal(spec, rows, table, ref_caches, kw["scale"])
        gold_lse = None
    else:
        gold, gold_lse = golden_rows(spec, rows, kw["scale"])
    tol = TOL[spec.dtype] * max(1.0, gold.abs().max().item() if gold.numel() else 1.0)
    err = (got.double() - gold).abs().max().item() if gold.numel() else 0.0
    assert err <= tol, f"max error {err:.3g} > {tol:.3g}"
    if gold_lse is not None:
        finite = torch.isfinite(gold_lse)
        assert torch.equal(torch.isposinf(got_lse), ~finite)
        torch.testing.assert_close(got_lse[finite].double(), gold_lse[finite], atol=2e-5, rtol=1e-5)


def test_the_draw_covers_the_space():
    assert len(SPECS) >= 100
    assert {s.layout for s in SPECS} == {"BSH", "BSND", "BNSD", "TND"}
    assert {s.dtype for s in SPECS} == set(DTYPES)
    assert {s.heads // s.kv_heads for s in SPECS} >= {1, 2, 4, 8}
    assert any(s.kv_heads == 1 for s in SPECS)  # MQA
    assert {s.paged for s in SPECS} == {True, False}
    assert any(s.four_d for s in SPECS) and any(s.decode for s in SPECS)
    assert {s.mode for s in SPECS if not s.decode} == {0, 2, 3, 4}
    assert {s.api for s in SPECS} == {"v1", "v2", "air"}
    assert any(s.paged and s.layout == "TND" for s in SPECS)
    assert any(0 in s.kv_lens for s in SPECS if s.decode)
    assert any(len(set(s.q_lens)) > 1 for s in SPECS)
