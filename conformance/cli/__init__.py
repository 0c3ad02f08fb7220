"""The `npu-conformance` command: one module per subcommand (run, fuzz, replay, promote, report/diff/merge,
info, mutants).

Every subcommand returns one of conformance.cli.exit_codes; main() maps what is left to the same codes:
a bad command line is USAGE (argparse), Ctrl-C is INTERRUPTED, and an exception that escapes a
subcommand is the harness's own crash, INTERNAL, printed with its traceback (it is a bug to report).
Registering the parsers imports neither torch nor pytest: each subcommand loads them when it runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from importlib import metadata

from conformance.cli import exit_codes, fuzz, info, mutants, promote, replay, report, run

SUBCOMMANDS = (run, fuzz, replay, promote, report, info, mutants)


def _version() -> str:
    try:
        return metadata.version("npu-attention-conformance")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="npu-conformance", epilog=exit_codes.HELP,
        description="Numerical conformance harness for an Ascend NPU paged-attention layer: run the suite, "
                    "fuzz it for a time budget, replay and promote a saved case, render, merge and compare "
                    "reports, check the machine, measure the suite against planted bugs.")
    parser.add_argument("--version", action="version", version=f"npu-conformance {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parser(sub)
    for subparser in sub.choices.values():
        subparser.set_defaults(parser=subparser)  # an unknown argument is reported with the subcommand's usage
    return parser


def _terminate(signum, frame):
    # SIGTERM (a CI runner's timeout) stops a subcommand as Ctrl-C does: what it wrote is kept, marked incomplete.
    raise KeyboardInterrupt("terminated by SIGTERM")


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; an argument a subcommand does not know is reported with that subcommand's
    usage (argparse's default names only the top-level usage)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        getattr(args, "parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)  # exits with USAGE (2) on a bad command line
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"npu-conformance {args.command}: interrupted", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except Exception:  # the harness's own bug: say so, with the traceback to report, and a code of its own
        print(f"npu-conformance {args.command}: internal error (a bug in npu-conformance, please report it):\n"
              + traceback.format_exc(), file=sys.stderr)
        return exit_codes.INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
