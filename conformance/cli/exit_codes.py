"""Exit codes: one meaning each, the same in every `npu-conformance` subcommand.

| code | name        | meaning |
|------|-------------|---------|
| 0    | PASSED      | the run, replay, report or comparison is green |
| 1    | FAILED      | a verdict is red: a case out of tolerance or with an unacknowledged hazard, a failing test, a regression (`diff`), a planted bug that survived (`mutants`) |
| 2    | USAGE       | bad input: an unknown option, a file that cannot be read or is not what it claims (case, policy, ledger, report) |
| 3    | NO_NPU      | `--backend npu` or `--require-npu` without a usable NPU |
| 4    | INTERNAL    | the harness could not finish: a crash of its own, a broken run, a planted bug whose code crashes |
| 5    | INTERRUPTED | stopped before the end (Ctrl-C, a killed worker, an incomplete run) |
"""  # noqa: E501  (a Markdown table: a row cannot wrap)

PASSED = 0
FAILED = 1
USAGE = 2  # argparse's own code for a bad command line
NO_NPU = 3
INTERNAL = 4
INTERRUPTED = 5

HELP = ("exit status: 0 passed, 1 failed (out of tolerance, unacknowledged hazard, failing test, regression, "
        "surviving mutant), 2 bad input or usage, 3 no usable NPU, 4 internal error, 5 interrupted")


def no_test_matched(keyword: str | None) -> str:
    """What `run` and `fuzz` say when pytest collected nothing: bad input (USAGE), one message for one meaning."""
    return f"-k {keyword!r} matched no test: nothing ran" if keyword else "no test was collected: nothing ran"


def usage_cause(text: str) -> str | None:
    """The cause of a pytest usage error in its output: the last "ERROR: ..." line, or, when that is only
    argparse's usage line, the "<prog>: error: <cause>" line after it."""
    cause = None
    for line in text.splitlines():
        if line.startswith("ERROR: ") and line[7:].strip():
            cause = line[7:].strip()
        elif ": error: " in line and cause is not None and cause.startswith("usage: "):
            cause = line.split(": error: ", 1)[1].strip()
    return cause
