"""The pytest run a case belongs to, and its per-run state (in `config.stash`).

A property calls `verify_case` from inside `@given`, where no fixture reaches (hypothesis runs the body
many times): the plugin enters each configured run here at `pytest_configure` and leaves it at
`pytest_unconfigure`, and `current_config()` is the innermost one (a `pytest.main` inside a test, as the
mutants runner does, is a run of its own). Everything a run accumulates lives in its `RunState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class RunState:
    """What one run's cases leave until the plugin moves them onto their test's report."""

    pending: list[dict] = field(default_factory=list)  # records made since the last drain
    written: list[Path] = field(default_factory=list)  # case files saved since the last drain
    #: the hypothesis example whose labels already steered target() (one steer per label per example)
    targeted: tuple[object, set] = (None, set())
    profile: str = "dev"  # the hypothesis profile the run loaded
    npu_missing: str | None = None  # "--backend npu" without a usable device: why (its tests skip)
    installed_npu_modules: bool = False  # this run put the emulator in sys.modules: it takes it out again
    previous_sigterm: object = None  # the SIGTERM handler before the run's, put back at its end
    #: SIGTERM arrived. Kept because the handler's exception can be swallowed: raised while a gc callback
    #: runs (hypothesis registers one), Python prints it as "unraisable" and the run would go on.
    sigterm_received: bool = False

    def drain_records(self) -> list[dict]:
        """Hand over (and forget) the records made since the last call."""
        records, self.pending = self.pending, []
        return records

    def drain_written(self) -> list[Path]:
        """Hand over (and forget) the case files saved since the last call."""
        paths, self.written = self.written, []
        return paths


RUN_STATE = pytest.StashKey[RunState]()
_configs: list[pytest.Config] = []


def enter(config: pytest.Config) -> RunState:
    state = config.stash.setdefault(RUN_STATE, RunState())
    _configs.append(config)
    return state


def leave(config: pytest.Config) -> None:
    _configs[:] = [c for c in _configs if c is not config]


def current_config() -> pytest.Config | None:
    """The innermost pytest run of this process, or None outside pytest."""
    return _configs[-1] if _configs else None


def run_state(config: pytest.Config) -> RunState:
    return config.stash[RUN_STATE]
