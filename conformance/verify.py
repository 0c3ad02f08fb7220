"""What a property calls: check a case, record it for the report, steer hypothesis, assert.

Records wait here until the pytest plugin moves them onto the test's report (user_properties), so
properties need no fixture inside @given.
"""

from __future__ import annotations

import os

from hypothesis import event, target
from hypothesis.control import current_build_context, currently_in_test_context

from conformance.case_files import write_case_file
from conformance.cases import Case
from conformance.check import Outcome, check_case
from conformance.devices import PINNED
from conformance.session import settings

_pending: list[dict] = []
_written: list = []  # case files saved since the last drain_written() (the plugin keeps the ones it reports)
#: Called with every record as it is made (the live progress of `npu-conformance run`, in this process).
listeners: list = []
#: Called with (case, property name) before a case runs: a fuzz worker notes it, so that a crash that
#: kills the process (a kernel can) is blamed on the case that was running.
starting: list = []
_targeted: dict = {"context": None, "labels": set()}


def drain_records() -> list[dict]:
    """Hand over (and forget) the records made since the last call."""
    records = list(_pending)
    _pending.clear()
    return records


def _where() -> dict:
    """The card this process is pinned to (conformance.devices), when it is."""
    pinned = os.environ.get(PINNED)
    return {} if pinned is None else {"device_pin": pinned}


def record(outcome: Outcome, property_name: str = "", case_file=None) -> None:
    entry = outcome.record() | {"property": property_name, "case_file": None if case_file is None else str(case_file)}
    entry |= _where()
    _pending.append(entry)
    for listener in listeners:
        listener(entry)
    if currently_in_test_context():
        label = f"{outcome.case.phase}/{outcome.case.dtype}"
        event(label)
        # Climb toward the worst error. A label may be targeted once per example (a stateful run
        # judges many steps in one example): the first step of each kind steers.
        context = current_build_context()
        if _targeted["context"] is not context:
            _targeted.update(context=context, labels=set())
        if label not in _targeted["labels"]:
            _targeted["labels"].add(label)
            target(min(outcome.ratio, 1e6), label=f"error/bound {label}")


def error_record(case: Case, exc: BaseException, property_name: str = "") -> dict:
    """A case that raised instead of producing a comparison (contract violation, crash)."""
    return {"case_id": case.case_id, "phase": case.phase, "dtype": case.dtype, "backend": settings().backend,
            "verdict": "error", "error": f"{type(exc).__name__}: {exc}", "ratio": None, "hazards": [],
            "case": case.to_dict(), "property": property_name, **_where()}


def drain_written() -> list:
    """Hand over (and forget) the case files saved since the last call."""
    paths = list(_written)
    _written.clear()
    return paths


def _save(case: Case, tensors, verdict: dict, session=None):
    """Save a failing case with the settings that judged it (and the cache it ran on, when that cache
    was not the case's own, as in the stateful engine; and the graph session it is a step of)."""
    run = settings()
    state = None if tensors is None else {"k_cache": tensors.k_cache, "v_cache": tensors.v_cache}
    path = write_case_file(run.failures_dir, case, run, verdict, state, session)
    _written.append(path)
    return path


def verify_case(case: Case, property_name: str = "", tensors=None, session=None) -> Outcome:
    """Check `case`, record it, and fail with a readable explanation if it fails (the case file the
    explanation names is written before the assertion is raised). `session` is (GraphSession, step)
    when the case is a step of a graph session: its file then replays the session up to that step."""
    for callback in starting:
        callback(case, property_name, session)
    try:
        outcome = check_case(case, tensors=tensors)
    except Exception as exc:  # recorded for the report, then re-raised unchanged
        entry = error_record(case, exc, property_name)
        entry["case_file"] = str(_save(case, tensors, {"verdict": "error", "error": entry["error"]}, session))
        _pending.append(entry)
        for listener in listeners:
            listener(entry)
        raise
    if not outcome.passed:
        verdict = {"verdict": outcome.verdict, "failed_checks": outcome.failed_checks, "ratio": outcome.ratio}
        path = _save(case, tensors, verdict, session)  # the layer wrote to clones: these are the starting caches
        record(outcome, property_name, case_file=path)
        raise AssertionError("\n" + outcome.explain(path))
    record(outcome, property_name)
    return outcome
