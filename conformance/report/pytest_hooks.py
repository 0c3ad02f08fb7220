"""pytest hooks that turn a run into the report folder (`pytest --conformance-report DIR`).

Loaded by conformance.plugin. On the controlling process only (never on a pytest-xdist worker),
pytest_configure points --junitxml at DIR/junit.xml unless the user chose a path and registers the
run's hooks (_SessionHooks), where
  - pytest_runtest_logreport collects the per-case records from report.user_properties (they travel
    with the test reports, so records from xdist workers arrive here too) and each test's outcome,
    and rewrites DIR/report.json marked `complete: false` as tests finish (throttled);
  - pytest_sessionfinish writes the final report.json, report.html and summary.md; a run that was
    interrupted, crashed, stopped early or did not finish every collected test is marked incomplete.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path

import pytest

from conformance.formatting import now_iso, shorten
from conformance.harness.records import records_of
from conformance.judge.settings import settings
from conformance.report import hookspecs
from conformance.report.artifacts import (
    ARTIFACTS,
    HTML_NAME,
    JSON_NAME,
    JUNIT_NAME,
    MD_NAME,
    clear_stale,
    write_html,
    write_json,
    write_markdown,
    write_text_atomic,
)
from conformance.report.meta import run_metadata
from conformance.report.model import build_report

#: How a report is written unless a plugin says otherwise (pytest_conformance_report_options).
DEFAULT_OPTIONS = {"render": True, "snapshot_interval_s": 2.0, "terminal_summary": True}
#: The suite's modules: a run that collected all of them (and deselected nothing) is a full run.
SUITE_MODULES = tuple(sorted(p.name for p in (Path(__file__).resolve().parent.parent / "suite").glob("test_*.py")))
_MESSAGE_LIMIT = 1500


class ReportSession:
    """The state of one run's report on the controlling process."""

    def __init__(self, config: pytest.Config, out_dir: Path):
        self.config = config
        self.out_dir = out_dir
        self.records: list[dict] = []
        self.tests: dict[str, dict] = {}  # nodeid -> outcome entry, in arrival order
        self.finished: set[str] = set()
        self.collected: int | None = None
        self.collected_ids: set[str] = set()
        self.deselected = 0
        self.collection_errors: list[dict] = []
        self.interrupt: str | None = None
        self.started = time.monotonic()
        self.started_at = now_iso()
        self._last_snapshot = 0.0
        self.final: dict | None = None
        self.paths: dict[str, Path] = {}
        self.write_errors: list[str] = []
        self.tally: list[dict] | None = None  # passing cases counted, not kept (compact())
        self.options = dict(DEFAULT_OPTIONS)  # conformance.report.hookspecs.pytest_conformance_report_options
        self._interval = self.options["snapshot_interval_s"]

    # --- collection ---------------------------------------------------------------------------
    def add_report(self, report: pytest.TestReport) -> dict:
        """Fold one setup/call/teardown report in; returns the test's entry."""
        entry = self.tests.setdefault(report.nodeid, {"test_id": report.nodeid, "outcome": None, "duration_s": 0.0,
                                                      "reason": None, "cases": 0, "worker": _worker(report)})
        entry["duration_s"] += float(getattr(report, "duration", 0.0) or 0.0)
        if report.when == "call":
            records = records_of(report)
            self.add_records(records, report.nodeid)
            entry["cases"] += len(records)
        _fold_outcome(entry, report)
        if report.when not in ("setup", "call", "teardown") and report.failed:
            # pytest-xdist reports a test that killed its worker once, with when="???".
            entry.update(outcome="failed", reason=_failure_text(report))
            self.finished.add(report.nodeid)
        if report.when == "teardown":
            if entry["outcome"] is None:
                entry.update(outcome="error", reason="the test never reached its call phase")
            self.finished.add(report.nodeid)
        return entry

    def add_records(self, records: list[dict], test_id: str) -> None:
        for record in records:
            record = dict(record)
            record.setdefault("test_id", test_id)
            record["case_file"] = self._case_file(record)
            self.records.append(record)

    def take_records(self, records: list[dict], tally: list[dict] | None, cases_per_test: dict[str, int]) -> None:
        """Replace what the report counts by what a plugin that keeps its own account of the cases hands
        over (a fuzz worker: one record per judged case, the rest counted), and each test's case count."""
        self.records, self.tally = list(records), tally
        for test_id, n in cases_per_test.items():
            if test_id in self.tests:
                self.tests[test_id]["cases"] = n

    def _case_file(self, record: dict) -> str | None:
        """The failing case's saved file, if it is still there (the plugin keeps the reported ones)."""
        path = record.get("case_file")
        return path if record.get("verdict") != "pass" and path and Path(path).is_file() else None

    # --- building and writing -----------------------------------------------------------------
    def build(self, *, complete: bool, incomplete_reason: str | None, exitstatus: int | None,
              final: bool) -> dict:
        elapsed = time.monotonic() - self.started
        run = run_metadata(self.config, started_at=self.started_at, duration_s=elapsed,
                           finished_at=now_iso() if final else None, exitstatus=exitstatus)
        tests = [t for nodeid, t in self.tests.items() if nodeid in self.finished]
        ledger = [a.as_dict() for a in settings().acknowledgements.entries]
        sections = self.config.hook.pytest_conformance_report_section(config=self.config) or {}
        return build_report(run, self.records, tests, complete=complete, incomplete_reason=incomplete_reason,
                            tests_collected=self.collected, collection_errors=self.collection_errors,
                            acknowledgements=ledger, full_run=self.full_suite(), tally=self.tally,
                            fuzz=sections.get("fuzz"))

    def full_suite(self) -> bool:
        """Whether every suite module was collected and nothing deselected (-k, -m): only then can an
        acknowledgement that matched nothing be called stale."""
        option = self.config.option
        if self.deselected or getattr(option, "keyword", "") or getattr(option, "markexpr", ""):
            return False
        modules = {nodeid.split("::", 1)[0].rsplit("/", 1)[-1] for nodeid in self.collected_ids}
        return set(SUITE_MODULES) <= modules

    def start(self) -> None:
        for answer in self.config.hook.pytest_conformance_report_options(config=self.config):
            unknown = sorted(set(answer or {}) - set(DEFAULT_OPTIONS))
            if unknown:
                raise pytest.UsageError(f"pytest_conformance_report_options: unknown option(s) {unknown}; "
                                        f"known: {sorted(DEFAULT_OPTIONS)}")
            self.options.update(answer or {})
        self._interval = self.options["snapshot_interval_s"]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        names = ARTIFACTS if self.config.option.xmlpath == str(self.out_dir / JUNIT_NAME) else \
            (JSON_NAME, HTML_NAME, MD_NAME)
        clear_stale(self.out_dir, names)
        self.snapshot(force=True)

    def snapshot(self, force: bool = False) -> None:
        """Rewrite report.json marked incomplete: what a crash or a kill leaves behind."""
        now = time.monotonic()
        if not force and now - self._last_snapshot < self._interval:
            return
        report = self.build(complete=False, exitstatus=None, final=False,
                            incomplete_reason="the run stopped before finishing (in-progress snapshot)")
        write_json(report, self.out_dir)
        # A long fuzz run makes a large file: never spend more than ~10 % of the time rewriting it.
        self._last_snapshot = time.monotonic()
        self._interval = max(self.options["snapshot_interval_s"], 10 * (self._last_snapshot - now))

    def completion(self, session: pytest.Session, exitstatus: int) -> tuple[bool, str | None]:
        known = self.config.hook.pytest_conformance_run_completion(session=session, exitstatus=exitstatus)
        if known is not None:
            return known
        if self.interrupt:
            return False, self.interrupt
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            return False, "interrupted"
        if exitstatus == pytest.ExitCode.INTERNAL_ERROR:
            return False, "pytest internal error"
        if exitstatus == pytest.ExitCode.USAGE_ERROR:
            return False, "pytest usage error"
        stopped = session.shouldfail or session.shouldstop
        if stopped:
            return False, f"stopped early ({stopped})"
        if self.collected is not None and len(self.finished) < self.collected:
            return False, f"only {len(self.finished)} of {self.collected} collected tests finished"
        return True, None

    def finish(self, session: pytest.Session, exitstatus: int) -> dict:
        complete, reason = self.completion(session, int(exitstatus))
        report = self.build(complete=complete, incomplete_reason=reason, exitstatus=int(exitstatus), final=True)
        self.final = report
        self.paths = {"json": write_json(report, self.out_dir)}
        renderers = (("md", MD_NAME, write_markdown), ("html", HTML_NAME, write_html)) if self.options["render"] \
            else ()
        for key, name, writer in renderers:
            path = self.out_dir / name
            try:
                self.paths[key] = writer(report, path)
            except Exception:  # report.json is written; say what broke instead of losing the run
                error = traceback.format_exc()
                self.write_errors.append(f"{name}: {error.strip().splitlines()[-1]}")
                write_text_atomic(path, f"npu-conformance could not render {name}:\n\n{error}")
                self.paths[key] = path
        return report


def _worker(report) -> str | None:
    worker = getattr(report, "worker_id", None)
    if worker is None and getattr(report, "node", None) is not None:
        worker = getattr(getattr(report.node, "gateway", None), "id", None)
    return str(worker) if worker is not None else None


def _trim(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    return shorten(text.strip(), limit)


def _failure_text(report) -> str:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return _trim(crash.message)
    return _trim(str(longrepr))


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, (tuple, list)) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return _trim(reason.removeprefix("Skipped: "))


def _fold_outcome(entry: dict, report) -> None:
    wasxfail = getattr(report, "wasxfail", None)
    if report.when == "setup":
        if report.failed:
            entry.update(outcome="error", reason=_failure_text(report))
        elif report.skipped:
            if wasxfail is not None:
                entry.update(outcome="xfailed", reason=str(wasxfail) or None)
            else:
                entry.update(outcome="skipped", reason=_skip_reason(report))
    elif report.when == "call":
        if wasxfail is not None:
            entry.update(outcome="xfailed" if report.skipped else "xpassed", reason=str(wasxfail) or None)
        elif report.passed:
            if entry["outcome"] not in ("failed", "error"):  # a fuzz worker runs a test many times: a failure stays
                entry.update(outcome="passed")
        elif report.failed:
            entry.update(outcome="failed", reason=_failure_text(report))
        else:
            entry.update(outcome="skipped", reason=_skip_reason(report))
    elif report.when == "teardown" and report.failed:
        message = "teardown: " + _failure_text(report)
        if entry["outcome"] in (None, "passed"):
            entry.update(outcome="error", reason=message)
        else:
            entry["reason"] = _trim(f"{entry['reason'] or ''}\n{message}")


# --- hooks ------------------------------------------------------------------------------------
REPORT_KEY = pytest.StashKey[ReportSession]()
PLUGIN_NAME = "npu-conformance-report"


def pytest_addhooks(pluginmanager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def report_session(config: pytest.Config) -> ReportSession | None:
    """The run's ReportSession, or None (no --conformance-report, or an xdist worker)."""
    return config.stash.get(REPORT_KEY, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("npu-conformance")
    group.addoption("--conformance-report", metavar="DIR", default=None,
                    help="write the tolerance report folder: report.json, report.html, summary.md, junit.xml")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    out = config.getoption("conformance_report", default=None)
    if not out or hasattr(config, "workerinput"):
        return
    out_dir = (config.invocation_params.dir / out).resolve()
    if not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(out_dir / JUNIT_NAME)  # read by junitxml's own pytest_configure
    state = ReportSession(config, out_dir)
    config.stash[REPORT_KEY] = state
    config.pluginmanager.register(_SessionHooks(state), PLUGIN_NAME)


class _SessionHooks:
    """The hooks of one run, bound to its ReportSession."""

    def __init__(self, state: ReportSession):
        self.state = state

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.state.start()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.state.collected = len(session.items)
        self.state.collected_ids.update(item.nodeid for item in session.items)

    def pytest_deselected(self, items) -> None:
        self.state.deselected += len(items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids) -> None:
        self.state.collected = max(self.state.collected or 0, len(ids))
        self.state.collected_ids.update(ids)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.state.collection_errors.append({"nodeid": report.nodeid, "message": _failure_text(report)})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.state.add_report(report)
        if report.when == "teardown":
            self.state.snapshot()

    def pytest_keyboard_interrupt(self, excinfo) -> None:
        message = str(excinfo.value).strip()
        self.state.interrupt = f"interrupted ({excinfo.typename}{': ' + message if message else ''})"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus) -> None:
        self.state.finish(session, exitstatus)

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config: pytest.Config) -> None:
        state = self.state
        if state.final is None or not state.options["terminal_summary"]:
            return
        terminalreporter.section("npu-conformance report")
        verdict = state.final["verdict"]
        terminalreporter.write_line(verdict["reason"], green=verdict["passed"], red=not verdict["passed"],
                                    bold=True)
        for key in ("html", "json", "md"):
            if key in state.paths:
                terminalreporter.write_line(f"  {state.paths[key]}")
        terminalreporter.write_line(f"  {config.option.xmlpath}")
        for error in state.write_errors:
            terminalreporter.write_line(f"  could not render {error}", red=True)
