"""summary.md: a compact Markdown summary for a CI step summary ($GITHUB_STEP_SUMMARY).

Every count names its cases (by case id, as report.json and report.html do): a reader of the step
summary must be able to find the one case behind "1 outside the Ascend benchmark standard".
"""

from __future__ import annotations

from conformance.formatting import fmt_num, fmt_ratio, shorten
from conformance.report import fuzz_section
from conformance.report.judged_under import mixed_text
from conformance.report.model import (
    bucket_cases,
    cann_text,
    dual_ratio,
    failed_rules,
    failures_first,
    gating_text,
    identity_lines,
    identity_text,
    verdict_counts,
)

TOP_FAILURES = 8
MAX_IDS = 10  # case ids named per count (the rest: "+N more", all in report.json)


def _cell(text) -> str:
    """One Markdown table cell: no pipes or line breaks."""
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _short(text: str, limit: int = 120) -> str:
    return shorten(" ".join(str(text).split()), limit)


def _mark(report: dict) -> str:
    status = report["verdict"]["status"]
    return {"passed": "✅", "failed": "❌", "incomplete": "⚠️"}[status]


def case_ids(records: list[dict], count: int | None = None) -> str:
    """`id`, `id` (+N more): the cases behind a count; `count` above len(records) means some were only
    counted (a fuzz session keeps the failing and the worst passing records)."""
    ids = list(dict.fromkeys(r["case_id"] for r in records))  # one case judged by two tests: named once
    extra = []
    if len(ids) > MAX_IDS:
        extra.append(f"+{len(ids) - MAX_IDS} more")
    if count is not None and count > len(records):
        extra.append(f"{count - len(records)} counted only, records not kept")
    named = ", ".join(f"`{i}`" for i in ids[:MAX_IDS])
    return " ".join(x for x in (named, f"({'; '.join(extra)})" if extra else "") if x)


def meta_line(report: dict) -> str:
    run = report["run"]
    v = run.get("versions") or {}
    hyp = run.get("hypothesis") or {}
    commit = (run.get("git_commit") or "")[:10] or "-"
    parts = [f"backend `{run.get('backend')}`", f"device {run.get('device')}", f"torch {v.get('torch') or '-'}",
             f"torch_npu {v.get('torch_npu') or '-'}", f"CANN {cann_text(run)}",
             f"profile `{hyp.get('profile')}`" + (" (npu shape space)" if run.get("shape_space") == "npu" else ""),
             f"seed {hyp.get('seed') if hyp.get('seed') is not None else 'random'}",
             f"commit `{commit}`", f"tolerance {run['tolerance_policy']['source']}",
             f"{run.get('duration_s', 0):.1f} s", f"started {run.get('started_at')}"]
    return " · ".join(parts)


def identity_markdown(run: dict) -> list[str]:
    """'layer under test: `spec` (`file`, sha256 ..., git ...)': code spans, so a path such as
    __init__.py is not read as emphasis."""
    out = []
    for line in identity_lines(run):
        details = [f"`{d}`" if d.startswith("/") or d.endswith(".py") else d for d in line["details"]]
        out.append(identity_text(line | {"spec": f"`{line['spec']}`", "details": details}))
    return out


def _finding_table(title: str, rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = [f"### {title} ({sum(h['count'] for h in rows)} in {len(rows)} kind(s))", "",
             "| code | op | argument | rule | count | cases | inferred | acknowledged by |",
             "|---|---|---|---|---:|---:|---|---|"]
    for h in rows:
        lines.append(f"| `{_cell(h.get('code') or '-')}` | `{_cell(h['op'])}` | {_cell(h['argument'])} | "
                     f"{_cell(_short(h['rule']))} | {h['count']} | {h['cases']} | {'yes' if h['inferred'] else 'no'} | "
                     f"{_cell(h.get('acknowledgement') or '-')} |")
    return lines + [""]


def _head(report: dict) -> list[str]:
    """The verdict, the cases behind each of its counts, what was judged, where and how."""
    verdict, totals = report["verdict"], report["totals"]
    t = totals["tests"]
    lines = [f"## {_mark(report)} npu-conformance: {_cell(verdict['reason'])}", ""]
    planted = report["run"].get("planted") or (report.get("fuzz") or {}).get("planted")  # a bug planted on purpose
    if planted:
        lines += [f"**planted bug: {_cell(planted)}**", ""]
    mixed = mixed_text(report)
    if mixed:
        lines += [f"**{_cell(mixed)}**", ""]
    counts = [f"{c['label']} ({c['count']}): {case_ids(c['records'], c['count'])}" if c["count"] is not None
              else f"{c['label']}: {case_ids(c['records'])}" for c in verdict_counts(report)]
    if counts:
        lines += ["Counted: " + " · ".join(counts), ""]
    lines += [" · ".join(identity_markdown(report["run"])), ""]
    if not report["complete"]:
        lines += [f"> **Incomplete report**: {_cell(report['incomplete_reason'])}. The numbers below cover only "
                  f"what finished.", ""]
    return lines + [meta_line(report), "",
                    f"Cases: {totals['cases']} ({totals['passed']} passed, {totals['failed']} failed, "
                    f"{totals['errors']} errors) · tests: {t['finished']}"
                    + (f" of {t['collected']}" if t["collected"] is not None else "")
                    + f" ({t['passed']} passed, {t['failed']} failed, {t['error']} errors, {t['skipped']} skipped)", ""]


def _summary_table(report: dict) -> list[str]:
    if not report["summaries"]:
        return ["_No case was compared._", ""]
    lines = ["| phase | dtype | cases | passed | failed | errors | worst error/tolerance | worst Ascend margin "
             "| outside Ascend std | nondeterministic | worst case |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in report["summaries"]:
        bad = s["failed"] + s["errors"]
        worst = fmt_ratio(s["worst_ratio"])
        lines.append(f"| {s['phase']} | {s['dtype']} | {s['cases']} | {s['passed']} | "
                     f"{'**' + str(s['failed']) + '**' if s['failed'] else 0} | "
                     f"{'**' + str(s['errors']) + '**' if s['errors'] else 0} | "
                     f"{'**' + worst + '**' if bad else worst} | {fmt_ratio(s.get('worst_ascend_ratio'))} | "
                     f"{s.get('ascend_failed', 0)} | {s.get('nondeterministic', 0)} | "
                     f"`{s['worst_case_id'] or '-'}` |")
    return lines + [""] + _bucket_cases(report)


def _bucket_line(s: dict, info: dict) -> str:
    """One bucket's counted cases (its summary row's counts) and each standard's own worst case."""
    groups, worst = info["groups"], info["worst"]
    parts = [f"{label} {case_ids(groups[key], s.get(key, 0))}" for label, key in (
        ("failed", "failed"), ("errors", "errors"), ("outside Ascend std", "ascend_failed"),
        ("nondeterministic", "nondeterministic"), ("unacknowledged hazard", "hazards")) if s.get(key)]
    if worst["dual"] is not None:
        parts.append(f"worst dual reference {case_ids([worst['dual']])} {fmt_ratio(dual_ratio(worst['dual']))}")
    if worst["ascend"] is not None:
        parts.append(f"worst Ascend margin {case_ids([worst['ascend']])} {fmt_ratio(worst['ascend']['ascend_ratio'])}")
    return f"- {s['phase']} / {s['dtype']}: " + " · ".join(parts)


def _bucket_cases(report: dict) -> list[str]:
    buckets = bucket_cases(report["records"])
    rows = [s for s in report["summaries"] if (s["phase"], s["dtype"]) in buckets]
    if not rows:
        return []
    return ["Cases behind the counts, and each standard's worst case per phase and dtype:", ""] + [
        _bucket_line(s, buckets[(s["phase"], s["dtype"])]) for s in rows] + [""]


def _why(r: dict) -> str:
    out = r.get("output") or {}
    return r.get("error") or "; ".join(
        list(out.get("reasons") or []) + list((r.get("ascend") or {}).get("reasons") or [])
        + [x for c in r.get("caches") or [] for x in c.get("reasons", [])]
        + [f"unacknowledged hazard {h.get('code')}" for h in r.get("hazards") or [] if not h.get("accepted")]
        + list((r.get("determinism") or {}).get("reasons") or []))


def rules_text(r: dict) -> str:
    """The failed rules, the reported-only ones marked: 'mean rule, Ascend: rmse (reported)'."""
    return ", ".join(x["rule"] + ("" if x["gating"] else " (reported)") for x in failed_rules(r)) or "-"


def _case_line(r: dict) -> str:
    out = r.get("output") or {}
    where = f"seq {out['worst_seq']} / head {out['worst_head']}" if out.get("worst_row", -1) >= 0 else "-"
    v = r.get("verdicts") or {}
    standards = f"{v['dual']} / {v['ascend']} {fmt_ratio(r.get('ascend_ratio'))} / {v['determinism']}" if v else "-"
    return (f"| {r['verdict']} | {r['phase']}/{r['dtype']} | `{r['case_id']}` | {_cell(rules_text(r))} | "
            f"{fmt_ratio(r['ratio'])} | {standards} | {where} | {_cell(r['test_id'].rsplit('::', 1)[-1])} | "
            f"{_cell(_short(_why(r)))} |")


CASE_HEADER = ["| verdict | phase/dtype | case | failed rules | ratio | dual / Ascend / determinism | worst seq/head "
               "| test | why |", "|---|---|---|---|---:|---|---|---|---|"]


def _case_tables(report: dict) -> list[str]:
    """The failing cases, then the passing ones a reported (non-gating) standard failed."""
    lines = []
    failing = [r for r in failures_first(report["records"]) if r["verdict"] != "pass"]
    if failing:
        lines += [f"### Top failures ({min(len(failing), TOP_FAILURES)} of {len(failing)})", ""] + CASE_HEADER
        lines += [_case_line(r) for r in failing[:TOP_FAILURES]] + [""]
    reported = [r for r in failures_first(report["records"]) if r["verdict"] == "pass" and failed_rules(r)]
    if reported:
        lines += [f"### Within the gating standards, outside a reported one ({min(len(reported), TOP_FAILURES)} "
                  f"of {len(reported)})", ""] + CASE_HEADER
        lines += [_case_line(r) for r in reported[:TOP_FAILURES]] + [""]
    return lines


def _tests_lines(report: dict) -> list[str]:
    lines = []
    bad_tests = [x for x in report["tests"] if x["outcome"] in ("failed", "error", "xpassed")]
    if bad_tests:
        lines += [f"### Failed tests ({len(bad_tests)})", ""]
        lines += [f"- `{_cell(x['test_id'])}` ({x['outcome']}): {_cell(_short(x['reason'] or ''))}"
                  for x in bad_tests[:10]]
        lines.append("")
    skipped = [x for x in report["tests"] if x["outcome"] == "skipped"]
    if skipped:
        lines += [f"<details><summary>{len(skipped)} skipped test(s)</summary>", ""]
        lines += [f"- `{_cell(x['test_id'])}`: {_cell(_short(x['reason'] or ''))}" for x in skipped]
        lines += ["", "</details>", ""]
    return lines


def _findings_lines(report: dict) -> list[str]:
    lines = []
    failing_hazards = [h for h in report["hazards"] if not h.get("accepted")]
    accepted = [h for h in report["hazards"] if h.get("accepted")]
    for title, rows in (("Hazards that failed their cases", failing_hazards), ("Acknowledged hazards", accepted),
                        ("Notes (informational)", report.get("notes") or [])):
        lines += _finding_table(title, rows)
    stale = [a for a in report.get("acknowledgements") or [] if a["status"] == "stale"]
    if stale:
        lines += ["**Stale acknowledgements** (matched nothing in this full run): "
                  + ", ".join(f"`{_cell(a['id'])}` ({_cell(a['code'])})" for a in stale), ""]
    if report["collection_errors"]:
        lines += ["### Collection errors", ""]
        lines += [f"- `{_cell(e['nodeid'] or '<session>')}`: {_cell(_short(e['message']))}"
                  for e in report["collection_errors"]]
        lines.append("")
    return lines


def _policy_lines(report: dict) -> list[str]:
    policy = report["run"]["tolerance_policy"]
    d = policy["default"]
    return [f"Ratios are error/tolerance, <= 1 passes: max |out-golden| <= {d['k']:g} x baseline max error + "
            f"{d['ulps']:g} ulp (floor {fmt_num(d['floor'], 'g')}), mean error <= {d['mean_k']:g} x baseline mean "
            f"(policy: {policy['source']}" + (f"; per-dtype overrides for {', '.join(policy['per_dtype'])}"
                                              if policy["per_dtype"] else "") + ").", "",
            f"Gating: {gating_text(policy.get('gating'))}. The Ascend margin is msprobe's benchmark standard: "
            "each metric's kernel/baseline ratio (max and mean relative error, RMSE, small-value error ratio) "
            "over its limit, <= 1 passes."]


def render_markdown(report: dict) -> str:
    lines = (_head(report) + _summary_table(report) + fuzz_section.markdown_lines(report) + _case_tables(report)
             + _tests_lines(report) + _findings_lines(report) + _policy_lines(report))
    return "\n".join(lines).rstrip() + "\n"
