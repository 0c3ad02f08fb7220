"""Which code was judged: a layer's or runner's spec, the file its code is in, that file's sha256, and the
git commit (with a dirty flag) of the repository holding it. Every report, case file and replay names it."""

from __future__ import annotations

import hashlib
import inspect
import subprocess
from functools import lru_cache
from pathlib import Path


def file_sha256(path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


@lru_cache(maxsize=32)
def git_state(folder: str, file: str | None = None) -> dict | None:
    """{"commit", "dirty"} of the git checkout holding `folder`, or None (not a repository, no git). Dirty
    also when `file` (the code under test) is not in the commit at all: its commit would not hold it."""
    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit or not commit.strip():
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    untracked = file is not None and git("ls-files", "--error-unmatch", file) is None
    return {"commit": commit.strip(), "dirty": bool(status and status.strip()) or untracked}


def identity_of(obj, spec: str, name: str | None = None, **extra) -> dict:
    """The identity of a class or function `obj` selected as `spec`."""
    try:
        source = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except TypeError:
        source = None
    path = str(Path(source).resolve()) if source else None
    return {"spec": spec, "name": name, "file": path, "sha256": file_sha256(path) if path else None,
            "git": git_state(str(Path(path).parent), path) if path else None, **extra}
