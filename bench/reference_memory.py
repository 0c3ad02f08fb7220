"""Peak extra memory of the reference oracle on a long causal prefill.

    TORCH_DEVICE_BACKEND_AUTOLOAD=0 python bench/reference_memory.py

Runs a 16384-token single-sequence causal prefill (Hq = Hkv = 8, D = 128,
fp64) through reference.varlen_attention and reference.paged_attention
(block_size 128), each in a fresh subprocess, and prints the peak resident
memory beyond the inputs and the wall time. Exits 1 if either is >= 1 GiB.

Why RSS: tracemalloc does not see torch's allocations. Extra = the process's
peak RSS (ru_maxrss) after the call minus its RSS just before it; inputs are
built without temporaries so the peak before the call is the RSS before it.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

TOKENS, HEADS, HEAD_DIM, BLOCK_SIZE = 16384, 8, 128, 128
LIMIT = 1 << 30
GIB = float(1 << 30)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _child(which):
    sys.path.insert(0, REPO)
    import torch

    import reference

    g = torch.Generator().manual_seed(0)
    f64 = torch.float64
    q = torch.randn(TOKENS, HEADS, HEAD_DIM, generator=g, dtype=f64)
    scale = HEAD_DIM ** -0.5
    if which == "varlen":
        k = torch.randn(TOKENS, HEADS, HEAD_DIM, generator=g, dtype=f64)
        v = torch.randn(TOKENS, HEADS, HEAD_DIM, generator=g, dtype=f64)

        def run():
            return reference.varlen_attention(q, k, v, cu_seqlens_q=[0, TOKENS],
                                              cu_seqlens_k=[0, TOKENS], scale=scale)

        def keys_values():
            return k, v
    else:
        num_blocks = TOKENS // BLOCK_SIZE + 1  # one spare block
        k_cache = torch.randn(num_blocks, BLOCK_SIZE, HEADS, HEAD_DIM, generator=g, dtype=f64)
        v_cache = torch.randn(num_blocks, BLOCK_SIZE, HEADS, HEAD_DIM, generator=g, dtype=f64)
        table = torch.randperm(num_blocks, generator=g)[: TOKENS // BLOCK_SIZE][None]

        def run():
            return reference.paged_attention(q, k_cache, v_cache, query_lens=[TOKENS],
                                             context_lens=[TOKENS], block_tables=table,
                                             scale=scale)

        def keys_values():
            return (k_cache[table[0]].reshape(TOKENS, HEADS, HEAD_DIM),
                    v_cache[table[0]].reshape(TOKENS, HEADS, HEAD_DIM))

    before, peak_before = _rss_now(), _rss_peak()
    t0 = time.perf_counter()
    out = run()
    seconds = time.perf_counter() - t0
    peak = _rss_peak()

    # Spot check the first and last query rows against a direct computation.
    k, v = keys_values()
    err = 0.0
    for row in (0, TOKENS - 1):
        s = torch.einsum("hd,khd->hk", q[row], k[: row + 1]) * scale
        o = torch.einsum("hk,khd->hd", torch.softmax(s, dim=-1), v[: row + 1])
        err = max(err, (out[row] - o).abs().max().item())
    print(json.dumps(dict(extra=peak - before, seconds=seconds, spot_err=err,
                          construction_overshoot=max(0, peak_before - before),
                          threads=torch.get_num_threads())))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["varlen", "paged"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return 0

    ok = True
    for which, label in (("varlen", "varlen_attention"),
                         ("paged", f"paged_attention (block_size {BLOCK_SIZE})")):
        res = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", which],
                             capture_output=True, text=True)
        if res.returncode != 0:
            print(f"{label}: child failed\n{res.stderr}", file=sys.stderr)
            return 1
        r = json.loads(res.stdout.strip().splitlines()[-1])
        within = r["extra"] < LIMIT and r["spot_err"] < 1e-12
        ok &= within
        print(f"{label} {TOKENS} tok x {HEADS} heads fp64: peak extra {r['extra'] / GIB:.2f} GiB "
              f"(target < 1 GiB), {r['seconds']:.1f} s on {r['threads']} threads, "
              f"spot-check err {r['spot_err']:.1e}{'' if within else '  <-- FAIL'}")
        if r["construction_overshoot"] > 16 << 20:
            print(f"  note: building inputs peaked {r['construction_overshoot'] / GIB:.2f} GiB "
                  f"above the pre-call RSS, so the figure above may be low", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
