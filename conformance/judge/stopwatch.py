"""Where one case's time went: in the layer (its kernels included) and in the reference (golden and
baseline). A fuzz session reports the share of its time spent on the work that matters; the caller
owns the stopwatch and reads it after the case (conformance.harness.verify hands it to the
`pytest_conformance_case_judged` hook), so no module keeps a running total.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

KINDS = ("layer", "reference")


@dataclass
class Stopwatch:
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))

    @contextlib.contextmanager
    def timing(self, kind: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[kind] += time.perf_counter() - started


def timing(stopwatch: Stopwatch | None, kind: str):
    """`stopwatch.timing(kind)`, or nothing to time when no one asked."""
    return stopwatch.timing(kind) if stopwatch is not None else contextlib.nullcontext()
