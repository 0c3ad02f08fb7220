"""Determinism: the layer run twice on the same inputs must give the same bits.

An inference kernel whose result depends on scheduling (an atomic-add reduction, a split-KV combine
in whichever order the cores finish) breaks reproducibility and every bit-exact comparison built on
it (graph vs eager, a replayed failure), even when each run is within tolerance. msprobe's "free
benchmarking" counts a plain re-run as a determinism check (mstt docs, 15.free_benchmarking_PyTorch.md).
Bits are compared, not values, so NaN == NaN and -0.0 != 0.0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from conformance.judge.bits import as_bits


@dataclass
class DeterminismResult:
    runs: int
    verdict: str  # "pass": every run gave the same bits
    differences: list[dict] = field(default_factory=list)  # per tensor that differs: count and first spot
    reasons: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def as_dict(self) -> dict:
        return asdict(self)


def _first_output_difference(a: torch.Tensor, b: torch.Tensor, row_seq: list[int]) -> dict | None:
    """a, b: [rows, heads, head_dim]. The first differing element in row-major order."""
    bad = as_bits(a) != as_bits(b)
    count = int(bad.sum())
    if not count:
        return None
    row, head, dim = (int(x) for x in bad.nonzero()[0])
    return {"tensor": "output", "elements": count, "row": row, "seq": row_seq[row] if row_seq else row,
            "head": head, "dim": dim, "first": float(a[row, head, dim]), "second": float(b[row, head, dim])}


def _first_cache_difference(name: str, a: torch.Tensor, b: torch.Tensor, head_dim: int) -> dict | None:
    """a, b: [num_blocks, block_size, kv_heads * head_dim]."""
    bad = as_bits(a) != as_bits(b)
    count = int(bad.sum())
    if not count:
        return None
    block, offset, col = (int(x) for x in bad.nonzero()[0])
    return {"tensor": name, "elements": count, "block": block, "offset": offset, "kv_head": col // head_dim,
            "dim": col % head_dim, "first": float(a[block, offset, col]), "second": float(b[block, offset, col])}


def compare_runs(runs: list, row_seq: list[int], head_dim: int) -> DeterminismResult:
    """`runs`: LayerRun results of the same inputs (conformance.judge.check); each later run against the first."""
    first, differences = runs[0], []
    for other in runs[1:]:
        found = [_first_output_difference(first.out, other.out, row_seq),
                 _first_cache_difference("k_cache", first.k_cache, other.k_cache, head_dim),
                 _first_cache_difference("v_cache", first.v_cache, other.v_cache, head_dim)]
        differences += [d for d in found if d is not None]
    reasons = []
    for d in differences:
        where = (f"row {d['row']} (sequence {d['seq']}), head {d['head']}, dim {d['dim']}" if d["tensor"] == "output"
                 else f"block {d['block']}, offset {d['offset']}, kv head {d['kv_head']}, dim {d['dim']}")
        reasons.append(f"nondeterministic: {d['elements']} {d['tensor']} element(s) differ between runs on the "
                       f"same inputs; first at {where}: {d['first']!r} then {d['second']!r}")
    return DeterminismResult(runs=len(runs), verdict="fail" if differences else "pass", differences=differences,
                             reasons=reasons)
