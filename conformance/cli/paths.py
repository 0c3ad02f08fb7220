"""Where a subcommand will write, checked before any work: a bad --out / --html / --md / --corpus is one
line and exit 2 at once, not a traceback after the run (or after every mutant)."""

from __future__ import annotations

import os
from pathlib import Path


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _unwritable(path: Path) -> str | None:
    """Why a folder `path` (existing or to be created) cannot be written, or None."""
    existing = _first_existing(path)
    if not existing.is_dir():
        return "not a directory" if existing == path else f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def folder_problem(option: str, value: str | os.PathLike) -> str | None:
    """`option value: why` when `value` cannot be (or become) a folder to write in; else None."""
    why = _unwritable(Path(value).absolute())
    return None if why is None else f"{option} {value}: {why}"


def file_problem(option: str, value: str | os.PathLike) -> str | None:
    """`option value: why` when the file `value` cannot be written; else None."""
    path = Path(value).absolute()
    if path.is_dir():
        return f"{option} {value}: is a directory"
    why = _unwritable(path.parent)
    if why == "not a directory":
        why = f"{path.parent} is not a directory"
    return None if why is None else f"{option} {value}: {why}"
