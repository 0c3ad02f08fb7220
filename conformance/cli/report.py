"""`npu-conformance report` (validate and re-render a report.json), `npu-conformance report merge` (several
reports into one) and `npu-conformance diff` (compare two)."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from conformance.cli import exit_codes
from conformance.cli.paths import file_problem, folder_problem
from conformance.report.diff import DEFAULT_THRESHOLD

# What the subcommand runs is imported in its body, when it runs: building the parser (and --help) must not
# import torch, pytest or the report's renderers.


def add_parser(sub) -> None:
    report = sub.add_parser(
        "report", help="validate a report.json and re-render it; 'report merge A.json B.json --out DIR' merges",
        usage="npu-conformance report [-h] [--html FILE] [--md FILE] PATH/report.json\n"
              "       npu-conformance report merge A.json B.json ... --out DIR",
        description="Validate a report.json against its schema, print its verdict, and (with --html / --md) "
                    "render report.html and summary.md from it again. 'report merge' merges the reports of "
                    "several workers or machines into one report folder.", epilog=exit_codes.HELP)
    add_report_arguments(report)
    report.set_defaults(func=report_command)
    diff = sub.add_parser(
        "diff", help="regressions between two report.json files (exit 1 if any)",
        description="Compare two report.json files of the same suite: new failures, new hazards, and worst "
                    "error/tolerance ratios that grew past --threshold.", epilog=exit_codes.HELP)
    add_diff_arguments(diff)
    diff.set_defaults(func=diff_command)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", metavar="PATH/report.json", nargs="+",
                        help="a report.json written by npu-conformance (or: merge A.json B.json ...)")
    parser.add_argument("--out", metavar="DIR", default=None, help="merge: the report folder to write")
    parser.add_argument("--html", metavar="FILE", default=None, help="write the HTML report here")
    parser.add_argument("--md", metavar="FILE", default=None, help="write the Markdown summary here")
    parser.add_argument("--mix", action="store_true",
                        help="merge: accept reports judged under different settings or of different code (each "
                             "input's settings are shown); without it they are refused")


def add_diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", metavar="OLD.json")
    parser.add_argument("new", metavar="NEW.json")
    parser.add_argument("--mix", action="store_true",
                        help="compare reports judged under different settings or of different code (each one's "
                             "settings are shown); without it they are refused")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="FRACTION",
                        help=f"worst-ratio growth that counts as a regression (default {DEFAULT_THRESHOLD})")


def report_command(args: argparse.Namespace) -> int:
    from conformance.report.artifacts import write_html, write_markdown
    from conformance.report.schema import ReportError, load_report

    if args.report[0] == "merge":
        return merge_command(args.report[1:], args.out, args.mix)
    if len(args.report) > 1 or args.out:
        print("npu-conformance report: one report at a time (to merge several: npu-conformance report merge "
              "A.json B.json --out DIR)", file=sys.stderr)
        return exit_codes.USAGE
    path = args.report[0]
    problem = (args.html and file_problem("--html", args.html)) or (args.md and file_problem("--md", args.md))
    if problem:
        print(f"npu-conformance report: {problem}", file=sys.stderr)
        return exit_codes.USAGE
    try:
        report = load_report(path)
    except ReportError as exc:
        print(f"npu-conformance report: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    print(report["verdict"]["reason"])
    if not args.html and not args.md:
        print(f"{path}: valid schema-v{report['schema_version']} report "
              f"({len(report['records'])} cases, {len(report['tests'])} tests); "
              "pass --html FILE and/or --md FILE to render it")
    if args.html:
        print(f"wrote {write_html(report, Path(args.html))}")
    if args.md:
        print(f"wrote {write_markdown(report, Path(args.md))}")
    return exit_codes.PASSED


def _refuse_mixed(command: str, reports: list[dict], names: list[str], mix: bool) -> int | None:
    """None when the reports were judged alike (or `mix` was asked for, after saying how they differ);
    else USAGE, naming every difference."""
    from conformance.report.judged_under import differences

    lines = differences(reports, names)
    if not lines:
        return None
    if mix:
        print(f"npu-conformance {command}: the inputs were judged under different settings (--mix):")
        for line in lines:
            print(f"  {line}")
        return None
    print(f"npu-conformance {command}: the inputs were judged under different settings or of different code, "
          f"so their numbers do not compare ({' | '.join(lines)}); pass --mix to {command} them anyway",
          file=sys.stderr)
    return exit_codes.USAGE


def merge_command(paths: list[str], out: str | None, mix: bool = False) -> int:
    from conformance.report.artifacts import write_artifacts
    from conformance.report.junit import write_junit
    from conformance.report.merge import merge_reports
    from conformance.report.schema import ReportError, load_report

    if len(paths) < 2 or not out:
        print("npu-conformance report merge: give two or more report.json files and --out DIR", file=sys.stderr)
        return exit_codes.USAGE
    problem = folder_problem("--out", out)
    if problem:
        print(f"npu-conformance report merge: {problem}", file=sys.stderr)
        return exit_codes.USAGE
    try:
        reports = [load_report(p) for p in paths]
    except ReportError as exc:
        print(f"npu-conformance report merge: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    refused = _refuse_mixed("report merge", reports, paths, mix)
    if refused is not None:
        return refused
    merged = merge_reports(reports, sources=paths)
    written = write_artifacts(merged, Path(out))
    written["junit"] = write_junit(merged, Path(out) / "junit.xml")
    print(f"merged {len(reports)} reports: {merged['totals']['cases']} cases, {len(merged['tests'])} tests")
    print("wrote " + "  ".join(str(p) for p in written.values()))
    print(merged["verdict"]["reason"])
    return exit_codes.PASSED if merged["verdict"]["passed"] else exit_codes.FAILED


def diff_command(args: argparse.Namespace) -> int:
    from conformance.report.diff import diff_reports, render_diff
    from conformance.report.schema import ReportError, load_report

    try:
        old, new = load_report(args.old), load_report(args.new)
    except ReportError as exc:
        print(f"npu-conformance diff: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    if not math.isfinite(args.threshold) or args.threshold < 0:
        print(f"npu-conformance diff: --threshold must be a finite number >= 0 (a fraction of growth), got "
              f"{args.threshold}",
              file=sys.stderr)
        return exit_codes.USAGE
    refused = _refuse_mixed("diff", [old, new], ["OLD", "NEW"], args.mix)
    if refused is not None:
        return refused
    d = diff_reports(old, new, threshold=args.threshold)
    render_diff(d, args.old, args.new)
    return exit_codes.FAILED if d.regressed else exit_codes.PASSED
