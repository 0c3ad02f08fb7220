"""`npu-conformance run`: the conformance suite through pytest, in-process, with live progress.

It is `pytest --pyargs conformance.suite --conformance-report DIR` (the same plugin path a plain
pytest user gets) plus a progress display, a summary table, and an exit status that is 0 only when
the run completed, cases ran, every case and test passed, and (with --require-npu) a real NPU ran
them. Anything else ends with one line starting "FAILED:" or "INCOMPLETE:".
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import os
import random
import sys
import time
from pathlib import Path

from conformance.cli import exit_codes
from conformance.cli.paths import folder_problem
from conformance.harness import options

# What the subcommand runs is imported in its body, when it runs: building the parser (and --help) must not
# import torch, pytest or the report's renderers.

XDIST_HINT = "pip install 'npu-attention-conformance[xdist]'"


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "run", help="run the conformance suite and write the report folder",
        description="Run the conformance suite (pytest --pyargs conformance.suite) and write report.json, "
                    "report.html, summary.md, junit.xml and failures/ (one replayable file per failing case) "
                    "into --out.", epilog=exit_codes.HELP)
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    options.add_cli_options(parser, "run")
    parser.add_argument("--out", metavar="DIR", default="conformance-report",
                        help="report folder: report.json, report.html, summary.md, junit.xml, failures/ "
                             "(default: conformance-report)")
    parser.add_argument("-n", metavar="WORKERS", dest="workers", default=None,
                        help=f"run in WORKERS processes with pytest-xdist (a number or 'auto'; {XDIST_HINT})")
    parser.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                        help="extra pytest arguments after '--' (e.g. -- -x --maxfail 3)")


#: The directory holding the `conformance` package: a fixed rootdir keeps test ids stable
#: (conformance/suite/test_*.py::name) whatever the working directory or the paths given.
ROOT = Path(__file__).resolve().parents[2]


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    """The pytest command line (every option's value in its own token: see options.pytest_arguments)."""
    out = Path(args.out).resolve()
    argv = ["--pyargs", "conformance.suite", "-q", "-o", "console_output_style=classic", "-p", "no:cacheprovider",
            f"--rootdir={ROOT}", f"--conformance-report={out}", f"--conformance-failures={out / 'failures'}"]
    argv += options.pytest_arguments(args, "run")
    if args.workers is not None:
        argv.append(f"--numprocesses={args.workers}")
    return argv + list(args.pytest_args or [])


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    # Not a terminal (CI logs): plain lines, wide enough for the table without truncation.
    console = Console(highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 120)
    refused = _preflight(args, console)
    if refused is not None:
        return refused
    from conformance.harness.case_file_pair import clear_case_files
    from conformance.report.artifacts import clear_stale

    out = Path(args.out)
    clear_stale(out)  # a run that dies before writing anything must not leave an old green report
    clear_case_files(out / "failures")  # an earlier run's finds would read as this run's
    if args.seed is None:
        # A seed chosen here, passed to hypothesis and recorded in the report: the run can be drawn again.
        args.seed = random.SystemRandom().randrange(2**32)
        console.print(f"seed {args.seed} (chosen for this run; --seed {args.seed} draws the same cases again)",
                      soft_wrap=True)
    started = time.monotonic()
    exitcode, usage_error = _run_pytest(args, console)
    if usage_error is not None:
        console.print(f"FAILED: {usage_error}", style="bold red", soft_wrap=True)
        return exit_codes.USAGE
    return _conclude(console, out, exitcode, time.monotonic() - started)


def _preflight(args: argparse.Namespace, console) -> int | None:
    """The exit code of a run refused before pytest starts (bad options, no NPU where one is needed)."""
    def refuse(message: str, code: int = exit_codes.USAGE) -> int:
        console.print(f"FAILED: {message}", style="bold red", soft_wrap=True)
        return code

    problem = folder_problem("--out", args.out)
    if problem:
        return refuse(problem)
    if args.workers is not None:
        if not (str(args.workers) == "auto" or str(args.workers).isdigit()):
            return refuse(f"-n takes a number of workers or 'auto', got {args.workers!r}")
        if importlib.util.find_spec("xdist") is None:
            return refuse(f"-n {args.workers} needs pytest-xdist, which is not installed: {XDIST_HINT}")
    elif args.devices:
        return refuse(f"--devices {args.devices} pins pytest-xdist workers to cards: give -n WORKERS too")
    if args.devices:
        from conformance.platform.devices import DeviceSpecError, parse_devices

        try:
            parse_devices(args.devices)
        except DeviceSpecError as exc:
            return refuse(str(exc))
    os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")  # before anything imports torch
    if args.backend == "npu" or args.require_npu:
        # Asked for hardware: know at once, before a single case runs, whether there is any.
        from conformance.platform.probe import probe_npu

        probe = probe_npu()
        if not probe.usable:
            option = "--backend npu" if args.backend == "npu" else "--require-npu"
            return refuse(f"{option} but no usable NPU ({probe.error or 'torch.npu.is_available() is False'})",
                          exit_codes.NO_NPU)
    return None


def _run_pytest(args: argparse.Namespace, console) -> tuple[int, str | None]:
    """pytest's exit status, and the cause when it is a usage error (or -k matched nothing)."""
    import pytest

    from conformance.cli.progress import Progress

    argv = pytest_arguments(args)
    console.print(f"npu-conformance run: pytest {' '.join(argv)}", style="dim", soft_wrap=True)
    progress = Progress(console)
    errors = ErrorLines(sys.stderr)
    try:
        with contextlib.redirect_stderr(errors):
            exitcode = int(pytest.main(argv, plugins=[progress]))
    finally:
        progress.stop()
    if exitcode == pytest.ExitCode.USAGE_ERROR and errors.last:  # the cause is the last line
        return exitcode, errors.last
    if exitcode == pytest.ExitCode.NO_TESTS_COLLECTED:  # -k matched nothing: bad input, as in fuzz
        return exitcode, exit_codes.no_test_matched(args.k)
    return exitcode, None


def _conclude(console, out: Path, exitcode: int, elapsed: float) -> int:
    """The summary table, the totals, the report's files and the one verdict line; the exit status."""
    from conformance.report.artifacts import ARTIFACTS, JSON_NAME
    from conformance.report.console import summary_table
    from conformance.report.schema import ReportError, load_report

    try:
        report = load_report(out / JSON_NAME)
    except ReportError as exc:
        console.print(f"FAILED: pytest exited with status {exitcode} and left no valid report ({exc})",
                      style="bold red")
        return _exit_status(exitcode, None)
    console.print()
    console.print(summary_table(report))
    t = report["totals"]["tests"]
    console.print(f"tests: {t['finished']}" + (f" of {t['collected']}" if t["collected"] is not None else "")
                  + f" finished: {t['passed']} passed, {t['failed']} failed, {t['error']} errors, "
                  f"{t['skipped']} skipped · backend {report['run']['backend']} on {report['run']['device']} · "
                  f"{report['totals'].get('graph_compiles', 0)} decode graph compile(s) for "
                  f"{report['totals'].get('graph_steps', 0)} graph step(s) · {elapsed:.1f} s", soft_wrap=True)
    console.print("report: " + "  ".join(str(out / name) for name in ARTIFACTS if (out / name).exists()),
                  soft_wrap=True)
    ok, reason = _verdict_line(report, out, exitcode)
    console.print(reason, style="bold green" if ok else "bold red", soft_wrap=True)  # one line, never wrapped
    return exit_codes.PASSED if ok else _exit_status(exitcode, report)


def _verdict_line(report: dict, out: Path, exitcode: int) -> tuple[bool, str]:
    verdict = report["verdict"]
    reason = verdict["reason"]
    ok = verdict["passed"] and exitcode == 0
    if verdict["passed"] and exitcode != 0:
        reason = f"FAILED: pytest exited with status {exitcode} ({reason})"
    broken = [n for n in ("report.html", "summary.md")
              if (out / n).exists() and (out / n).read_text(encoding="utf-8").startswith("npu-conformance could not")]
    if broken and ok:
        ok, reason = False, f"FAILED: could not render {', '.join(broken)} (see the file for the traceback)"
    run_info = report["run"]
    if run_info.get("backend_requested") == "auto":  # say what auto chose, and why, on the line people read
        reason += f" [backend {run_info['backend']}: {run_info['backend_reason']}]"
    for kind in ("layer", "runner"):  # name the code judged, when it is not the project's own
        subject = run_info.get(kind) or {}
        if subject.get("name") != "own" and subject.get("spec"):
            reason += f" [{kind} under test {subject['spec']}]"
    return ok, reason


class ErrorLines(io.TextIOBase):
    """Passes everything on to `stream` and keeps the last "ERROR: ..." line pytest printed (a usage error
    of a plugin, a bad option), so the command can end on its cause."""

    def __init__(self, stream):
        self.stream = stream
        self._errors: list[str] = []

    @property
    def last(self) -> str | None:
        return exit_codes.usage_cause("\n".join(self._errors))

    def write(self, text: str) -> int:
        self._errors += [line for line in text.splitlines() if line.startswith("ERROR: ") or ": error: " in line]
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def _exit_status(pytest_status: int, report: dict | None) -> int:
    """One code per outcome (conformance.cli.exit_codes), from pytest's status and the report's verdict."""
    import pytest

    if pytest_status == pytest.ExitCode.INTERRUPTED or (report is not None and not report["complete"]
                                                         and "interrupt" in (report["incomplete_reason"] or "")):
        return exit_codes.INTERRUPTED
    if pytest_status == pytest.ExitCode.USAGE_ERROR:
        return exit_codes.USAGE
    if pytest_status == pytest.ExitCode.INTERNAL_ERROR or report is None:
        return exit_codes.INTERNAL
    if report is not None and not report["complete"]:
        return exit_codes.INTERRUPTED
    return exit_codes.FAILED
