"""Merge reports of several workers or machines into one (`npu-conformance report merge`, and what a
fuzz session does with its workers' reports).

Records and collection errors are concatenated; a test that ran in several reports keeps its worst
outcome, summed time and cases; counted-only cases (`tally`) are summed per bucket; fuzz sections are
merged: cases and times summed, properties by test id, failures by signature (counts summed, the
earliest kept), timelines on one time axis (each worker's cumulative counts summed, worst ratios the
maximum). The result is rebuilt with build_report, so totals, summaries and the verdict are those of
the union.
"""

from __future__ import annotations

import bisect

from conformance.report.judged_under import judged_under
from conformance.report.model import build_report, tally_records
from conformance.formatting import num, rank

#: Worst first: the merged outcome of a test run in several places.
_OUTCOME_ORDER = ("failed", "error", "xpassed", "passed", "xfailed", "skipped", None)
MAX_TIMELINE_POINTS = 240


def merge_tests(reports: list[dict]) -> list[dict]:
    merged: dict[str, dict] = {}
    for report in reports:
        for test in report["tests"]:
            entry = merged.get(test["test_id"])
            if entry is None:
                merged[test["test_id"]] = dict(test)
                continue
            entry["duration_s"] = num(entry.get("duration_s") or 0) + num(test.get("duration_s") or 0)
            entry["cases"] = (entry.get("cases") or 0) + (test.get("cases") or 0)
            if _OUTCOME_ORDER.index(test["outcome"]) < _OUTCOME_ORDER.index(entry["outcome"]):
                entry.update(outcome=test["outcome"], reason=test.get("reason"))
    return list(merged.values())


def merge_tally(reports: list[dict]) -> list[dict]:
    rows: dict[tuple, dict] = {}
    for report in reports:
        for row in report.get("tally") or []:
            key = (row["phase"], row["dtype"])
            if key not in rows:
                rows[key] = dict(row)
            else:
                for field, value in row.items():
                    if field not in ("phase", "dtype"):
                        rows[key][field] += value
    return tally_records([], list(rows.values())) if rows else []


def merge_timelines(timelines: list[list[dict]]) -> list[dict]:
    """Cumulative per-worker points -> one cumulative timeline: at each time, the sum of every
    worker's latest cases and failures, and the worst ratio any worker had reached per bucket."""
    times = sorted({p["t"] for line in timelines for p in line})
    if len(times) > MAX_TIMELINE_POINTS:
        step = len(times) / MAX_TIMELINE_POINTS
        times = sorted({times[int(i * step)] for i in range(MAX_TIMELINE_POINTS)} | {times[-1]})
    out = []
    for t in times:
        point = {"t": t, "cases": 0, "failures": 0, "worst": {}}
        for line in timelines:
            i = bisect.bisect_right([p["t"] for p in line], t) - 1
            if i < 0:
                continue
            last = line[i]
            point["cases"] += last["cases"]
            point["failures"] += last.get("failures", 0)
            for bucket, ratio in (last.get("worst") or {}).items():
                if rank(ratio) > rank(point["worst"].get(bucket)):
                    point["worst"][bucket] = ratio
        out.append(point)
    return out


def merge_fuzz(sections: list[dict]) -> dict | None:
    if not sections:
        return None
    props: dict[str, dict] = {}
    failures: dict[str, dict] = {}
    for section in sections:
        for p in section.get("properties") or []:
            entry = props.setdefault(p["test_id"], {"test_id": p["test_id"], "cases": 0, "seconds": 0.0, "slices": 0,
                                                    "failures": 0, "signatures": [], "examples_requested": 0,
                                                    "work_s": 0.0})
            for field in ("cases", "seconds", "slices", "failures", "examples_requested", "work_s"):
                entry[field] += num(p.get(field) or 0)
            entry["signatures"] += [s for s in p.get("signatures") or [] if s not in entry["signatures"]]
        for f in section.get("failures") or []:
            entry = failures.get(f["signature"])
            if entry is None:
                failures[f["signature"]] = dict(f)
            else:
                entry["count"] += f["count"]
                if num(f["first_seen_s"]) < num(entry["first_seen_s"]):
                    entry.update({k: v for k, v in f.items() if k != "count"})
    for entry in props.values():
        entry["cases"] = int(entry["cases"])
        entry["cases_per_s"] = entry["cases"] / entry["seconds"] if entry["seconds"] else 0.0
    degraded = [s["database"]["degraded"] for s in sections if (s.get("database") or {}).get("degraded")]
    first = sections[0]
    return {
        "budget_s": max(num(s["budget_s"]) for s in sections),
        "elapsed_s": max(num(s["elapsed_s"]) for s in sections),
        "stopped": "; ".join(sorted({s["stopped"] for s in sections if s.get("stopped")})) or None,
        "budget_cut": any(s.get("budget_cut") for s in sections),
        "workers": [w for s in sections for w in s.get("workers") or []],
        "database": dict(first.get("database") or {}) | {"degraded": "; ".join(degraded) or None},
        "planted": first.get("planted"),
        "cases": sum(s.get("cases", 0) for s in sections),
        "slices": sum(s.get("slices", 0) for s in sections),
        **{k: round(sum(num(s.get(k) or 0) for s in sections), 3)
           for k in ("time_in_kernels_and_reference_s", "time_in_layer_s", "time_in_reference_s", "startup_s",
                     "loop_s")},
        "properties": sorted(props.values(), key=lambda p: p["test_id"]),
        "failures": sorted(failures.values(), key=lambda f: num(f["first_seen_s"])),
        "timeline": merge_timelines([s.get("timeline") or [] for s in sections]),
    }


def merge_reports(reports: list[dict], *, sources: list[str] | None = None, complete: bool | None = None,
                  incomplete_reason: str | None = None, extra_records: list[dict] | None = None) -> dict:
    """One report from `reports` (JSON form). `complete` overrides "every input is complete" (a fuzz
    session decides for itself); `extra_records` are added (a crashed worker's case). A ledger entry
    that matched nothing is "unused", never "stale": a report does not say whether it was a full run."""
    if not reports:
        raise ValueError("nothing to merge: no reports given")
    first = reports[0]
    run = dict(first["run"]) | {"merged_from": [
        {"source": (sources or [None] * len(reports))[i], "started_at": r["run"].get("started_at"),
         "backend": r["run"].get("backend"), "device": r["run"].get("device"), "complete": r["complete"],
         "judged_under": judged_under(r)}
        for i, r in enumerate(reports)]}
    run["duration_s"] = max(num(r["run"].get("duration_s") or 0) for r in reports)
    records = [rec for r in reports for rec in r["records"]] + list(extra_records or [])
    if complete is None:
        complete = all(r["complete"] for r in reports)
        reasons = sorted({r["incomplete_reason"] for r in reports if not r["complete"] and r["incomplete_reason"]})
        incomplete_reason = incomplete_reason or ("; ".join(reasons) or None)
    collected = [r["totals"]["tests"].get("collected") for r in reports]
    ledger = [{k: v for k, v in a.items() if k not in ("matched", "status")} for a in first.get("acknowledgements") or []]
    fuzz = merge_fuzz([r["fuzz"] for r in reports if r.get("fuzz")])
    return build_report(run, records, merge_tests(reports), complete=complete, incomplete_reason=incomplete_reason,
                        tests_collected=max((c for c in collected if c is not None), default=None),
                        collection_errors=[e for r in reports for e in r["collection_errors"]],
                        acknowledgements=ledger, full_run=False, tally=merge_tally(reports) or None, fuzz=fuzz)
