"""`conformance` is a thin public front: the names a user imports, each importable, and nothing heavy
loaded until one is used (the CLI's --help must not import torch)."""

from __future__ import annotations

import subprocess
import sys

from cli_helpers import cli_env

import conformance


def test_every_public_name_is_importable_and_listed_once():
    assert conformance.__all__ == sorted(set(conformance.__all__))
    for name in conformance.__all__:
        assert getattr(conformance, name) is not None, name
    assert ({"check_case", "Case", "RunSettings", "prefill_cases", "graph_sessions", "verify_case"}
            <= set(conformance.__all__))


def test_an_unknown_name_is_an_attribute_error():
    try:
        conformance.no_such_name  # noqa: B018 - the lookup is what is tested
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("conformance.no_such_name resolved")


def test_importing_the_front_or_the_cli_loads_neither_torch_nor_pytest():
    code = ("import sys, conformance, conformance.cli; "
            "print(sorted(m for m in ('torch', 'pytest', 'hypothesis', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
