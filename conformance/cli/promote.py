"""`npu-conformance promote FILE...`: copy found cases into the regression corpus, which every run,
fuzz session and plain pytest run replays first (conformance/harness/corpus.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.cli import exit_codes
from conformance.cli.paths import folder_problem

# What the subcommand runs is imported in its body, when it runs: building the parser (and --help) must not
# import torch, pytest or the report's renderers.


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "promote", help="make saved failing cases part of every later run (the regression corpus)",
        description="Copy case files (from a run's or a fuzz session's failures/) into the regression corpus, "
                    "conformance/regression/ by default, which every run, fuzz session and plain pytest run "
                    "replays first, judged with that run's settings. Every file is checked before any is copied.",
        epilog=exit_codes.HELP)
    parser.add_argument("files", nargs="+", metavar="FILE", help="case files, e.g. conformance-fuzz/failures/*.json")
    parser.add_argument("--corpus", metavar="DIR", default=None,
                        help="the corpus folder (default: $NPU_CONFORMANCE_CORPUS, else the package's "
                             "conformance/regression/)")
    parser.set_defaults(func=promote_command)


def promote_command(args: argparse.Namespace) -> int:
    from conformance.harness.corpus import CORPUS_DIR, PromoteError, promote

    corpus = Path(args.corpus) if args.corpus else CORPUS_DIR
    problem = folder_problem("--corpus", corpus)
    if problem:
        print(f"npu-conformance promote: {problem} (nothing was copied)", file=sys.stderr)
        return exit_codes.USAGE
    try:
        results = promote(args.files, corpus)
    except PromoteError as exc:
        print(f"npu-conformance promote: {exc} (nothing was copied)", file=sys.stderr)
        return exit_codes.USAGE
    for path, status in results:
        print(f"{status}: {path}")
    added = sum(1 for _, s in results if s == "added")
    if corpus.resolve() == CORPUS_DIR.resolve():
        print(f"{added} case(s) added to {corpus}; every run now replays them first (commit the folder to share them)")
    else:
        print(f"{added} case(s) added to {corpus}; runs replay them first when NPU_CONFORMANCE_CORPUS={corpus} is set "
              f"(this run's corpus is {CORPUS_DIR})")
    return exit_codes.PASSED
