"""What a property calls: check a case, record it for the report, steer hypothesis, assert.

Records wait here until the pytest plugin moves them onto the test's report (user_properties), so
properties need no fixture inside @given.
"""

from __future__ import annotations

from hypothesis import event, target
from hypothesis.control import current_build_context, currently_in_test_context

from conformance.cases import Case
from conformance.check import Outcome, check_case
from conformance.session import settings

_pending: list[dict] = []
_targeted: dict = {"context": None, "labels": set()}


def drain_records() -> list[dict]:
    """Hand over (and forget) the records made since the last call."""
    records = list(_pending)
    _pending.clear()
    return records


def record(outcome: Outcome, property_name: str = "") -> None:
    _pending.append(outcome.record() | {"property": property_name})
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
            "case": case.to_dict(), "property": property_name}


def replay_path(case: Case):
    return settings().failures_dir / f"{case.phase}-{case.case_id}.json"


def verify_case(case: Case, property_name: str = "", tensors=None) -> Outcome:
    """Check `case`, record it, and fail with a readable explanation if it is out of tolerance."""
    try:
        outcome = check_case(case, tensors=tensors)
    except Exception as exc:  # recorded for the report, then re-raised unchanged
        _pending.append(error_record(case, exc, property_name))
        raise
    record(outcome, property_name)
    if not outcome.passed:
        raise AssertionError("\n" + outcome.explain(replay_path(case)))
    return outcome
