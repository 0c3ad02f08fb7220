"""What the emulator finds about a call: violations, hazards and notes.

* A **violation** is a call the kernel refuses (its host code or, where no code is public, its docs).
  The emulator raises `ContractViolation`, a `ValueError` whose message names the op, the argument,
  the rule and its public source; the same facts are attributes.
* A **hazard** is a call the hardware accepts but whose result is undefined, unchecked or
  version-dependent (duplicate indices, mask content the kernel reads as a tile pattern, doc-vs-code
  conflicts, the graph-only op called eagerly). The emulator computes what the kernel would (or NaN
  where it cannot know), records a `Hazard`, and goes on; in strict mode it raises `HazardError` (a
  `ContractViolation` subclass) instead. The harness fails a case with a hazard unless its
  acknowledgement ledger accepts it (conformance.judge.acknowledgements).
* A **note** is accepted and well-defined, and only informational: an emulator-only extension
  (float32), a host sync, a doc rule the kernel code does not enforce. Notes never fail anything.
* A call that uses a documented feature the emulator does not model raises `EmulatorUnsupported`
  (a `NotImplementedError`): that is a limit of the emulator, not of the contract.

Every hazard and note has a stable `code` (see `catalogue`), which acknowledgements refer to.

Reading findings::

    with record_hazards() as found:      # nested blocks each see every finding raised inside them
        op(...)
    found            # list of Hazard
    found.notes      # list of Note
    last_hazards()   # hazards of the most recent top-level op call, without a block

Strict mode: ``with strict_contracts(): ...`` or ``set_strict(True)``.

Rules the sources do not state, followed from observed practice or read out of kernel code, are
marked *inferred* (``inferred=True`` and "[inferred]" in messages), so a hardware run can settle them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from conformance.emulator.catalogue import known


def _describe(op: str, argument: str, rule: str, source: str, inferred: bool, detail: str) -> str:
    text = f"{op}: argument '{argument}': {rule}"
    if detail:
        text += f" ({detail})"
    text += f" [source: {source}]"
    if inferred:
        text += " [inferred]"
    return text


@dataclass(frozen=True)
class Finding:
    op: str
    argument: str
    rule: str
    source: str
    inferred: bool = False
    detail: str = ""
    code: str = ""  # stable id from `catalogue` (what acknowledgements match)

    def __str__(self) -> str:
        return _describe(self.op, self.argument, self.rule, self.source, self.inferred, self.detail)


class Hazard(Finding):
    """A call the hardware accepts but leaves undefined, unchecked or version-dependent."""


class Note(Finding):
    """A call that is accepted and well-defined; recorded for information only."""


class ContractViolation(ValueError):
    """A call the op's public contract forbids."""

    def __init__(self, op: str, argument: str, rule: str, source: str, *, inferred: bool = False, detail: str = ""):
        self.op = op
        self.argument = argument
        self.rule = rule
        self.source = source
        self.inferred = inferred
        self.detail = detail
        super().__init__(_describe(op, argument, rule, source, inferred, detail))


class HazardError(ContractViolation):
    """A hazard raised because strict mode is on. `.hazard` is the recorded `Hazard`."""

    def __init__(self, hazard: Hazard):
        self.hazard = hazard
        super().__init__(
            hazard.op, hazard.argument, "hazard (strict mode): " + hazard.rule, hazard.source,
            inferred=hazard.inferred, detail=hazard.detail,
        )


class EmulatorUnsupported(NotImplementedError):
    """A documented feature of the real op that the emulator does not model."""

    def __init__(self, op: str, argument: str, what: str):
        self.op = op
        self.argument = argument
        self.what = what
        super().__init__(f"{op}: argument '{argument}': {what} is not modelled by the CPU op emulator")


class HazardLog(list):
    """The hazards seen inside one `record_hazards()` block (a list of `Hazard`), plus `notes` and the
    `refusals` raised (a ContractViolation or EmulatorUnsupported, a name the emulator does not model, or a
    call the op's signature does not bind), whether or not the caller caught them."""

    def __init__(self) -> None:
        super().__init__()
        self.notes: list[Note] = []
        self.refusals: list[Exception] = []


class _State(threading.local):
    def __init__(self) -> None:
        self.strict = False
        self.logs: list[HazardLog] = []
        self.last: list[Hazard] = []
        self.depth = 0
        self.seen: set[tuple[str, str, str]] = set()


_state = _State()


@contextlib.contextmanager
def record_hazards() -> Iterator[HazardLog]:
    """Collect every hazard raised by emulated ops inside the block (nesting is allowed)."""
    log = HazardLog()
    _state.logs.append(log)
    try:
        yield log
    finally:
        # by identity: logs are lists, and two logs with equal contents compare equal
        _state.logs[:] = [other for other in _state.logs if other is not log]


def set_strict(enabled: bool) -> bool:
    """Turn strict mode on or off for this thread; returns the previous setting."""
    previous = _state.strict
    _state.strict = bool(enabled)
    return previous


def is_strict() -> bool:
    return _state.strict


@contextlib.contextmanager
def strict_contracts(enabled: bool = True) -> Iterator[None]:
    """Raise `HazardError` for hazards inside the block (restores the previous mode on exit)."""
    previous = set_strict(enabled)
    try:
        yield
    finally:
        set_strict(previous)


def last_hazards() -> tuple[Hazard, ...]:
    """The hazards recorded by the most recent top-level emulated op call."""
    return tuple(_state.last)


@contextlib.contextmanager
def op_call() -> Iterator[None]:
    """Mark one emulated op call: a top-level call resets `last_hazards()`. A refusal (ContractViolation,
    HazardError in strict mode, EmulatorUnsupported) is also recorded in every open log's `refusals`
    before it propagates, so a caller that catches it (a layer falling back to plain PyTorch) cannot
    hide that the kernel refused the call."""
    if _state.depth == 0:
        _state.last = []
        _state.seen = set()
    _state.depth += 1
    try:
        yield
    except (ContractViolation, EmulatorUnsupported) as exc:
        if _state.depth == 1:  # the op the caller called, once (nested op calls re-raise the same refusal)
            record_refusal(exc)
        raise
    finally:
        _state.depth -= 1


def record_refusal(exc: Exception) -> None:
    """Note in every open log that an NPU op call failed with `exc` (the caller then raises it): a refusal,
    a name the emulator does not model, or arguments the op's signature does not bind."""
    for log in _state.logs:
        log.refusals.append(exc)


def emit_hazard(hazard: Hazard) -> None:
    """Record a hazard (once per call), then raise it if strict mode is on."""
    key = (hazard.op, hazard.argument, hazard.rule)
    if key not in _state.seen:
        _state.seen.add(key)
        _state.last.append(hazard)
        for log in _state.logs:
            log.append(hazard)
    if _state.strict:
        raise HazardError(hazard)


def emit_note(note: Note) -> None:
    for log in _state.logs:
        if note not in log.notes:
            log.notes.append(note)


class Checker:
    """Raise or record findings for one op, naming arguments as the op's public signature does."""

    def __init__(self, op: str, names: dict[str, str] | None = None):
        self.op = op
        self.names = names or {}

    def name(self, argument: str) -> str:
        return self.names.get(argument, argument)

    def violation(self, argument: str, rule: str, source: str, *, detail: str = "", inferred: bool = False):
        return ContractViolation(self.op, self.name(argument), rule, source, inferred=inferred, detail=detail)

    def require(self, condition: bool, argument: str, rule: str, source: str, *, detail: str = "",
                inferred: bool = False) -> None:
        if not condition:
            raise self.violation(argument, rule, source, detail=detail, inferred=inferred)

    def hazard(self, code: str, argument: str, rule: str, source: str, *, detail: str = "",
               inferred: bool = False) -> None:
        emit_hazard(Hazard(self.op, self.name(argument), rule, source, inferred, detail, known(code, "hazard")))

    def note(self, code: str, argument: str, rule: str, source: str, *, detail: str = "",
             inferred: bool = False) -> None:
        emit_note(Note(self.op, self.name(argument), rule, source, inferred, detail, known(code, "note")))

    def unsupported(self, argument: str, what: str) -> EmulatorUnsupported:
        return EmulatorUnsupported(self.op, self.name(argument), what)
