"""The (golden, baseline, output) triples msprobe judged for tests/data/msprobe_reference.json: the one recipe,
used by tools/record_msprobe_reference.py to record them and by tests/test_ascend_standard_vs_msprobe.py to
rebuild them (their SHA-256 is recorded beside the parameters, so a recipe that drifted fails that test)."""

from __future__ import annotations

import hashlib

import torch

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
BENCH_DTYPE = {"float16": torch.float32, "bfloat16": torch.float32, "float32": torch.float64}


def build_triple(p: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(golden in float64, exact in the benchmark dtype; baseline and output in p["dtype"]) from parameters.

    Every triple draws the same three streams from torch.Generator(seed): g ~ randn, u ~ U(-1, 1), a permutation.
      scale            golden = randn * scale
      const            (all_equal) golden = const everywhere
      small_fraction   the first fraction*n permuted positions get golden = randn * small_magnitude
      small_exact      ... rounded to the dtype, so a correctly rounded baseline hits them exactly
      noise_rel        output = dtype(golden * (1 + noise_rel * u))   (baseline = dtype(golden))
      large_count/rel  the last large_count permuted positions: output = dtype(golden * (1 + large_rel))
      nan_output       that many permuted positions (after the small ones) get output = NaN
      nan_golden       that many more positions get NaN in golden, baseline and output
      big_values       the first len(big_values) positions get these goldens (above fp16's maximum);
      big_output       "cast": output = dtype(golden) there (inf for fp16), "saturate": clamp to dtype's max first
    """
    dtype, bench = DTYPES[p["dtype"]], BENCH_DTYPE[p["dtype"]]
    n = p["n"]
    gen = torch.Generator().manual_seed(p["seed"])
    g = torch.randn(n, generator=gen, dtype=torch.float64) * p.get("scale", 1.0)
    u = torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1
    perm = torch.randperm(n, generator=gen)
    if "const" in p:
        g = torch.full((n,), p["const"], dtype=torch.float64)
    n_small = int(n * p.get("small_fraction", 0.0))
    small = perm[:n_small]
    if n_small:
        g[small] = g[small] * p["small_magnitude"]
        if p.get("small_exact"):
            g[small] = g[small].to(dtype).to(torch.float64)
    big = p.get("big_values", [])
    if big:
        g[: len(big)] = torch.tensor(big, dtype=torch.float64)
    g = g.to(bench).to(torch.float64)
    noisy = g * (1 + p.get("noise_rel", 0.0) * u)
    k = p.get("large_count", 0)
    if k:
        pos = perm[n - k:]
        noisy[pos] = g[pos] * (1 + p["large_rel"])
    if big and p.get("big_output") == "saturate":
        top = float(torch.finfo(dtype).max)
        noisy[: len(big)] = noisy[: len(big)].clamp(-top, top)
    output = noisy.to(dtype)
    baseline = g.to(dtype)
    n_nan = p.get("nan_output", 0)
    if n_nan:
        output[perm[n_small:n_small + n_nan]] = float("nan")
    n_gnan = p.get("nan_golden", 0)
    if n_gnan:
        pos = perm[n_small + n_nan:n_small + n_nan + n_gnan]
        g[pos] = float("nan")
        baseline[pos] = float("nan")
        output[pos] = float("nan")
    return g, baseline, output


def sha256(t: torch.Tensor) -> str:
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return hashlib.sha256(t.numpy().tobytes()).hexdigest()
