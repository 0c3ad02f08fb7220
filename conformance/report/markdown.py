"""summary.md: a compact Markdown summary for a CI step summary ($GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

from conformance.report import fuzz_section
from conformance.report.model import failures_first, gating_text
from conformance.formatting import fmt_num, fmt_ratio

TOP_FAILURES = 8


def _cell(text) -> str:
    """One Markdown table cell: no pipes or line breaks."""
    return str(text).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mark(report: dict) -> str:
    status = report["verdict"]["status"]
    return {"passed": "✅", "failed": "❌", "incomplete": "⚠️"}[status]


def meta_line(report: dict) -> str:
    run = report["run"]
    v = run.get("versions") or {}
    hyp = run.get("hypothesis") or {}
    commit = (run.get("git_commit") or "")[:10] or "-"
    parts = [f"backend `{run.get('backend')}`", f"device {run.get('device')}", f"torch {v.get('torch') or '-'}",
             f"torch_npu {v.get('torch_npu') or '-'}", f"CANN {v.get('cann') or '-'}",
             f"profile `{hyp.get('profile')}`"
             + (" (npu shape space)" if run.get("shape_space") == "npu" else ""), f"seed {hyp.get('seed') if hyp.get('seed') is not None else 'random'}",
             f"commit `{commit}`", f"tolerance {run['tolerance_policy']['source']}",
             f"{run.get('duration_s', 0):.1f} s", f"started {run.get('started_at')}"]
    return " · ".join(parts)


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


def render_markdown(report: dict) -> str:
    verdict = report["verdict"]
    totals = report["totals"]
    t = totals["tests"]
    lines = [f"## {_mark(report)} npu-conformance: {_cell(verdict['reason'])}", ""]
    if not report["complete"]:
        lines += [f"> **Incomplete report**: {_cell(report['incomplete_reason'])}. The numbers below cover only "
                  f"what finished.", ""]
    lines += [meta_line(report), "",
              f"Cases: {totals['cases']} ({totals['passed']} passed, {totals['failed']} failed, "
              f"{totals['errors']} errors) · tests: {t['finished']}"
              + (f" of {t['collected']}" if t["collected"] is not None else "")
              + f" ({t['passed']} passed, {t['failed']} failed, {t['error']} errors, {t['skipped']} skipped)", ""]

    if report["summaries"]:
        lines += ["| phase | dtype | cases | passed | failed | errors | worst error/tolerance | worst Ascend margin "
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
        lines.append("")
    else:
        lines += ["_No case was compared._", ""]

    lines += fuzz_section.markdown_lines(report)
    failing = [r for r in failures_first(report["records"]) if r["verdict"] != "pass"]
    if failing:
        lines += [f"### Top failures ({min(len(failing), TOP_FAILURES)} of {len(failing)})", "",
                  "| verdict | phase/dtype | case | ratio | dual / Ascend / determinism | worst seq/head | test | why |",
                  "|---|---|---|---:|---|---|---|---|"]
        for r in failing[:TOP_FAILURES]:
            out = r.get("output") or {}
            where = f"seq {out['worst_seq']} / head {out['worst_head']}" if out.get("worst_row", -1) >= 0 else "-"
            why = r.get("error") or "; ".join(
                list(out.get("reasons") or []) + list((r.get("ascend") or {}).get("reasons") or [])
                + [x for c in r.get("caches") or [] for x in c.get("reasons", [])]
                + [f"unacknowledged hazard {h.get('code')}" for h in r.get("hazards") or [] if not h.get("accepted")]
                + list((r.get("determinism") or {}).get("reasons") or []))
            v = r.get("verdicts") or {}
            standards = (f"{v['dual']} / {v['ascend']} {fmt_ratio(r.get('ascend_ratio'))} / {v['determinism']}"
                         if v else "-")
            lines.append(f"| {r['verdict']} | {r['phase']}/{r['dtype']} | `{r['case_id']}` | {fmt_ratio(r['ratio'])} | "
                         f"{standards} | {where} | {_cell(r['test_id'].rsplit('::', 1)[-1])} | {_cell(_short(why))} |")
        lines.append("")

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

    failing_hazards = [h for h in report["hazards"] if not h.get("accepted")]
    accepted = [h for h in report["hazards"] if h.get("accepted")]
    for title, rows in (("Hazards that failed their cases", failing_hazards), ("Acknowledged hazards", accepted),
                        ("Notes (informational)", report.get("notes") or [])):
        lines += _finding_table(title, rows)
    ledger = report.get("acknowledgements") or []
    stale = [a for a in ledger if a["status"] == "stale"]
    if stale:
        lines += [f"**Stale acknowledgements** (matched nothing in this full run): "
                  + ", ".join(f"`{_cell(a['id'])}` ({_cell(a['code'])})" for a in stale), ""]
    if report["collection_errors"]:
        lines += ["### Collection errors", ""]
        lines += [f"- `{_cell(e['nodeid'] or '<session>')}`: {_cell(_short(e['message']))}"
                  for e in report["collection_errors"]]
        lines.append("")
    policy = report["run"]["tolerance_policy"]
    d = policy["default"]
    lines.append(f"Ratios are error/tolerance, <= 1 passes: max |out-golden| <= {d['k']:g} x baseline max error + "
                 f"{d['ulps']:g} ulp (floor {fmt_num(d['floor'], 'g')}), mean error <= {d['mean_k']:g} x baseline mean "
                 f"(policy: {policy['source']}" + (f"; per-dtype overrides for {', '.join(policy['per_dtype'])}"
                                                   if policy["per_dtype"] else "") + ").")
    lines.append("")
    lines.append(f"Gating: {gating_text(policy.get('gating'))}. The Ascend margin is msprobe's benchmark standard: "
                 "each metric's kernel/baseline ratio (max and mean relative error, RMSE, small-value error ratio) "
                 "over its limit, <= 1 passes.")
    return "\n".join(lines).rstrip() + "\n"
