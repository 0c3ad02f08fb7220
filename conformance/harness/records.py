"""Per-case records on pytest's test reports: the key they travel under (so records from pytest-xdist
workers reach the controlling process with their test's report), and which records a test keeps."""

from __future__ import annotations

#: `report.user_properties` entries under this key are the per-case records of a test.
PROPERTY_KEY = "conformance_case"


def records_of(report) -> list[dict]:
    """The per-case records a test report carries."""
    return [value for key, value in report.user_properties if key == PROPERTY_KEY]


def compact_line(record: dict) -> str:
    """A record in one line (what junit.xml carries per case; the full record is in report.json)."""
    ratio = record.get("ratio")
    return (f"{record['case_id']} {record['phase']} {record['dtype']} {record['verdict']} "
            f"ratio={'-' if ratio is None else format(ratio, '.4g')}")


def keep_named_failures(records: list[dict], reported: set[str] = frozenset()) -> list[dict]:
    """Keep each passing case once, and of the failures the ones the test's failure report names
    (the explicit or shrunk examples hypothesis reports; one record each), or else the last one
    (earlier failures are steps of the shrink)."""
    passing, seen = [], set()
    for r in records:
        if r["verdict"] == "pass" and r["case_id"] not in seen:
            seen.add(r["case_id"])
            passing.append(r)
    failing = [r for r in records if r["verdict"] != "pass"]
    named = list({r["case_file"]: r for r in failing if r.get("case_file") in reported}.values())
    return passing + (named or failing[-1:])
