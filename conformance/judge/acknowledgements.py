"""The ledger of known, accepted hazards: a hazard fails its case unless an acknowledgement matches it.

The project's ledger ships with the package (`acknowledged_hazards.toml` beside this file); a run may
use another one (`--acknowledgements FILE`). Each entry names the op and the hazard code it accepts
(codes: conformance/emulator/catalogue.py), optionally the phases it applies to, and says why with a
reason and a link. An acknowledged hazard passes and is still shown in the report; an entry that
matched nothing in a full run is reported as stale. Under `--strict-contracts` no entry applies:
every hazard fails.

    [[acknowledge]]
    id = "graph-padding-dummy-slot"
    op = "torch_npu.scatter_update_"
    code = "scu/overlapping-targets"
    phases = ["decode_graph"]          # optional: every phase when absent
    reason = "why this is accepted"
    link = "where the design or the evidence is"
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from conformance.emulator.catalogue import HAZARDS, OPS
from conformance.names import PHASES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_LEDGER = Path(__file__).parent.parent / "acknowledged_hazards.toml"  # data beside the package root
_FIELDS = {"id": str, "op": str, "code": str, "reason": str, "link": str}


class LedgerError(ValueError):
    """An acknowledgement file that cannot be used; the message names the file, entry and field."""


@dataclass(frozen=True)
class Acknowledgement:
    id: str
    op: str
    code: str
    reason: str
    link: str
    phases: tuple[str, ...] = ()  # empty: every phase

    def matches(self, hazard: dict, phase: str) -> bool:
        return hazard.get("op") == self.op and hazard.get("code") == self.code and (
            not self.phases or phase in self.phases)

    def as_dict(self) -> dict:
        return {"id": self.id, "op": self.op, "code": self.code, "phases": list(self.phases), "reason": self.reason,
                "link": self.link}


@dataclass(frozen=True)
class Ledger:
    entries: tuple[Acknowledgement, ...]
    source: str  # the file it came from

    def match(self, hazard: dict, phase: str) -> Acknowledgement | None:
        return next((a for a in self.entries if a.matches(hazard, phase)), None)


def judge_hazards(hazards: list[dict], phase: str, ledger: Ledger, strict: bool) -> list[dict]:
    """Each hazard with `acknowledgement` (the matching entry's id, or None) and `accepted` (it passes:
    matched, and not under --strict-contracts)."""
    out = []
    for hazard in hazards:
        entry = ledger.match(hazard, phase)
        out.append(hazard | {"acknowledgement": entry.id if entry else None, "accepted": bool(entry) and not strict})
    return out


def load_ledger(path: str | Path) -> Ledger:
    """Read and check an acknowledgement file; raises LedgerError naming the entry, field and rule."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LedgerError(f"acknowledgements file {str(path)!r}: cannot read it ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LedgerError(f"acknowledgements file {path}: not valid TOML ({exc})") from exc
    unknown = set(data) - {"acknowledge"}
    if unknown:
        raise LedgerError(f"acknowledgements file {path}: unknown top-level key(s) {sorted(unknown)}; "
                          "entries go in [[acknowledge]] tables")
    raw = data.get("acknowledge", [])
    if not isinstance(raw, list):
        raise LedgerError(f"acknowledgements file {path}: 'acknowledge' must be an array of tables ([[acknowledge]])")
    return ledger_from_entries(raw, str(path), f"acknowledgements file {path}")


def ledger_from_entries(raw: list, source: str, where: str) -> Ledger:
    """A ledger from entry tables (a file's [[acknowledge]], or the copy a case file carries)."""
    entries, seen = [], set()
    for n, item in enumerate(raw, 1):
        entry = _entry(where, n, item)
        if entry.id in seen:
            raise LedgerError(f"{where}: entry {n}: id {entry.id!r} is used twice")
        seen.add(entry.id)
        entries.append(entry)
    return Ledger(tuple(entries), source)


def _entry(where: str, n: int, item) -> Acknowledgement:
    where = f"{where}: entry {n}"
    if not isinstance(item, dict):
        raise LedgerError(f"{where}: must be a table")
    extra = set(item) - set(_FIELDS) - {"phases"}
    if extra:
        raise LedgerError(f"{where}: unknown field(s) {sorted(extra)}; allowed: {sorted(_FIELDS) + ['phases']}")
    for name, kind in _FIELDS.items():
        value = item.get(name)
        if not isinstance(value, kind) or not value.strip():
            raise LedgerError(f"{where}: field '{name}' is required and must be a non-empty string "
                              f"(got {value!r})")
    if item["op"] not in OPS:
        raise LedgerError(f"{where}: field 'op' must name an emulated op, one of {sorted(OPS)} "
                          f"(got {item['op']!r})")
    if item["code"] not in HAZARDS:
        raise LedgerError(f"{where}: field 'code' must be a hazard code from conformance/emulator/catalogue.py "
                          f"(got {item['code']!r}; known: {', '.join(sorted(HAZARDS))})")
    phases = item.get("phases", [])
    if not isinstance(phases, list) or not all(p in PHASES for p in phases):
        raise LedgerError(f"{where}: field 'phases' must be a list of {list(PHASES)} (got {phases!r})")
    return Acknowledgement(item["id"], item["op"], item["code"], item["reason"].strip(), item["link"].strip(),
                           tuple(phases))


@lru_cache(maxsize=1)
def default_ledger() -> Ledger:
    return load_ledger(DEFAULT_LEDGER)
