"""How the suite's verdict caught a planted bug: the kill classes, and the `how` of a mutant's result.

A kill is the suite's own verdict, named by the KILL_CLASSES below; `how` joins the classes of the
first failing case by " + ", some followed by ": detail". A planted bug whose code raises anything the
harness does not raise to refuse a call (TypeError, IndexError, a constructor error, an unmodelled
emulator feature) is an error, not a kill.
"""

from __future__ import annotations

from conformance.formatting import shorten

# The kill classes, as results and reports name them.
OUT_OF_TOLERANCE = "out of tolerance"
NAN_IN_OUTPUT = "NaN in output"
EMPTY_ROWS_NOT_0 = "empty rows not 0"
OUTSIDE_ASCEND_STANDARD = "outside the Ascend standard"
CACHE_BIT_EXACT = "cache bit-exact"
EMULATOR_HAZARD = "emulator hazard"
NONDETERMINISTIC = "nondeterministic"
VALIDATOR = "validator"
EMULATOR_CONTRACT = "emulator contract"
GRAPH_RECOMPILE = "graph recompile"
METAMORPHIC_RELATION = "metamorphic relation"
KILL_CLASSES = (OUT_OF_TOLERANCE, NAN_IN_OUTPUT, EMPTY_ROWS_NOT_0, OUTSIDE_ASCEND_STANDARD, CACHE_BIT_EXACT,
                EMULATOR_HAZARD, NONDETERMINISTIC, VALIDATOR, EMULATOR_CONTRACT, GRAPH_RECOMPILE,
                METAMORPHIC_RELATION)


def _field(message: str) -> str:
    return message.split(":")[0]  # "field: rule (got ...)"


def _op_and_argument(message: str) -> str:
    op, _, tail = message.partition(": ")  # "op: ... 'argument' ..."
    argument = tail.split("'")[1] if tail.count("'") >= 2 else ""
    return f"{op} {argument}".rstrip()


def _failed_guard(message: str) -> str:
    return message.split("guard that failed: ")[-1]


#: Exceptions that are the harness refusing a call (a detection), by the name error records carry: the
#: kill class, and what of a record's error message names the detail.
DETECTING_ERRORS = {"ContextError": (VALIDATOR, _field),
                    "ContractViolation": (EMULATOR_CONTRACT, _op_and_argument),
                    "HazardError": (EMULATOR_CONTRACT, _op_and_argument),
                    "GraphRecompiled": (GRAPH_RECOMPILE, _failed_guard)}


def how(record: dict | None, report, exc: BaseException | None) -> tuple[bool, str]:
    """(whether the suite's verdict caught it, how), from the first failing record, or, for a
    property that makes no failing record (a metamorphic relation), from the exception it raised."""
    if record is None:
        return _from_exception(exc, report)
    if record["verdict"] == "error":
        return _from_error(record.get("error", ""))
    return True, " + ".join(_failed_checks(record)) or "failed"


def _from_exception(exc: BaseException | None, report) -> tuple[bool, str]:
    if exc is not None and not isinstance(exc, AssertionError):
        kind = type(exc).__name__
        if kind in DETECTING_ERRORS:
            return True, shorten(f"{DETECTING_ERRORS[kind][0]}: {exc}", 120)
        return False, shorten(f"the run raised {kind}: {exc}", 160)
    line = next((ln.strip() for ln in report.longreprtext.splitlines() if ln.strip().startswith("E ")), "")
    return True, f"{METAMORPHIC_RELATION}: " + (shorten(line[1:].strip(), 90) if line else "assertion")


def _from_error(error: str) -> tuple[bool, str]:
    """From a record's error text, "ExceptionName: message"."""
    kind, _, message = error.partition(": ")
    if kind not in DETECTING_ERRORS:
        return False, shorten(f"the run raised {error}", 160)
    kill, detail = DETECTING_ERRORS[kind]
    return True, shorten(f"{kill}: {detail(message)}", 120)


def _failed_checks(record: dict) -> list[str]:
    """The kill classes of a judged case that failed its checks."""
    failed = record.get("failed_checks") or []
    parts = [_output_class(record.get("output") or {})] if "output" in failed else []
    if "ascend" in failed:
        parts.append(OUTSIDE_ASCEND_STANDARD)
    if any(c.get("verdict") == "fail" for c in record.get("caches", [])):
        parts.append(CACHE_BIT_EXACT)
    codes = sorted({h.get("code", "?") for h in record.get("hazards") or [] if not h.get("accepted")})
    if codes:
        parts.append(f"{EMULATOR_HAZARD}: " + ", ".join(codes))
    if "determinism" in failed:
        parts.append(NONDETERMINISTIC + _first_difference(record.get("determinism") or {}))
    return parts


def _output_class(output: dict) -> str:
    if output.get("nonfinite_rows"):
        return NAN_IN_OUTPUT
    return EMPTY_ROWS_NOT_0 if output.get("nonzero_empty_rows") else OUT_OF_TOLERANCE


def _first_difference(determinism: dict) -> str:
    first = (determinism.get("differences") or [{}])[0]
    if first.get("tensor") == "output":
        return f" ({first['tensor']} row {first['row']}, head {first['head']})"
    return f" ({first.get('tensor')})" if first else ""
