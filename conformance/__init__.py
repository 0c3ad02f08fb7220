"""Conformance harness for an Ascend NPU paged-attention layer: the public front.

The names a user imports live here; everything else is internal and may move. The harness is built
in layers by role (each imports only those below it, which CI checks):

    cli/        the `npu-conformance` command, one module per subcommand, and its exit codes
    fuzz/       `npu-conformance fuzz`: time-budgeted worker processes, shared example database
    mutants/    the planted-bug catalogue and its kill matrix
    report/     report.json / report.html / summary.md / junit.xml, diff and merge; its pytest plugin
    suite/      the conformance properties (what runs on hardware)
    harness/    how pytest sees it: plugin, option table, hooks, verify, case files, regression corpus
    judge/      is it right: settings, policy, tolerance, Ascend standard, determinism, the layer run
    cases/      what is tested: Case, Contexts, strategies, graph sessions, metamorphic transforms
    platform/   where it runs: kernel backends, the NPU probe, devices and pinning
    emulator/   pure-PyTorch models of the NPU ops, with their contracts
    names, formatting   facts and number/JSON formats every layer shares

Importing this package loads nothing heavy: each name below is imported on first use (the CLI's
`--help` must not import torch).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    # what is tested
    "Case": "conformance.cases.case",
    "CaseError": "conformance.cases.case",
    "Tensors": "conformance.cases.case",
    "GraphSession": "conformance.cases.graph_session",
    "SessionStep": "conformance.cases.graph_session",
    "attention_shapes": "conformance.cases.strategies",
    "sequence_lengths": "conformance.cases.strategies",
    "block_allocations": "conformance.cases.strategies",
    "prefill_cases": "conformance.cases.strategies",
    "decode_cases": "conformance.cases.strategies",
    "graph_cases": "conformance.cases.strategies",
    "graph_sessions": "conformance.cases.strategies",
    # is it right
    "check_case": "conformance.judge.check",
    "Outcome": "conformance.judge.outcome",
    "RunSettings": "conformance.judge.settings",
    "configure": "conformance.judge.settings",
    "settings": "conformance.judge.settings",
    "PolicySet": "conformance.judge.policy",
    "TolerancePolicy": "conformance.judge.policy",
    "Gating": "conformance.judge.policy",
    "load_policy": "conformance.judge.policy",
    # inside a pytest property
    "verify_case": "conformance.harness.verify",
    "verify_session": "conformance.harness.verify",
    "read_case_file": "conformance.harness.case_files",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
