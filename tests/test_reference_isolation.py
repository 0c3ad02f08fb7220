"""The oracle is independent: reference/ imports only torch and the standard
library (never the code under test)."""

import ast
import pathlib
import sys

import pytest

REFERENCE = pathlib.Path(__file__).resolve().parent.parent / "reference"
FILES = sorted(REFERENCE.glob("*.py"))


def _imported_roots(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split(".")[0]


def test_reference_files_found():
    assert {"__init__.py", "attention.py", "cache.py"} <= {p.name for p in FILES}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_imports_only_torch_and_stdlib(path):
    allowed = set(sys.stdlib_module_names) | {"torch"}
    bad = sorted(set(_imported_roots(path)) - allowed)
    assert not bad, f"{path.name} imports {bad}"
