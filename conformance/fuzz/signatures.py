"""What makes two failures the same failure: one entry per signature in a fuzz report, with a count.

A signature is the property, the bucket (phase/dtype) and what failed: the failed checks and the
unacknowledged hazard codes of an out-of-tolerance case, the exception type and its message with the
numbers blanked for a case that raised, or the failure message of a test that failed without a
failing case (a metamorphic relation, a crashed worker).
"""

from __future__ import annotations

import re

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)


def _blank(text: str, limit: int = 160) -> str:
    first = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return _NUMBER.sub("N", first)[:limit]


def record_signature(record: dict) -> str:
    where = f"{record.get('test_id', '?')} | {record['phase']}/{record['dtype']}"
    if record["verdict"] == "error":
        return f"{where} | raised {_blank(record.get('error') or '')}"
    hazards = sorted({h.get("code", "") for h in record.get("hazards") or [] if not h.get("accepted")})
    checks = ",".join(record.get("failed_checks") or [])
    return f"{where} | failed {checks}" + (f" [{', '.join(hazards)}]" if hazards else "")


def failed_test_signature(test_id: str, message: str) -> str:
    return f"{test_id} | test failed: {_blank(message)}"
