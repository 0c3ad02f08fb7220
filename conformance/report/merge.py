"""Merge reports of several workers or machines into one (`npu-conformance report merge`, and what a
fuzz session does with its workers' reports).

Records and collection errors are concatenated; a test that ran in several reports keeps its worst
outcome, summed time and cases; counted-only cases (`tally`) are summed per bucket; fuzz sections are
merged: cases and times summed, properties by test id, failures by signature (counts summed; the entry
of the smallest case kept, see case_size), timelines on one time axis (each worker's cumulative counts
summed, worst ratios the maximum). The result is rebuilt with build_report, so totals, summaries and the
verdict are those of the union.

A fuzz session's merge (`dedupe=True`) also counts a case judged by several workers once: workers share
one example database, so one worker replays what another found. Records are deduplicated by case id,
keeping the worst judgment (worse_judgment: the rule a worker applies to its own repeats); each failure
counts the failing records that name its signature; `fuzz.cases` and the timeline's last point are the
deduplicated totals, so the console, the verdict, the summary table and the timeline give one number of
cases and one worst ratio per phase x dtype. Points before the last are the workers' own counts summed
(a case two workers judged counts twice there), and passing cases only counted (`tally`) carry no id,
so two workers' counted-only passes are both counted.
"""

from __future__ import annotations

import bisect
from collections import Counter

from conformance.formatting import num, rank
from conformance.report.judged_under import judged_under
from conformance.report.model import build_report, tally_records

#: Worst first: the merged outcome of a test run in several places.
_OUTCOME_ORDER = ("failed", "error", "xpassed", "passed", "xfailed", "skipped", None)
MAX_TIMELINE_POINTS = 240


#: How bad a verdict is, for keeping the worst judgment of a case judged more than once.
_VERDICT_BADNESS = {"pass": 0, "fail": 1, "error": 2}


def judgment_rank(record: dict) -> tuple:
    """How bad one judgment of a case is: an error over a failure over a pass, then the higher ratio
    (NaN the highest, a missing ratio the lowest)."""
    return _VERDICT_BADNESS.get(record.get("verdict"), 2), rank(record.get("ratio"))


def worse_judgment(new: dict, old: dict) -> bool:
    """Whether `new` replaces `old` as the record of their (same) case: only a strictly worse judgment
    does, so on a tie the first judgment stays. A deterministic layer judges a case the same way every
    time; keeping the worst means a nondeterministic one cannot hide a failure behind a later pass."""
    return judgment_rank(new) > judgment_rank(old)


def case_size(record: dict) -> tuple[float, float]:
    """How small a record's case is, smallest first: the fewest tokens (the sum of its sequence lengths,
    the keys its attention reads; for a graph session, the step's), then the smallest batch (its number
    of sequences). A failure's replay names the smallest case of its signature: the one to debug."""
    lens = (record.get("case") or {}).get("seq_lens") or ()
    if lens:
        return float(sum(lens)), float(len(lens))
    lengths = record.get("lengths") or {}
    if lengths.get("total") is not None:
        return float(lengths["total"]), float(lengths.get("batch") or 0)
    return float("inf"), float("inf")  # nothing says how large it is: never preferred


def dedupe_records(records: list[dict]) -> list[dict]:
    """One record per case id, in the order each case was first seen, holding its worst judgment."""
    by_id: dict[str, dict] = {}
    for record in records:
        old = by_id.get(record["case_id"])
        if old is None or worse_judgment(record, old):
            by_id[record["case_id"]] = record  # a replaced key keeps its place
    return list(by_id.values())


def _failure_order(entry: dict) -> tuple:
    """Which entry of a signature names its case: the smallest case (entries carry `size`), then the
    earliest; an entry without a size (a crash, a failed test, an older report) after every sized one."""
    size = entry.get("size")
    first = num(entry.get("first_seen_s")) or 0.0
    if size:
        return 0, num(size.get("tokens")), num(size.get("batch")), first
    return 1, 0.0, 0.0, first


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
                # a bucket whose cases have no ratio (errors only) is there, with null
                if bucket not in point["worst"] or rank(ratio) > rank(point["worst"][bucket]):
                    point["worst"][bucket] = ratio
        out.append(point)
    return out


def bucket_worsts(records: list[dict]) -> dict[str, object]:
    """The worst ratio per "phase/dtype" over `records`, every bucket with a record present (null when
    none of its records has a ratio: errors only), as a timeline point holds it."""
    worst: dict[str, object] = {}
    for r in records:
        bucket = f"{r['phase']}/{r['dtype']}"
        if bucket not in worst or rank(r.get("ratio")) > rank(worst[bucket]):
            worst[bucket] = r.get("ratio")
    return worst


def merge_fuzz(sections: list[dict], records: list[dict] | None = None) -> dict | None:
    """The merged `fuzz` section; `records` (the merged, deduplicated records of a fuzz session) make
    each failure's count the number of failing records that name its signature."""
    if not sections:
        return None
    props: dict[str, dict] = {}
    failures: dict[str, dict] = {}
    for section in sections:
        for p in section.get("properties") or []:
            entry = props.setdefault(p["test_id"], {"test_id": p["test_id"], "cases": 0, "judgments": 0,
                                                    "seconds": 0.0, "slices": 0, "failures": 0, "signatures": [],
                                                    "examples_requested": 0, "work_s": 0.0})
            for field in ("cases", "seconds", "slices", "failures", "examples_requested", "work_s"):
                entry[field] += num(p.get(field) or 0)
            entry["judgments"] += int(p.get("judgments", p.get("cases")) or 0)  # older reports: one per case
            entry["signatures"] += [s for s in p.get("signatures") or [] if s not in entry["signatures"]]
        for f in section.get("failures") or []:
            entry = failures.get(f["signature"])
            if entry is None:
                failures[f["signature"]] = dict(f)
            else:
                entry["count"] += f["count"]
                first = min(num(f["first_seen_s"]), num(entry["first_seen_s"]))
                if _failure_order(f) < _failure_order(entry):  # its case is the smaller one: its replay
                    entry.update({k: v for k, v in f.items() if k != "count"})
                entry["first_seen_s"] = first
    if records is not None:
        counts = Counter(r["signature"] for r in records if r["verdict"] != "pass" and r.get("signature"))
        for signature, entry in list(failures.items()):
            if signature in counts:
                entry["count"] = counts[signature]
            elif entry.get("size"):  # its only records were judged worse elsewhere, under another signature
                del failures[signature]
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
        "judgments": sum(s.get("judgments", s.get("cases", 0)) for s in sections),
        "slices": sum(s.get("slices", 0) for s in sections),
        **{k: round(sum(num(s.get(k) or 0) for s in sections), 3)
           for k in ("time_in_kernels_and_reference_s", "time_in_layer_s", "time_in_reference_s", "startup_s",
                     "loop_s")},
        "properties": sorted(props.values(), key=lambda p: p["test_id"]),
        "failures": sorted(failures.values(), key=lambda f: num(f["first_seen_s"])),
        "timeline": merge_timelines([s.get("timeline") or [] for s in sections]),
    }


def _settle_fuzz(fuzz: dict, records: list[dict], tally: list[dict]) -> list[dict]:
    """A deduplicated merge: each signature's records name only its chosen case file (the others' are
    nulled, in copies), `fuzz.cases` is the merged total, and the timeline's last point holds the merged
    totals and worst ratios (what the summary table shows). Returns the records."""
    chosen = {f["signature"]: f.get("case_file") for f in fuzz["failures"]}
    out = []
    for r in records:
        if r.get("case_file") and r.get("signature") and r["case_file"] != chosen.get(r["signature"]):
            r = dict(r, case_file=None)
        out.append(r)
    total = len(out) + sum(t["cases"] for t in tally)
    fuzz["cases"] = total
    timeline = fuzz["timeline"]
    if timeline:
        failures = sum(f["count"] for f in fuzz["failures"])
        for point in timeline:
            point.update(cases=min(point["cases"], total), failures=min(point.get("failures", 0), failures))
        timeline[-1].update(cases=total, failures=failures, worst=bucket_worsts(out))
    return out


def merge_reports(reports: list[dict], *, sources: list[str] | None = None, complete: bool | None = None,
                  incomplete_reason: str | None = None, extra_records: list[dict] | None = None,
                  dedupe: bool = False) -> dict:
    """One report from `reports` (JSON form). `complete` overrides "every input is complete" (a fuzz
    session decides for itself); `extra_records` are added (a crashed worker's case); `dedupe` counts a
    case (by case id) once, with its worst judgment (a fuzz session's workers, see the module's doc). A
    ledger entry that matched nothing is "unused", never "stale": a report does not say whether it was a
    full run."""
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
    if dedupe:
        records = dedupe_records(records)
    if complete is None:
        complete = all(r["complete"] for r in reports)
        reasons = sorted({r["incomplete_reason"] for r in reports if not r["complete"] and r["incomplete_reason"]})
        incomplete_reason = incomplete_reason or ("; ".join(reasons) or None)
    collected = [r["totals"]["tests"].get("collected") for r in reports]
    ledger = [{k: v for k, v in a.items() if k not in ("matched", "status")}
              for a in first.get("acknowledgements") or []]
    tally = merge_tally(reports)
    fuzz = merge_fuzz([r["fuzz"] for r in reports if r.get("fuzz")], records if dedupe else None)
    if fuzz is not None and dedupe:
        records = _settle_fuzz(fuzz, records, tally)
    return build_report(run, records, merge_tests(reports), complete=complete, incomplete_reason=incomplete_reason,
                        tests_collected=max((c for c in collected if c is not None), default=None),
                        collection_errors=[e for r in reports for e in r["collection_errors"]],
                        acknowledgements=ledger, full_run=False, tally=tally or None, fuzz=fuzz)
