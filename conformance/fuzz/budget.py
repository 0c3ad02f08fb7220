"""Durations on the command line: `90s`, `30m`, `8h`, `1h30m`, or plain seconds (`45`)."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


class BudgetError(ValueError):
    """A --budget that is not a positive duration."""


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises BudgetError naming the rule."""
    spec = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", spec):
        raise BudgetError(f"--budget {text!r}: give a unit, e.g. {spec}s or {spec}m")
    if spec and _PART.sub("", spec) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(spec))
    else:
        raise BudgetError(f"--budget {text!r}: expected a duration such as 90s, 30m, 8h or 1h30m")
    if seconds <= 0:
        raise BudgetError(f"--budget {text!r}: must be more than 0 seconds")
    return seconds


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
