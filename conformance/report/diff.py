"""`npu-conformance diff OLD.json NEW.json`: what got worse between two runs, comparing like with like.

Cases are matched by case id (a case id is the sha1 of the case's data, so equal ids are equal inputs).
A regression is any of:
  - a matched case whose error/tolerance ratio grew by more than `threshold` (10 %), or that passes in
    OLD and fails (or errors) in NEW: the same inputs now give a worse answer;
  - a matched case whose Ascend benchmark-standard margin grew by more than `threshold`, or whose
    Ascend or determinism verdict went from pass to fail, gating or not (a v1 report has neither);
  - a NEW-only failing case in a phase x dtype bucket where OLD had no failure: a failure a different
    sample found where the old sample found none;
  - a test that failed in NEW and not in OLD;
  - an unacknowledged hazard kind (op + code) in NEW that OLD never recorded;
  - a NEW report that is incomplete (it cannot show that nothing regressed).
The worst ratio per bucket is shown for both runs but never gates on its own: when the runs drew
different cases (another seed, a random seed, another profile, a different worker split), two
all-passing samples of the same code have different worst ratios, and only the rules above, which
compare the same inputs or verdicts, say anything about the code. The diff says which case it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from conformance.formatting import fmt_ratio, rank
from conformance.report.model import bucket_key

DEFAULT_THRESHOLD = 0.10


@dataclass
class Diff:
    threshold: float
    buckets: list[dict] = field(default_factory=list)  # every bucket: phase, dtype, old/new worst, growth (shown)
    matched: int = 0  # cases present in both runs
    old_only: int = 0
    new_only: int = 0
    grown_cases: list[dict] = field(default_factory=list)  # matched cases whose ratio grew past the threshold
    grown_ascend: list[dict] = field(default_factory=list)  # ... whose Ascend margin grew past the threshold
    new_standard_failures: list[dict] = field(default_factory=list)  # ... whose Ascend/determinism verdict broke
    new_failures: list[dict] = field(default_factory=list)  # NEW failing records that count (see module doc)
    new_failing_tests: list[dict] = field(default_factory=list)
    new_hazards: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_incomplete: str | None = None

    @property
    def same_cases(self) -> bool:
        return self.old_only == 0 and self.new_only == 0

    @property
    def regressions(self) -> list[str]:
        out = []
        if self.new_incomplete:
            out.append(f"NEW report is incomplete: {self.new_incomplete}")
        out += [f"case {c['case_id']} ({c['phase']}/{c['dtype']}): ratio {fmt_ratio(c['old_ratio'])} -> "
                f"{fmt_ratio(c['new_ratio'])}" for c in self.grown_cases]
        out += [f"case {c['case_id']} ({c['phase']}/{c['dtype']}): Ascend margin {fmt_ratio(c['old_ratio'])} -> "
                f"{fmt_ratio(c['new_ratio'])}" for c in self.grown_ascend]
        out += [f"case {c['case_id']} ({c['phase']}/{c['dtype']}): {c['standard']} verdict pass -> fail"
                for c in self.new_standard_failures]
        out += [f"new failing case {r['case_id']} ({r['phase']}/{r['dtype']}, {r['verdict']})"
                for r in self.new_failures]
        out += [f"new failing test {t['test_id']} ({t['outcome']})" for t in self.new_failing_tests]
        out += [f"new hazard {h['op']} [{h.get('code') or '-'}]: {h['rule']}" for h in self.new_hazards]
        return out

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


def _growth(old, new) -> float | None:
    o, n = rank(old), rank(new)
    if old is None or new is None:
        return None
    if o == n:
        return 0.0
    if o <= 0 or not math.isfinite(o):
        return math.inf if n > o else -math.inf
    return (n - o) / o


def _by_case(records: list[dict]) -> dict[str, dict]:
    """One record per case id: the worst (a case judged by several properties keeps its worst record)."""
    out: dict[str, dict] = {}
    for r in records:
        kept = out.get(r["case_id"])
        if kept is None or (r["verdict"] != "pass", rank(r.get("ratio"))) > (kept["verdict"] != "pass",
                                                                             rank(kept.get("ratio"))):
            out[r["case_id"]] = r
    return out


def diff_reports(old: dict, new: dict, threshold: float = DEFAULT_THRESHOLD) -> Diff:
    if threshold < 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    d = Diff(threshold=threshold)
    if not new["complete"]:
        d.new_incomplete = new["incomplete_reason"] or "the run did not finish"
    if not old["complete"]:
        d.notes.append(f"OLD report is incomplete ({old['incomplete_reason']}): its numbers cover part of a run")
    for key, label in (("backend", "backend"), ("device", "device")):
        if old["run"].get(key) != new["run"].get(key):
            d.notes.append(f"{label} differs: OLD {old['run'].get(key)!r}, NEW {new['run'].get(key)!r}")

    old_cases, new_cases = _by_case(old["records"]), _by_case(new["records"])
    common = set(old_cases) & set(new_cases)
    d.matched, d.old_only, d.new_only = len(common), len(set(old_cases) - common), len(set(new_cases) - common)
    if d.same_cases:
        d.notes.append(f"the runs judged the same {d.matched} cases: compared case by case")
    else:
        d.notes.append(f"the runs drew different cases ({d.matched} in both, {d.old_only} only in OLD, {d.new_only} "
                       "only in NEW): matched cases are compared case by case; bucket worst ratios are samples of "
                       "different cases and are shown, not judged")

    for case_id in sorted(common, key=lambda c: -rank(new_cases[c].get("ratio"))):
        o, n = old_cases[case_id], new_cases[case_id]
        if o["verdict"] == "pass" and n["verdict"] != "pass":
            d.new_failures.append(n)
            continue
        for key, grown in (("ratio", d.grown_cases), ("ascend_ratio", d.grown_ascend)):
            growth = _growth(o.get(key), n.get(key))
            if growth is not None and growth > threshold:
                grown.append({"case_id": case_id, "phase": n["phase"], "dtype": n["dtype"],
                              "old_ratio": o.get(key), "new_ratio": n.get(key), "growth": growth})
        for standard in ("ascend", "determinism"):
            if (o.get("verdicts") or {}).get(standard) == "pass" and (n.get("verdicts") or {}).get(standard) == "fail":
                d.new_standard_failures.append({"case_id": case_id, "phase": n["phase"], "dtype": n["dtype"],
                                                "standard": standard})
    if old["run"].get("migrated_from") == 1:
        d.notes.append("OLD is a schema-v1 report: it has no Ascend-standard or determinism results to compare")

    old_b = {(s["phase"], s["dtype"]): s for s in old["summaries"]}
    new_b = {(s["phase"], s["dtype"]): s for s in new["summaries"]}
    for key in sorted(set(old_b) | set(new_b), key=lambda k: bucket_key(*k)):
        o, n = old_b.get(key), new_b.get(key)
        ow, nw = (o or {}).get("worst_ratio"), (n or {}).get("worst_ratio")
        d.buckets.append({
            "phase": key[0], "dtype": key[1], "old_worst": ow, "new_worst": nw, "growth": _growth(ow, nw),
            "old_cases": (o or {}).get("cases", 0), "new_cases": (n or {}).get("cases", 0),
            "old_ascend": (o or {}).get("worst_ascend_ratio"), "new_ascend": (n or {}).get("worst_ascend_ratio"),
            "old_bad": (o or {}).get("failed", 0) + (o or {}).get("errors", 0),
            "new_bad": (n or {}).get("failed", 0) + (n or {}).get("errors", 0),
        })
    clean_buckets = {(b["phase"], b["dtype"]) for b in d.buckets if b["old_bad"] == 0}
    for case_id in sorted(set(new_cases) - common, key=lambda c: -rank(new_cases[c].get("ratio"))):
        r = new_cases[case_id]
        if r["verdict"] != "pass" and (r["phase"], r["dtype"]) in clean_buckets:
            d.new_failures.append(r)

    old_bad_tests = {t["test_id"] for t in old["tests"] if t["outcome"] in ("failed", "error", "xpassed")}
    d.new_failing_tests = [t for t in new["tests"] if t["outcome"] in ("failed", "error", "xpassed")
                           and t["test_id"] not in old_bad_tests]
    old_hazards = {(h["op"], h.get("code") or h["rule"]) for h in old["hazards"]}
    d.new_hazards = [h for h in new["hazards"] if not h.get("accepted")
                     and (h["op"], h.get("code") or h["rule"]) not in old_hazards]
    return d


def render_diff(d: Diff, old_name: str = "OLD", new_name: str = "NEW", console=None) -> None:
    """Print the diff as tables (rich; plain text when not a terminal)."""
    import sys

    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console(highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"worst error/tolerance ratio per phase x dtype ({old_name} -> {new_name})",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (("phase", "left"), ("dtype", "left"), ("old worst", "right"), ("new worst", "right"),
                          ("change", "right"), ("old Ascend", "right"), ("new Ascend", "right"), ("old fail", "right"),
                          ("new fail", "right"), ("", "left")):
        table.add_column(name, justify=justify)
    for b in d.buckets:
        g = b["growth"]
        change = "-" if g is None else ("+inf" if g == math.inf else "-inf" if g == -math.inf else f"{g:+.0%}")
        mark = "new bucket" if b["old_worst"] is None and b["old_cases"] == 0 else "gone" if b["new_cases"] == 0 else ""
        style = "bold red" if b["new_bad"] > b["old_bad"] else None
        table.add_row(b["phase"], b["dtype"], fmt_ratio(b["old_worst"]), fmt_ratio(b["new_worst"]), change,
                      fmt_ratio(b["old_ascend"]), fmt_ratio(b["new_ascend"]), str(b["old_bad"]), str(b["new_bad"]),
                      mark, style=style)
    console.print(table)
    for grown, what in ((d.grown_cases, "ratio"), (d.grown_ascend, "margin")):
        if not grown:
            continue
        title = f"matched cases whose {'Ascend margin' if what == 'margin' else 'ratio'} grew past {d.threshold:.0%}"
        gt = Table(title=f"{title} ({len(grown)})", title_justify="left", box=box.SIMPLE_HEAD)
        for name in ("case", "phase/dtype", f"old {what}", f"new {what}", "change"):
            gt.add_column(name)
        for c in grown[:20]:
            g = c["growth"]
            gt.add_row(c["case_id"], f"{c['phase']}/{c['dtype']}", fmt_ratio(c["old_ratio"]), fmt_ratio(c["new_ratio"]),
                       "+inf" if g == math.inf else f"{g:+.0%}")
        console.print(gt)
    for c in d.new_standard_failures[:20]:
        console.print(f"case {c['case_id']} ({c['phase']}/{c['dtype']}): {c['standard']} verdict pass -> fail")
    if d.new_failures:
        ft = Table(title=f"new failing cases ({len(d.new_failures)})", title_justify="left", box=box.SIMPLE_HEAD)
        for name in ("verdict", "phase/dtype", "case", "ratio", "test"):
            ft.add_column(name)
        for r in d.new_failures[:20]:
            ft.add_row(r["verdict"], f"{r['phase']}/{r['dtype']}", r["case_id"], fmt_ratio(r.get("ratio")),
                       r["test_id"].rsplit("::", 1)[-1])
        console.print(ft)
        if len(d.new_failures) > 20:
            console.print(f"... and {len(d.new_failures) - 20} more")
    for t in d.new_failing_tests:
        console.print(f"new failing test: {t['test_id']} ({t['outcome']})")
    if d.new_hazards:
        ht = Table(title=f"new hazards ({len(d.new_hazards)})", title_justify="left", box=box.SIMPLE_HEAD)
        for name in ("op", "code", "argument", "rule", "count"):
            ht.add_column(name)
        for h in d.new_hazards:
            ht.add_row(h["op"], h.get("code") or "-", h["argument"], h["rule"], str(h["count"]))
        console.print(ht)
    for note in d.notes:
        console.print(f"note: {note}")
    if d.regressed:
        console.print(f"REGRESSION: {len(d.regressions)} finding(s): " + "; ".join(d.regressions[:3])
                      + (" ..." if len(d.regressions) > 3 else ""), style="bold red")
    else:
        console.print(f"no regression ({d.matched} matched cases, threshold {d.threshold:.0%} on their ratios)",
                      style="bold green")
