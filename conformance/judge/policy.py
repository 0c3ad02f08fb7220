"""The tolerance policy: how much error a case may have, per dtype, and which standards gate.

Per output, against a float64 golden and a baseline (the reference in the kernel dtype with a
different operation order), both from the same dtype-rounded inputs (FlashAttention's rule, FA3's
mean companion, the ULP floor of flash-attention-npu's compare.py):

    pass  iff  max|out - golden|  <= k * max|baseline - golden| + ulps * ulp(max|golden|), floor 1e-5
                                     (k = 2; 16 for float32, where kernel and baseline are equally precise)
          and  mean|out - golden| <= mean_k * mean|baseline - golden|  (same floor)

`TolerancePolicy` holds those numbers, `PolicySet` one per dtype (overridable from a TOML file for a
hardware/CANN pair, `load_policy`), and `Gating` (the file's [gating] table) says which of the dual
reference and Ascend's benchmark standard, and whether the determinism check, fail a case. The
comparisons that apply a policy are in conformance.judge.tolerance.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from conformance.judge.ascend_standard import DEFAULT_LEVEL, LEVELS
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
    def from_table(cls, table: dict, where: str) -> Gating:
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


def _default_per_dtype() -> dict[str, TolerancePolicy]:
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
    def from_dict(cls, data: dict, where: str = "policy") -> PolicySet:
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
                                  "no longer fail a wrong output (see POLICY_LIMITS in conformance/judge/policy.py)")
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
