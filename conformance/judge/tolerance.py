"""The comparisons that judge a layer's results under the tolerance policy (conformance.judge.policy).

Per output (`compare_output`), against a float64 golden and a same-dtype baseline: the max and mean
rules of the policy, every compared value finite, rows with no visible key exactly 0; the worst spot
localised per sequence and head. Per cache (`compare_cache`): bit-exact over the whole cache.

Ascend's benchmark standard (conformance.judge.ascend_standard) is computed beside it for every
output; the policy's `Gating` says which standards fail a case.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch

from conformance.judge.bits import as_bits
from conformance.judge.policy import TolerancePolicy, dtype_name

#: The policy `compare_output` judges under when none is given (frozen, so one instance serves every call).
_DEFAULT_POLICY = TolerancePolicy()


class _Judged:
    """A verdict ("pass" / "fail") with its reasons, ready for JSON."""

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class OutputMetrics(_Judged):
    """What one output comparison found. Plain numbers and lists, ready for JSON."""

    dtype: str
    rows: int
    max_abs_err: float
    mean_abs_err: float
    baseline_max_abs_err: float
    baseline_mean_abs_err: float
    golden_absmax: float
    bound: float
    mean_bound: float
    ratio: float  # max_abs_err / bound: <= 1 passes
    mean_ratio: float
    bound_term: str  # the term of the max bound that binds: "k x baseline", "ulps" or "floor"
    worst_row: int
    worst_seq: int
    worst_head: int
    per_seq_ratio: list[float]
    worst_values: list[dict]
    nonfinite_rows: list[int]
    nonzero_empty_rows: list[int]
    policy: dict
    verdict: str
    reasons: list[str]


def compare_output(
    out: torch.Tensor,
    golden: torch.Tensor,
    baseline: torch.Tensor,
    *,
    dtype: torch.dtype,
    row_seq: list[int],
    empty_rows: list[int] = (),
    policy: TolerancePolicy = _DEFAULT_POLICY,
) -> OutputMetrics:
    """Compare `out` [R, H, D] with golden/baseline [R, H, D]. `row_seq[r]` is row r's sequence;
    `empty_rows` are rows that see no key (must be exactly 0; excluded from the error statistics)."""
    if out.shape != golden.shape or baseline.shape != golden.shape:
        raise ValueError(f"out {tuple(out.shape)}, golden {tuple(golden.shape)} and baseline "
                         f"{tuple(baseline.shape)} must have the same shape")
    if out.ndim != 3 or len(row_seq) != out.shape[0]:
        raise ValueError(f"expected [rows, heads, head_dim] with one row_seq entry per row, got "
                         f"{tuple(out.shape)} and {len(row_seq)} entries")
    out64 = out.detach().to("cpu", torch.float64)
    golden64 = golden.detach().to("cpu", torch.float64)
    base64 = baseline.detach().to("cpu", torch.float64)
    reasons: list[str] = []

    nonfinite_rows = (~torch.isfinite(out64)).flatten(1).any(1).nonzero().flatten().tolist()
    if nonfinite_rows:
        reasons.append(f"{len(nonfinite_rows)} row(s) hold NaN/Inf (first: row {nonfinite_rows[0]})")
    empty = torch.zeros(out.shape[0], dtype=torch.bool)
    empty[list(empty_rows)] = True
    nonzero_empty = (empty & (out64.flatten(1) != 0).any(1)).nonzero().flatten().tolist()
    if nonzero_empty:
        reasons.append(f"{len(nonzero_empty)} row(s) with no visible key are not 0 (first: row {nonzero_empty[0]})")

    keep = ~empty
    err = (out64 - golden64).abs()
    err = torch.where(torch.isfinite(err), err, torch.full_like(err, math.inf))
    base_err = (base64 - golden64).abs()
    kept_err, kept_base = err[keep], base_err[keep]
    golden_absmax = float(golden64[keep].abs().max()) if kept_err.numel() else 0.0
    max_err = float(kept_err.max()) if kept_err.numel() else 0.0
    mean_err = float(kept_err.mean()) if kept_err.numel() else 0.0
    base_max = float(kept_base.max()) if kept_base.numel() else 0.0
    base_mean = float(kept_base.mean()) if kept_base.numel() else 0.0
    bound = policy.max_bound(base_max, golden_absmax, dtype)
    mean_bound = policy.mean_bound(base_mean)
    ratio, mean_ratio = max_err / bound, mean_err / mean_bound
    bound_term = policy.binding_term(base_max, golden_absmax, dtype)
    if ratio > 1:
        reasons.append(f"max error {max_err:.3e} exceeds the bound {bound:.3e} (ratio {ratio:.3f}; the "
                       f"{bound_term} term binds)")
    if mean_ratio > 1:
        reasons.append(f"mean error {mean_err:.3e} exceeds {policy.mean_k:g} x baseline mean "
                       f"{base_mean:.3e} (ratio {mean_ratio:.3f})")

    masked_err = torch.where(keep[:, None, None], err, torch.zeros_like(err))
    worst_row, worst_head, worst_col = _argmax3(masked_err)
    seqs = torch.tensor(row_seq, dtype=torch.long)
    num_seqs = int(seqs.max()) + 1 if len(row_seq) else 0
    row_max = masked_err.flatten(1).max(1).values if out.shape[0] else torch.zeros(0, dtype=torch.float64)
    per_seq = torch.zeros(num_seqs, dtype=torch.float64).scatter_reduce(0, seqs, row_max, "amax")
    per_seq_ratio = [float(x) / bound for x in per_seq]
    worst_values = _worst_values(masked_err, out64, golden64, base64, row_seq, limit=5)

    return OutputMetrics(
        dtype=dtype_name(dtype), rows=int(out.shape[0]), max_abs_err=max_err, mean_abs_err=mean_err,
        baseline_max_abs_err=base_max, baseline_mean_abs_err=base_mean, golden_absmax=golden_absmax,
        bound=bound, mean_bound=mean_bound, ratio=ratio, mean_ratio=mean_ratio, bound_term=bound_term,
        worst_row=worst_row, worst_seq=row_seq[worst_row] if len(row_seq) else -1, worst_head=worst_head,
        per_seq_ratio=per_seq_ratio, worst_values=worst_values, nonfinite_rows=nonfinite_rows,
        nonzero_empty_rows=nonzero_empty,
        policy={f.name: getattr(policy, f.name) for f in fields(policy)},
        verdict="fail" if reasons else "pass", reasons=reasons,
    )


def _argmax3(err: torch.Tensor) -> tuple[int, int, int]:
    if err.numel() == 0:
        return -1, -1, -1
    flat = int(torch.argmax(torch.nan_to_num(err, nan=math.inf)))
    heads, dim = err.shape[1], err.shape[2]
    return flat // (heads * dim), (flat // dim) % heads, flat % dim


def _worst_values(err, out, golden, baseline, row_seq, limit) -> list[dict]:
    flat = torch.nan_to_num(err, nan=math.inf).flatten()
    top = torch.topk(flat, min(limit, flat.numel())).indices.tolist()
    heads, dim = err.shape[1], err.shape[2]
    rows = []
    for index in top:
        r, h, d = index // (heads * dim), (index // dim) % heads, index % dim
        rows.append({"row": r, "seq": row_seq[r], "head": h, "dim": d, "out": float(out[r, h, d]),
                     "golden": float(golden[r, h, d]), "baseline": float(baseline[r, h, d]),
                     "abs_err": float(err[r, h, d])})
    return rows


@dataclass
class CacheMetrics(_Judged):
    name: str
    slots: int
    mismatched_slots: int
    first_mismatches: list[dict]
    verdict: str
    reasons: list[str]


def compare_cache(name: str, actual: torch.Tensor, expected: torch.Tensor, limit: int = 5) -> CacheMetrics:
    """Bit-exact over the whole cache [num_blocks, block_size, ...]: written slots hold the source rows,
    every other slot is unchanged (NaN poison included: bits are compared, not values)."""
    if actual.shape != expected.shape or actual.dtype != expected.dtype:
        raise ValueError(f"{name}: actual {tuple(actual.shape)} {actual.dtype} vs expected "
                         f"{tuple(expected.shape)} {expected.dtype}")
    a = as_bits(actual.detach().to("cpu")).reshape(actual.shape[0], actual.shape[1], -1)
    e = as_bits(expected.detach().to("cpu")).reshape(a.shape)
    bad = (a != e).any(-1)
    where = bad.nonzero().tolist()
    first = [{"block": b, "offset": o,
              "actual_first": float(actual[b, o].flatten()[0]), "expected_first": float(expected[b, o].flatten()[0])}
             for b, o in where[:limit]]
    reasons = [f"{len(where)} slot(s) differ from the expected cache (first: block {where[0][0]}, "
               f"offset {where[0][1]})"] if where else []
    return CacheMetrics(name=name, slots=int(bad.numel()), mismatched_slots=len(where), first_mismatches=first,
                        verdict="fail" if where else "pass", reasons=reasons)
