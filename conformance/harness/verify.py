"""What a property calls: check a case, record it for the report, steer hypothesis, assert.

Records wait in the run's state (conformance.harness.run) until the plugin moves them onto the test's
report (user_properties), so properties need no fixture inside @given; plugins see every case through
the `pytest_conformance_case_starting` / `pytest_conformance_case_judged` hooks. A graph session is
verified step by step (`verify_session`), each step's case file holding the whole session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import event, target
from hypothesis.control import current_build_context, currently_in_test_context

from conformance.cases.case import Case, Tensors
from conformance.cases.graph_session import GraphSession, run_session
from conformance.harness.case_files import write_case_file
from conformance.harness.run import current_config, run_state
from conformance.judge.check import check_case
from conformance.judge.outcome import Outcome
from conformance.judge.settings import settings
from conformance.judge.stopwatch import Stopwatch
from conformance.platform.devices import PINNED


def _where() -> dict:
    """The card this process is pinned to (conformance.platform.devices), when it is."""
    pinned = os.environ.get(PINNED)
    return {} if pinned is None else {"device_pin": pinned}


def error_record(case: Case, exc: BaseException, property_name: str = "") -> dict:
    """A case that raised instead of producing a comparison (contract violation, crash)."""
    return {"case_id": case.case_id, "phase": case.phase, "dtype": case.dtype, "backend": settings().backend,
            "verdict": "error", "error": f"{type(exc).__name__}: {exc}", "ratio": None, "hazards": [],
            "case": case.to_dict(), "property": property_name, **_where()}


def _judged(config: pytest.Config | None, entry: dict, stopwatch: Stopwatch) -> None:
    """Keep the record for the test's report and tell the plugins (outside pytest: nobody to tell)."""
    if config is None:
        return
    run_state(config).pending.append(entry)
    config.hook.pytest_conformance_case_judged(config=config, record=entry, seconds=dict(stopwatch.seconds))


def _steer(config: pytest.Config | None, outcome: Outcome) -> None:
    """Label the example for hypothesis' statistics and climb toward the worst error. A label may be
    targeted once per example (a stateful run judges many steps in one example): the first step of
    each kind steers."""
    if not currently_in_test_context():
        return
    label = f"{outcome.case.phase}/{outcome.case.dtype}"
    event(label)
    if config is None:
        return
    state = run_state(config)
    context = current_build_context()
    if state.targeted[0] is not context:
        state.targeted = (context, set())
    if label not in state.targeted[1]:
        state.targeted[1].add(label)
        target(min(outcome.ratio, 1e6), label=f"error/bound {label}")


def _save(config: pytest.Config | None, case: Case, tensors: Tensors | None, verdict: dict, session) -> Path:
    """Save a failing case with the settings that judged it (and the cache it ran on, when that cache
    was not the case's own, as in the stateful engine; and the graph session it is a step of)."""
    run = settings()
    state = None if tensors is None else {"k_cache": tensors.k_cache, "v_cache": tensors.v_cache}
    path = write_case_file(run.failures_dir, case, run, verdict, state, session)
    if config is not None:
        run_state(config).written.append(path)
    return path


def verify_case(case: Case, property_name: str = "", tensors: Tensors | None = None, session=None) -> Outcome:
    """Check `case`, record it, and fail with a readable explanation if it fails (the case file the
    explanation names is written before the assertion is raised). `session` is (GraphSession, step)
    when the case is a step of a graph session: its file then replays the session up to that step."""
    config = current_config()
    if config is not None:
        config.hook.pytest_conformance_case_starting(config=config, case=case, property_name=property_name,
                                                     session=session)
    stopwatch = Stopwatch()
    try:
        outcome = check_case(case, tensors=tensors, stopwatch=stopwatch)
    except Exception as exc:  # recorded for the report, then re-raised unchanged
        entry = error_record(case, exc, property_name)
        entry["case_file"] = str(_save(config, case, tensors, {"verdict": "error", "error": entry["error"]}, session))
        _judged(config, entry, stopwatch)
        raise
    path = None
    if not outcome.passed:
        verdict = {"verdict": outcome.verdict, "failed_checks": outcome.failed_checks, "ratio": outcome.ratio}
        path = _save(config, case, tensors, verdict, session)  # the layer wrote to clones: the starting caches
    entry = outcome.record() | {"property": property_name, "case_file": None if path is None else str(path)}
    _judged(config, entry | _where(), stopwatch)
    _steer(config, outcome)
    if path is not None:
        raise AssertionError("\n" + outcome.explain(path))
    return outcome


def verify_session(session: GraphSession, property_name: str, *, eager: bool = False,
                   stop_after: int | None = None):
    """Verify every step of a graph session in order (conformance.cases.graph_session.run_session);
    yields (step index, Outcome) and raises at the first failing step, whose case file holds the
    whole session."""
    def judge(case: Case, tensors: Tensors, step: int) -> Outcome:
        return verify_case(case, property_name, tensors=tensors, session=(session, step))

    yield from run_session(session, judge, device=settings().device, eager=eager, stop_after=stop_after)
