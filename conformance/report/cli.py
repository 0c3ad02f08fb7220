"""`npu-conformance report` and `npu-conformance diff` (wired into conformance/cli.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.report.diff import DEFAULT_THRESHOLD


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="PATH/report.json", help="a report.json written by npu-conformance")
    parser.add_argument("--html", metavar="FILE", default=None, help="write the HTML report here")
    parser.add_argument("--md", metavar="FILE", default=None, help="write the Markdown summary here")


def add_diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="OLD.json")
    parser.add_argument("new", metavar="NEW.json")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="FRACTION",
                        help=f"worst-ratio growth that counts as a regression (default {DEFAULT_THRESHOLD})")


def report_command(args: argparse.Namespace) -> int:
    from conformance.report.artifacts import write_html, write_markdown
    from conformance.report.schema import ReportError, load_report

    try:
        report = load_report(args.report)
    except ReportError as exc:
        print(f"npu-conformance report: {exc}", file=sys.stderr)
        return 2
    print(report["verdict"]["reason"])
    if not args.html and not args.md:
        print(f"{args.report}: valid schema-v{report['schema_version']} report "
              f"({len(report['records'])} cases, {len(report['tests'])} tests); "
              "pass --html FILE and/or --md FILE to render it")
    if args.html:
        print(f"wrote {write_html(report, Path(args.html))}")
    if args.md:
        print(f"wrote {write_markdown(report, Path(args.md))}")
    return 0


def diff_command(args: argparse.Namespace) -> int:
    from conformance.report.diff import diff_reports, render_diff
    from conformance.report.schema import ReportError, load_report

    try:
        old, new = load_report(args.old), load_report(args.new)
    except ReportError as exc:
        print(f"npu-conformance diff: {exc}", file=sys.stderr)
        return 2
    d = diff_reports(old, new, threshold=args.threshold)
    render_diff(d, args.old, args.new)
    return 1 if d.regressed else 0
