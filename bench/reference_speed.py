"""Speed of the reference oracle against per-sequence SDPA with explicit boolean masks.

    TORCH_DEVICE_BACKEND_AUTOLOAD=0 python bench/reference_speed.py [--repeats 7] [--quick]

Same ragged batches, same dtype, both on CPU with torch's default thread count:
  reference  reference.varlen_attention (prefill) / reference.paged_attention (decode, reading a
             paged cache through the block table), computing in the given dtype;
  baseline   a Python loop over sequences calling torch.nn.functional.scaled_dot_product_attention
             with an explicit boolean mask (True = attend; causal for prefill, all keys for decode),
             K/V heads expanded to the query heads; decode first gathers each sequence's K/V rows
             from the same paged cache.
Each figure is the median of --repeats interleaved runs; the ratio reference/baseline is what is
judged (CPU timings are noisy, ratios measured side by side are not). Targets: fp32 <= 1.5x,
fp64 <= 2x. Both sides are checked to agree before timing. Exit 1 if a target is missed.
The 16k-token prefill memory figure is bench/reference_memory.py.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from _timing import medians, table  # noqa: E402  (bench/ is on sys.path when run as a script)

import reference  # noqa: E402

TARGETS = {torch.float32: 1.5, torch.float64: 2.0}
HQ, HKV, D, BLOCK = 8, 2, 128, 128

# Ragged batches with block-boundary lengths, a single token and a long sequence.
PREFILL = {"prefill B=6": [1, 17, 127, 129, 513, 1025]}
DECODE = {"decode B=8": [1, 16, 127, 128, 129, 300, 511, 2048],
          "decode B=32 ctx<=512": [1 + (37 * i) % 512 for i in range(32)]}
QUICK_PREFILL = {"prefill B=4": [1, 17, 129, 300]}
QUICK_DECODE = {"decode B=8": [1, 16, 127, 128, 129, 200, 300, 511]}


def sdpa_prefill(q, k, v, cu, scale):
    group = q.shape[1] // k.shape[1]
    out = torch.empty_like(q)
    for s, e in zip(cu, cu[1:]):
        n = e - s
        mask = torch.ones(n, n, dtype=torch.bool).tril_()
        qs = q[s:e].transpose(0, 1)
        ks = k[s:e].transpose(0, 1).repeat_interleave(group, 0)
        vs = v[s:e].transpose(0, 1).repeat_interleave(group, 0)
        out[s:e] = F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask, scale=scale).transpose(0, 1)
    return out


def sdpa_decode(q, k_cache, v_cache, lens, tables, scale):
    group = q.shape[1] // HKV
    k_slots = k_cache.view(-1, HKV, D)
    v_slots = v_cache.view(-1, HKV, D)
    out = torch.empty_like(q)
    for b, n in enumerate(lens):
        pos = torch.arange(n)
        slots = tables[b, pos // BLOCK].long() * BLOCK + pos % BLOCK
        ks = k_slots[slots].transpose(0, 1).repeat_interleave(group, 0)
        vs = v_slots[slots].transpose(0, 1).repeat_interleave(group, 0)
        mask = torch.ones(1, n, dtype=torch.bool)
        out[b] = F.scaled_dot_product_attention(q[b].unsqueeze(1), ks, vs, attn_mask=mask, scale=scale)[:, 0]
    return out


def prefill_inputs(lens, dtype, gen):
    total = sum(lens)
    q = torch.randn(total, HQ, D, generator=gen, dtype=dtype)
    k = torch.randn(total, HKV, D, generator=gen, dtype=dtype)
    v = torch.randn(total, HKV, D, generator=gen, dtype=dtype)
    cu = [0]
    for n in lens:
        cu.append(cu[-1] + n)
    return q, k, v, cu


def decode_inputs(lens, dtype, gen):
    needed = [math.ceil(n / BLOCK) for n in lens]
    num_blocks = 1 + 2 * sum(needed)
    order = (torch.randperm(num_blocks - 1, generator=gen) + 1).tolist()  # shuffled, block 0 unused
    tables = torch.full((len(lens), max(needed)), -1, dtype=torch.int32)
    cursor = 0
    for b, count in enumerate(needed):
        tables[b, :count] = torch.tensor(order[cursor:cursor + count], dtype=torch.int32)
        cursor += count
    k_cache = torch.randn(num_blocks, BLOCK, HKV * D, generator=gen, dtype=dtype)
    v_cache = torch.randn(num_blocks, BLOCK, HKV * D, generator=gen, dtype=dtype)
    q = torch.randn(len(lens), HQ, D, generator=gen, dtype=dtype)
    return q, k_cache, v_cache, tables


def workloads(quick: bool):
    scale = D ** -0.5
    prefill, decode = (QUICK_PREFILL, QUICK_DECODE) if quick else (PREFILL, DECODE)
    for dtype in (torch.float32, torch.float64):
        gen = torch.Generator().manual_seed(0)
        for name, lens in prefill.items():
            q, k, v, cu = prefill_inputs(lens, dtype, gen)
            yield (name, dtype,
                   lambda q=q, k=k, v=v, cu=cu, dtype=dtype: reference.varlen_attention(
                       q, k, v, cu_seqlens_q=cu, cu_seqlens_k=cu, scale=scale, compute_dtype=dtype),
                   lambda q=q, k=k, v=v, cu=cu: sdpa_prefill(q, k, v, cu, scale))
        for name, lens in decode.items():
            q, k_cache, v_cache, tables = decode_inputs(lens, dtype, gen)
            yield (name, dtype,
                   lambda q=q, kc=k_cache, vc=v_cache, t=tables, lens=lens, dtype=dtype: reference.paged_attention(
                       q, kc, vc, query_lens=[1] * len(lens), context_lens=lens, block_tables=t, scale=scale,
                       compute_dtype=dtype),
                   lambda q=q, kc=k_cache, vc=v_cache, t=tables, lens=lens: sdpa_decode(q, kc, vc, lens, t, scale))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller batches (a smoke run)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; Hq={HQ} Hkv={HKV} D={D} "
          f"block_size={BLOCK}; median of {args.repeats}")
    rows, missed = [], []
    for name, dtype, ref_fn, sdpa_fn in workloads(args.quick):
        want, got = sdpa_fn(), ref_fn()
        tol = 1e-4 if dtype == torch.float32 else 1e-10
        if not torch.allclose(got, want, atol=tol, rtol=tol):
            print(f"{name} {dtype}: reference and SDPA disagree (max {float((got - want).abs().max()):.3g})")
            return 2
        t = medians({"reference": ref_fn, "sdpa": sdpa_fn}, args.repeats)
        ratio = t["reference"] / t["sdpa"]
        target = TARGETS[dtype]
        ok = ratio <= target
        if not ok:
            missed.append(f"{name} {str(dtype).removeprefix('torch.')}")
        rows.append([name, str(dtype).removeprefix("torch."), f"{t['reference'] * 1e3:.1f}", f"{t['sdpa'] * 1e3:.1f}",
                     f"{ratio:.2f}x", f"<= {target}x", "ok" if ok else "MISSED"])
    print(table(["workload", "dtype", "reference ms", "sdpa ms", "ratio", "target", ""], rows))
    print("targets met" if not missed else f"targets missed: {', '.join(missed)}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
