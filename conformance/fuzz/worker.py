"""A fuzz worker: one pytest session (`-p conformance.fuzz.worker --fuzz-until=...`) whose test loop
runs the suite's properties in slices until a deadline, instead of each test once.

The loop: the regression corpus and every test that is not a hypothesis property run once, first;
then the properties take turns, one slice each (a hypothesis run with `max_examples` sized so the
slice lasts a few seconds, from the property's measured time per example), the one with the least
time so far next, so no property starves.
Every slice shares the session's example database, so `target()` keeps climbing from the pareto front
the earlier slices saved; a property that has failed in this session skips the reuse phase (it would
replay its known failure and stop at once) and goes on looking for others.

The worker keeps the records itself (conformance.fuzz.ledger): one per judged case, from every
judgment the harness reports, a case judged again counted once with its worst judgment; counts, worst
ratios, the timeline and the failures are read from them, and they replace the report session's own
records, so the console, the report and the timeline agree. Failures are deduplicated by signature
(conformance.fuzz.signatures); each signature's replay names its smallest case, whose case file alone
is kept. Passing records past the worst few per bucket are folded into counts, so a long session's
memory and report stay small.

The report folder is the usual one (`--conformance-report`), rewritten as the session goes, with a
`fuzz` section; status.json beside it feeds the controller's live display, and running.json (the case
being judged, as a case file) is what a crash is blamed on. A slice that overruns the deadline by the
grace is cut (BudgetCut).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time

import pytest
import torch
from hypothesis import Phase, seed
from hypothesis import settings as hyp_settings

from conformance.formatting import dumps, jsonable
from conformance.fuzz.database import DatabaseError, open_database
from conformance.fuzz.ledger import CaseLedger
from conformance.fuzz.signatures import failed_test_signature
from conformance.harness.case_files import judged_with
from conformance.harness.records import PROPERTY_KEY
from conformance.harness.run import run_state
from conformance.judge.settings import configure, settings
from conformance.mutants import BY_NAME
from conformance.platform.devices import PINNED
from conformance.report.artifacts import write_text_atomic
from conformance.report.pytest_hooks import report_session

STATUS_NAME, RUNNING_NAME, JUDGED_WITH_NAME = "status.json", "running.json", "judged_with.json"
#: Minimum seconds between rewrites of the worker's report.json (it only matters if the worker dies).
SNAPSHOT_INTERVAL_S = 15.0
KEEP_PASSING_PER_BUCKET = 100
COMPACT_ABOVE = 3000
STATUS_INTERVAL_S = 1.0
TIMELINE_POINTS = 120


class BudgetCut(KeyboardInterrupt):
    """The budget (plus its grace) ran out in the middle of a slice."""


def pytest_addoption(parser):
    group = parser.getgroup("npu-conformance fuzz worker")
    group.addoption("--fuzz-until", type=float, default=None, help="wall-clock deadline (epoch seconds)")
    group.addoption("--fuzz-started", type=float, default=None, help="the session's start (epoch seconds)")
    group.addoption("--fuzz-grace", type=float, default=10.0, help="seconds a slice may overrun the deadline")
    group.addoption("--fuzz-max-cases", type=int, default=None, help="stop after this many judged cases")
    group.addoption("--fuzz-worker", type=int, default=0, help="this worker's index")
    group.addoption("--fuzz-database", default=None, help="example database: a folder or a redis:// URL")
    group.addoption("--fuzz-seed", type=int, default=None, help="seed the slices (else hypothesis' random)")
    group.addoption("--fuzz-plant", default=None, help="plant a catalogued bug (conformance.mutants)")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    if config.getoption("fuzz_until") is None:
        return
    state = report_session(config)
    if state is None:
        raise pytest.UsageError("a fuzz worker needs --conformance-report DIR")
    config.pluginmanager.register(FuzzWorker(config, state), "npu-conformance-fuzz-worker")


def is_property(item) -> bool:
    """A hypothesis-driven test: a @given function, or a RuleBasedStateMachine's TestCase."""
    if hasattr(getattr(item, "obj", None), "hypothesis"):
        return True
    return isinstance(getattr(getattr(item, "cls", None), "settings", None), hyp_settings)


class FuzzWorker:
    def __init__(self, config, state):
        self.config, self.state = config, state
        opt = config.getoption
        self.deadline = opt("fuzz_until")
        self.started = opt("fuzz_started") or time.time()
        self.grace = opt("fuzz_grace")
        self.max_cases = opt("fuzz_max_cases")
        self.index = opt("fuzz_worker")
        self.seed = opt("fuzz_seed")
        self.out = state.out_dir
        plant = opt("fuzz_plant")
        if plant:
            if plant not in BY_NAME:
                raise pytest.UsageError(f"--plant {plant!r}: no such planted bug; see npu-conformance mutants --list")
            configure(mutation=BY_NAME[plant].mutation())
        run = settings()
        self.hardware = "emulated-cpu" if run.backend == "emulated" else _npu_hardware()
        try:
            self.database = open_database(opt("fuzz_database"), self.hardware)
        except DatabaseError as exc:  # the controller checked it at the start; it went away since
            raise pytest.UsageError(str(exc)) from exc
        self.base = hyp_settings.get_profile(run_state(config).profile)
        self.judged_with = judged_with(run)
        self.plant = plant
        self.properties: dict[str, dict] = {}
        self.ledger = CaseLedger(self.index, self.started)  # the records, counts, worsts and failures
        self.timeline: list[dict] = []
        self.slices = 0
        self.current: str | None = None
        self.stopped: str | None = None
        self.last_outcome: dict[str, str] = {}
        self.own_settings: dict = {}  # each test's hypothesis settings before the first slice replaced them
        self._last_status = 0.0
        self._last_point = -math.inf
        self._point_every = max(1.0, (self.deadline - self.started) / TIMELINE_POINTS)
        self._cut = False
        self.loop_started: float | None = None
        self.timing = {"layer": 0.0, "reference": 0.0}  # seconds in the layer and in the reference, all cases
        self.out.mkdir(parents=True, exist_ok=True)  # before the report session's start creates it
        (self.out / JUDGED_WITH_NAME).write_text(json.dumps(jsonable(self.judged_with)), encoding="utf-8")

    # --- the report: how it is written, what it adds, when it is complete (conformance.report.hookspecs)
    def pytest_conformance_report_options(self, config):
        # The controller renders the merged report; it merges snapshots, and status.json is the live feed.
        return {"render": False, "snapshot_interval_s": SNAPSHOT_INTERVAL_S}

    def pytest_conformance_report_section(self, config):
        return {"fuzz": self.section()}

    def pytest_conformance_run_completion(self, session, exitstatus):
        # A slice cut at the deadline ends a finished session, not an interrupted one.
        return (True, None) if self._cut else None

    # --- what a case tells us (conformance.harness.hookspecs) -----------------------------------
    def pytest_conformance_case_starting(self, config, case, property_name, session):
        """Note the case about to run (with judged_with.json, written once, a crash's case file)."""
        data = {"test_id": self.current, "property": property_name, "case": case.to_dict(),
                "session": None if session is None else {"graph_session": session[0].to_dict(), "step": session[1]}}
        # Plain json: a case's fields are ints, strings and finite floats (jsonable's walk doubled the cost).
        (self.out / RUNNING_NAME).write_text(json.dumps(data, allow_nan=False), encoding="utf-8")

    def pytest_conformance_case_judged(self, config, record, seconds):
        for kind in self.timing:
            self.timing[kind] += seconds.get(kind, 0.0)
        (self.out / RUNNING_NAME).unlink(missing_ok=True)  # judged: a crash from now on is not this case's
        stats = self.properties.get(self.current or "")
        self.ledger.take(dict(record, test_id=self.current or record.get("test_id") or "?"), stats)
        now = time.time()
        if now - self._last_point >= self._point_every:
            self._point(now)
        if now - self._last_status >= STATUS_INTERVAL_S:
            self.write_status()

    def _point(self, now: float) -> None:
        self._last_point = now
        self.timeline.append({"t": round(now - self.started, 2), "cases": self.ledger.cases,
                              "failures": self.ledger.failure_count(), "worst": dict(self.ledger.worst)})

    def _sync(self) -> None:
        """The report session's records, counted cases and per-test counts are the ledger's."""
        self.state.take_records(self.ledger.records(), self.ledger.tally_rows(), self.ledger.test_cases)

    # --- the loop ---------------------------------------------------------------------------
    def left(self) -> float:
        return self.deadline - time.time()

    def spent(self) -> str | None:
        if self.left() <= 0:
            return "budget"
        if self.max_cases is not None and self.ledger.cases >= self.max_cases:
            return "max-cases"
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(f"{session.testsfailed} error(s) during collection")
        if session.config.option.collectonly:
            return True
        self.loop_started = time.time()
        items = list(session.items)
        props = [i for i in items if is_property(i)]
        once = [i for i in items if not is_property(i)]
        for item in props:
            self.properties[item.nodeid] = {"test_id": item.nodeid, "cases": 0, "judgments": 0, "seconds": 0.0,
                                            "slices": 0, "examples": 0, "failures": 0, "signatures": [],
                                            "work_s": 0.0}
        self._arm_cut()
        try:
            for item in once:
                if self.spent() or self._run(session, item):
                    break
            if props:
                # Workers start on different properties; then the property with the least time so far
                # goes next, so one whose slices overrun (a long example) cannot starve the others.
                props = props[self.index % len(props):] + props[:self.index % len(props)]
                while not self.stopped and not self.spent():
                    item = min(props, key=lambda i: self.properties[i.nodeid]["seconds"])
                    if self._slice(session, item):
                        break
            self.stopped = self.stopped or self.spent() or "every test ran"
        except BudgetCut:
            self.stopped, self._cut = "budget (a slice was cut at the deadline)", True
            self._salvage()
            raise
        except KeyboardInterrupt:
            self.stopped = "interrupted"
            self._salvage()
            raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._sync()
            self.ledger.settle_files()
            self._point(time.time())
            self.write_status(done=True)
        return True

    def _arm_cut(self) -> None:
        def cut(signum, frame):
            raise BudgetCut(f"the budget ran out {self.grace:.0f} s ago in the middle of a slice")

        signal.signal(signal.SIGALRM, cut)
        signal.setitimer(signal.ITIMER_REAL, max(0.01, self.left() + self.grace))

    def _run(self, session, item) -> bool:
        """Run one test (once); True when the session must stop (-x, --maxfail)."""
        self.current = item.nodeid
        self.ledger.failing_judgments = 0
        # The plugin leaves each run's compact case lines on the item (for junit); a report copies the
        # item's list, so the next run would carry the last run's lines as its own records.
        item.user_properties[:] = [p for p in item.user_properties if p[0] != PROPERTY_KEY]
        item.ihook.pytest_runtest_protocol(item=item, nextitem=None)
        self._test_failed(item.nodeid)
        if len(self.ledger.kept) > COMPACT_ABOVE:
            self.ledger.compact(KEEP_PASSING_PER_BUCKET)
        self._sync()
        self.ledger.settle_files()
        if session.shouldfail or session.shouldstop:
            self.stopped = f"stopped early ({session.shouldfail or session.shouldstop})"
            return True
        return False

    def _slice(self, session, item) -> bool:
        stats = self.properties[item.nodeid]
        target_s = min(30.0, max(2.0, (self.deadline - self.started) / (3 * max(1, len(self.properties)))))
        per_example = stats["seconds"] / stats["examples"] if stats["examples"] else None
        n = 3 if per_example is None else int(min(target_s, max(self.left(), 0)) / max(per_example, 1e-3))
        n = max(1, min(n, 5000))
        phases = [p for p in self.base.phases if p is not Phase.explain]
        if stats["slices"]:  # the property's @example cases ran in its first slice
            phases = [p for p in phases if p is not Phase.explicit]
        if stats["failures"]:
            phases = [p for p in phases if p is not Phase.reuse]
        fn = getattr(item, "obj", None)
        stateful = not hasattr(fn, "hypothesis")
        # What @settings sets on a function, or TestCase.settings of a state machine: replaced for each
        # slice, always derived from the test's own (kept per function: parametrized items share one).
        holder, attr = (item.cls, "settings") if stateful else (fn, "_hypothesis_internal_use_settings")
        own = self.own_settings.setdefault(holder, getattr(holder, attr))
        setattr(holder, attr, hyp_settings(parent=own, max_examples=n, database=self.database, phases=phases,
                                           derandomize=False))
        if self.seed is not None and not stateful:
            seed(hash((self.seed, self.index, self.slices)) & 0xFFFFFFFF)(fn)
        self.slices += 1
        started, work = time.monotonic(), self.timing["layer"] + self.timing["reference"]
        try:
            return self._run(session, item)
        finally:
            stats["seconds"] += time.monotonic() - started
            stats["work_s"] += self.timing["layer"] + self.timing["reference"] - work
            stats["examples"] += n
            stats["slices"] += 1

    # --- failures ---------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.failed:
            self.last_outcome[report.nodeid] = report.outcome
        if report.when == "call":
            # The report session has just added the harness's records of this test (the named failures,
            # each passing case once): the worker's records replace them, and the harness has removed the
            # case files its report does not name, a failure's smallest case's perhaps among them.
            self._sync()
            self.ledger.settle_files()

    def _test_failed(self, nodeid: str) -> None:
        """A test that failed without a failing case (a metamorphic relation, a contract test) is a
        failure of its own, by its message's signature; it is no case, so it counts once per run."""
        if self.ledger.failing_judgments or self.last_outcome.get(nodeid) != "failed":
            return
        reason = (self.state.tests.get(nodeid) or {}).get("reason") or ""
        self.ledger.test_failure(failed_test_signature(nodeid, reason), nodeid, reason, self.properties.get(nodeid))
        self.write_status()

    def _salvage(self) -> None:
        """A slice stopped in the middle (budget cut, Ctrl-C) never reaches its test report: the cases it
        judged are already the worker's records (every judgment is taken as it happens); the harness's
        pending records are dropped, and a case file written for a judgment that was never reported is
        removed like any other that is not a failure's smallest case."""
        pending = run_state(self.config)
        pending.drain_records()
        written = pending.drain_written()
        self._sync()
        self.ledger.settle_files(written)

    # --- what the controller and the report read -----------------------------------------
    def section(self) -> dict:
        """The report's `fuzz` section for this worker (the report session's records are synced first:
        the report is built from them right after)."""
        self._sync()
        elapsed = time.time() - self.started
        props = []
        for stats in self.properties.values():
            props.append({k: v for k, v in stats.items() if k != "examples"}
                         | {"cases_per_s": stats["cases"] / stats["seconds"] if stats["seconds"] else 0.0,
                            "examples_requested": stats["examples"]})
        degraded = getattr(self.database, "degraded", None)
        return {"budget_s": round(self.deadline - self.started, 2), "elapsed_s": round(elapsed, 2),
                "stopped": self.stopped, "budget_cut": self._cut, "workers": [self.worker_info()],
                "database": {"spec": self.config.getoption("fuzz_database") or ".hypothesis/examples",
                             "hardware": self.hardware, "degraded": degraded},
                # cases: distinct judged cases, each once (its record, or counted only); judgments: every
                # time a case was judged, a case judged again (shrinking, database replays) included
                "planted": self.plant, "cases": self.ledger.cases, "judgments": self.ledger.judgments,
                "slices": self.slices,
                # startup (imports, collection) once per worker; the loop is where cases are judged
                "startup_s": round((self.loop_started or time.time()) - self.started, 2),
                "loop_s": round(time.time() - self.loop_started, 2) if self.loop_started else 0.0,
                "time_in_kernels_and_reference_s": round(self.timing["layer"] + self.timing["reference"], 3),
                "time_in_layer_s": round(self.timing["layer"], 3),
                "time_in_reference_s": round(self.timing["reference"], 3),
                "properties": props, "failures": [dict(f) for f in self.ledger.failures.values()],
                "timeline": list(self.timeline)}

    def worker_info(self) -> dict:
        return {"index": self.index, "pid": os.getpid(), "device": os.environ.get(PINNED), "restarts": 0}

    def write_status(self, done: bool = False) -> None:
        self._last_status = time.time()
        status = self.section() | {"done": done, "current": self.current, "worst": dict(self.ledger.worst)}
        status.pop("timeline")
        write_text_atomic(self.out / STATUS_NAME, dumps(status))


def _npu_hardware() -> str:
    return f"npu-{torch.npu.get_device_name(0)}"
