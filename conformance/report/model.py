"""The report as data: per-case records, test outcomes, summaries per phase x dtype, the verdict.

A report is a plain JSON-compatible dict (schema version 2, see docs/report-schema.md). Non-finite
numbers (an output full of NaN has an infinite error ratio) are not valid JSON, so they are written
as the strings "inf", "-inf" and "nan"; `num()` reads either form back as a float. `build_report`
returns the report already in that JSON form, so a report built in memory and one loaded from disk
look the same to every renderer.
"""

from __future__ import annotations

from collections import Counter

from conformance.formatting import fmt_ratio, jsonable, rank
from conformance.names import DTYPE_NAMES, PHASES

SCHEMA_VERSION = 2
TEST_OUTCOMES = ("passed", "failed", "skipped", "error", "xfailed", "xpassed")


def bucket_key(phase: str, dtype: str) -> tuple:
    p = PHASES.index(phase) if phase in PHASES else len(PHASES)
    d = DTYPE_NAMES.index(dtype) if dtype in DTYPE_NAMES else len(DTYPE_NAMES)
    return p, phase, d, dtype


def cann_text(run: dict) -> str:
    """The CANN behind the kernels: the installed one on hardware, the release whose rules the emulator
    applied on CPU (--cann-version)."""
    emulated = run.get("cann_emulated")
    installed = (run.get("versions") or {}).get("cann") or "-"
    return f"{installed} (emulating {emulated['version']})" if emulated else installed


def gating_text(gating: dict | None) -> str:
    """What failed a case in this run, in words (a migrated v1 report: the dual reference alone)."""
    if not gating:
        return "dual reference (the Ascend standard and determinism were not computed)"
    gates = {"dual": "dual reference", "ascend": f"Ascend benchmark standard {gating['ascend_level']}",
             "both": f"dual reference and Ascend benchmark standard {gating['ascend_level']}"}[gating["standards"]]
    reported = {"dual": f"Ascend standard {gating['ascend_level']} reported", "ascend": "dual reference reported",
                "both": ""}[gating["standards"]]
    determinism = "determinism gates" if gating["determinism"] == "gate" else "determinism reported"
    return "; ".join(x for x in (f"{gates} gate", reported, determinism) if x)


# --- aggregation ------------------------------------------------------------------------------
TALLY_FIELDS = ("cases", "passed", "hazards", "acknowledged_hazards", "notes", "graph_compiles", "graph_steps",
                "ascend_failed", "nondeterministic")


def standard_failures(record: dict) -> dict:
    """Whether the record failed the Ascend standard / the determinism check, gating or not."""
    verdicts = record.get("verdicts") or {}
    return {"ascend_failed": verdicts.get("ascend") == "fail",
            "nondeterministic": verdicts.get("determinism") == "fail"}


def _bucket(buckets: dict, phase: str, dtype: str) -> dict:
    return buckets.setdefault((phase, dtype), {
        "phase": phase, "dtype": dtype, "cases": 0, "passed": 0, "failed": 0, "errors": 0,
        "hazards": 0, "acknowledged_hazards": 0, "notes": 0, "ascend_failed": 0, "nondeterministic": 0,
        "worst_ratio": None, "worst_case_id": None, "worst_test_id": None, "worst_ascend_ratio": None,
        "worst_ascend_case_id": None})


def tally_records(records: list[dict], tally: list[dict] | None = None) -> list[dict]:
    """Fold passing records into per-bucket counts (a long fuzz session keeps the failing and the worst
    passing records, and only counts the rest): rows of TALLY_FIELDS per phase x dtype."""
    rows = {(t["phase"], t["dtype"]): dict(t) for t in tally or []}
    for r in records:
        row = rows.setdefault((r["phase"], r["dtype"]), {"phase": r["phase"], "dtype": r["dtype"],
                                                          **{f: 0 for f in TALLY_FIELDS}})
        hazards = r.get("hazards") or []
        row["cases"] += 1
        row["passed"] += r["verdict"] == "pass"
        row["hazards"] += sum(1 for h in hazards if not h.get("accepted"))
        row["acknowledged_hazards"] += sum(1 for h in hazards if h.get("accepted"))
        row["notes"] += len(r.get("notes") or [])
        row["graph_compiles"] += bool((r.get("graph") or {}).get("compiled"))
        row["graph_steps"] += bool(r.get("graph"))
        for key, failed in standard_failures(r).items():
            row[key] = row.get(key, 0) + failed
    return [rows[k] for k in sorted(rows, key=lambda k: bucket_key(*k))]


def summarise(records: list[dict], tally: list[dict] | None = None) -> list[dict]:
    """One row per phase x dtype: cases, passed, failed, errors, worst ratio and where it was
    (`tally`: counted cases whose records were not kept, see tally_records)."""
    buckets: dict[tuple[str, str], dict] = {}
    for t in tally or []:
        b = _bucket(buckets, t["phase"], t["dtype"])
        for f in ("cases", "passed", "hazards", "acknowledged_hazards", "notes", "ascend_failed", "nondeterministic"):
            b[f] += t.get(f, 0)
    for r in records:
        b = _bucket(buckets, r["phase"], r["dtype"])
        b["cases"] += 1
        b[{"pass": "passed", "fail": "failed", "error": "errors"}[r["verdict"]]] += 1
        hazards = r.get("hazards") or []
        b["hazards"] += sum(1 for h in hazards if not h.get("accepted"))
        b["acknowledged_hazards"] += sum(1 for h in hazards if h.get("accepted"))
        b["notes"] += len(r.get("notes") or [])
        for key, failed in standard_failures(r).items():
            b[key] += failed
        if r.get("ratio") is not None and (b["worst_ratio"] is None or rank(r["ratio"]) > rank(b["worst_ratio"])):
            b.update(worst_ratio=r["ratio"], worst_case_id=r["case_id"], worst_test_id=r.get("test_id"))
        ascend = r.get("ascend_ratio")
        if ascend is not None and (b["worst_ascend_ratio"] is None or rank(ascend) > rank(b["worst_ascend_ratio"])):
            b.update(worst_ascend_ratio=ascend, worst_ascend_case_id=r["case_id"])
    return [buckets[k] for k in sorted(buckets, key=lambda k: bucket_key(*k))]


def hazard_table(records: list[dict], field: str = "hazards") -> list[dict]:
    """Hazards (or notes, `field="notes"`) deduplicated by op + argument + rule: how often, in how many
    cases, where; hazards also by whether they were accepted (acknowledged) or failed their case."""
    rows: dict[tuple, dict] = {}
    for r in records:
        for h in r.get(field) or []:
            key = (h.get("op", ""), h.get("argument", ""), h.get("rule", ""), bool(h.get("accepted")))
            row = rows.setdefault(key, {"op": key[0], "argument": key[1], "rule": key[2], "code": h.get("code", ""),
                                        "source": h.get("source", ""), "inferred": bool(h.get("inferred")),
                                        "count": 0, "cases": 0, "phases": [], "example_detail": h.get("detail", ""),
                                        "example_case_id": r["case_id"], "_cases": set()})
            if field == "hazards":
                row.update(accepted=bool(h.get("accepted")), acknowledgement=h.get("acknowledgement"))
            row["count"] += 1
            row["_cases"].add(r["case_id"])
            if r["phase"] not in row["phases"]:
                row["phases"].append(r["phase"])
    out = []
    for row in sorted(rows.values(), key=lambda x: (bool(x.get("accepted")), -x["count"], x["op"], x["argument"],
                                                    x["rule"])):
        row["cases"] = len(row.pop("_cases"))
        out.append(row)
    return out


def acknowledgement_table(ledger: list[dict], records: list[dict], full_run: bool) -> list[dict]:
    """Each ledger entry with how many hazards it matched; one that matched nothing in a full run is
    "stale" (in a partial run: "unused", since the cases it covers may not have run)."""
    matched = Counter(h.get("acknowledgement") for r in records for h in r.get("hazards") or [])
    return [entry | {"matched": matched.get(entry["id"], 0),
                     "status": "matched" if matched.get(entry["id"]) else ("stale" if full_run else "unused")}
            for entry in ledger]


def test_totals(tests: list[dict], collected: int | None) -> dict:
    counts = Counter(t["outcome"] for t in tests)
    return {"collected": collected, "finished": len(tests), **{o: counts.get(o, 0) for o in TEST_OUTCOMES}}


def case_totals(records: list[dict], tally: list[dict] | None = None) -> dict:
    counts = Counter(r["verdict"] for r in records)
    worst = max((r for r in records if r.get("ratio") is not None), key=lambda r: rank(r["ratio"]), default=None)
    hazard_only = sum(1 for r in records if r["verdict"] == "fail" and r.get("failed_checks") == ["hazards"])
    determinism_only = sum(1 for r in records if r["verdict"] == "fail" and r.get("failed_checks") == ["determinism"])
    graph = [r["graph"] for r in records if r.get("graph")]
    counted = {f: sum(t.get(f, 0) for t in tally or []) for f in TALLY_FIELDS}
    standards = [standard_failures(r) for r in records]
    return {"cases": len(records) + counted["cases"], "passed": counts.get("pass", 0) + counted["passed"],
            "failed": counts.get("fail", 0), "failed_by_hazard_only": hazard_only,
            "failed_by_determinism_only": determinism_only,
            # decode graphs compiled, and graph steps judged: one compile per engine configuration drawn
            "graph_compiles": sum(1 for g in graph if g.get("compiled")) + counted["graph_compiles"],
            "graph_steps": len(graph) + counted["graph_steps"],
            # failures of each standard, gating or not (a non-gating one does not fail its case)
            "ascend_failed": sum(x["ascend_failed"] for x in standards) + counted["ascend_failed"],
            "nondeterministic": sum(x["nondeterministic"] for x in standards) + counted["nondeterministic"],
            "errors": counts.get("error", 0), "worst_ratio": worst["ratio"] if worst else None,
            "worst_case_id": worst["case_id"] if worst else None,
            "worst_bucket": f"{worst['phase']}/{worst['dtype']}" if worst else None}


def decide(run: dict, totals: dict, tests: list[dict], *, complete: bool, incomplete_reason: str | None,
           collection_errors: list[dict]) -> dict:
    """The verdict and its one-line reason. Green only if the run completed, cases ran, every case and
    every test passed, and (with --require-npu) a real NPU ran them."""
    t = totals["tests"]
    bad = totals["failed"] + totals["errors"]
    so_far = (f"{totals['cases']} case(s) so far, {bad} out of tolerance or in error")

    def result(status: str, reason: str) -> dict:
        return {"status": status, "passed": status == "passed", "reason": reason}

    if not complete:
        ran = f"{t['finished']} of {t['collected']}" if t["collected"] is not None else str(t["finished"])
        return result("incomplete", f"INCOMPLETE: {incomplete_reason or 'the run did not finish'} after {ran} "
                                    f"test(s); {so_far}")
    if run.get("require_npu") and not (run.get("backend") == "npu" and (run.get("npu") or {}).get("usable")):
        why = (run.get("npu") or {}).get("error") or f"backend is {run.get('backend')}"
        return result("failed", f"FAILED: --require-npu but no usable NPU ({why})")
    if collection_errors:
        return result("failed", f"FAILED: {len(collection_errors)} collection error(s), first in "
                                f"{collection_errors[0]['nodeid'] or '<session>'}")
    if bad:
        worst = f" (worst ratio {fmt_ratio(totals['worst_ratio'])} in {totals['worst_bucket']})" \
            if totals["worst_ratio"] is not None else ""
        parts = []
        by_hazard = totals.get("failed_by_hazard_only", 0)
        by_determinism = totals.get("failed_by_determinism_only", 0)
        if totals["failed"] - by_hazard - by_determinism:
            parts.append(f"{totals['failed'] - by_hazard - by_determinism} of {totals['cases']} cases out of tolerance")
        if by_determinism:
            parts.append(f"{by_determinism} of {totals['cases']} cases within tolerance but nondeterministic")
        if by_hazard:
            parts.append(f"{by_hazard} of {totals['cases']} cases within tolerance but with an unacknowledged "
                         "emulator hazard")
        if totals["errors"]:
            parts.append(f"{totals['errors']} of {totals['cases']} cases raised an error")
        return result("failed", "FAILED: " + ", ".join(parts) + worst)
    if totals["cases"] == 0:
        return result("failed", f"FAILED: no case ran ({t['finished']} test(s): {t['passed']} passed, "
                                f"{t['skipped']} skipped, {t['failed'] + t['error']} failed)")
    failing_tests = [x for x in tests if x["outcome"] in ("failed", "error", "xpassed")]
    if failing_tests:
        names = ", ".join(x["test_id"].rsplit("::", 1)[-1] for x in failing_tests[:3])
        more = "" if len(failing_tests) <= 3 else f" and {len(failing_tests) - 3} more"
        return result("failed", f"FAILED: {len(failing_tests)} of {t['finished']} tests failed ({names}{more}); "
                                f"every recorded case is within tolerance")
    skipped = f", {t['skipped']} test(s) skipped" if t["skipped"] else ""
    reported = [f"{totals[key]} {what} (reported, not gating)" for key, what in
                (("ascend_failed", "outside the Ascend benchmark standard"), ("nondeterministic", "nondeterministic"))
                if totals.get(key)]
    return result("passed", f"PASSED: {totals['cases']} cases within tolerance (worst ratio "
                            f"{fmt_ratio(totals['worst_ratio'])} in {totals['worst_bucket']}){skipped}"
                  + "".join(f"; {x}" for x in reported))


def build_report(run: dict, records: list[dict], tests: list[dict], *, complete: bool,
                 incomplete_reason: str | None = None, tests_collected: int | None = None,
                 collection_errors: list[dict] | None = None, acknowledgements: list[dict] | None = None,
                 full_run: bool = False, tally: list[dict] | None = None, fuzz: dict | None = None) -> dict:
    """Assemble a schema-v2 report (in JSON form) from run metadata, records and test outcomes.
    `acknowledgements` is the run's ledger (entry dicts); `full_run` says whether the whole suite ran
    to completion (only then is an unmatched entry stale). A fuzz session adds `tally` (passing cases
    counted but not kept as records) and `fuzz` (its timeline and per-property statistics)."""
    collection_errors = list(collection_errors or [])
    records = jsonable(list(records))
    tests = jsonable(sorted(tests, key=lambda x: x["test_id"]))
    totals = case_totals(records, tally) | {"tests": test_totals(tests, tests_collected)}
    report = {
        "schema_version": SCHEMA_VERSION,
        "complete": bool(complete),
        "incomplete_reason": None if complete else (incomplete_reason or "the run did not finish"),
        "verdict": decide(run, totals, tests, complete=complete, incomplete_reason=incomplete_reason,
                          collection_errors=collection_errors),
        "run": run,
        "totals": totals,
        "summaries": summarise(records, tally),
        "hazards": hazard_table(records),
        "notes": hazard_table(records, "notes"),
        "acknowledgements": acknowledgement_table(list(acknowledgements or []), records, full_run and complete),
        "tests": tests,
        "collection_errors": collection_errors,
        "records": records,
    }
    if tally:
        report["tally"] = tally
    if fuzz is not None:
        report["fuzz"] = fuzz
    return jsonable(report)


def failures_first(records: list[dict], limit: int | None = None) -> list[dict]:
    """Failing and erroring cases (worst first), then the passing ones with the highest ratios."""
    bad = [r for r in records if r["verdict"] != "pass"]
    good = [r for r in records if r["verdict"] == "pass"]
    bad.sort(key=lambda r: (r["verdict"] != "fail", -rank(r.get("ratio"))))
    good.sort(key=lambda r: -rank(r.get("ratio")))
    out = bad + good
    return out if limit is None else out[:limit]


# --- what a count counts: derived for the renderers, never written to report.json -------------
# Every number a reader sees (in the verdict line, a summary row, a failing case's row) must lead to the
# cases behind it, and each standard must show its own worst case: a bucket's worst dual-reference ratio
# says nothing about the case that missed the Ascend standard.

OWN_LAYER = "npu_attention.attention:Attention"  # what a report without run.layer judged


def dual_ratio(record: dict):
    """The dual reference's own ratio, the worse of its max and mean rules (NaN counts as the worst);
    None for a case with no output compared."""
    out = record.get("output")
    if not out:
        return None
    return max(rank(out.get("ratio")), rank(out.get("mean_ratio")))


def differing_elements(record: dict) -> int:
    """How many output/cache elements differed between the determinism runs (0: same bits or not run)."""
    return sum(int(d.get("elements") or 0) for d in (record.get("determinism") or {}).get("differences") or [])


def _gates(record: dict, check: str) -> bool:
    """Whether `check` failing failed this case (a record without failed_checks: its verdict says)."""
    checks = record.get("failed_checks")
    return record["verdict"] != "pass" if checks is None else check in checks


def _output_rules(out: dict) -> list[str]:
    if out.get("nonfinite_rows"):
        return ["NaN"]  # the max and mean rules mean nothing on a NaN output
    rules = []
    if rank(out.get("ratio")) > 1:
        rules.append("max rule")
    if rank(out.get("mean_ratio")) > 1:
        rules.append("mean rule")
    if out.get("nonzero_empty_rows"):
        rules.append("empty rows not 0")
    return rules or ["dual reference"]


def _ascend_rules(a: dict) -> list[str]:
    over = [m for m, limit in a["limits"].items() if m != "eb" and rank(a["ratios"].get(m)) > limit]
    return [f"Ascend: {m}" for m in over] + (["Ascend: NaN"] if (a.get("kernel") or {}).get("nonfinite") else [])


def failed_rules(record: dict) -> list[dict]:
    """Each rule the case broke, gating or only reported: [{"rule": "mean rule", "gating": True}, ...]
    ("max rule", "mean rule", "NaN", "Ascend: rmse", "cache v_cache", "hazard <code>", "nondeterministic",
    "refused", "error"), in the order a reader should fix them."""
    if record["verdict"] == "error":
        return [{"rule": "error", "gating": True}]
    found = []
    out, verdicts = record.get("output") or {}, record.get("verdicts") or {}
    if out.get("verdict") == "fail":
        found += [(rule, _gates(record, "output")) for rule in _output_rules(out)]
    if verdicts.get("ascend") == "fail" and record.get("ascend"):
        found += [(rule, _gates(record, "ascend")) for rule in _ascend_rules(record["ascend"])]
    found += [(f"cache {c['name']}", True) for c in record.get("caches") or [] if c.get("verdict") == "fail"]
    found += [(f"hazard {h.get('code') or h.get('rule')}", True) for h in record.get("hazards") or []
              if not h.get("accepted")]
    if verdicts.get("determinism") == "fail":
        found.append(("nondeterministic", _gates(record, "determinism")))
    if "refused" in (record.get("failed_checks") or []):
        found.append(("refused", True))
    return [{"rule": rule, "gating": gating} for rule, gating in found]


def case_groups(records: list[dict]) -> dict[str, list[dict]]:
    """The records behind each count of case_totals and decide (same rules), worst first."""
    fails = failures_first([r for r in records if r["verdict"] == "fail"])
    by_ascend = sorted(records, key=lambda r: -rank(r.get("ascend_ratio")))
    return {
        "failed": fails,
        "out_of_tolerance": [r for r in fails if r.get("failed_checks") not in (["hazards"], ["determinism"])],
        "nondeterministic_only": [r for r in fails if r.get("failed_checks") == ["determinism"]],
        "hazard_only": [r for r in fails if r.get("failed_checks") == ["hazards"]],
        "errors": [r for r in records if r["verdict"] == "error"],
        "ascend_failed": [r for r in by_ascend if standard_failures(r)["ascend_failed"]],
        "nondeterministic": sorted((r for r in records if standard_failures(r)["nondeterministic"]),
                                   key=lambda r: -differing_elements(r)),
        "hazards": [r for r in records if any(not h.get("accepted") for h in r.get("hazards") or [])],
    }


def _worst(records: list[dict], key) -> dict | None:
    scored = [(key(r), r) for r in records if key(r) is not None]
    return max(scored, key=lambda x: x[0])[1] if scored else None


def standard_worsts(records: list[dict]) -> dict:
    """Each standard's own worst case among `records`: the dual reference's highest ratio, the Ascend
    standard's highest margin, determinism's case with the most differing elements (None if every case
    was deterministic)."""
    nondeterministic = [r for r in records if standard_failures(r)["nondeterministic"]]
    return {"dual": _worst(records, dual_ratio), "ascend": _worst(records, lambda r: _rank_of(r.get("ascend_ratio"))),
            "determinism": _worst(nondeterministic, differing_elements),
            "determinism_run": any((r.get("verdicts") or {}).get("determinism") in ("pass", "fail") for r in records)}


def _rank_of(value):
    return None if value is None else rank(value)  # None: not computed, never a worst case


def bucket_cases(records: list[dict]) -> dict[tuple[str, str], dict]:
    """Per phase x dtype: case_groups and standard_worsts of its records."""
    buckets: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        buckets.setdefault((r["phase"], r["dtype"]), []).append(r)
    return {key: {"groups": case_groups(rows), "worst": standard_worsts(rows)} for key, rows in buckets.items()}


def verdict_counts(report: dict) -> list[dict]:
    """The counts the verdict line gives, each with its records: [{"label", "count", "records"}] (the
    worst case last, with count None). A count above len(records) includes cases a fuzz session only
    counted (their records were not kept)."""
    groups, totals = case_groups(report["records"]), report["totals"]
    status = report["verdict"]["status"]
    if status == "incomplete":
        items = [("out of tolerance or in error", groups["failed"] + groups["errors"], None)]
    elif status == "failed":
        items = [("out of tolerance", groups["out_of_tolerance"], None),
                 ("within tolerance but nondeterministic", groups["nondeterministic_only"], None),
                 ("within tolerance but with an unacknowledged hazard", groups["hazard_only"], None),
                 ("raised an error", groups["errors"], None)]
    else:  # a green run names what it reports without gating, counted-only cases included
        items = [("outside the Ascend benchmark standard (reported, not gating)", groups["ascend_failed"],
                  totals.get("ascend_failed", 0)),
                 ("nondeterministic (reported, not gating)", groups["nondeterministic"],
                  totals.get("nondeterministic", 0))]
    out = [{"label": label, "count": len(rows) if count is None else count, "records": rows}
           for label, rows, count in items if rows or count]
    worst = next((r for r in report["records"] if r["case_id"] == totals.get("worst_case_id")), None)
    if worst is not None and status != "incomplete":
        out.append({"label": f"worst ratio {fmt_ratio(totals['worst_ratio'])}", "count": None, "records": [worst]})
    return out


def identity_lines(run: dict) -> list[dict]:
    """What was judged, from run.layer / run.runner (absent or null in reports written before they
    existed: then the project's own layer was judged): [{"role", "spec", "details": [str]}]. The own
    layer and runner (name "own") say so before their file."""
    lines = []
    for role, key in (("layer under test", "layer"), ("runner", "runner")):
        subject = run.get(key)
        if not subject:
            if key == "layer":
                lines.append({"role": role, "spec": OWN_LAYER, "details": ["the project's own"]})
            continue
        git = subject.get("git") or {}
        details = [x for x in (
            "the project's own" if subject.get("name") == "own" else None, subject.get("file"),
            f"sha256 {subject['sha256'][:12]}" if subject.get("sha256") else None,
            f"git {git['commit'][:12]}" if git.get("commit") else None, "dirty" if git.get("dirty") else None) if x]
        lines.append({"role": role, "spec": subject["spec"], "details": details})
    return lines


def identity_text(line: dict) -> str:
    """'layer under test: <spec> (<file>, sha256 <12 hex>, git <12 hex>, dirty)' as one plain line."""
    details = f" ({', '.join(line['details'])})" if line["details"] else ""
    return f"{line['role']}: {line['spec']}{details}"
