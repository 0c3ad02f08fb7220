"""Tolerance report artifacts: report.json (schema v2; v1 is migrated on load), report.html,
summary.md, and the diff of two runs.

    build_report(run, records, tests, complete=...)  -> report dict (JSON form)
    load_report(path) / validate_report(report)       -> validated against schema-v2.json (v1 migrated)
    write_artifacts(report, out_dir)                  -> report.json, summary.md, report.html
    render_markdown(report) / render_html(report)     -> str
    diff_reports(old, new)                            -> Diff (regressions between two runs)

pytest_hooks.py holds the pytest side (`--conformance-report DIR`), loaded by conformance.plugin.
"""

from conformance.formatting import dumps, num
from conformance.report.artifacts import ARTIFACTS, write_artifacts, write_json
from conformance.report.model import SCHEMA_VERSION, build_report
from conformance.report.schema import ReportError, load_report, load_schema, validate_report


def render_markdown(report: dict) -> str:
    from conformance.report.markdown import render_markdown as render  # the renderers load to render only

    return render(report)


def render_html(report: dict) -> str:
    from conformance.report.html import render_html as render  # matplotlib and jinja2: loaded to render only

    return render(report)


def diff_reports(old: dict, new: dict, **kwargs):
    from conformance.report.diff import diff_reports as diff  # rich: loaded to compare only

    return diff(old, new, **kwargs)


__all__ = ["ARTIFACTS", "SCHEMA_VERSION", "ReportError", "build_report", "diff_reports", "dumps", "load_report",
           "load_schema", "num", "render_html", "render_markdown", "validate_report", "write_artifacts",
           "write_json"]
