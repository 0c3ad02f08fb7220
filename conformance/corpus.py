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
import shutil
from pathlib import Path

#: The corpus folder: the package's own, or $NPU_CONFORMANCE_CORPUS (a project keeping its finds elsewhere).
CORPUS_DIR = Path(os.environ.get("NPU_CONFORMANCE_CORPUS") or Path(__file__).resolve().parent / "regression")


def case_paths(directory: Path = CORPUS_DIR) -> list[Path]:
    """The corpus's case files, by name (their cache states lie beside them)."""
    return sorted(Path(directory).glob("*.json"))


class PromoteError(ValueError):
    """A file that cannot join the corpus (not a readable case file, or its state file is missing)."""


def promote(paths, directory: Path = CORPUS_DIR) -> list[tuple[Path, str]]:
    """Copy each case file (and its cache state) into the corpus; returns (path, "added" | "already
    there"). Every file is read and checked first: nothing is copied unless all of them are good."""
    from conformance.case_files import CaseFileError, read_case_file

    checked = []
    for path in map(Path, paths):
        try:
            saved = read_case_file(path)
        except CaseFileError as exc:
            raise PromoteError(str(exc)) from None
        raw_state = path.parent / f"{path.stem}.safetensors"
        checked.append((path, saved, raw_state if saved.state is not None else None))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    results = []
    for path, _saved, state in checked:
        target = directory / path.name
        if target.exists() and target.read_bytes() == path.read_bytes():
            results.append((target, "already there"))
            continue
        if target.exists():
            raise PromoteError(f"{target} already exists with other contents: rename {path} first")
        if state is not None:
            shutil.copyfile(state, directory / state.name)
        shutil.copyfile(path, target)
        results.append((target, "added"))
    return results
