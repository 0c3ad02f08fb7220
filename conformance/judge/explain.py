"""How a judged case reads to a person: the case, the worst spot with values, every standard's numbers,
the cache (each differing slot named by the sequence and token it belongs to), the refusals and hazards,
and the replay command (what a failing property raises, and `replay` prints)."""

from __future__ import annotations

from pathlib import Path

from conformance.formatting import fmt_ratio


def explain(outcome, replay_file: Path | None = None) -> str:
    """A failure that reads well: the case, the worst spot with values, the numbers, hazards, replay."""
    lines = [f"{outcome.case.summary()}  (case {outcome.case.case_id}, backend {outcome.backend})"]
    lines += _output(outcome) + _ascend(outcome) + _determinism(outcome) + _caches(outcome)
    lines += [f"  the kernel refused this call (the layer caught the error and went on): {refusal}"
              for refusal in outcome.refusals]
    lines += _hazards(outcome)
    if replay_file is not None:
        lines.append(f"  replay: npu-conformance replay {replay_file}   (the file holds the settings that judged it)")
    return "\n".join(lines)


def _output(outcome) -> list[str]:
    o = outcome.output
    lines = [f"  output, dual reference{'' if outcome.gating.gates('dual') else ' (reported, not gating)'}: "
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
    return lines


def _ascend(outcome) -> list[str]:
    a = outcome.ascend
    if a is None:
        return []
    gate = "" if outcome.gating.gates("ascend") else " (reported, not gating)"
    return [f"  output, Ascend benchmark standard {a.level}{gate}: {a.verdict.upper()}  "
            + ", ".join(f"{m} {fmt_ratio(a.ratios[m])}/{a.limits[m]:g}" for m in a.ratios)] + \
        [f"    - {reason}" for reason in a.reasons]


def _determinism(outcome) -> list[str]:
    d = outcome.determinism
    if d is None or d.passed:
        return []
    gate = "" if outcome.gating.gates("determinism") else " (reported, not gating)"
    return [f"  determinism over {d.runs} runs{gate}: FAIL"] + [f"    - {reason}" for reason in d.reasons]


def slot_owner(case, block: int, offset: int) -> str:
    """Whose slot (block, offset) is, by the engine's block tables: a sequence's token, or nobody's."""
    for b, (length, blocks) in enumerate(zip(case.seq_lens, case.block_tables)):
        if block in blocks:
            position = blocks.index(block) * case.block_size + offset
            where = "its newest token" if position == length - 1 else (
                f"token {position}" if position < length else f"position {position}, past its {length} tokens")
            return f"sequence {b}, {where}"
    if case.phase == "decode_graph" and block == case.dummy_block:
        return "the graph-padding dummy block"
    return "a block no sequence holds"


def _caches(outcome) -> list[str]:
    lines = []
    for c in outcome.caches:
        lines.append(f"  {c.name}: {c.verdict.upper()} ({c.mismatched_slots}/{c.slots} slots differ)")
        lines += [f"    - {reason}" for reason in c.reasons]
        lines += [f"      block {m['block']} offset {m['offset']} ({slot_owner(outcome.case, m['block'], m['offset'])})"
                  for m in c.first_mismatches[:3]]
    return lines


def _hazards(outcome) -> list[str]:
    lines = []
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
    return lines
