"""The tolerance policy: a dual-reference rule computed on CPU, plus bit-exact cache checks.

Per output, against a float64 golden and a baseline (the reference in the kernel dtype with a
different operation order), both from the same dtype-rounded inputs (FlashAttention's rule, FA3's
mean companion, the ULP floor of flash-attention-npu's compare.py):

    pass  iff  max|out - golden|  <= k * max|baseline - golden| + ulps * ulp(max|golden|), floor 1e-5
                                     (k = 2; 16 for float32, where kernel and baseline are equally precise)
          and  mean|out - golden| <= mean_k * mean|baseline - golden|  (same floor)
          and  every compared value is finite, and rows with no visible key are exactly 0.

Ascend's benchmark standard (conformance.ascend_standard) is computed beside it for every output;
`Gating` (the policy file's [gating] table) says which of the two standards, and whether the
determinism check, fail a case.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from conformance.ascend_standard import DEFAULT_LEVEL, LEVELS
from conformance.names import DTYPE_NAMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

#: Which standards gate a case: the dual reference, Ascend's benchmark standard, or both.
STANDARDS = ("dual", "ascend", "both")
DETERMINISM = ("gate", "report")


@dataclass(frozen=True)
class Gating:
    """What fails a case. Whatever does not gate is still computed and reported on every record."""

    standards: str = "dual"
    determinism: str = "gate"  # two runs on the same inputs must give the same bits
    ascend_level: str = DEFAULT_LEVEL  # msprobe's level for attention (npu_fusion_attention) and scatter_

    def gates(self, standard: str) -> bool:
        """Whether `standard` ("dual", "ascend" or "determinism") can fail a case."""
        if standard == "determinism":
            return self.determinism == "gate"
        return self.standards in (standard, "both")

    @classmethod
    def from_table(cls, table: dict, where: str) -> "Gating":
        if not isinstance(table, dict):
            raise PolicyFileError(f"{where}: must be a table of standards, determinism, ascend_level")
        choices = {"standards": STANDARDS, "determinism": DETERMINISM, "ascend_level": tuple(sorted(LEVELS))}
        unknown = sorted(set(table) - set(choices))
        if unknown:
            raise PolicyFileError(f"{where}: unknown keys {unknown}; allowed: {list(choices)}")
        for key, value in table.items():
            if value not in choices[key]:
                raise PolicyFileError(f"{where}.{key}: must be one of {list(choices[key])}, got {value!r}")
        return cls(**table)


@dataclass(frozen=True)
class TolerancePolicy:
    k: float = 2.0  # multiple of the baseline's max error
    mean_k: float = 1.5  # multiple of the baseline's mean error
    ulps: float = 2.0  # ULPs of the kernel dtype at max|golden| added to the bound
    floor: float = 1e-5  # absolute floor of both bounds
    source: str = "default"  # where the numbers came from (a file path or "default")

    def max_bound(self, baseline_max_err: float, golden_absmax: float, dtype: torch.dtype) -> float:
        return max(self.k * baseline_max_err + self.ulps * ulp(golden_absmax, dtype), self.floor)

    def binding_term(self, baseline_max_err: float, golden_absmax: float, dtype: torch.dtype) -> str:
        """Which term of the max bound is the largest: "k x baseline", "ulps" or "floor". A policy whose
        k term never binds (e.g. k = 0.01 on bf16, where 2 ulp dominates) tightens nothing."""
        terms = {"k x baseline": self.k * baseline_max_err, "ulps": self.ulps * ulp(golden_absmax, dtype)}
        if self.floor >= sum(terms.values()):
            return "floor"
        return max(terms, key=terms.get)

    def mean_bound(self, baseline_mean_err: float) -> float:
        return max(self.mean_k * baseline_mean_err, self.floor)


_TUNABLE = ("k", "mean_k", "ulps", "floor")
#: Above these a policy cannot fail a real output (a max bound of 1e300, a floor above every bf16
#: error on O(1) attention outputs): such a policy is refused, not applied silently.
POLICY_LIMITS = {"k": 100.0, "mean_k": 100.0, "ulps": 1024.0, "floor": 1e-2}


class PolicyFileError(ValueError):
    """A tolerance policy file that cannot be used."""


def _default_per_dtype() -> dict[str, "TolerancePolicy"]:
    # k = 2 (FlashAttention) presumes a kernel that accumulates in higher precision than its
    # low-precision baseline: on bf16/fp16 a correct kernel stays at or under 1.0x its baseline's error
    # (bench/tolerance_tail.py). A float32 kernel (an emulator-only extension) is exactly as precise as
    # its float32 baseline, and the ratio of two maxima of like rounding errors has a heavy tail: over
    # ~3400 correct float32 cases (three runs of bench/tolerance_tail.py) max-error ratios had p99
    # 2.4-2.9 and a maximum of 7.09, mean-error ratios a maximum of 2.65. So float32 gets k = 16 and
    # mean_k = 4 (2.3x and 1.5x above the worst seen); a planted bug's error is orders of magnitude above.
    return {"float32": TolerancePolicy(k=16.0, mean_k=4.0,
                                       source="default (float32: kernel as precise as its baseline)")}


@dataclass(frozen=True)
class PolicySet:
    """A default policy plus per-dtype overrides, e.g. loaded for one hardware/CANN pair."""

    default: TolerancePolicy = TolerancePolicy()
    per_dtype: dict[str, TolerancePolicy] = field(default_factory=_default_per_dtype)
    hardware: dict[str, str] = field(default_factory=dict)
    gating: Gating = Gating()

    def for_dtype(self, dtype: torch.dtype) -> TolerancePolicy:
        return self.per_dtype.get(dtype_name(dtype), self.default)

    def as_dict(self) -> dict:
        """Plain data (report.json's run.tolerance_policy, case files); from_dict() reads it back."""
        return {"source": self.default.source, "default": asdict(self.default),
                "per_dtype": {name: asdict(p) for name, p in sorted(self.per_dtype.items())},
                "hardware": dict(self.hardware), "gating": asdict(self.gating)}

    @classmethod
    def from_dict(cls, data: dict, where: str = "policy") -> "PolicySet":
        """The inverse of as_dict(), every value checked as a policy file's would be."""
        if not isinstance(data, dict) or not isinstance(data.get("default"), dict):
            raise PolicyFileError(f"{where}: must hold a 'default' policy table")
        def policy(table: dict, at: str) -> TolerancePolicy:
            if not isinstance(table, dict):
                raise PolicyFileError(f"{at}: must be a table of {list(_TUNABLE)}")
            table = dict(table)
            source = table.pop("source", "default")
            return replace(TolerancePolicy(), source=str(source), **_policy_values(table, at))
        per_dtype = data.get("per_dtype", {})
        if not isinstance(per_dtype, dict) or not set(per_dtype) <= set(DTYPE_NAMES):
            raise PolicyFileError(f"{where}.per_dtype: keys must be among {list(DTYPE_NAMES)}")
        hardware = data.get("hardware", {})
        if not isinstance(hardware, dict):
            raise PolicyFileError(f"{where}.hardware: must be a table of strings")
        return cls(policy(data["default"], f"{where}.default"),
                   {name: policy(t, f"{where}.per_dtype.{name}") for name, t in per_dtype.items()},
                   {str(k): str(v) for k, v in hardware.items()},
                   Gating.from_table(data.get("gating", {}), f"{where}.gating"))


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise PolicyFileError(f"{where}: '{key}' must be a table ([{key}]), got {type(value).__name__} {value!r}")
    return value


def _policy_values(table: dict, where: str) -> dict:
    unknown = sorted(set(table) - set(_TUNABLE))
    if unknown:
        raise PolicyFileError(f"{where}: unknown keys {unknown}; allowed: {list(_TUNABLE)}")
    for key, value in table.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            raise PolicyFileError(f"{where}.{key}: must be a finite number >= 0, got {value!r}")
        if value > POLICY_LIMITS[key]:
            raise PolicyFileError(f"{where}.{key}: {value!r} is above {POLICY_LIMITS[key]:g}, where the policy could "
                                  "no longer fail a wrong output (see POLICY_LIMITS in conformance/tolerance.py)")
    if table.get("k", 1) == 0 and table.get("ulps", 1) == 0 and table.get("floor", 1) == 0:
        raise PolicyFileError(f"{where}: k, ulps and floor are all 0, which no kernel can meet")
    return {key: float(value) for key, value in table.items()}


def load_policy(path: str | Path) -> PolicySet:
    """Read a TOML policy file. Its [policy] replaces the defaults for every dtype (the float32
    default included); [dtype.X] tables override on top::

        [hardware]            # informative: what the numbers were measured on
        device = "Ascend 910B3"
        cann = "8.3.RC1"
        [policy]              # overrides of the defaults
        k = 2.5
        [dtype.bfloat16]      # per-dtype overrides on top of [policy]
        k = 3.0
        [gating]              # what fails a case (the rest is reported)
        standards = "both"    # "dual" (default), "ascend" or "both"
        determinism = "gate"  # "gate" (default) or "report"
        ascend_level = "L1"   # msprobe level: L0, L1 (attention, default) or L2
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyFileError(f"--tolerance-policy: no such file {str(path)!r}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise PolicyFileError(f"--tolerance-policy: cannot read {str(path)!r} ({exc.strerror})") from None
    unknown = sorted(set(data) - {"hardware", "policy", "dtype", "gating"})
    if unknown:
        raise PolicyFileError(f"{path}: unknown tables {unknown}; allowed: hardware, policy, dtype, gating")
    base = replace(TolerancePolicy(), source=str(path),
                   **_policy_values(_table(data, "policy", str(path)), f"{path} [policy]"))
    per_dtype = {}
    for name, table in _table(data, "dtype", str(path)).items():
        if name not in DTYPE_NAMES:
            raise PolicyFileError(f"{path} [dtype.{name}]: dtype must be float16, bfloat16 or float32")
        if not isinstance(table, dict):
            raise PolicyFileError(f"{path} [dtype.{name}]: must be a table, got {type(table).__name__} {table!r}")
        per_dtype[name] = replace(base, **_policy_values(table, f"{path} [dtype.{name}]"))
    hardware = {str(k): str(v) for k, v in _table(data, "hardware", str(path)).items()}
    gating = Gating.from_table(_table(data, "gating", str(path)), f"{path} [gating]")
    return PolicySet(base, per_dtype, hardware, gating)


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def ulp(magnitude: float, dtype: torch.dtype) -> float:
    """Spacing of `dtype` at `magnitude` (the gap to the next representable value)."""
    info = torch.finfo(dtype)
    magnitude = max(abs(magnitude), info.tiny)
    return info.eps * 2.0 ** math.floor(math.log2(magnitude))


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
    policy: TolerancePolicy = TolerancePolicy(),
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


_BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def as_bits(x: torch.Tensor) -> torch.Tensor:
    """The raw bit patterns of a float tensor (so NaN == NaN and -0.0 != 0.0)."""
    return x.contiguous().view(_BITS[x.element_size()])


def bits_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(as_bits(a), as_bits(b))


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
