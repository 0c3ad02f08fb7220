"""A case file on disk: the JSON and, when the case ran on a cache not its own, the safetensors file of
that cache beside it (same stem). Everything that names, copies, clears or removes the pair is here;
reading and writing their contents is conformance.harness.case_files. No torch here: the fuzz
controller turns a crashed worker's last case into a case file without loading it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

FORMAT = "npu-conformance case"
VERSION = 2
FIELDS = ("format", "version", "case", "judged_with", "verdict", "state", "session")
STATE_SUFFIX = ".safetensors"


def case_file_data(case: dict, judged_with: dict, verdict: dict, state: str | None = None,
                   session: dict | None = None) -> dict:
    """A case file's JSON content (`case` and `judged_with` already plain data)."""
    return {"format": FORMAT, "version": VERSION, "case": case, "judged_with": judged_with, "verdict": verdict,
            "state": state, "session": session}


def write_data(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
    return path


def state_path(path: Path) -> Path:
    """The cache state that belongs to case file `path` (it may not exist: most cases rebuild their own)."""
    return Path(path).with_suffix(STATE_SUFFIX)


def remove_case_file(path: Path) -> None:
    for p in (Path(path), state_path(path)):
        p.unlink(missing_ok=True)


def clear_case_files(directory: Path) -> None:
    """Remove every case file (and state) in `directory`: an earlier run's finds would read as this one's."""
    if Path(directory).is_dir():
        for path in Path(directory).glob("*.json"):
            remove_case_file(path)
        for path in Path(directory).glob(f"*{STATE_SUFFIX}"):
            path.unlink(missing_ok=True)


def case_file_paths(directory: Path) -> list[Path]:
    """The case files in `directory`, by name (their cache states lie beside them)."""
    return sorted(Path(directory).glob("*.json"))


def copy_case_file(path: Path, directory: Path) -> tuple[Path, str]:
    """Copy case file `path` (and its state, when it has one) into `directory`: (target, "added" or
    "already there"). A different file of the same name is refused with ValueError, nothing copied."""
    path, directory = Path(path), Path(directory)
    target = directory / path.name
    if target.exists() and target.read_bytes() == path.read_bytes():
        return target, "already there"
    if target.exists():
        raise ValueError(f"{target} already exists with other contents: rename {path} first")
    directory.mkdir(parents=True, exist_ok=True)
    if state_path(path).exists():
        shutil.copyfile(state_path(path), state_path(target))
    shutil.copyfile(path, target)
    return target, "added"
