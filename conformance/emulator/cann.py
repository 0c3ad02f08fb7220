"""The CANN version the emulator emulates: rules that differ between CANN releases read it.

Every rule was read at one commit (RULES.md, column "read at"). Where a rule was also read at a later
release and found to differ, it is keyed to a version range here and consults `current()`. Each
emulated version names the public snapshot it stands for (its `version.info`):

  8.5.0.alpha001  hicann/ops-transformer @c29bc10 (2025-11-15)     every rule was read here, except
                  npu_scatter_pa_kv_cache's (the op is not in that snapshot: read at v8.5.0)
  8.5.0           cannmirror/ops-transformer tag v8.5.0 @6ead121   only the version-keyed rules re-read
  9.0.0           cannmirror/ops-transformer tag v9.0.0 @afe7214   only the version-keyed rules re-read

A rule not keyed to a range applies to every version as read at its own commit: for 8.5.0 and 9.0.0
that is carried over, not re-audited. The default is the newest version whose every rule was read.

    from conformance.emulator import cann
    cann.set_version("9.0.0")            # process-wide; returns the previous one
    with cann.emulated_version("8.5.0"):  # for a block
        ...
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

#: Oldest first. version -> the public snapshot it was read at.
EMULATED_VERSIONS: dict[str, str] = {
    "8.5.0.alpha001": "hicann/ops-transformer@c29bc10",
    "8.5.0": "cannmirror/ops-transformer@6ead121 (tag v8.5.0)",
    "9.0.0": "cannmirror/ops-transformer@afe7214 (tag v9.0.0)",
}
#: The newest version at which every rule of RULES.md was read (npu_scatter_pa_kv_cache's at v8.5.0: see above).
AUDITED_VERSION = "8.5.0.alpha001"
DEFAULT_VERSION = AUDITED_VERSION

_current = {"version": DEFAULT_VERSION}


class UnknownVersion(ValueError):
    """A CANN version the emulator has no rules for."""


def _checked(version: str) -> str:
    if version not in EMULATED_VERSIONS:
        raise UnknownVersion(f"CANN version {version!r} is not emulated; choose one of {list(EMULATED_VERSIONS)}")
    return version


def set_version(version: str) -> str:
    """Emulate `version` from now on (process-wide); returns the previous setting."""
    previous = _current["version"]
    _current["version"] = _checked(version)
    return previous


def current() -> str:
    return _current["version"]


@contextlib.contextmanager
def emulated_version(version: str) -> Iterator[str]:
    """Emulate `version` inside the block, then restore the previous setting."""
    previous = set_version(version)
    try:
        yield version
    finally:
        set_version(previous)


def at_least(version: str) -> bool:
    """Whether the emulated version is `version` or newer."""
    order = list(EMULATED_VERSIONS)
    return order.index(current()) >= order.index(_checked(version))


def source_of(version: str | None = None) -> str:
    """The snapshot `version` (default: the current one) was read at."""
    return EMULATED_VERSIONS[_checked(version or current())]
