"""Numbers and JSON as every report, case file and console line writes them (a leaf: imports nothing
of the project, so the harness's lower layers and the report share one definition).

Non-finite numbers (an output full of NaN has an infinite error ratio) are not valid JSON, so they are
written as the strings "inf", "-inf" and "nan"; `num()` reads either form back as a float.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import PurePath

_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def jsonable(value):
    """`value` with tuples as lists, paths as strings and non-finite floats as "inf"/"-inf"/"nan"."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "item"):  # a 0-d tensor or numpy scalar that slipped into a record
        return jsonable(value.item())
    return str(value)


def dumps(report: dict) -> str:
    return json.dumps(jsonable(report), indent=1, allow_nan=False) + "\n"


def num(value) -> float | None:
    """A number from the JSON form: None stays None, "inf"/"-inf"/"nan" become floats."""
    if value is None:
        return None
    if isinstance(value, str):
        return _NONFINITE[value]
    return float(value)


def rank(value) -> float:
    """Sort key for error ratios: NaN counts as the worst, a missing ratio as the best."""
    x = num(value)
    if x is None:
        return -math.inf
    return math.inf if math.isnan(x) else x


def fmt_ratio(value) -> str:
    """An error/tolerance ratio, always with three decimals (0.280, 0.098, 0.000, 27.041): one format
    everywhere, so ratios line up and compare by eye."""
    x = num(value)
    if x is None:
        return "-"
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3f}"


def fmt_num(value, spec: str = ".3e") -> str:
    x = num(value)
    if x is None:
        return "-"
    if not math.isfinite(x):
        return str(x)
    return format(x, spec)


def now_iso() -> str:
    """Now, as every report writes a time: ISO 8601 UTC to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, the cut marked with an ellipsis (never silently)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
