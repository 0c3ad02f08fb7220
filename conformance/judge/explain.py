"""How a judged case reads to a person: the case, the worst spot with values, every standard's numbers,
the cache, the hazards, and the replay command (what a failing property raises, and `replay` prints)."""

from __future__ import annotations

from pathlib import Path

from conformance.formatting import fmt_ratio


def explain(outcome, replay_file: Path | None = None) -> str:
        """A failure that reads well: the case, the worst spot with values, the numbers, hazards, replay."""
        o = outcome.output
        lines = [f"{outcome.case.summary()}  (case {outcome.case.case_id}, backend {outcome.backend})",
                 f"  output, dual reference{'' if outcome.gating.gates('dual') else ' (reported, not gating)'}: "
                 f"{o.verdict.upper()}  max err {o.max_abs_err:.3e} / bound {o.bound:.3e} "
                 f"(ratio {fmt_ratio(o.ratio)}; baseline max {o.baseline_max_abs_err:.3e}; the {o.bound_term} term "
                 f"binds), mean err {o.mean_abs_err:.3e} / {o.mean_bound:.3e} (ratio {fmt_ratio(o.mean_ratio)})"]
        lines += [f"    - {reason}" for reason in o.reasons]
        if o.worst_row >= 0:
            lines.append(f"    worst: sequence {o.worst_seq}, head {o.worst_head} (row {o.worst_row}); "
                         f"per-sequence ratios [{', '.join(fmt_ratio(r) for r in o.per_seq_ratio)}]")
        for w in o.worst_values[:3]:
            lines.append(f"      row {w['row']} head {w['head']} dim {w['dim']}: out {w['out']:.6g}  golden "
                         f"{w['golden']:.6g}  baseline {w['baseline']:.6g}")
        if outcome.ascend is not None:
            a = outcome.ascend
            gate = "" if outcome.gating.gates("ascend") else " (reported, not gating)"
            lines.append(f"  output, Ascend benchmark standard {a.level}{gate}: {a.verdict.upper()}  "
                         + ", ".join(f"{m} {fmt_ratio(a.ratios[m])}/{a.limits[m]:g}" for m in a.ratios))
            lines += [f"    - {reason}" for reason in a.reasons]
        if outcome.determinism is not None and not outcome.determinism.passed:
            gate = "" if outcome.gating.gates("determinism") else " (reported, not gating)"
            lines.append(f"  determinism over {outcome.determinism.runs} runs{gate}: FAIL")
            lines += [f"    - {reason}" for reason in outcome.determinism.reasons]
        for c in outcome.caches:
            lines.append(f"  {c.name}: {c.verdict.upper()} ({c.mismatched_slots}/{c.slots} slots differ)")
            lines += [f"    - {reason}" for reason in c.reasons]
        for h in outcome.hazards:
            if h["accepted"]:
                status = f"acknowledged ({h['acknowledgement']})"
            elif h["acknowledgement"]:
                status = f"FAILS: --strict-contracts ignores its acknowledgement {h['acknowledgement']}"
            else:
                status = "FAILS: not acknowledged"
            lines.append(f"  hazard [{h['code']}] {status}: {h['op']} {h['argument']}: {h['rule']}")
            if h.get("detail"):
                lines.append(f"    ({h['detail']})")
        if replay_file is not None:
            lines.append(f"  replay: npu-conformance replay {replay_file}   (the file holds the settings that judged it)")
        return "\n".join(lines)
