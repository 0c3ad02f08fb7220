"""Load and validate report.json against the JSON Schemas shipped in this package (schema-v2.json;
a schema-v1 report is validated against schema-v1.json, then migrated in memory: see migrate.py)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from conformance.report.migrate import migrate
from conformance.report.model import SCHEMA_VERSION


class ReportError(ValueError):
    """A report file that cannot be read: missing, not JSON, or not a valid report of a known version."""


#: Versions this code reads: older ones are migrated to SCHEMA_VERSION after validation.
READABLE_VERSIONS = (1, SCHEMA_VERSION)


@lru_cache(maxsize=len(READABLE_VERSIONS))
def load_schema(version: int = SCHEMA_VERSION) -> dict:
    text = resources.files("conformance.report").joinpath(f"schema-v{version}.json").read_text("utf-8")
    return json.loads(text)


def _where(path) -> str:
    return "/".join(str(p) for p in path) or "(top level)"


def validation_errors(report, limit: int = 5, version: int = SCHEMA_VERSION) -> list[str]:
    """Readable schema violations of `report` (empty if it is a valid report of schema `version`)."""
    import jsonschema

    schema = load_schema(version)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(report),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    out = []
    for err in errors[:limit]:
        message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
        out.append(f"at {_where(err.absolute_path)}: {message}")
    if len(errors) > limit:
        out.append(f"... and {len(errors) - limit} more")
    return out


def validate_report(report, name: str = "report") -> dict:
    """Return `report` (a v1 report migrated to the current version) if it is valid, else raise
    ReportError naming the first problems."""
    version = report.get("schema_version") if isinstance(report, dict) else None
    if version is not None and version not in READABLE_VERSIONS:
        raise ReportError(f"{name}: schema_version {version!r} is not supported "
                          f"(this npu-conformance reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    version = version if version is not None else SCHEMA_VERSION
    problems = validation_errors(report, version=version)
    if problems:
        # The list, then the cause again as the last line (what a terminal user reads last).
        first = problems[0].split(": ", 1)[-1]
        raise ReportError(f"{name} is not a valid schema-v{version} npu-conformance report:\n  "
                          + "\n  ".join(problems) + f"\n{name}: not a valid report (first problem: {first})")
    if version != SCHEMA_VERSION:
        report = migrate(report)
    return report


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON; non-finite numbers are written as \"inf\", \"-inf\", \"nan\"")


def load_report(path: str | Path) -> dict:
    """Read and validate a report.json."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: cannot read it ({exc})") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ReportError(f"{path}: not valid JSON ({exc})") from None
    return validate_report(data, str(path))
