"""`npu-conformance mutants`: run the suite against every planted bug and print the kill matrix.

    npu-conformance mutants [--profile dev|ci|fuzz|npu] [--only NAME ...] [--out DIR] [--seed N]
                            [--generated-only] [--no-baseline] [--suite MODULE ...] [--list]

Writes DIR/mutants.json (the matrix) and DIR/mutants.md ("What it catches"); the pytest output of
every survivor or broken run goes to DIR/mutant-logs/. The last line printed is `killed K/N`.
Exit status (conformance.cli.exit_codes): 0 when every mutant is killed (and the unmutated layer passes
the same runs), 1 when one survives, 2 for a bad option, 4 when a run is broken, a planted bug's own
code crashes (never a kill) or the unmutated layer fails the runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from conformance.cli import exit_codes
from conformance.cli.paths import folder_problem
from conformance.names import PROFILES

DEFAULT_OUT = Path("conformance-report")
# The catalogue, runner and report load in run(): registering the parser imports neither torch nor pytest.


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `mutants` on an argparse subparsers object (sets `func`)."""
    parser = subparsers.add_parser(
        "mutants", help="run the suite against the planted-bug catalogue and print the kill matrix",
        description="Plant each catalogued bug in the production layer (a subclass, a wrapped kernel call or a "
                    "runner Context), run the suite's properties on the emulated backend until the first failure, "
                    "and report which property killed it, after how many cases, with what counterexample.",
        epilog=exit_codes.HELP)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILES, default="dev",
                        help="hypothesis profile the runs derive from (example database always off); default dev")
    parser.add_argument("--only", action="append", metavar="NAME", default=None,
                        help="run only this mutant (repeat, or comma-separate, for several)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"directory for mutants.json and mutants.md (default {DEFAULT_OUT}/)")
    parser.add_argument("--seed", type=int, default=None,
                        help="hypothesis seed (default: derandomized, the same cases for every mutant)")
    parser.add_argument("--generated-only", action="store_true",
                        help="skip the suite's @example cases: measure what the generated cases alone catch")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the unmutated run that proves the suite passes without a planted bug")
    parser.add_argument("--suite", action="append", metavar="MODULE", default=None,
                        help="run only these suite modules, e.g. test_prefill (repeatable; default: all, cheap first)")
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    # Planted bugs live in the project's own layer and runner: a selection of another is refused, by name.
    for flag in ("--layer", "--runner", "--layer-path", "--layer-context"):
        parser.add_argument(flag, metavar="SPEC", default=None,
                            help="refused: planted bugs live in the project's own layer and runner only"
                            if flag == "--layer" else argparse.SUPPRESS)


def _selected(only: list[str] | None) -> list:
    from conformance.mutants import catalogue

    if not only:
        return list(catalogue.CATALOGUE)
    names = [n.strip() for item in only for n in item.split(",") if n.strip()]
    if not names:
        raise ValueError(f"--only {','.join(only)!r}: names no mutant (give catalogue names, comma-separated)")
    return [catalogue.get(n) for n in names]


def _console():
    from rich.console import Console

    console = Console(highlight=False, emoji=False)
    if not console.is_terminal:  # logs and CI: wide enough for the matrix
        console = Console(highlight=False, emoji=False, width=180)
    return console


def _list(console) -> int:
    from rich.table import Table

    from conformance.mutants import catalogue, report

    table = Table(title=f"{len(catalogue.CATALOGUE)} planted bugs")
    for column in ("mutant", "where", "phase", "via", "bug class", "sources"):
        table.add_column(column)
    order = {location: i for i, location in enumerate(report.LOCATION_ORDER)}
    for m in sorted(catalogue.CATALOGUE, key=lambda m: order[m.location]):  # stable: catalogue order within
        table.add_row(m.name, m.location, m.phase, m.via, m.bug_class,
                      "\n".join(report.short_source(s) for s in m.sources))
    console.print(table)
    return 0


def run(args: argparse.Namespace) -> int:
    from conformance.mutants import report
    from conformance.mutants.runner import run_suite, suite_modules

    console = _console()
    selected = [(flag, value) for flag, value in (("--layer", args.layer), ("--runner", args.runner),
                                                  ("--layer-path", args.layer_path),
                                                  ("--layer-context", args.layer_context))
                if value]
    if selected:
        flag, value = selected[0]
        print(f"npu-conformance mutants: {flag} {value}: planted bugs live in the project's own layer and runner "
              "only; judge your layer with npu-conformance run --layer", file=sys.stderr)
        return exit_codes.USAGE
    if args.list:
        return _list(console)
    try:
        mutants = _selected(args.only)
        modules = suite_modules(tuple(args.suite) if args.suite else None)
    except (KeyError, ValueError) as exc:
        print(f"npu-conformance mutants: {exc.args[0]}", file=sys.stderr)
        return exit_codes.USAGE
    out: Path = args.out
    problem = folder_problem("--out", out)
    if problem:  # now, not after every mutant has run
        print(f"npu-conformance mutants: {problem}", file=sys.stderr)
        return exit_codes.USAGE
    logs = out / "mutant-logs"
    cases_dir = out / "mutant-cases"
    started = time.perf_counter()
    baseline = None
    if not args.no_baseline:
        console.print(f"unmutated layer: running the suite ({args.profile})...")
        baseline = run_suite(None, profile=args.profile, seed=args.seed, modules=modules,
                             failures_dir=cases_dir / "_baseline", explicit=not args.generated_only)
        verdict = {"survived": "[green]passes[/]", "killed": f"[bold red]FAILS in {baseline.killed_by}[/]",
                   "error": "[bold yellow]run broken[/]"}[baseline.status]
        console.print(f"unmutated layer: {verdict} ({baseline.cases_run} cases, {baseline.seconds:.1f} s)")
        if baseline.status != "survived":
            _save_log(logs, "_baseline", baseline.log)
    results = []
    for i, mutant in enumerate(mutants, 1):
        result = run_suite(mutant, profile=args.profile, seed=args.seed, modules=modules,
                           failures_dir=cases_dir / mutant.name, explicit=not args.generated_only)
        results.append(result)
        style = {"killed": "green", "survived": "bold red", "error": "bold yellow"}[result.status]
        detail = (f"by {report.short_test(result.killed_by)} after {result.cases_to_kill} case(s)" if result.killed
                  else "")
        console.print(f"[{i}/{len(mutants)}] {mutant.name}: [{style}]{result.status}[/] {detail} "
                      f"({result.seconds:.1f} s)")
        if result.status != "killed":
            _save_log(logs, mutant.name, result.log)
    data = report.matrix(mutants, results, profile=args.profile, seed=args.seed, modules=modules,
                         baseline=baseline, seconds=time.perf_counter() - started,
                         explicit=not args.generated_only)
    json_path, md_path = report.write(data, out)
    report.print_table(data, console)
    s = data["summary"]
    console.print(f"median cases to kill {s['median_cases_to_kill']}; {data['seconds']} s; wrote {json_path} and "
                  f"{md_path}")
    broken = bool(s["errors"]) or (baseline is not None and baseline.status != "survived")
    if baseline is not None and baseline.status != "survived":
        console.print("[bold red]the unmutated layer fails these runs: the kills above prove nothing[/]")
    for r in results:
        if r.status == "error":
            console.print(f"[bold yellow]error[/]: {r.name}: {r.how or (r.message.splitlines() or ['run broken'])[-1]}")
    print(f"killed {s['killed']}/{s['total']}")
    if broken:
        return exit_codes.INTERNAL
    return exit_codes.PASSED if s["killed"] == s["total"] else exit_codes.FAILED


def _save_log(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.txt").write_text(text, encoding="utf-8")
