"""The Outcome of one judged case: every standard's metrics, the verdict they add up to, its record.

Which checks fail a case is the policy's `Gating`; what does not gate is still computed and recorded.
How an Outcome reads to a person is conformance.judge.explain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conformance.cases.case import Case
from conformance.judge.ascend_standard import AscendMetrics
from conformance.judge.determinism import DeterminismResult
from conformance.judge.explain import explain
from conformance.judge.layer_run import LayerRun
from conformance.judge.policy import Gating
from conformance.judge.tolerance import CacheMetrics, OutputMetrics


@dataclass
class Outcome:
    case: Case
    backend: str
    output: OutputMetrics
    caches: list[CacheMetrics]
    hazards: list[dict]  # each with `acknowledgement` and `accepted` (conformance.judge.acknowledgements)
    notes: list[dict] = field(default_factory=list)
    layer: LayerRun | None = field(default=None, repr=False)  # raw results, for metamorphic checks
    ascend: AscendMetrics | None = None  # Ascend's benchmark standard on the same output
    determinism: DeterminismResult | None = None  # a second run on the same inputs
    gating: Gating = Gating()

    @property
    def failed_checks(self) -> list[str]:
        """What failed among the checks that gate: "output" (the dual reference), "ascend" (the
        benchmark standard), a cache name, "hazards" (an unacknowledged hazard), "determinism"."""
        failed = [] if self.output.passed or not self.gating.gates("dual") else ["output"]
        if self.ascend is not None and not self.ascend.passed and self.gating.gates("ascend"):
            failed.append("ascend")
        failed += [c.name for c in self.caches if not c.passed]
        failed += ["hazards"] if any(not h["accepted"] for h in self.hazards) else []
        failed += ["refused"] if self.refusals else []
        if self.determinism is not None and not self.determinism.passed and self.gating.gates("determinism"):
            failed.append("determinism")
        return failed

    @property
    def refusals(self) -> list[str]:
        """Calls an emulated op refused that the layer caught: a kernel would have refused them too."""
        return self.layer.refusals if self.layer is not None else []

    @property
    def verdicts(self) -> dict:
        """Every standard's own verdict, gating or not ("not run" when it was not computed)."""
        return {"dual": self.output.verdict,
                "ascend": self.ascend.verdict if self.ascend is not None else "not run",
                "determinism": self.determinism.verdict if self.determinism is not None else "not run"}

    @property
    def passed(self) -> bool:
        return not self.failed_checks

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def ratio(self) -> float:
        """The case's worst error/tolerance ratio over the gating standards (the dual reference's max and
        mean rules, the Ascend standard's worst metric / limit): <= 1 passes."""
        ratios = [max(self.output.ratio, self.output.mean_ratio)] if self.gating.gates("dual") else []
        if self.ascend is not None and self.gating.gates("ascend") and self.ascend.verdict != "not applicable":
            ratios.append(self.ascend.margin)
        return max(ratios) if ratios else max(self.output.ratio, self.output.mean_ratio)  # nothing else computed

    def record(self) -> dict:
        case = self.case
        return {
            "case_id": case.case_id, "phase": case.phase, "dtype": case.dtype, "backend": self.backend,
            "shape": {"num_heads": case.num_heads, "num_kv_heads": case.num_kv_heads,
                      "head_dim": case.head_dim, "block_size": case.block_size},
            "lengths": {"batch": case.batch, "min": min(case.seq_lens), "max": max(case.seq_lens),
                        "total": sum(case.seq_lens)},
            "ratio": self.ratio, "bound": self.output.bound, "verdict": self.verdict,
            "failed_checks": self.failed_checks, "verdicts": self.verdicts,
            "ascend_ratio": self.ascend.margin if self.ascend is not None else None,
            "output": self.output.as_dict(), "caches": [c.as_dict() for c in self.caches],
            "ascend": self.ascend.as_dict() if self.ascend is not None else None,
            "determinism": self.determinism.as_dict() if self.determinism is not None else None,
            "hazards": self.hazards, "notes": self.notes, "case": case.to_dict(),
            **({"refusals": self.refusals} if self.refusals else {}),
            **({"graph": self.layer.graph} if self.layer is not None and self.layer.graph else {}),
        }

    def explain(self, replay_file: Path | None = None) -> str:
        """A failure that reads well (conformance.judge.explain)."""
        return explain(self, replay_file)
