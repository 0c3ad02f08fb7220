"""The regression corpus: failing cases found once (by a run or a fuzz session), kept as case files in
the package (conformance/regression/), and replayed first by every run, fuzz session and plain pytest
run (conformance/suite/test_regression.py), so a find stays found after the example database expires.

A corpus case is judged with the *current* run's settings (backend, tolerance policy, ledger), not the
ones it was found with: it guards the layer from now on, and a planted bug it was found with (a
`mutants` or a planted fuzz session) is not planted again. Until its bug is fixed it fails every run:
that is the point of promoting it.
"""

from __future__ import annotations

import os
from pathlib import Path

from conformance.harness.case_file_pair import case_file_paths, copy_case_file
from conformance.harness.case_files import CaseFileError, read_case_file

#: The corpus folder: the package's own, or $NPU_CONFORMANCE_CORPUS (a project keeping its finds elsewhere).
CORPUS_DIR = Path(os.environ.get("NPU_CONFORMANCE_CORPUS") or Path(__file__).resolve().parent.parent / "regression")


def case_paths(directory: Path = CORPUS_DIR) -> list[Path]:
    """The corpus's case files, by name (their cache states lie beside them)."""
    return case_file_paths(directory)


class PromoteError(ValueError):
    """A file that cannot join the corpus (not a readable case file, or its state file is missing)."""


def promote(paths, directory: Path = CORPUS_DIR) -> list[tuple[Path, str]]:
    """Copy each case file (and its cache state) into the corpus; returns (path, "added" | "already
    there"). Every file is read and checked first, and every name against the corpus: nothing is copied
    unless all of them can be."""
    paths = [Path(p) for p in paths]
    for path in paths:
        try:
            read_case_file(path)
        except CaseFileError as exc:
            raise PromoteError(str(exc)) from None
        target = Path(directory) / path.name
        if target.exists() and target.read_bytes() != path.read_bytes():
            raise PromoteError(f"{target} already exists with other contents: rename {path} first")
    return [copy_case_file(path, directory) for path in paths]
