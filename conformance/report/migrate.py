"""Schema v1 -> v2, in memory: `diff`, `report merge` and the renderers read old reports unchanged.

What v2 changed (docs/report-schema.md, "Migrating from v1"):
  * every record carries `verdicts` (dual, ascend, determinism), `ascend` (msprobe's benchmark
    standard), `determinism` (a second run on the same inputs) and `ascend_ratio`;
  * `output.ascend_eps` / `output.ascend_ratio` (the ATB "new standard" ceiling) are gone: v2's Ascend
    numbers are msprobe's, a different quantity, so a v1 ceiling is dropped rather than relabelled;
  * summaries' `worst_ascend_ratio` is now the worst Ascend-standard margin (null for v1 runs);
  * `run.tolerance_policy.gating` says what gated; a v1 run was gated by the dual reference alone.
A v1 record did not compute the new checks, so they read "not run", never "pass".
"""

from __future__ import annotations

import copy

from conformance.report.model import SCHEMA_VERSION

#: What gated every v1 run: the dual reference; there was no determinism check to gate.
V1_GATING = {"standards": "dual", "determinism": "report", "ascend_level": "L1"}


def _record(record: dict) -> dict:
    output = record.get("output")
    if output:
        output.pop("ascend_eps", None)
        output.pop("ascend_ratio", None)
    if record.get("verdict") != "error":
        record["verdicts"] = {"dual": (output or {}).get("verdict", "pass"), "ascend": "not run",
                              "determinism": "not run"}
        record.setdefault("ascend", None)
        record.setdefault("determinism", None)
    record.setdefault("ascend_ratio", None)
    return record


def migrate(report: dict) -> dict:
    """A copy of a valid schema-v1 report as a schema-v2 report (marked run.migrated_from = 1)."""
    if report.get("schema_version") != 1:
        raise ValueError(f"migrate() takes a schema-v1 report, got schema_version {report.get('schema_version')!r}")
    out = copy.deepcopy(report)
    out["schema_version"] = SCHEMA_VERSION
    out["run"]["migrated_from"] = 1
    out["run"]["tolerance_policy"].setdefault("gating", dict(V1_GATING))
    out["records"] = [_record(r) for r in out["records"]]
    for summary in out["summaries"]:
        summary["worst_ascend_ratio"] = None
        summary.setdefault("worst_ascend_case_id", None)
    return out
