"""The hypothesis profiles of a run (conformance.names.PROFILES): dev (default, fast), ci (more examples, failures kept
in .hypothesis/examples), fuzz (thousands of examples), npu (hardware: no deadline, failures kept).

They derive from hypothesis' "default", never from whatever is loaded: with CI set in the environment
hypothesis loads its own derandomized "ci" profile at import, and profiles derived from it would
silently ignore --seed on every CI machine.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
            HealthCheck.filter_too_much]
#: Where the ci, fuzz and npu profiles keep the examples that failed (replayed first next time).
EXAMPLES_DIR = ".hypothesis/examples"


def register() -> None:
    base = settings.get_profile("default")
    common = dict(parent=base, deadline=None, suppress_health_check=_SLOW_OK, print_blob=True)
    settings.register_profile("dev", max_examples=8, stateful_step_count=8, **common)
    # Redefines hypothesis' built-in "ci" (derandomized, no database): more examples, failures kept.
    settings.register_profile("ci", max_examples=60, derandomize=False, stateful_step_count=20,
                              database=DirectoryBasedExampleDatabase(EXAMPLES_DIR), **common)
    settings.register_profile("fuzz", max_examples=5000, database=DirectoryBasedExampleDatabase(EXAMPLES_DIR),
                              **common)
    settings.register_profile("npu", max_examples=40, stateful_step_count=20,
                              database=DirectoryBasedExampleDatabase(EXAMPLES_DIR), **common)
