"""A fuzz session's report names what it counts, once: one record per judged case (a case judged again
counts once, with its worst judgment), the same number of cases and the same worst ratio per phase x
dtype in the console, the verdict, the summary table and the timeline, the planted bug named in the
HTML banner and summary.md, and each failure's replay naming the smallest case of its signature, whose
case file alone is kept.

The session test runs `npu-conformance fuzz --plant ...` as a user does; the ledger and merge tests
feed hand-made judgments and worker reports to the code that keeps the records (cheap, exact)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from cli_helpers import cli, fuzz_budget, worker_startup_s

from conformance.formatting import fmt_ratio, num, rank
from conformance.fuzz.ledger import CaseLedger
from conformance.fuzz.signatures import record_signature
from conformance.report import build_report, load_report, render_html, render_markdown
from conformance.report.merge import case_size, merge_reports

PLANT = "decode_newest_token_dropped"  # killed by the eager decode property on its first case
DECODE = "conformance/suite/test_decode.py::test_decode_eager_output_and_cache_write"


# --- hand-made judgments ---------------------------------------------------------------------------
def _case(seq_lens=(5,), dtype="bfloat16", seed=0) -> dict:
    return {"phase": "decode_eager", "num_heads": 2, "num_kv_heads": 1, "head_dim": 64, "dtype": dtype,
            "block_size": 16, "num_blocks": 40, "seq_lens": list(seq_lens),
            "block_tables": [[b + 1] * -(-n // 16) for b, n in enumerate(seq_lens)], "seed": seed}


def _judgment(case_id: str, verdict: str = "pass", ratio=0.5, *, seq_lens=(5,), dtype="bfloat16",
              test_id: str = DECODE, case_file: Path | None = None) -> dict:
    """A record as the harness reports a judgment (conformance.harness.verify: case_file for a failure)."""
    record = {"test_id": test_id, "case_id": case_id, "phase": "decode_eager", "dtype": dtype, "backend": "emulated",
              "verdict": verdict, "ratio": None if verdict == "error" else ratio, "hazards": [],
              "failed_checks": ["output"] if verdict == "fail" else [], "case": _case(seq_lens, dtype),
              "property": "decode_eager", "case_file": None if case_file is None else str(case_file)}
    if verdict == "error":
        record["error"] = "RuntimeError: boom"
    return record


def _case_file(folder: Path, case_id: str, state: bool = False) -> Path:
    """A stand-in for the file verify_case saves for a failing judgment (and its cache state)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"decode_eager-{case_id}.json"
    path.write_text(json.dumps({"case_id": case_id}))
    if state:
        path.with_suffix(".safetensors").write_bytes(b"cache of " + case_id.encode())
    return path


def _stats() -> dict:
    return {"test_id": DECODE, "cases": 0, "judgments": 0, "failures": 0, "signatures": []}


def test_a_case_judged_again_counts_once_and_keeps_its_worst_judgment():
    ledger, stats = CaseLedger(), _stats()
    ledger.take(_judgment("a", ratio=0.5), stats)
    ledger.take(_judgment("a", ratio=0.5), stats)  # hypothesis replaying its database
    ledger.take(_judgment("b", ratio=0.7), stats)
    assert (ledger.cases, ledger.judgments, len(ledger.records())) == (2, 3, 2)
    assert (stats["cases"], stats["judgments"]) == (2, 3)

    # a worse judgment of the same case replaces its record (in place); a pass after it changes nothing
    ledger.take(_judgment("a", "fail", ratio=3.0), stats)
    ledger.take(_judgment("a", ratio=0.5), stats)
    assert [(r["case_id"], r["verdict"]) for r in ledger.records()] == [("a", "fail"), ("b", "pass")]
    assert ledger.cases == 2 and ledger.failure_count() == 1
    assert ledger.worst == {"decode_eager/bfloat16": 3.0}

    # on a tie the first judgment stays: its record is the same object as before
    first = ledger.kept["b"]
    ledger.take(_judgment("b", ratio=0.7), stats)
    assert ledger.kept["b"] is first

    # an error is worse than a failure even without a ratio; the bucket's worst is read again from the
    # records, and a bucket whose cases have no ratio is still there (null)
    ledger.take(_judgment("c", "fail", ratio=9.0, dtype="float16"), stats)
    ledger.take(_judgment("c", "error", dtype="float16"), stats)
    assert ledger.kept["c"]["verdict"] == "error" and ledger.worst["decode_eager/float16"] is None
    assert ledger.cases == 3 and ledger.failure_count() == 2 == stats["failures"]
    assert sorted(ledger.failures) == sorted(stats["signatures"]) == [
        f"{DECODE} | decode_eager/bfloat16 | failed output",
        f"{DECODE} | decode_eager/float16 | raised RuntimeError: boom"]  # not c's earlier "failed output"


def test_a_counted_only_case_judged_again_still_counts_once():
    ledger = CaseLedger()
    for i in range(6):
        ledger.take(_judgment(f"p{i}", ratio=(i + 1) / 10))
    ledger.compact(keep_per_bucket=2)
    assert [r["case_id"] for r in ledger.records()] == ["p4", "p5"]  # the worst two passing ones stay
    assert ledger.tally_rows()[0]["cases"] == 4 and ledger.cases == 6
    assert ledger.worst == {"decode_eager/bfloat16": 0.6}

    ledger.take(_judgment("p0", ratio=0.1))  # a counted case passing again: nothing changes
    assert ledger.cases == 6 and ledger.tally_rows()[0]["cases"] == 4 and len(ledger.records()) == 2

    ledger.take(_judgment("p1", "fail", ratio=4.0))  # a counted case failing now: the failure is its record
    assert ledger.cases == 6 and ledger.tally_rows()[0]["cases"] == 3
    assert [r["case_id"] for r in ledger.records()] == ["p4", "p5", "p1"]
    report = build_report({}, ledger.records(), [], complete=True, tally=ledger.tally_rows())
    assert report["totals"]["cases"] == ledger.cases == sum(s["cases"] for s in report["summaries"])


def test_a_failures_replay_names_its_smallest_case_and_only_that_file_stays(tmp_path):
    failures = tmp_path / "failures"
    ledger, stats = CaseLedger(), _stats()
    big = _case_file(failures, "big", state=True)
    ledger.take(_judgment("big", "fail", 166.0, seq_lens=(300, 1, 128, 129), case_file=big), stats)
    wide = _case_file(failures, "wide")
    ledger.take(_judgment("wide", "fail", 20.0, seq_lens=(3, 2), case_file=wide), stats)
    small = _case_file(failures, "small", state=True)
    ledger.take(_judgment("small", "fail", 30.0, seq_lens=(5,), case_file=small), stats)
    late = _case_file(failures, "late")  # as small as "small": the first of the two stays
    ledger.take(_judgment("late", "fail", 40.0, seq_lens=(5,), case_file=late), stats)
    # the harness removes the files its test report does not name, the smallest case's among them
    small.unlink()
    small.with_suffix(".safetensors").unlink()
    ledger.settle_files()

    (signature,) = ledger.failures
    entry = ledger.failures[signature]
    assert entry["count"] == 4 and entry["case_id"] == "small" and entry["size"] == {"tokens": 5, "batch": 1}
    assert entry["case_file"] == str(small) and entry["replay"] == f"npu-conformance replay {small}"
    assert sorted(p.name for p in failures.iterdir()) == ["decode_eager-small.json", "decode_eager-small.safetensors"]
    assert small.with_suffix(".safetensors").read_bytes() == b"cache of small"  # put back as it was
    assert {r["case_id"]: r["case_file"] for r in ledger.records()} == {"big": None, "wide": None,
                                                                       "small": str(small), "late": None}
    assert stats["signatures"] == [signature] and stats["failures"] == 4
    # what "smallest" means: fewest tokens, then smallest batch
    assert case_size(_judgment("x", seq_lens=(3, 2))) == (5, 2) > case_size(_judgment("y", seq_lens=(5,))) == (5, 1)


def _worker_report(records: list[dict], failures: list[dict], timeline: list[dict], index: int) -> dict:
    fuzz = {"budget_s": 60.0, "elapsed_s": 61.0, "stopped": "budget", "workers": [{"index": index}],
            "cases": timeline[-1]["cases"], "judgments": timeline[-1]["cases"] + 5, "slices": 3,
            "planted": PLANT, "properties": [], "failures": failures, "timeline": timeline}
    from sample_report import _run

    return build_report(_run(True) | {"planted": PLANT}, records, [], complete=True, fuzz=fuzz)


def test_merging_workers_counts_a_case_both_judged_once_and_keeps_the_smallest_replay(tmp_path):
    """Two workers share the example database: worker 1 replays the failure worker 0 found (and judges
    it worse), and finds a smaller case of the same failure."""
    ledgers = []
    for index, judgments in enumerate([
            [_judgment("shared", "fail", 10.0, seq_lens=(64, 3), case_file=_case_file(tmp_path / "w0", "shared")),
             _judgment("p0", ratio=0.4), _judgment("e0", "error", dtype="float16",
                                                   case_file=_case_file(tmp_path / "w0", "e0"))],
            [_judgment("shared", "fail", 12.0, seq_lens=(64, 3), case_file=_case_file(tmp_path / "w1", "shared")),
             _judgment("tiny", "fail", 11.0, seq_lens=(2,), case_file=_case_file(tmp_path / "w1", "tiny")),
             _judgment("p1", ratio=0.3)]]):
        ledger = CaseLedger(worker=index)
        for judgment in judgments:
            ledger.take(judgment)
        ledger.settle_files()
        ledgers.append(ledger)
    reports = [_worker_report(ledger.records(), list(ledger.failures.values()),
                              [{"t": 10.0 + i, "cases": ledger.cases, "failures": ledger.failure_count(),
                                "worst": dict(ledger.worst)}], i) for i, ledger in enumerate(ledgers)]
    merged = merge_reports(reports, sources=["w0", "w1"], dedupe=True)

    ids = [r["case_id"] for r in merged["records"]]
    assert sorted(ids) == ["e0", "p0", "p1", "shared", "tiny"]  # "shared" once
    assert next(r for r in merged["records"] if r["case_id"] == "shared")["ratio"] == 12.0  # its worst judgment
    fuzz, last = merged["fuzz"], merged["fuzz"]["timeline"][-1]
    assert merged["totals"]["cases"] == fuzz["cases"] == last["cases"] == 5
    assert sum(s["cases"] for s in merged["summaries"]) == 5
    assert {f"{s['phase']}/{s['dtype']}": s["worst_ratio"] for s in merged["summaries"]} == last["worst"]
    assert last["worst"]["decode_eager/float16"] is None  # errors only: present, with no ratio
    assert "FAILED: 2 of 5 cases out of tolerance, 1 of 5 cases raised an error" in merged["verdict"]["reason"]

    fail = next(f for f in fuzz["failures"] if f["signature"].endswith("failed output"))
    assert fail["count"] == 2 and fail["case_id"] == "tiny" and fail["worker"] == 1  # "shared" and "tiny"
    assert fail["case_file"] == str(tmp_path / "w1" / "decode_eager-tiny.json")
    named = {r["case_id"]: r["case_file"] for r in merged["records"] if r.get("case_file")}
    assert named == {"tiny": fail["case_file"], "e0": str(tmp_path / "w0" / "decode_eager-e0.json")}
    assert last["failures"] == sum(f["count"] for f in fuzz["failures"]) == 3

    # `report merge` (no dedupe) still sums what it is given
    assert merge_reports(reports, sources=["w0", "w1"])["totals"]["cases"] == 6


def test_the_planted_bug_is_named_in_the_banner_and_summary_md():
    from sample_report import _run, sample_records, sample_tests

    records = sample_records()
    report = build_report(_run(True) | {"planted": PLANT}, records, sample_tests(records), complete=True)
    html, md = render_html(report), render_markdown(report)
    banner = html[html.index('<div class="banner'):html.index('<div class="identities">')]
    assert f"planted bug: {PLANT}" in banner and f"planted bug: {PLANT}" in md.split("\n\n", 2)[1]
    plain = build_report(_run(True), records, sample_tests(records), complete=True)
    assert "planted bug" not in render_html(plain) and "planted bug" not in render_markdown(plain)


# --- a session through the CLI ---------------------------------------------------------------------
def _ratio_equal(a, b) -> bool:
    a, b = num(a), num(b)
    if a is None or b is None:
        return a is b
    return rank(a) == rank(b) or math.isclose(a, b, rel_tol=1e-12)


def test_a_planted_fuzz_session_counts_each_case_once_everywhere(tmp_path):
    out = tmp_path / "s"
    # Bounded two ways: --max-cases 3 ends it after the slice that passes 3 distinct cases (the first slice
    # judges the property's two explicit examples, both failing; the next one finds a failure and shrinks
    # it: judgments of new cases and of ones already judged), and the budget gives about 45 s of fuzzing
    # after the worker's startup (measured under this machine's load) in case the shrink takes longer.
    budget = fuzz_budget(45, worker_startup_s(tmp_path, "test_decode_eager"))
    code, text = cli(tmp_path, "fuzz", "--budget", budget, "--max-cases", "3", "--plant", PLANT, "-k",
                     "test_decode_eager", "--out", out, "--database", tmp_path / "db", "--backend", "emulated")
    assert code == 1, text[-3000:]
    report = load_report(out / "report.json")
    fuzz, totals, summaries = report["fuzz"], report["totals"], report["summaries"]
    records = report["records"]

    # One record per judged case.
    ids = [r["case_id"] for r in records]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert fuzz["judgments"] >= fuzz["cases"]

    # One number of cases: console, verdict, summary table (report.json, summary.md, report.html), timeline.
    cases = totals["cases"]
    console = re.search(r"^(\d+) cases in \d+ s", text, re.MULTILINE)
    assert console and int(console.group(1)) == cases, text[-3000:]
    assert fuzz["cases"] == cases == sum(s["cases"] for s in summaries) == fuzz["timeline"][-1]["cases"]
    assert len(records) + sum(t["cases"] for t in report.get("tally") or []) == cases
    assert f" of {cases} cases out of tolerance" in report["verdict"]["reason"] and report["verdict"]["reason"] in text
    md, html = (out / "summary.md").read_text(), (out / "report.html").read_text()
    assert f"Cases: {cases} (" in md and f"\n{cases} cases" in md
    assert f"<b>{cases}</b>" in html and f"<p>{cases} cases" in html

    # One worst ratio per phase x dtype, every bucket with cases present (counted-only ones included).
    worst_at_end = fuzz["timeline"][-1]["worst"]
    by_bucket = {f"{s['phase']}/{s['dtype']}": s["worst_ratio"] for s in summaries}
    assert set(worst_at_end) == set(by_bucket), (worst_at_end, by_bucket)
    assert all(_ratio_equal(worst_at_end[b], by_bucket[b]) for b in by_bucket), (worst_at_end, by_bucket)
    shown = html[html.index("worst error/bound at the end:"):]
    assert all(f"{b} {fmt_ratio(r)}" in shown for b, r in by_bucket.items()), shown[:500]

    # The planted bug is named where a reader looks first.
    banner = html[html.index('<div class="banner'):html.index('<div class="identities">')]
    assert f"planted bug: {PLANT}" in banner and f"planted bug: {PLANT}" in md.split("\n\n", 2)[1]

    # Each failure counts its failing records, and its replay names the smallest of them (fewest tokens,
    # then smallest batch), the one case file kept.
    failing = [r for r in records if r["verdict"] != "pass"]
    named = set()
    found = [f for f in fuzz["failures"] if f.get("case_id")]
    assert found and sum(f["count"] for f in fuzz["failures"]) == len(failing) == fuzz["timeline"][-1]["failures"]
    for f in found:
        mine = [r for r in failing if record_signature(r) == f["signature"]]
        assert f["count"] == len(mine), f
        assert case_size(next(r for r in mine if r["case_id"] == f["case_id"])) == min(map(case_size, mine)), f
        assert Path(f["case_file"]).is_file() and f["replay"] == f"npu-conformance replay {f['case_file']}"
        assert f"replay: {f['replay']}" in text
        named.add(Path(f["case_file"]).name)
    assert {p.name for p in (out / "failures").glob("*.json")} == named
