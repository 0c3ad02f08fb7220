"""`npu-conformance report` (validate and re-render a report.json) and `npu-conformance diff` (compare two)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance import exit_codes
from conformance.report.diff import DEFAULT_THRESHOLD


def add_parser(sub) -> None:
    report = sub.add_parser(
        "report", help="validate a report.json and re-render its HTML / Markdown",
        description="Validate a report.json against its schema, print its verdict, and (with --html / --md) "
                    "render report.html and summary.md from it again.", epilog=exit_codes.HELP)
    add_report_arguments(report)
    report.set_defaults(func=report_command)
    diff = sub.add_parser(
        "diff", help="regressions between two report.json files (exit 1 if any)",
        description="Compare two report.json files of the same suite: new failures, new hazards, and worst "
                    "error/tolerance ratios that grew past --threshold.", epilog=exit_codes.HELP)
    add_diff_arguments(diff)
    diff.set_defaults(func=diff_command)


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
        return exit_codes.USAGE
    print(report["verdict"]["reason"])
    if not args.html and not args.md:
        print(f"{args.report}: valid schema-v{report['schema_version']} report "
              f"({len(report['records'])} cases, {len(report['tests'])} tests); "
              "pass --html FILE and/or --md FILE to render it")
    if args.html:
        print(f"wrote {write_html(report, Path(args.html))}")
    if args.md:
        print(f"wrote {write_markdown(report, Path(args.md))}")
    return exit_codes.PASSED


def diff_command(args: argparse.Namespace) -> int:
    from conformance.report.diff import diff_reports, render_diff
    from conformance.report.schema import ReportError, load_report

    try:
        old, new = load_report(args.old), load_report(args.new)
    except ReportError as exc:
        print(f"npu-conformance diff: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    if args.threshold < 0:
        print(f"npu-conformance diff: --threshold must be >= 0 (a fraction of growth), got {args.threshold}",
              file=sys.stderr)
        return exit_codes.USAGE
    d = diff_reports(old, new, threshold=args.threshold)
    render_diff(d, args.old, args.new)
    return exit_codes.FAILED if d.regressed else exit_codes.PASSED
