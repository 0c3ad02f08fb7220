"""The report's extension points, as pytest hooks (added by conformance.report.pytest_hooks).

A plugin that changes how a run's report is written implements these instead of setting attributes of
the ReportSession: `npu-conformance run`'s live display prints its own summary; a fuzz worker writes no
HTML (its controller renders the merged report), adds its `fuzz` section and knows when a run cut by
its budget is nonetheless complete.
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_conformance_report_options(config: pytest.Config) -> dict | None:
    """Changes to how this run's report is written, as a dict of any of:
    "render" (bool: write report.html and summary.md at the end, default True),
    "snapshot_interval_s" (float: the least time between in-progress rewrites of report.json, default 2),
    "terminal_summary" (bool: print the verdict in pytest's terminal summary, default True).
    Every plugin's answer applies, in hook order."""


@pytest.hookspec(firstresult=True)
def pytest_conformance_report_section(config: pytest.Config) -> dict | None:
    """Extra top-level sections of the report, e.g. {"fuzz": {...}} from a fuzz worker (schema v2)."""


@pytest.hookspec(firstresult=True)
def pytest_conformance_run_completion(session: pytest.Session, exitstatus: int) -> tuple[bool, str | None] | None:
    """(complete, why not) when a plugin knows better than pytest's exit status: a fuzz worker whose
    slice was cut at its deadline finished its session; None to let the report decide."""
