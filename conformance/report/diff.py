"""`npu-conformance diff OLD.json NEW.json`: what got worse between two runs.

A regression is any of:
  - a phase x dtype bucket whose worst error/tolerance ratio grew by more than `threshold` (10 %);
  - a case failing (or erroring) in NEW that was not failing in OLD (same case id), or a test that
    failed in NEW and not in OLD;
  - a hazard kind (op + rule) in NEW that OLD never recorded;
  - a NEW report that is incomplete (it cannot show that nothing regressed).
Ratios from runs with different seeds, profiles or backends are not strictly comparable: the diff
says so, and still reports what it sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from conformance.report.model import bucket_key, fmt_ratio, rank

DEFAULT_THRESHOLD = 0.10


@dataclass
class Diff:
    threshold: float
    buckets: list[dict] = field(default_factory=list)  # every bucket: phase, dtype, old/new worst, growth, grew
    new_failures: list[dict] = field(default_factory=list)  # records failing in NEW, not in OLD
    new_failing_tests: list[dict] = field(default_factory=list)
    new_hazards: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_incomplete: str | None = None

    @property
    def grown(self) -> list[dict]:
        return [b for b in self.buckets if b["grew"]]

    @property
    def regressions(self) -> list[str]:
        out = []
        if self.new_incomplete:
            out.append(f"NEW report is incomplete: {self.new_incomplete}")
        out += [f"{b['phase']}/{b['dtype']}: worst ratio {fmt_ratio(b['old_worst'])} -> {fmt_ratio(b['new_worst'])}"
                for b in self.grown]
        out += [f"new failing case {r['case_id']} ({r['phase']}/{r['dtype']}, {r['verdict']})" for r in self.new_failures]
        out += [f"new failing test {t['test_id']} ({t['outcome']})" for t in self.new_failing_tests]
        out += [f"new hazard {h['op']}: {h['rule']}" for h in self.new_hazards]
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


def diff_reports(old: dict, new: dict, threshold: float = DEFAULT_THRESHOLD) -> Diff:
    d = Diff(threshold=threshold)
    if not new["complete"]:
        d.new_incomplete = new["incomplete_reason"] or "the run did not finish"
    if not old["complete"]:
        d.notes.append(f"OLD report is incomplete ({old['incomplete_reason']}): its numbers cover part of a run")
    for key, label in (("backend", "backend"), ("device", "device")):
        if old["run"].get(key) != new["run"].get(key):
            d.notes.append(f"{label} differs: OLD {old['run'].get(key)!r}, NEW {new['run'].get(key)!r}")
    oh, nh = old["run"].get("hypothesis") or {}, new["run"].get("hypothesis") or {}
    if (oh.get("profile"), oh.get("seed")) != (nh.get("profile"), nh.get("seed")) or oh.get("seed") is None:
        d.notes.append("the runs drew different examples (profile/seed differ or the seed was random): ratio "
                       "changes mix the layer's changes with sampling")

    old_b = {(s["phase"], s["dtype"]): s for s in old["summaries"]}
    new_b = {(s["phase"], s["dtype"]): s for s in new["summaries"]}
    for key in sorted(set(old_b) | set(new_b), key=lambda k: bucket_key(*k)):
        o, n = old_b.get(key), new_b.get(key)
        ow, nw = (o or {}).get("worst_ratio"), (n or {}).get("worst_ratio")
        growth = _growth(ow, nw)
        d.buckets.append({
            "phase": key[0], "dtype": key[1], "old_worst": ow, "new_worst": nw, "growth": growth,
            "grew": growth is not None and growth > threshold,
            "old_cases": (o or {}).get("cases", 0), "new_cases": (n or {}).get("cases", 0),
            "old_bad": (o or {}).get("failed", 0) + (o or {}).get("errors", 0),
            "new_bad": (n or {}).get("failed", 0) + (n or {}).get("errors", 0),
        })

    old_failing = {r["case_id"] for r in old["records"] if r["verdict"] != "pass"}
    seen = set()
    for r in sorted((r for r in new["records"] if r["verdict"] != "pass"), key=lambda r: -rank(r.get("ratio"))):
        if r["case_id"] not in old_failing and r["case_id"] not in seen:
            seen.add(r["case_id"])
            d.new_failures.append(r)
    old_bad_tests = {t["test_id"] for t in old["tests"] if t["outcome"] in ("failed", "error", "xpassed")}
    d.new_failing_tests = [t for t in new["tests"] if t["outcome"] in ("failed", "error", "xpassed")
                           and t["test_id"] not in old_bad_tests]
    old_hazards = {(h["op"], h["rule"]) for h in old["hazards"]}
    d.new_hazards = [h for h in new["hazards"] if (h["op"], h["rule"]) not in old_hazards]
    return d


def render_diff(d: Diff, old_name: str = "OLD", new_name: str = "NEW", console=None) -> None:
    """Print the diff as tables (rich; plain text when not a terminal)."""
    import sys

    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"worst error/tolerance ratio per phase x dtype ({old_name} -> {new_name})",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for name, justify in (("phase", "left"), ("dtype", "left"), ("old worst", "right"), ("new worst", "right"),
                          ("change", "right"), ("old fail", "right"), ("new fail", "right"), ("", "left")):
        table.add_column(name, justify=justify)
    for b in d.buckets:
        g = b["growth"]
        change = "-" if g is None else ("+inf" if g == math.inf else "-inf" if g == -math.inf else f"{g:+.0%}")
        mark = "REGRESSED" if b["grew"] else ("new bucket" if b["old_worst"] is None and b["old_cases"] == 0
                                              else "gone" if b["new_cases"] == 0 else "")
        style = "bold red" if b["grew"] or b["new_bad"] > b["old_bad"] else None
        table.add_row(b["phase"], b["dtype"], fmt_ratio(b["old_worst"]), fmt_ratio(b["new_worst"]), change,
                      str(b["old_bad"]), str(b["new_bad"]), mark, style=style)
    console.print(table)
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
        for name in ("op", "argument", "rule", "count"):
            ht.add_column(name)
        for h in d.new_hazards:
            ht.add_row(h["op"], h["argument"], h["rule"], str(h["count"]))
        console.print(ht)
    for note in d.notes:
        console.print(f"note: {note}")
    if d.regressed:
        console.print(f"REGRESSION: {len(d.regressions)} finding(s): " + "; ".join(d.regressions[:3])
                      + (" ..." if len(d.regressions) > 3 else ""), style="bold red")
    else:
        console.print(f"no regression (threshold {d.threshold:.0%} on worst ratios)", style="bold green")
