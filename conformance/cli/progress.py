"""The live progress display of `npu-conformance run`: a pytest plugin object."""

from __future__ import annotations

import time

import pytest

from conformance.formatting import fmt_ratio, rank
from conformance.report.pytest_hooks import report_session


class Progress:
    """A pytest plugin object: live progress (rich) while the suite runs, plain lines when not a TTY.

    Pytest's own per-test letters are suppressed (its failure sections and summary still print at the
    end); the numbers shown come from the report session, the same data report.json is built from,
    plus the cases judged inside the running test (the pytest_conformance_case_judged hook), so a long property
    (the stateful engine, a fuzz profile) shows every case as it is judged. Without a TTY a heartbeat
    line is printed every HEARTBEAT_S seconds while a test runs. (Under pytest-xdist the cases of a test
    arrive when it ends: they are judged in the worker processes.)
    """

    REFRESH_S = 0.25
    HEARTBEAT_S = 15.0

    def __init__(self, console):
        self.console = console
        self.tty = console.is_terminal
        self.config = None
        self.live = None
        self.progress = None
        self.task = None
        self.current = ""
        self.started = time.monotonic()
        self.in_test: list[dict] = []  # records of the running test, before the report session has them
        self._last_draw = 0.0

    def pytest_conformance_case_judged(self, config, record: dict, seconds) -> None:
        """A case was just judged in this process."""
        self.in_test.append(record)
        now = time.monotonic()
        if self.tty and now - self._last_draw >= self.REFRESH_S:
            self._last_draw = now
            self._refresh()
        elif not self.tty and now - self._last_draw >= self.HEARTBEAT_S:
            self._last_draw = now
            n = self._numbers()
            print(f"  ... {self.current}: {len(self.in_test)} cases judged in this test, {n['cases']} in all, "
                  f"{n['bad']} failing, worst ratio {n['worst']}, {now - self.started:.0f} s", flush=True)

    def _state(self):
        return report_session(self.config) if self.config is not None else None

    def pytest_configure(self, config) -> None:
        self.config = config

    def pytest_conformance_report_options(self, config) -> dict:
        return {"terminal_summary": False}  # `npu-conformance run` prints its own summary

    @pytest.hookimpl(wrapper=True)
    def pytest_report_teststatus(self, report, config):
        category, _letter, word = yield
        return category, "", word

    def _numbers(self) -> dict:
        state = self._state()
        records = (state.records if state else []) + self.in_test
        bad = sum(1 for r in records if r["verdict"] != "pass")
        worst = max((r for r in records if r.get("ratio") is not None), key=lambda r: rank(r["ratio"]), default=None)
        failed_tests = sum(1 for t in (state.tests.values() if state else []) if t["outcome"] in ("failed", "error"))
        return {"done": len(state.finished) if state else 0, "total": state.collected if state else None,
                "cases": len(records), "bad": bad, "failed_tests": failed_tests,
                "worst": (f"{fmt_ratio(worst['ratio'])} ({worst['phase']}/{worst['dtype']})" if worst else "-")}

    def _start_live(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

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
        self.in_test = []
        self._last_draw = time.monotonic()
        if self.tty:
            self._refresh()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call":
            self.in_test = []  # the report session holds this test's records from now on
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
