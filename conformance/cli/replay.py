"""`npu-conformance replay FILE`: re-run one saved case anywhere, judged as it was judged when saved.

The case file carries the settings that judged it (backend, tolerance policy, strict mode, the
acknowledgement ledger, the planted bug of a `mutants` run) and, for the stateful engine, the cache
the step ran on; every option given here overrides the saved value.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields

from conformance.cli import exit_codes
from conformance.harness import options

# What the subcommand runs is imported in its body, when it runs: building the parser (and --help) must not
# import torch, pytest or the report's renderers.


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "replay", help="re-run one saved case (a JSON file from a failing run) with the settings that judged it",
        description=__doc__.split("\n\n", 1)[1].strip().replace("\n", " "), epilog=exit_codes.HELP)
    parser.add_argument("case", metavar="FILE",
                        help="case file, e.g. conformance-report/failures/prefill-0123abcd4567.json")
    options.add_cli_options(parser, "replay")
    parser.set_defaults(func=replay_command)


def _error(message: str) -> int:
    print(f"npu-conformance replay: {message}", file=sys.stderr)
    return exit_codes.USAGE


def replay_command(args: argparse.Namespace) -> int:
    from conformance.adapters.loading import SelectionError
    from conformance.harness.case_files import CaseFileError, read_case_file
    from conformance.judge.acknowledgements import LedgerError, load_ledger
    from conformance.judge.policy import PolicyFileError, load_policy
    from conformance.judge.settings import RunSettings, configure, settings
    from conformance.platform import npu_modules
    from conformance.platform.backends import resolve_backend

    try:
        saved = read_case_file(args.case)
    except CaseFileError as exc:
        return _error(str(exc))
    changes = dict(saved.judged_with or {})
    mutation_name = changes.pop("mutation", None)
    try:
        if args.tolerance_policy:
            changes["policies"] = load_policy(args.tolerance_policy)
        if args.acknowledgements:
            changes["acknowledgements"] = load_ledger(args.acknowledgements)
    except (PolicyFileError, LedgerError) as exc:
        return _error(str(exc))
    if args.strict_contracts:
        changes["strict_contracts"] = True
    if args.graph_mode:
        changes["graph_mode"] = args.graph_mode
    if args.cann_version:
        from conformance.emulator import cann

        if args.cann_version not in cann.EMULATED_VERSIONS:
            return _error(f"--cann-version {args.cann_version}: the emulator has rules for "
                          f"{', '.join(cann.EMULATED_VERSIONS)}")
        changes["cann_version"] = args.cann_version
    if mutation_name is not None:
        from conformance.mutants import BY_NAME

        if mutation_name not in BY_NAME:
            return _error(f"{saved.path}: judged with the planted bug {mutation_name!r}, which the catalogue no "
                          "longer has")
        changes["mutation"] = BY_NAME[mutation_name].mutation()
    requested = args.backend or changes.pop("backend", "auto")
    changes.pop("backend", None)
    backend, reason = resolve_backend(requested)
    if requested == "npu" and backend != "npu":
        print(f"npu-conformance replay: --backend npu but {reason}", file=sys.stderr)
        return exit_codes.NO_NPU
    was_installed = npu_modules.installed()
    try:
        try:
            changes |= _code_under_test(args, changes.pop("layer", None), changes.pop("runner", None), backend)
        except SelectionError as exc:
            return _error(str(exc))
        # From the defaults, not from whatever this process configured before: a replay is judged by the
        # file and the options alone.
        before = {f.name: getattr(settings(), f.name) for f in fields(RunSettings)}
        fresh = {f.name: getattr(RunSettings(), f.name) for f in fields(RunSettings)}
        run = configure(**(fresh | changes | {"backend": backend, "backend_reason": reason}))
        try:
            return _replay(saved, run, mutation_name)
        finally:
            configure(**before)
    finally:
        if not was_installed:  # the emulator modules a selection installed, whatever happened
            npu_modules.uninstall()


def _code_under_test(args, saved_layer: dict | None, saved_runner: dict | None, backend: str) -> dict:
    """The layer and runner the case was judged with, loaded again (options given here override them);
    says so when a file changed since the case was saved."""
    from conformance.adapters.loading import identity, load_layer, load_runner

    saved_layer, saved_runner = saved_layer or {}, saved_runner or {}
    given = args.layer is not None
    path = args.layer_path or os.pathsep.join(saved_layer.get("layer_path") or saved_runner.get("layer_path") or [])
    layer = load_layer(args.layer if given else saved_layer.get("spec"), path or None,
                       args.layer_context if given or args.layer_context else saved_layer.get("layer_context"),
                       backend=backend)
    runner = load_runner(args.runner or saved_runner.get("spec"), path or None, backend=backend)
    for kind, old, new in (("layer", saved_layer, identity(layer)), ("runner", saved_runner, identity(runner))):
        if old and old.get("spec") == new.get("spec") and old.get("sha256") and old["sha256"] != new.get("sha256"):
            print(f"note: the {kind}'s file {new.get('file')} changed since the case was saved (sha256 "
                  f"{old['sha256'][:12]} then, {str(new.get('sha256'))[:12]} now): judging the code as it is now",
                  file=sys.stderr)
    return {"layer": layer, "runner": runner}


def _replay(saved, run, mutation_name) -> int:
    from conformance.adapters.loading import identity
    from conformance.adapters.runner import RunnerDefect
    from conformance.emulator import ContractViolation
    from conformance.judge.check import check_case
    from npu_attention import ContextError

    backend = run.backend
    if saved.judged_with is None:
        print(f"{saved.path}: an old case file without its settings: judged with the defaults", file=sys.stderr)
    else:
        print(f"replaying {saved.path} on {backend}: tolerance policy {run.policies.default.source}, "
              f"acknowledgements {run.acknowledgements.source}, strict contracts {run.strict_contracts}"
              + (f", planted bug {mutation_name}" if mutation_name else "")
              + (", on the saved cache state" if saved.state is not None else "")
              + "".join(f", {kind} under test {identity(subject)['spec']}" for kind, subject in
                        (("layer", run.layer), ("runner", run.runner)) if not subject.own))
    from conformance.judge.graph import GraphRecompiled

    try:
        if saved.session is not None:
            outcome = _replay_session(saved, run)
        else:
            outcome = check_case(saved.case, run, tensors=saved.tensors(run.device))
    except (ContextError, RunnerDefect, ContractViolation, GraphRecompiled) as exc:  # the validator, runner, kernel
        # or graph refused it
        print(f"{saved.case.summary()}: refused: {type(exc).__name__}: {exc}")
        return exit_codes.FAILED
    if outcome is None:
        return exit_codes.FAILED
    print(outcome.explain())
    if saved.verdict is not None:
        same = saved.verdict.get("verdict") == outcome.verdict
        print(f"saved verdict: {saved.verdict.get('verdict')} ({', '.join(saved.verdict.get('failed_checks') or [])})"
              f"; replayed: {outcome.verdict}" + ("" if same else "  (DIFFERENT)"))
    return exit_codes.PASSED if outcome.passed else exit_codes.FAILED


def _replay_session(saved, run):
    """Run the graph session the case is a step of, from its first step (eagerly when the case is the
    session's eager twin): a bug of graph capture shows only after the steps before it. Returns the
    saved step's outcome, or None when an earlier step failed (printed)."""
    from conformance.cases.graph_session import run_session
    from conformance.judge.check import check_case

    session, last = saved.session
    eager = saved.case.phase == "decode_eager"  # the eager twin of a session (the metamorphic relation)
    print(f"the case is step {last} of a graph session: replaying its steps "
          + ("eagerly" if eager else "through one compiled graph"))
    for index, outcome in run_session(session, lambda case, tensors, step: check_case(case, run, tensors=tensors),
                                      device=run.device, eager=eager, stop_after=last):
        if index < last and not outcome.passed:
            print(f"step {index} already fails:")
            print(outcome.explain())
            return None
        if index == last:
            return outcome
    print(f"the session no longer reaches step {last}")
    return None
