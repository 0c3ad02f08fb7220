"""The harness's extension points, as pytest hooks (added by conformance.harness.plugin).

A plugin that wants to see cases as they are judged implements these instead of reaching into the
harness: `npu-conformance run`'s live display, a fuzz worker's crash attribution and statistics.
The report's own extension points are in conformance.report.hookspecs.
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_conformance_case_starting(config: pytest.Config, case, property_name: str, session) -> None:
    """`case` (a conformance.cases.Case) is about to run in `property_name`. `session` is
    (GraphSession, step index) when the case is a step of a graph session, else None. A fuzz worker
    notes the case here, so that a crash that kills the process is blamed on it."""


@pytest.hookspec
def pytest_conformance_case_judged(config: pytest.Config, record: dict, seconds: dict[str, float]) -> None:
    """A case was judged: `record` is its report record (verdict "pass", "fail" or "error"); `seconds`
    is the time it spent in the layer and in the reference (conformance.judge.stopwatch)."""
