"""The `npu-conformance` command."""

from __future__ import annotations

import argparse
import sys

from conformance.backends import resolve_backend
from conformance.probe import probe_npu


def _cmd_info(args: argparse.Namespace) -> int:
    probe = probe_npu()
    backend, reason = resolve_backend("auto", probe)
    rows = [
        ("python", sys.version.split()[0]),
        ("torch", probe.torch_version or "not installed"),
        ("torch_npu", probe.torch_npu_version or "not installed"),
        ("CANN", probe.cann_version or "not found (ASCEND_TOOLKIT_HOME unset or no version file)"),
        ("torch_npu importable", "yes" if probe.torch_npu_importable else "no"),
        ("NPU usable", f"yes, {probe.device_count} device(s): {probe.device_name}" if probe.usable else "no"),
        ("probe error", probe.error or "none"),
        ("backend 'auto' picks", f"{backend} ({reason})"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    """Re-run one saved case anywhere and print the judgement."""
    import json
    from pathlib import Path

    from conformance.cases import Case
    from conformance.check import check_case
    from conformance.session import configure
    from conformance.tolerance import load_policy

    path = Path(args.case)
    try:
        case = Case.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        print(f"npu-conformance replay: cannot read case file {str(path)!r}: {exc.strerror}", file=sys.stderr)
        return 2
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        print(f"npu-conformance replay: {path} is not a case file: {exc}", file=sys.stderr)
        return 2
    backend, reason = resolve_backend(args.backend)
    changes = {"backend": backend, "backend_reason": reason, "strict_contracts": args.strict_contracts}
    if args.tolerance_policy:
        changes["policies"] = load_policy(args.tolerance_policy)
    if args.acknowledgements:
        from conformance.acknowledgements import LedgerError, load_ledger

        try:
            changes["acknowledgements"] = load_ledger(args.acknowledgements)
        except LedgerError as exc:
            print(f"npu-conformance replay: {exc}", file=sys.stderr)
            return 2
    run = configure(**changes)
    outcome = check_case(case, run)
    print(outcome.explain())
    return 0 if outcome.passed else 1


# --- run / report / diff: implemented in conformance/run.py and conformance/report/ ---
def _cmd_run(args: argparse.Namespace) -> int:
    from conformance.run import run

    return run(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from conformance.report.cli import report_command

    return report_command(args)


def _cmd_diff(args: argparse.Namespace) -> int:
    from conformance.report.cli import diff_command

    return diff_command(args)


def _add_report_commands(sub) -> None:
    from conformance.report.cli import add_diff_arguments, add_report_arguments
    from conformance.run import add_arguments as add_run_arguments

    run = sub.add_parser("run", help="run the conformance suite and write the report folder",
                         description="Run the conformance suite (pytest --pyargs conformance.suite) and write "
                                     "report.json, report.html, summary.md and junit.xml into --out.")
    add_run_arguments(run)
    run.set_defaults(func=_cmd_run)
    report = sub.add_parser("report", help="validate a report.json and re-render its HTML / Markdown")
    add_report_arguments(report)
    report.set_defaults(func=_cmd_report)
    diff = sub.add_parser("diff", help="regressions between two report.json files (exit 1 if any)")
    add_diff_arguments(diff)
    diff.set_defaults(func=_cmd_diff)
# --- end run / report / diff ---


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npu-conformance", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="versions, NPU availability and which backend 'auto' picks")
    info.set_defaults(func=_cmd_info)
    _add_report_commands(sub)
    from conformance.mutants.command import add_parser as add_mutants_parser

    add_mutants_parser(sub)
    replay = sub.add_parser("replay", help="re-run one saved case (a JSON file from a failing run)")
    replay.add_argument("case", help="case file, e.g. conformance-failures/prefill-0123abcd4567.json")
    replay.add_argument("--backend", choices=("auto", "npu", "emulated"), default="auto")
    replay.add_argument("--strict-contracts", action="store_true",
                        help="every emulator hazard fails the case, acknowledged or not")
    replay.add_argument("--acknowledgements", metavar="FILE", help="TOML ledger of accepted emulator hazards")
    replay.add_argument("--tolerance-policy", metavar="FILE", help="TOML tolerance policy overrides")
    replay.set_defaults(func=_cmd_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
