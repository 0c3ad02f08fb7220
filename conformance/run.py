"""`npu-conformance run`: the conformance suite through pytest, in-process, with live progress.

It is `pytest --pyargs conformance.suite --conformance-report DIR` (the same plugin path a plain
pytest user gets) plus a progress display, a summary table, and an exit status that is 0 only when
the run completed, cases ran, every case and test passed, and (with --require-npu) a real NPU ran
them. Anything else ends with one line starting "FAILED:" or "INCOMPLETE:".
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

XDIST_HINT = "pip install 'npu-attention-conformance[xdist]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", choices=("auto", "npu", "emulated"), default="auto",
                        help="kernels that run the layer (default auto: npu if a device is usable, else emulated)")
    parser.add_argument("--profile", choices=("dev", "ci", "fuzz", "npu"), default=None,
                        help="hypothesis profile (default: $HYPOTHESIS_PROFILE or dev)")
    parser.add_argument("--out", metavar="DIR", default="conformance-report",
                        help="report folder: report.json, report.html, summary.md, junit.xml, failures/ "
                             "(default: conformance-report)")
    parser.add_argument("--seed", type=int, metavar="N", default=None, help="hypothesis seed (--hypothesis-seed)")
    parser.add_argument("-k", metavar="EXPR", dest="keyword", default=None, help="only tests matching EXPR (pytest -k)")
    parser.add_argument("--strict-contracts", action="store_true",
                        help="every emulator hazard fails its case, acknowledged or not")
    parser.add_argument("--acknowledgements", metavar="FILE", default=None,
                        help="TOML ledger of accepted emulator hazards (default: the project's)")
    parser.add_argument("--require-npu", action="store_true",
                        help="fail unless a real NPU ran the cases (for hardware CI)")
    parser.add_argument("--tolerance-policy", metavar="FILE", default=None,
                        help="TOML overrides of the tolerance policy for a hardware/CANN pair")
    parser.add_argument("-n", metavar="WORKERS", dest="workers", default=None,
                        help=f"run in WORKERS processes with pytest-xdist (a number or 'auto'; {XDIST_HINT})")
    parser.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                        help="extra pytest arguments after '--' (e.g. -- -x --maxfail 3)")


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    out = Path(args.out)
    argv = ["--pyargs", "conformance.suite", "-q", "-o", "console_output_style=classic", "-p", "no:cacheprovider",
            "--backend", args.backend, "--conformance-report", str(out),
            "--conformance-failures", str(out / "failures")]
    if args.profile:
        argv += ["--hypothesis-profile", args.profile]
    if args.seed is not None:
        argv += [f"--hypothesis-seed={args.seed}"]
    if args.keyword:
        argv += ["-k", args.keyword]
    if args.strict_contracts:
        argv.append("--strict-contracts")
    if args.acknowledgements:
        argv += ["--acknowledgements", args.acknowledgements]
    if args.require_npu:
        argv.append("--require-npu")
    if args.tolerance_policy:
        argv += ["--tolerance-policy", args.tolerance_policy]
    if args.workers is not None:
        argv += ["-n", str(args.workers)]
    return argv + list(args.pytest_args or [])


class Progress:
    """A pytest plugin object: live progress (rich) while the suite runs, plain lines when not a TTY.

    Pytest's own per-test letters are suppressed (its failure sections and summary still print at the
    end); the numbers shown come from the report session, the same data report.json is built from.
    """

    def __init__(self, console):
        self.console = console
        self.tty = console.is_terminal
        self.config = None
        self.live = None
        self.progress = None
        self.task = None
        self.current = ""
        self.started = time.monotonic()

    def _state(self):
        from conformance.report.pytest_hooks import report_session

        return report_session(self.config) if self.config is not None else None

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config) -> None:
        self.config = config
        state = self._state()
        if state is not None:
            state.quiet = True

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report, config):
        category, _letter, word = yield
        return category, "", word

    def _numbers(self) -> dict:
        from conformance.report.model import fmt_ratio, rank

        state = self._state()
        records = state.records if state else []
        bad = sum(1 for r in records if r["verdict"] != "pass")
        worst = max((r for r in records if r.get("ratio") is not None), key=lambda r: rank(r["ratio"]), default=None)
        failed_tests = sum(1 for t in (state.tests.values() if state else []) if t["outcome"] in ("failed", "error"))
        return {"done": len(state.finished) if state else 0, "total": state.collected if state else None,
                "cases": len(records), "bad": bad, "failed_tests": failed_tests,
                "worst": (f"{fmt_ratio(worst['ratio'])} ({worst['phase']}/{worst['dtype']})" if worst else "-")}

    def _start_live(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
            TimeElapsedColumn

        self.progress = RichProgress(
            TextColumn("[bold]tests"), BarColumn(bar_width=24), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("cases [bold]{task.fields[cases]}[/]  out of tolerance "
                       "[{task.fields[bad_style]}]{task.fields[bad]}[/]  failed tests {task.fields[failed_tests]}  "
                       "worst ratio [bold]{task.fields[worst]}[/]"),
            TextColumn("[dim]{task.fields[current]}"),
            console=self.console, auto_refresh=False, transient=False, redirect_stdout=False, redirect_stderr=False)
        self.progress.start()
        self.task = self.progress.add_task("suite", total=None, cases=0, bad=0, bad_style="green", failed_tests=0,
                                           worst="-", current="")

    def _refresh(self) -> None:
        n = self._numbers()
        if self.progress is None:
            self._start_live()
        self.progress.update(self.task, completed=n["done"], total=n["total"], cases=n["cases"], bad=n["bad"],
                             bad_style="bold red" if n["bad"] else "green", failed_tests=n["failed_tests"],
                             worst=n["worst"], current=self.current)
        self.progress.refresh()

    def pytest_runtest_logstart(self, nodeid, location) -> None:
        self.current = nodeid.rsplit("::", 1)[-1]
        if self.tty:
            self._refresh()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report) -> None:
        if report.when != "teardown":
            return
        state = self._state()
        if self.tty:
            self._refresh()
            return
        entry = state.tests.get(report.nodeid) if state else None
        n = self._numbers()
        total = n["total"] if n["total"] is not None else "?"
        outcome = entry["outcome"] if entry else "?"
        cases = entry["cases"] if entry else 0
        print(f"[{n['done']}/{total}] {outcome:<7} {report.nodeid}  ({cases} cases)  so far: {n['cases']} cases, "
              f"{n['bad']} out of tolerance, worst ratio {n['worst']}", flush=True)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus) -> None:
        self.stop()

    def stop(self) -> None:
        if self.progress is not None:
            self.current = ""
            try:
                self._refresh()
            finally:
                self.progress.stop()
                self.progress = None


def summary_table(report: dict):
    from rich import box
    from rich.table import Table

    from conformance.report.model import fmt_ratio

    table = Table(title="error/tolerance per phase x dtype (ratio <= 1 passes)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for name, justify in (("phase", "left"), ("dtype", "left"), ("cases", "right"), ("passed", "right"),
                          ("failed", "right"), ("errors", "right"), ("worst ratio", "right"),
                          ("worst case", "left")):
        table.add_column(name, justify=justify)
    for s in report["summaries"]:
        bad = s["failed"] + s["errors"]
        table.add_row(s["phase"], s["dtype"], str(s["cases"]), str(s["passed"]), str(s["failed"]), str(s["errors"]),
                      fmt_ratio(s["worst_ratio"]), s["worst_case_id"] or "-", style="bold red" if bad else None)
    t = report["totals"]
    table.add_row("all", "", str(t["cases"]), str(t["passed"]), str(t["failed"]), str(t["errors"]),
                  fmt_ratio(t["worst_ratio"]), t["worst_case_id"] or "-", style="bold", end_section=True)
    return table


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    # Not a terminal (CI logs): plain lines, wide enough for the table without truncation.
    console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 120)
    if args.workers is not None:
        if importlib.util.find_spec("xdist") is None:
            console.print(f"FAILED: -n {args.workers} needs pytest-xdist, which is not installed: {XDIST_HINT}",
                          style="bold red")
            return 2
        if not (str(args.workers) == "auto" or str(args.workers).isdigit()):
            console.print(f"FAILED: -n takes a number of workers or 'auto', got {args.workers!r}", style="bold red")
            return 2
    os.environ.setdefault("TORCH_DEVICE_BACKEND_AUTOLOAD", "0")  # before anything imports torch
    from conformance.report.artifacts import ARTIFACTS, JSON_NAME, clear_stale
    from conformance.report.schema import ReportError, load_report

    out = Path(args.out)
    clear_stale(out)  # a run that dies before writing anything must not leave an old green report
    argv = pytest_arguments(args)
    console.print(f"npu-conformance run: pytest {' '.join(argv)}", style="dim", soft_wrap=True)
    progress = Progress(console)
    started = time.monotonic()
    try:
        exitcode = int(pytest.main(argv, plugins=[progress]))
    finally:
        progress.stop()
    elapsed = time.monotonic() - started

    try:
        report = load_report(out / JSON_NAME)
    except ReportError as exc:
        console.print(f"FAILED: pytest exited with status {exitcode} and left no valid report ({exc})",
                      style="bold red")
        return exitcode or 1
    console.print()
    console.print(summary_table(report))
    t = report["totals"]["tests"]
    console.print(f"tests: {t['finished']}" + (f" of {t['collected']}" if t["collected"] is not None else "")
                  + f" finished: {t['passed']} passed, {t['failed']} failed, {t['error']} errors, "
                  f"{t['skipped']} skipped · backend {report['run']['backend']} on {report['run']['device']} · "
                  f"{elapsed:.1f} s", soft_wrap=True)
    console.print("report: " + "  ".join(str(out / name) for name in ARTIFACTS if (out / name).exists()),
                  soft_wrap=True)
    verdict = report["verdict"]
    reason = verdict["reason"]
    ok = verdict["passed"] and exitcode == 0
    if verdict["passed"] and exitcode != 0:
        reason = f"FAILED: pytest exited with status {exitcode} ({reason})"
    broken = [n for n in ("report.html", "summary.md")
              if (out / n).exists() and (out / n).read_text(encoding="utf-8").startswith("npu-conformance could not")]
    if broken and ok:
        ok, reason = False, f"FAILED: could not render {', '.join(broken)} (see the file for the traceback)"
    console.print(reason, style="bold green" if ok else "bold red")
    return 0 if ok else (exitcode if exitcode not in (0, 5) else 1)


def main(argv: list[str] | None = None) -> int:  # for `python -m conformance.run`
    parser = argparse.ArgumentParser(prog="npu-conformance run", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
