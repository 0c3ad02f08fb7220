"""The fuzz session part of a report (report["fuzz"]): per-property statistics, distinct failures with
their replay commands, and the timeline (worst error/bound per phase x dtype, and cases, over time),
as Markdown lines and as HTML."""

from __future__ import annotations

import html

from conformance.formatting import fmt_ratio, num


def _rate(p: dict) -> str:
    return f"{num(p.get('cases_per_s') or 0):.1f}"


def judged_text(fuzz: dict) -> str:
    """' (judged N times: ...)' when some of the session's cases were judged more than once."""
    judgments = fuzz.get("judgments")
    if not judgments or judgments <= fuzz["cases"]:
        return ""
    return f" (judged {judgments} times: a case judged again while shrinking or replaying the database counts once)"


def markdown_lines(report: dict) -> list[str]:
    fuzz = report.get("fuzz")
    if not fuzz:
        return []
    workers = fuzz["workers"]
    devices = ", ".join(f"{w['index']}: NPU {w['device']}" for w in workers if w.get("device")) or "emulated backend"
    lines = ["### Fuzz session", "",
             f"{fuzz['cases']} cases{judged_text(fuzz)} in {num(fuzz['elapsed_s']):.0f} s of a "
             f"{num(fuzz['budget_s']):.0f} s budget, "
             f"{len(workers)} worker(s) ({devices}), {fuzz.get('slices', 0)} slices; stopped: {fuzz['stopped']}; "
             f"database {fuzz.get('database', {}).get('spec')}", ""]
    if (fuzz.get("database") or {}).get("degraded"):
        lines += [f"> **Database degraded**: {fuzz['database']['degraded']}", ""]
    lines += ["| property | cases | cases/s | seconds | distinct failures |", "|---|---:|---:|---:|---:|"]
    for p in fuzz["properties"]:
        lines.append(f"| {p['test_id'].split('::', 1)[-1]} | {p['cases']} | {_rate(p)} | {num(p['seconds']):.1f} | "
                     f"{len(p.get('signatures') or [])} |")
    lines.append("")
    if fuzz["failures"]:
        lines += ["| failure | count | first seen | replay (its smallest case) |", "|---|---:|---:|---|"]
        for f in fuzz["failures"]:
            replay = f"`{f['replay']}`" if f.get("replay") else "-"
            lines.append(f"| {f['signature'].replace('|', '/')} | {f['count']} | {num(f['first_seen_s']):.0f} s | "
                         f"{replay}{_size_text(f)} |")
        lines.append("")
    return lines


def _size_text(failure: dict) -> str:
    size = failure.get("size")
    if not size or num(size.get("tokens")) is None or num(size["tokens"]) == float("inf"):
        return ""
    return f" ({int(num(size['tokens']))} tokens, batch {int(num(size['batch']))})"


def timeline_png(fuzz: dict) -> str | None:
    from conformance.report.plots import PHASE_COLOURS, _figure, _png  # matplotlib: loaded to draw only

    points = fuzz.get("timeline") or []
    if len(points) < 2:
        return None
    fig = _figure(9, 3.4)
    ax, cases = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    buckets = sorted({b for p in points for b in p.get("worst") or {}})
    for bucket in buckets:  # a bucket whose cases have no ratio yet (errors only) has nothing to plot there
        shown = [p for p in points if num((p.get("worst") or {}).get(bucket)) is not None]
        xs = [p["t"] for p in shown]
        ys = [max(num(p["worst"][bucket]), 1e-6) for p in shown]
        phase, _, dtype = bucket.partition("/")
        style = {"float16": "-", "bfloat16": "--", "float32": ":"}.get(dtype, "-")
        ax.step(xs, ys, where="post", linestyle=style, color=PHASE_COLOURS.get(phase, "grey"), label=bucket)
    ax.axhline(1.0, color="#d62728", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("worst error / bound so far")
    ax.legend(fontsize=6, loc="lower right")
    cases.plot([p["t"] for p in points], [p["cases"] for p in points], color="#2b7bb9")
    cases.set_xlabel("seconds")
    cases.set_ylabel("cases judged")
    fig.tight_layout()
    return _png(fig)


def html_section(report: dict) -> str:
    fuzz = report.get("fuzz")
    if not fuzz:
        return ""
    e = html.escape
    lines = markdown_lines(report)
    head = e(lines[2]) if len(lines) > 2 else ""
    rows = "".join(f"<tr><td>{e(p['test_id'].split('::', 1)[-1])}</td><td class=\"n\">{p['cases']}</td>"
                   f"<td class=\"n\">{_rate(p)}</td><td class=\"n\">{num(p['seconds']):.1f}</td>"
                   f"<td class=\"n\">{len(p.get('signatures') or [])}</td></tr>" for p in fuzz["properties"])
    parts = ["<h2>Fuzz session</h2>", f"<p>{head}</p>"]
    if (fuzz.get("database") or {}).get("degraded"):
        parts.append(f'<div class="warn"><b>Database degraded</b>: {e(fuzz["database"]["degraded"])}</div>')
    parts.append('<table><thead><tr><th>property</th><th class="n">cases</th><th class="n">cases/s</th>'
                 f'<th class="n">seconds</th><th class="n">distinct failures</th></tr></thead><tbody>{rows}</tbody>'
                 '</table>')
    if fuzz["failures"]:
        frows = "".join(f"<tr class=\"fail\"><td>{e(f['signature'])}</td><td class=\"n\">{f['count']}</td>"
                        f"<td class=\"n\">{num(f['first_seen_s']):.0f} s</td>"
                        f"<td><code>{e(f.get('replay') or '-')}</code>{e(_size_text(f))}</td></tr>"
                        for f in fuzz["failures"])
        parts.append('<table><thead><tr><th>distinct failure</th><th class="n">count</th><th class="n">first seen</th>'
                     f'<th>replay (its smallest case)</th></tr></thead><tbody>{frows}</tbody></table>')
    png = timeline_png(fuzz)
    if png:
        parts.append(f'<img alt="Worst error/bound per phase and dtype, and cases judged, over the session" '
                     f'src="data:image/png;base64,{png}">')
    worst = ", ".join(f"{b} {fmt_ratio(r)}"
                      for b, r in sorted(((fuzz.get('timeline') or [{}])[-1].get('worst') or {}).items()))
    if worst:
        parts.append(f'<p class="muted">worst error/bound at the end: {e(worst)}</p>')
    return "\n".join(parts)
