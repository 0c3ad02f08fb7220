"""Load and validate report.json against the JSON Schema shipped in this package (schema-v1.json)."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

from conformance.report.model import SCHEMA_VERSION


class ReportError(ValueError):
    """A report file that cannot be read: missing, not JSON, or not a schema-v1 report."""


@lru_cache(maxsize=1)
def load_schema() -> dict:
    text = resources.files("conformance.report").joinpath(f"schema-v{SCHEMA_VERSION}.json").read_text("utf-8")
    return json.loads(text)


def _where(path) -> str:
    return "/".join(str(p) for p in path) or "(top level)"


def validation_errors(report, limit: int = 5) -> list[str]:
    """Readable schema violations of `report` (empty if it is a valid schema-v1 report)."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(load_schema())
    validator = validator_cls(load_schema())
    errors = sorted(validator.iter_errors(report), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    out = []
    for err in errors[:limit]:
        message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
        out.append(f"at {_where(err.absolute_path)}: {message}")
    if len(errors) > limit:
        out.append(f"... and {len(errors) - limit} more")
    return out


def validate_report(report, name: str = "report") -> dict:
    """Return `report` if it is valid, else raise ReportError naming the first problems."""
    if isinstance(report, dict) and report.get("schema_version") not in (None, SCHEMA_VERSION):
        raise ReportError(f"{name}: schema_version {report.get('schema_version')!r} is not supported "
                          f"(this npu-conformance reads version {SCHEMA_VERSION})")
    problems = validation_errors(report)
    if problems:
        raise ReportError(f"{name} is not a valid schema-v{SCHEMA_VERSION} npu-conformance report:\n  "
                          + "\n  ".join(problems))
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
