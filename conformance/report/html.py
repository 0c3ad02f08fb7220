"""report.html: one self-contained page (inline CSS, plots as base64 PNG, no script, no network)."""

from __future__ import annotations

from html import escape

from conformance.report import fuzz_section
from conformance.report.model import failures_first, gating_text
from conformance.formatting import fmt_num, fmt_ratio, num
from conformance.report.plots import ascend_margins_png, error_vs_bound_png, ratio_histogram_png

TITLE = "npu-conformance tolerance report"
MAX_FAILURES = 50  # failing / erroring cases listed (all are in report.json)
CLOSEST_PASSING = 10  # passing cases listed, closest to the bound first

CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;color:#1d2228;margin:0;
  background:#f4f6f8}
main{max-width:1200px;margin:0 auto;padding:20px 28px 40px}
h1{font-size:24px;margin:4px 0 12px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:2px solid #d8dee4;padding-bottom:4px}
.banner{padding:12px 16px;border-radius:6px;font-size:16px;font-weight:600;margin:8px 0;color:#fff}
.passed{background:#1f883d}.failed{background:#cf222e}.incomplete{background:#9a6700}
.warn{background:#fff8c5;border:2px solid #d4a72c;color:#4d2d00;padding:10px 14px;border-radius:6px;margin:8px 0}
table{border-collapse:collapse;background:#fff;margin:6px 0 10px;width:100%}
th,td{border:1px solid #d8dee4;padding:4px 8px;text-align:left;vertical-align:top;overflow-wrap:break-word}
th,td.n,.tag{white-space:nowrap}
td code{overflow-wrap:break-word}
th{background:#eaeef2;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#ffebe9}tr.full td{padding:0 8px 2px;border-top:0}
tr.full summary{font-size:12px}tr.full table{width:auto;min-width:50%}tr.err td{background:#fff1e5}tr.skip td{background:#fff8c5}
.meta{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:4px 18px;background:#fff;
  border:1px solid #d8dee4;border-radius:6px;padding:10px 14px}
.meta div{overflow-wrap:anywhere}.meta b{color:#57606a;font-weight:600;margin-right:6px;white-space:nowrap}
code{font:12px/1.4 'DejaVu Sans Mono',Menlo,Consolas,monospace;background:#eaeef2;padding:0 3px;border-radius:3px}
pre{font:12px/1.4 'DejaVu Sans Mono',Menlo,Consolas,monospace;background:#fff;border:1px solid #d8dee4;
  padding:8px;white-space:pre-wrap;overflow-wrap:anywhere;margin:4px 0}
img{max-width:100%;background:#fff;border:1px solid #d8dee4;border-radius:6px;margin:6px 0}
details{margin:2px 0}summary{cursor:pointer;color:#0969da}
.muted{color:#57606a}.tag{display:inline-block;padding:0 6px;border-radius:10px;font-size:12px;font-weight:600}
.t-pass{background:#dafbe1;color:#116329}.t-fail{background:#ffebe9;color:#a40e26}
.t-error{background:#fff1e5;color:#953800}.t-skip{background:#fff8c5;color:#7d4e00}
"""


def _e(value) -> str:
    return escape("" if value is None else str(value))


def _wb(value) -> str:
    """Escaped text with line-break opportunities after / . : _ (long node ids and op names)."""
    out = _e(value)
    for sep in ("/", ".", "::", "_"):
        out = out.replace(sep, sep + "<wbr>")
    return out.replace(":<wbr>:<wbr>", "::<wbr>")


def headline(text: str | None, limit: int = 160) -> str:
    """The first informative line of a failure message ('AssertionError:' alone joins the next line)."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    if first.endswith(":") and len(lines) > 1:
        first = f"{first} {lines[1]}"
    return first if len(first) <= limit else first[: limit - 1] + "\u2026"


def _tag(verdict: str) -> str:
    cls = {"pass": "t-pass", "passed": "t-pass", "fail": "t-fail", "failed": "t-fail", "error": "t-error",
           "xpassed": "t-fail", "skipped": "t-skip", "xfailed": "t-skip"}.get(verdict, "t-skip")
    return f'<span class="tag {cls}">{_e(verdict)}</span>'


def _table(headers: list[str], rows: list[tuple[str, list[str]]], numeric: set[int] = frozenset()) -> str:
    """rows: (tr class, [cell html])."""
    head = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join(_row(cls, cells, numeric, len(headers)) for cls, cells in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _row(cls: str, cells: list[str], numeric, width: int) -> str:
    if len(cells) == 1 and width > 1:  # a full-width row (details under the row above)
        return f'<tr class="{cls} full"><td colspan="{width}">{cells[0]}</td></tr>'
    return f'<tr class="{cls}">' + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                           for i, c in enumerate(cells)) + "</tr>"


def _meta(report: dict) -> str:
    run = report["run"]
    v = run.get("versions") or {}
    hyp = run.get("hypothesis") or {}
    tol = run["tolerance_policy"]
    d = tol["default"]
    items = [
        ("backend", f"{run.get('backend')} ({run.get('backend_reason')})"),
        ("device", run.get("device")),
        ("NPU", "usable, " + f"{run['npu']['device_count']} device(s)" if run["npu"]["usable"]
         else f"not usable: {run['npu']['error'] or '-'}"),
        ("torch", v.get("torch")), ("torch_npu", v.get("torch_npu") or "-"), ("CANN", v.get("cann") or "-"),
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
    return '<div class="meta">' + "".join(f"<div><b>{_e(k)}</b>{_e(v)}</div>" for k, v in items) + "</div>"


def _summary(report: dict) -> str:
    if not report["summaries"]:
        return '<p class="warn">No case was compared: nothing here shows the layer is within tolerance.</p>'
    rows = []
    for s in report["summaries"]:
        bad = s["failed"] + s["errors"]
        rows.append(("bad" if bad else "", [
            _e(s["phase"]), _e(s["dtype"]), str(s["cases"]), str(s["passed"]), str(s["failed"]), str(s["errors"]),
            f"<b>{_e(fmt_ratio(s['worst_ratio']))}</b>" if bad else _e(fmt_ratio(s["worst_ratio"])),
            _e(fmt_ratio(s.get("worst_ascend_ratio"))), str(s.get("ascend_failed", 0)),
            str(s.get("nondeterministic", 0)), str(s.get("hazards", 0)),
            f"<code>{_e(s['worst_case_id'] or '-')}</code>"]))
    t = report["totals"]
    rows.append(("", ["<b>all</b>", "", f"<b>{t['cases']}</b>", f"<b>{t['passed']}</b>", f"<b>{t['failed']}</b>",
                      f"<b>{t['errors']}</b>", f"<b>{_e(fmt_ratio(t['worst_ratio']))}</b>", "",
                      f"<b>{t.get('ascend_failed', 0)}</b>", f"<b>{t.get('nondeterministic', 0)}</b>", "",
                      f"<code>{_e(t['worst_case_id'] or '-')}</code>"]))
    return _table(["phase", "dtype", "cases", "passed", "failed", "errors", "worst error/tolerance",
                   "worst Ascend margin", "Ascend fails", "non-determ.", "hazards", "worst case"], rows,
                  numeric={2, 3, 4, 5, 6, 7, 8, 9, 10})


def _ascend_detail(a: dict | None) -> str:
    if not a:
        return '<p class="muted">Ascend benchmark standard: not computed.</p>'
    rows = [("bad" if m != "eb" and num(a["ratios"][m]) > a["limits"][m] else "", [
        _e(m) + (" (reported, not gating)" if m == "eb" else ""), _e(fmt_num(a["kernel"][m])),
        _e(fmt_num(a["baseline"][m])), _e(fmt_ratio(a["ratios"][m])), _e(f"{a['limits'][m]:g}")])
        for m in ("max_rel_err", "mean_rel_err", "rmse", "small_value_err_ratio", "eb")]
    head = (f"<p>{_tag(a['verdict'])} Ascend benchmark standard {_e(a['level'])}: margin "
            f"{_e(fmt_ratio(a['margin']))} (worst: {_e(a['worst_metric'])}); ratio = kernel / max(baseline, "
            f"{_e(fmt_num(a['minimum_err'], 'g'))}); {a['kernel']['small_values']} small value(s) of "
            f"{a['kernel']['elements']}</p>")
    reasons = "".join(f"<li>{_e(x)}</li>" for x in a.get("reasons") or [])
    return head + (f"<ul>{reasons}</ul>" if reasons else "") + _table(
        ["metric", "kernel", "baseline", "ratio", "limit"], rows, numeric={1, 2, 3, 4})


def _determinism_detail(d: dict | None) -> str:
    if not d:
        return '<p class="muted">Determinism: not checked.</p>'
    if d["verdict"] == "pass":
        return f"<p>{_tag('pass')} determinism: {d['runs']} runs on the same inputs gave the same bits</p>"
    return (f"<p>{_tag('fail')} determinism over {d['runs']} runs</p><ul>"
            + "".join(f"<li>{_e(x)}</li>" for x in d["reasons"]) + "</ul>")


def _case_detail(r: dict) -> str:
    out = r.get("output") or {}
    parts = []
    if r.get("error"):
        parts.append(f"<pre>{_e(r['error'])}</pre>")
    if out:
        parts.append(
            f"<p>{_tag(out['verdict'])} dual reference: max |out-golden| {_e(fmt_num(out['max_abs_err']))} / bound {_e(fmt_num(out['bound']))} "
            f"(ratio {_e(fmt_ratio(out['ratio']))}; baseline max {_e(fmt_num(out['baseline_max_abs_err']))}"
            + (f"; the {_e(out['bound_term'])} term binds" if out.get("bound_term") else "") + "); "
            f"mean {_e(fmt_num(out['mean_abs_err']))} / {_e(fmt_num(out['mean_bound']))} "
            f"(ratio {_e(fmt_ratio(out['mean_ratio']))})</p>")
        if out.get("per_seq_ratio"):
            per_seq = ", ".join(f"{i}: {fmt_ratio(x)}" for i, x in enumerate(out["per_seq_ratio"]))
            parts.append(f"<p>per-sequence ratio: {_e(per_seq)}</p>")
        reasons = list(out.get("reasons") or [])
        if out.get("nonfinite_rows"):
            reasons.append(f"non-finite rows: {out['nonfinite_rows'][:20]}")
        if reasons:
            parts.append("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in reasons) + "</ul>")
        parts.append(_ascend_detail(r.get("ascend")))
        parts.append(_determinism_detail(r.get("determinism")))
        if out.get("worst_values"):
            parts.append(_table(["row", "seq", "head", "dim", "out", "golden", "baseline", "|out-golden|"], [
                ("", [str(w["row"]), _e(w.get("seq", "-")), str(w["head"]), str(w["dim"]),
                      _e(fmt_num(w["out"], ".6g")), _e(fmt_num(w["golden"], ".6g")),
                      _e(fmt_num(w["baseline"], ".6g")), _e(fmt_num(w["abs_err"]))])
                for w in out["worst_values"]], numeric={0, 1, 2, 3, 4, 5, 6, 7}))
    for c in r.get("caches") or []:
        line = f"{c['name']}: {c['verdict']} ({c['mismatched_slots']}/{c['slots']} slots differ)"
        extra = "; ".join(c.get("reasons") or [])
        parts.append(f"<p>{_tag(c['verdict'])} {_e(line)}{(': ' + _e(extra)) if extra else ''}</p>")
    for h in r.get("hazards") or []:
        status = (f"acknowledged ({h['acknowledgement']})" if h.get("accepted") else
                  "fails the case" + (" (--strict-contracts)" if h.get("acknowledgement") else ": not acknowledged"))
        parts.append(f"<p>{_tag('hazard')} <code>{_e(h.get('code', ''))}</code> {_e(status)}: "
                     f"<code>{_e(h['op'])}</code> {_e(h['argument'])}: {_e(h['rule'])}</p>")
    for n in r.get("notes") or []:
        parts.append(f"<p>{_tag('note')} <code>{_e(n.get('code', ''))}</code> <code>{_e(n['op'])}</code> "
                     f"{_e(n['argument'])}: {_e(n['rule'])}</p>")
    replay = r.get("case_file")
    if replay:
        parts.append(f"<p>replay: <code>npu-conformance replay {_e(replay)}</code></p>")
    parts.append(f"<details><summary>case JSON</summary><pre>{_e(_case_json(r['case']))}</pre></details>")
    return "".join(parts)


def _case_json(case: dict) -> str:
    import json

    return json.dumps(case, sort_keys=True)


def _worst_cases(report: dict) -> str:
    records = failures_first(report["records"])
    if not records:
        return '<p class="muted">No case recorded.</p>'
    bad = [r for r in records if r["verdict"] != "pass"]
    shown = bad[:MAX_FAILURES] + [r for r in records if r["verdict"] == "pass"][:CLOSEST_PASSING]
    rows = []
    for r in shown:
        out = r.get("output") or {}
        shape = r.get("shape") or {}
        lengths = r.get("lengths") or {}
        if r["verdict"] == "error":
            where = f'<span class="muted">{_e(headline(r.get("error"), 140))}</span>'
        elif out.get("worst_row", -1) >= 0:
            where = (f'seq&nbsp;{out["worst_seq"]} head&nbsp;{out["worst_head"]}'
                     f'<br><span class="muted">row&nbsp;{out["worst_row"]}</span>')
        else:
            where = "-"
        config = (f"Hq={shape['num_heads']} Hkv={shape['num_kv_heads']} D={shape['head_dim']} "
                  f"bs={shape['block_size']}" if shape else "")
        lens = f"B={lengths['batch']} len {lengths['min']}..{lengths['max']}" if lengths else ""
        cls = {"fail": "bad", "error": "err"}.get(r["verdict"], "")
        verdicts = r.get("verdicts") or {}
        standards = ("-" if r["verdict"] == "error" else
                     f"dual&nbsp;{_tag(verdicts.get('dual', '-'))}<br>Ascend&nbsp;{_tag(verdicts.get('ascend', '-'))} "
                     f"{_e(fmt_ratio(r.get('ascend_ratio')))}<br>det.&nbsp;{_tag(verdicts.get('determinism', '-'))}")
        rows.append((cls, [
            _tag(r["verdict"]), _e(r["phase"]) + "<br>" + _e(r["dtype"]), _e(fmt_ratio(r.get("ratio"))),
            standards, _e(fmt_num(out.get("max_abs_err"))), _e(fmt_num(r.get("bound"))), where,
            _e(config) + "<br>" + _e(lens),
            f"<code>{_e(r['case_id'])}</code><br><span class=\"muted\">{_wb(r['test_id'].rsplit('::', 1)[-1])}"
            "</span>"]))
        rows.append((cls, [f"<details><summary>{_e(r['case_id'])}: errors, worst values, caches, hazards, "
                           f"case JSON</summary>{_case_detail(r)}</details>"]))
    note = (f'<p class="muted">{len(bad)} failing or erroring case(s) first, then the {CLOSEST_PASSING} passing '
            f"cases closest to the bound; {len(shown)} of {len(records)} shown (every case is in report.json).</p>")
    return note + _table(["verdict", "phase / dtype", "ratio", "standards", "max err", "bound", "worst spot",
                          "shape / lengths", "case / test"], rows, numeric={2, 4, 5})


def _tests(report: dict) -> str:
    tests = report["tests"]
    if not tests:
        return '<p class="warn">No test finished.</p>'
    order = {"failed": 0, "error": 0, "xpassed": 0, "skipped": 1, "xfailed": 2, "passed": 3}
    rows = []
    for t in sorted(tests, key=lambda x: (order.get(x["outcome"], 4), x["test_id"])):
        cls = {"failed": "bad", "error": "err", "xpassed": "bad", "skipped": "skip"}.get(t["outcome"], "")
        reason = t["reason"] or ""
        reason_html = (f"<details><summary>{_e(headline(reason))}</summary><pre>{_e(reason)}</pre>"
                       "</details>") if "\n" in reason or len(reason) > 160 else _e(reason)
        rows.append((cls, [_tag(t["outcome"]), f"<code>{_wb(t['test_id'])}</code>", str(t["cases"]),
                           f"{num(t['duration_s']):.1f} s", reason_html]))
    return _table(["outcome", "test", "cases", "time", "reason"], rows, numeric={2, 3})


def _finding_rows(rows: list[dict], with_ack: bool):
    out = []
    for h in rows:
        cells = [f"<code>{_e(h.get('code') or '-')}</code>", f"<code>{_wb(h['op'])}</code>", _e(h["argument"]),
                 _e(h["rule"]), str(h["count"]), str(h["cases"]), _e(", ".join(h["phases"])),
                 "inferred" if h["inferred"] else "sourced",
                 _e(h["source"]) + (f'<br><span class="muted">e.g. {_e(h.get("example_detail"))}</span>'
                                    if h.get("example_detail") else "")]
        if with_ack:
            cells.insert(1, _e(h.get("acknowledgement") or "-"))
        out.append(("bad" if with_ack and not h.get("accepted") else "", cells))
    return out


def _hazards(report: dict) -> str:
    head = ["code", "op", "argument", "rule", "count", "cases", "phases", "basis", "source"]
    failing = [h for h in report["hazards"] if not h.get("accepted")]
    accepted = [h for h in report["hazards"] if h.get("accepted")]
    parts = ['<p class="muted">Hazards: calls the hardware accepts but leaves undefined, unchecked or '
             "version-dependent. Each fails its case unless the acknowledgement ledger accepts it "
             "(never under --strict-contracts).</p>"]
    parts.append("<h3>Hazards that failed their cases</h3>" + (
        _table(head[:1] + ["acknowledgement"] + head[1:], _finding_rows(failing, True), numeric={5, 6})
        if failing else '<p class="muted">None.</p>'))
    parts.append("<h3>Acknowledged hazards</h3>" + (
        _table(head[:1] + ["acknowledgement"] + head[1:], _finding_rows(accepted, True), numeric={5, 6})
        if accepted else '<p class="muted">None.</p>'))
    notes = report.get("notes") or []
    parts.append('<h3>Notes</h3><p class="muted">Accepted and well-defined; informational only (e.g. an '
                 "emulator-only extension such as float32, a host sync).</p>" + (
                     _table(head, _finding_rows(notes, False), numeric={4, 5}) if notes
                     else '<p class="muted">None.</p>'))
    ledger = report.get("acknowledgements") or []
    if ledger:
        rows = [("bad" if a["status"] == "stale" else "", [
            f"<code>{_e(a['id'])}</code>", f"<code>{_e(a['code'])}</code>", f"<code>{_wb(a['op'])}</code>",
            _e(", ".join(a["phases"]) or "all"), str(a["matched"]), _e(a["status"]),
            _e(a["reason"]) + f'<br><span class="muted">{_e(a["link"])}</span>']) for a in ledger]
        parts.append("<h3>Acknowledgement ledger</h3>" + _table(
            ["id", "code", "op", "phases", "matched", "status", "reason"], rows, numeric={4}))
    return "".join(parts)


def _plots(report: dict) -> str:
    parts = []
    for alt, png in (("Observed error against allowed bound per phase and dtype", error_vs_bound_png(report["records"])),
                     ("Histogram of error/tolerance ratios", ratio_histogram_png(report["records"])),
                     ("Ascend benchmark-standard ratios per metric, against their limits",
                      ascend_margins_png(report["records"]))):
        if png:
            parts.append(f'<img alt="{_e(alt)}" src="data:image/png;base64,{png}">')
    if parts and report.get("tally"):
        counted = sum(t["cases"] for t in report["tally"])
        parts.insert(0, f'<p class="muted">A fuzz session keeps every failing case and the worst passing ones of '
                        f'each phase and dtype; {counted} more passing cases are only counted (in the summary '
                        "above), not plotted.</p>")
    return "".join(parts) or '<p class="muted">No compared case to plot.</p>'


def render_html(report: dict) -> str:
    verdict = report["verdict"]
    sections = [f"<h1>{_e(TITLE)}</h1>",
                f'<div class="banner {_e(verdict["status"])}">{_e(verdict["reason"])}</div>']
    if not report["complete"]:
        sections.append(f'<div class="warn"><b>INCOMPLETE REPORT</b>: {_e(report["incomplete_reason"])}. '
                        "Only the tests that finished are counted; this report does not show conformance.</div>")
    if report["collection_errors"]:
        sections.append('<div class="warn"><b>Collection errors</b><ul>' + "".join(
            f"<li><code>{_e(e['nodeid'] or '<session>')}</code>: {_e(e['message'])}</li>"
            for e in report["collection_errors"]) + "</ul></div>")
    sections += ["<h2>Run</h2>", _meta(report),
                 "<h2>Summary per phase and dtype</h2>", _summary(report), fuzz_section.html_section(report),
                 "<h2>Error against tolerance</h2>", _plots(report),
                 "<h2>Worst cases (failures first)</h2>", _worst_cases(report),
                 "<h2>Hazards</h2>", _hazards(report),
                 "<h2>Tests</h2>", _tests(report),
                 f'<p class="muted">report.json schema version {report["schema_version"]}'
                 + (f" (migrated from version {report['run']['migrated_from']})" if report["run"].get("migrated_from")
                    else "") + "; a ratio is the case's worst error/tolerance over the gating standards (the dual "
                 "reference's max and mean rules; the Ascend standard's worst metric ratio / limit, its margin), "
                 "&le; 1 passes.</p>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(TITLE)}: "
            f"{_e(verdict['status'])}</title><style>{CSS}</style></head><body><main>\n"
            + "\n".join(sections) + "\n</main></body></html>\n")
