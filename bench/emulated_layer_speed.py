"""Speed of the production layer on the emulated backend against the reference doing the same job.

    TORCH_DEVICE_BACKEND_AUTOLOAD=0 python bench/emulated_layer_speed.py [--repeats 7] [--quick]

Same cases (conformance.cases.Case, materialised once), both on CPU with torch's default threads:
  layer      the production npu_attention.Attention called as the runner calls it:
             `with npu_attention.kernels.use_backend("emulated"), npu_attention.use_context(ctx): layer(q, k, v)`
             (cache write through the emulated _npu_reshape_and_cache / scatter_update_, then the
             emulated FIA-v2 or torchair op, contract checks included);
  reference  reference.scatter_kv into the same caches, then reference.varlen_attention (prefill) or
             reference.paged_attention (decode) computing in float32, as the emulator does.
decode_graph calls the torchair op eagerly (no torch.compile: a compile per case is not the
layer's cost; the emulator records its "outside a compiled graph" hazard). Each figure is the median
of --repeats interleaved runs; the ratio layer/reference is judged, target <= 2x. Exit 1 if missed.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from _timing import medians, table  # noqa: E402  (bench/ is on sys.path when run as a script)

import reference  # noqa: E402
from conformance.cases.case import Case  # noqa: E402
from conformance.platform import backends  # noqa: E402,F401  (registers the "emulated" kernel backend)
from npu_attention import Attention, kernels, use_context  # noqa: E402

TARGET = 2.0
HQ, HKV, D, BLOCK = 8, 2, 128, 128


def make_case(phase: str, lens: list[int], dtype: str, pad: int = 0) -> Case:
    needed = [math.ceil(n / BLOCK) for n in lens]
    num_blocks = 2 + sum(needed) + max(0, len(lens) + pad - sum(needed))  # block 0 unused, last = dummy
    order = torch.randperm(num_blocks - 2, generator=torch.Generator().manual_seed(1)) + 1
    tables, cursor = [], 0
    for count in needed:
        tables.append(tuple(order[cursor:cursor + count].tolist()))
        cursor += count
    extra = {"max_num_seqs": len(lens) + pad, "table_width": max(needed) + 1} if phase == "decode_graph" else {}
    return Case(phase=phase, num_heads=HQ, num_kv_heads=HKV, head_dim=D, dtype=dtype, block_size=BLOCK,
                num_blocks=num_blocks, seq_lens=tuple(lens), block_tables=tuple(tables), seed=7, **extra)


def workloads(quick: bool):
    prefill = [1, 17, 129, 300] if quick else [1, 17, 127, 129, 513, 1025]
    decode8 = [1, 16, 127, 128, 129, 200, 300, 511] if quick else [1, 16, 127, 128, 129, 300, 511, 2048]
    decode32 = [1 + (37 * i) % 512 for i in range(32)]
    yield f"prefill B={len(prefill)}", make_case("prefill", prefill, "bfloat16")
    yield "decode_eager B=8", make_case("decode_eager", decode8, "bfloat16")
    if not quick:
        yield "decode_eager B=32 ctx<=512", make_case("decode_eager", decode32, "float16")
    yield "decode_graph B=8 (+4 pad)", make_case("decode_graph", decode8, "bfloat16", pad=4)


def contenders(case: Case):
    t = case.materialise("cpu")
    ctx = case.context()
    layer = Attention(case.num_heads, case.head_dim, None, case.num_kv_heads)
    layer.k_cache, layer.v_cache = t.k_cache.clone(), t.v_cache.clone()  # rewrites are idempotent
    scale = case.softmax_scale

    def run_layer():
        with kernels.use_backend("emulated"), use_context(ctx):
            return layer(t.q, t.k, t.v)

    if case.is_prefill:
        def run_reference():
            reference.scatter_kv(t.k_cache, t.v_cache, t.k, t.v, ctx.slot_mapping)
            cu = ctx.cu_seqlens_q
            return reference.varlen_attention(t.q, t.k, t.v, cu_seqlens_q=cu, cu_seqlens_k=cu, scale=scale,
                                              compute_dtype=torch.float32)
    else:
        b = case.batch

        def run_reference():
            k_cache, v_cache = reference.scatter_kv(t.k_cache, t.v_cache, t.k[:b], t.v[:b], ctx.slot_mapping[:b])
            return reference.paged_attention(t.q[:b], k_cache, v_cache, query_lens=[1] * b,
                                             context_lens=list(case.seq_lens), block_tables=ctx.block_tables[:b],
                                             scale=scale, compute_dtype=torch.float32)
    return run_layer, run_reference


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smaller batches (a smoke run)")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; Hq={HQ} Hkv={HKV} D={D} "
          f"block_size={BLOCK}; median of {args.repeats}")
    rows, missed = [], []
    for name, case in workloads(args.quick):
        run_layer, run_reference = contenders(case)
        got = run_layer().float().reshape(case.num_new_tokens, HQ, D)
        got = got[:sum(case.seq_lens) if case.is_prefill else case.batch]
        want = run_reference().float()
        err = float((got - want).abs().max())
        if not err < 0.1:
            print(f"{name}: the layer and the reference disagree (max |diff| {err:.3g})")
            return 2
        t = medians({"layer": run_layer, "reference": run_reference}, args.repeats)
        ratio = t["layer"] / t["reference"]
        if ratio > TARGET:
            missed.append(name)
        rows.append([name, case.dtype, f"{t['layer'] * 1e3:.1f}", f"{t['reference'] * 1e3:.1f}", f"{ratio:.2f}x",
                     f"<= {TARGET}x", "ok" if ratio <= TARGET else "MISSED"])
    print(table(["workload", "dtype", "layer ms", "reference ms", "ratio", "target", ""], rows))
    print("target met" if not missed else f"target missed: {', '.join(missed)}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
