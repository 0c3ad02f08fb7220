"""report.html: one self-contained page (inline CSS, plots as base64 PNG, no script, no network).

The markup lives in templates/ (jinja2, autoescaped: every value from a report is text, however it
looks), the style in templates/report.css, which the page includes into its <style>. This module turns
a report into the plain data those templates show: numbers are formatted by filters, and nothing
here writes HTML except `wbr` (escaped parts joined by <wbr>) and the fuzz section (fuzz_section.py
escapes as it builds).
"""

from __future__ import annotations

import functools
import json
import re

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from conformance.formatting import fmt_num, fmt_ratio, num, rank, shorten
from conformance.report import fuzz_section
from conformance.report.judged_under import mixed_text
from conformance.report.model import (
    bucket_cases,
    cann_text,
    case_groups,
    dual_ratio,
    failed_rules,
    failures_first,
    gating_text,
    identity_lines,
    standard_worsts,
    verdict_counts,
)
from conformance.report.plots import (
    CAPTIONS,
    ascend_margins_png,
    ascend_misses,
    error_vs_bound_png,
    ratio_histogram_png,
)

TITLE = "npu-conformance tolerance report"
MAX_FAILURES = 50  # failing / erroring cases listed (all are in report.json)
CLOSEST_PASSING = 10  # passing cases listed, closest to the bound first
MAX_LINKS = 5  # cases linked from one count in a table cell ("+N more" beyond, linked to the table)
BANNER_LINKS = 20  # cases linked from one count of the verdict line
TAG_CLASSES = {"pass": "t-pass", "passed": "t-pass", "fail": "t-fail", "failed": "t-fail", "error": "t-error",
               "xpassed": "t-fail", "skipped": "t-skip", "xfailed": "t-skip"}
ASCEND_METRICS = ("max_rel_err", "mean_rel_err", "rmse", "small_value_err_ratio", "eb")
NOT_GATING = ("eb",)  # the Ascend standard reports error balance but never fails a case on it


# --- filters: formatting and the one piece of HTML built outside a template -----------------------
def wbr(value) -> Markup:
    """Text with line-break opportunities after / . :: _ (long node ids and op names would otherwise
    push a table past the page): escaped pieces joined by <wbr>."""
    pieces = re.split(r"(?<=/|\.|_)|(?<=::)", "" if value is None else str(value))
    return Markup("<wbr>").join(escape(p) for p in pieces if p)


def _per_seq(ratios: list) -> str:
    return ", ".join(f"{i}: {fmt_ratio(x)}" for i, x in enumerate(ratios))


@functools.cache
def environment() -> Environment:
    """The templates' environment, built once: autoescape on for every template (also one named
    otherwise, so no value reaches the page unescaped by accident)."""
    env = Environment(loader=PackageLoader("conformance.report", "templates"),
                      autoescape=select_autoescape(["html"], default=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True,
                      finalize=lambda value: "" if value is None else value)  # a missing value shows as blank
    env.filters.update(ratio=fmt_ratio, sci=fmt_num, wbr=wbr, per_seq=_per_seq,
                       tag_class=lambda verdict: TAG_CLASSES.get(verdict, "t-skip"))
    return env


def spaceless(page: str) -> str:
    """Join tags that the templates put on separate lines for reading: table rows come out as one line
    and no stray text node sits between cells. Only a line break plus indentation between '>' and '<'
    goes; text never holds a raw '<' or '>' (it is escaped), so no content changes."""
    return re.sub(r">\n\s*<", "><", page)


# --- plain data for the templates ------------------------------------------------------------------
def headline(text: str | None, limit: int = 160) -> str:
    """The first informative line of a failure message ('AssertionError:' alone joins the next line)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    if first.endswith(":") and len(lines) > 1:
        first = f"{first} {lines[1]}"
    return shorten(first, limit)


def meta_items(report: dict) -> list[tuple[str, object]]:
    run = report["run"]
    v = run.get("versions") or {}
    hyp = run.get("hypothesis") or {}
    tol = run["tolerance_policy"]
    d = tol["default"]
    return [
        ("backend", f"{run.get('backend')} ({run.get('backend_reason')})"),
        ("device", run.get("device")),
        ("NPU", "usable, " + f"{run['npu']['device_count']} device(s)" if run["npu"]["usable"]
         else f"not usable: {run['npu']['error'] or '-'}"),
        ("torch", v.get("torch")), ("torch_npu", v.get("torch_npu") or "-"), ("CANN", cann_text(run)),
        ("python", v.get("python")), ("hypothesis", v.get("hypothesis")),
        ("profile", f"{hyp.get('profile')} (max_examples {hyp.get('max_examples')})"),
        ("seed", hyp.get("seed") if hyp.get("seed") is not None else "random"),
        ("strict contracts", run.get("strict_contracts")), ("require NPU", run.get("require_npu")),
        ("shape space", {"npu": "npu (only what the real kernels accept)", "auto": "the backend's"}.get(
            run.get("shape_space") or "auto", run.get("shape_space"))),
        ("decode graphs", f"mode {run.get('graph_mode') or '-'}: {report['totals'].get('graph_compiles', 0)} "
                          f"compile(s) for {report['totals'].get('graph_steps', 0)} graph step(s)"),
        ("tolerance policy", f"{tol['source']}: k={d['k']:g}, mean_k={d['mean_k']:g}, ulps={d['ulps']:g}, "
                             f"floor={d['floor']:g}" + (f"; per dtype: {', '.join(tol['per_dtype'])}"
                                                         if tol["per_dtype"] else "")),
        ("gating", gating_text(tol.get("gating"))),
        ("git commit", run.get("git_commit") or "-"),
        ("started", run.get("started_at")), ("duration", f"{num(run.get('duration_s')) or 0:.1f} s"),
        ("workers", run.get("workers") or 1), ("host", run.get("host") or "-"),
        ("pytest exit status", run.get("pytest_exitstatus")),
        ("pytest args", " ".join(run.get("pytest_args") or [])),
    ]


def _ascend_view(a: dict | None) -> dict | None:
    """The Ascend standard's block of a case, with each metric's row and whether it is over its limit
    (a non-gating metric is never marked: it fails nothing)."""
    if not a:
        return None
    metrics = [{"name": m, "gating": m not in NOT_GATING, "kernel": a["kernel"][m], "baseline": a["baseline"][m],
                "ratio": a["ratios"][m], "limit": a["limits"][m],
                "over": m not in NOT_GATING and num(a["ratios"][m]) > a["limits"][m]} for m in ASCEND_METRICS]
    return a | {"metrics": metrics}


def _hazard_status(h: dict) -> str:
    if h.get("accepted"):
        return f"acknowledged ({h['acknowledgement']})"
    return "fails the case" + (" (--strict-contracts)" if h.get("acknowledgement") else ": not acknowledged")


def case_view(r: dict) -> dict:
    """One record as the worst-cases table shows it: its row and its folded details."""
    out = r.get("output") or {}
    shape, lengths = r.get("shape") or {}, r.get("lengths") or {}
    reasons = list(out.get("reasons") or [])
    if out.get("nonfinite_rows"):
        reasons.append(f"non-finite rows: {out['nonfinite_rows'][:20]}")
    rules = failed_rules(r)
    # a passing case that a reported (non-gating) standard failed is marked "miss", never as a failure
    cls = {"fail": "bad", "error": "err"}.get(r["verdict"], "miss" if rules else "")
    return {
        "r": r, "out": out, "rules": rules, "cls": cls, "verdicts": r.get("verdicts") or {},
        "headline": headline(r.get("error"), 140),
        "config": (f"Hq={shape['num_heads']} Hkv={shape['num_kv_heads']} D={shape['head_dim']} "
                   f"bs={shape['block_size']}" if shape else ""),
        "lengths": f"B={lengths['batch']} len {lengths['min']}..{lengths['max']}" if lengths else "",
        "test_name": r["test_id"].rsplit("::", 1)[-1], "output_reasons": reasons,
        "ascend": _ascend_view(r.get("ascend")),
        "hazards": [h | {"status": _hazard_status(h)} for h in r.get("hazards") or []],
        "case_json": json.dumps(r["case"], sort_keys=True),
    }


def _why_listed(records: list[dict], passing: list[dict]) -> dict[int, list[str]]:
    """Why a passing case is listed (by id() of its record): it is the worst of its phase x dtype by a
    standard, or among the CLOSEST_PASSING closest to the bound (`passing` is ordered closest first)."""
    passing_ids = {id(r) for r in passing}
    worst_by: dict[int, list[str]] = {}
    for info in bucket_cases(records).values():
        for standard, label in (("dual", "dual reference"), ("ascend", "Ascend margin")):
            worst = info["worst"][standard]
            if worst is not None and id(worst) in passing_ids:
                worst_by.setdefault(id(worst), []).append(label)
    why = {key: [f"worst of its phase/dtype by {' and '.join(labels)}"] for key, labels in worst_by.items()}
    for r in passing[:CLOSEST_PASSING]:
        why.setdefault(id(r), []).append("closest to the bound")
    return why


class Listing:
    """Which records the worst-cases table lists, in which group, and each listed case's anchor. A
    count anywhere on the page links to its cases through here; a case the table does not list (past
    a group's cap) is named without a link."""

    def __init__(self, report: dict):
        records = report["records"]
        ordered = failures_first(records)
        self.total = len(records)
        self.bad = [r for r in ordered if r["verdict"] != "pass"]
        self.reported = sorted((r for r in ordered if r["verdict"] == "pass" and failed_rules(r)),
                               key=lambda r: -rank(r.get("ascend_ratio")))
        passing = [r for r in ordered if r["verdict"] == "pass" and not failed_rules(r)]
        self.why = _why_listed(records, passing)
        self.closest = [r for r in passing if id(r) in self.why]
        self.groups = [("failing", "Failing and erroring cases, worst first", self.bad[:MAX_FAILURES]),
                       ("reported", "Within the gating standards, outside a reported one (not gating)",
                        self.reported[:MAX_FAILURES]),
                       ("closest", "Passing: each phase and dtype's worst case by each standard, and the "
                                   f"{CLOSEST_PASSING} closest to the bound", self.closest)]
        self.anchors: dict[str, str] = {}
        for _, _, rows in self.groups:
            for r in rows:
                self.anchors.setdefault(r["case_id"], f"case-{r['case_id']}")

    def links(self, records: list[dict], count: int | None = None, limit: int = MAX_LINKS) -> dict:
        """The cases behind a count: [{"id", "href"}] (href None if not listed), how many more are not
        shown, and how many were only counted (a fuzz session does not keep every passing record)."""
        ids = list(dict.fromkeys(r["case_id"] for r in records))
        return {"ids": [{"id": i, "href": "#" + self.anchors[i] if i in self.anchors else None} for i in ids[:limit]],
                "more": max(len(ids) - limit, 0),
                "unkept": max(count - len(records), 0) if count is not None else 0}


def worst_cases(report: dict, listing: Listing) -> dict:
    seen: set[str] = set()
    groups = []
    for anchor, title, rows in listing.groups:
        views = []
        for r in rows:
            view = case_view(r) | {"why": listing.why.get(id(r), []),
                                   "anchor": None if r["case_id"] in seen else listing.anchors[r["case_id"]]}
            seen.add(r["case_id"])
            views.append(view)
        groups.append({"anchor": anchor, "title": title, "rows": views})
    return {"groups": groups, "bad": len(listing.bad), "reported": len(listing.reported), "closest": CLOSEST_PASSING,
            "shown": sum(len(g["rows"]) for g in groups), "total": listing.total}


def _summary_row(s: dict, info: dict | None, listing: Listing) -> dict:
    """One phase x dtype row: each count with the cases it counts, each standard with its worst case."""
    info = info or {"groups": case_groups([]), "worst": standard_worsts([])}
    groups, worst = info["groups"], info["worst"]
    return s | {
        "bad": s["failed"] + s["errors"],
        "links": {key: listing.links(groups[g], s.get(key, 0)) for key, g in (
            ("failed", "failed"), ("errors", "errors"), ("ascend_failed", "ascend_failed"),
            ("nondeterministic", "nondeterministic"), ("hazards", "hazards"))},
        "dual": {"ratio": dual_ratio(worst["dual"]) if worst["dual"] else None,
                 "links": listing.links([worst["dual"]] if worst["dual"] else [])},
        "ascend": {"ratio": worst["ascend"].get("ascend_ratio") if worst["ascend"] else None,
                   "links": listing.links([worst["ascend"]] if worst["ascend"] else [])},
        "determinism_run": worst["determinism_run"],
    }


def summary_view(report: dict, listing: Listing) -> dict:
    buckets = bucket_cases(report["records"])
    rows = [_summary_row(s, buckets.get((s["phase"], s["dtype"])), listing) for s in report["summaries"]]
    everything = {"groups": case_groups(report["records"]), "worst": standard_worsts(report["records"])}
    totals = report["totals"] | {"hazards": sum(s.get("hazards", 0) for s in report["summaries"])}
    return {"rows": rows, "totals": _summary_row(totals, everything, listing) if rows else None}


def banner(report: dict, listing: Listing) -> dict:
    """The verdict line, the cases behind each of its counts, and what was judged."""
    counts = [c | {"links": listing.links(c["records"], c["count"], BANNER_LINKS)} for c in verdict_counts(report)]
    planted = report["run"].get("planted") or (report.get("fuzz") or {}).get("planted")  # a bug planted on purpose
    return {"verdict": report["verdict"], "counts": counts, "identity": identity_lines(report["run"]),
            "planted": planted, "mixed": mixed_text(report)}


def tests_view(report: dict) -> list[dict]:
    order = {"failed": 0, "error": 0, "xpassed": 0, "skipped": 1, "xfailed": 2, "passed": 3}
    rows = []
    for t in sorted(report["tests"], key=lambda x: (order.get(x["outcome"], 4), x["test_id"])):
        reason = t["reason"] or ""
        rows.append(t | {"cls": {"failed": "bad", "error": "err", "xpassed": "bad", "skipped": "skip"}.get(
            t["outcome"], ""), "reason": reason, "fold": "\n" in reason or len(reason) > 160,
            "headline": headline(reason), "duration_s": num(t["duration_s"])})
    return rows


def findings(report: dict) -> dict:
    return {"failing": [h for h in report["hazards"] if not h.get("accepted")],
            "accepted": [h for h in report["hazards"] if h.get("accepted")],
            "notes": report.get("notes") or [], "ledger": report.get("acknowledgements") or []}


def plots(report: dict, listing: Listing) -> dict:
    records = report["records"]
    images = [{"key": key, "alt": alt, "png": png, "caption": CAPTIONS[key]} for key, alt, png in (
        ("error_vs_bound", "Observed error against allowed bound per phase and dtype", error_vs_bound_png(records)),
        ("ratio_histogram", "Histogram of error/tolerance ratios", ratio_histogram_png(records)),
        ("ascend_margins", "Ascend benchmark-standard ratios per metric, against their limits",
         ascend_margins_png(records))) if png]
    misses = [{"metric": m, "share": share, "link": listing.links([r])["ids"][0]}
              for r, m, share in ascend_misses(records)]
    counted = sum(t["cases"] for t in report.get("tally") or [])
    return {"images": images, "misses": misses[:MAX_FAILURES], "more_misses": max(len(misses) - MAX_FAILURES, 0),
            "counted_only": counted if images and report.get("tally") else None}


def render_html(report: dict) -> str:
    listing = Listing(report)
    page = environment().get_template("report.html").render(
        title=TITLE, banner=banner(report, listing), complete=report["complete"],
        incomplete_reason=report["incomplete_reason"], collection_errors=report["collection_errors"],
        meta=meta_items(report), summary=summary_view(report, listing),
        # fuzz_section.py builds its HTML from escaped parts (html.escape on every value it shows)
        fuzz=Markup(fuzz_section.html_section(report)),
        plots=plots(report, listing), cases=worst_cases(report, listing), findings=findings(report),
        tests=tests_view(report), schema_version=report["schema_version"],
        migrated_from=report["run"].get("migrated_from"))
    return spaceless(page).rstrip("\n") + "\n"
