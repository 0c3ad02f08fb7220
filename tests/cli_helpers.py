"""Running `npu-conformance` (`python -m conformance.cli ...`) and pytest as real processes, as a user does:
one environment and one call for the tests that do (tests/ is on sys.path: `from cli_helpers import ...`).

Nothing here assumes how fast the machine is: a child gets TIMEOUT_S, which only a hang exhausts, and a
fuzz budget that must cover the workers' startup is derived from that startup, measured just before."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

#: What the surrounding run may have set that would steer a child: a hypothesis profile, the card an
#: xdist or fuzz worker was pinned to, the cards to pin workers to, an extra regression corpus.
NOT_INHERITED = ("HYPOTHESIS_PROFILE", "ASCEND_RT_VISIBLE_DEVICES", "NPU_CONFORMANCE_PINNED_DEVICE",
                 "NPU_CONFORMANCE_DEVICES", "NPU_CONFORMANCE_CORPUS")

#: Seconds before a child counts as hung. The slowest child (a dev-profile run that shrinks several
#: failures) takes about a minute on an idle 2-core machine and over six minutes at a load of 10 (it
#: overran the earlier 300 s there); only a hang gets near this.
TIMEOUT_S = 900.0

#: A fuzz budget that only bounds a session stopped otherwise (--max-cases, or every test ran): far more
#: than the session needs on a loaded machine, well under TIMEOUT_S (budget + grace + shutdown).
CEILING_BUDGET = "10m"


def cli_env(pythonpath: Path | str | None = None, **extra: str) -> dict:
    """The environment of a child: this one without NOT_INHERITED, torch_npu never autoloaded, a fixed
    console width; `pythonpath` goes first on PYTHONPATH; `extra` variables are set as given."""
    env = {**os.environ, "TORCH_DEVICE_BACKEND_AUTOLOAD": "0", "COLUMNS": "160"}
    for key in NOT_INHERITED:
        env.pop(key, None)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return env | extra


def run_process(argv: list[str], cwd: Path | str | None, env: dict, timeout: float = TIMEOUT_S
                ) -> subprocess.CompletedProcess:
    """subprocess.run(argv, capture_output=True, text=True), in a process group of its own: on a timeout
    (or Ctrl-C) the whole group is killed, so a fuzz controller's workers do not fuzz on, orphaned, and
    load the machine for the tests that follow. (A group, not a session: the child stays in this session's
    scheduling autogroup, sharing the CPU as any other child does.)"""
    own_group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          **own_group) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def run_cli(cwd: Path | str | None, *args, timeout: float = TIMEOUT_S, pythonpath: Path | str | None = None,
            **env: str) -> subprocess.CompletedProcess:
    """`python -m conformance.cli ARGS` (each arg str()-ed) in `cwd`, with cli_env(pythonpath, **env)."""
    return run_process([sys.executable, "-m", "conformance.cli", *map(str, args)], cwd, cli_env(pythonpath, **env),
                       timeout)


def cli(cwd: Path | str, *args, timeout: float = TIMEOUT_S, pythonpath: Path | str | None = None,
        **env: str) -> tuple[int, str]:
    """run_cli, as (exit status, stdout + stderr)."""
    proc = run_cli(cwd, *args, timeout=timeout, pythonpath=pythonpath, **env)
    return proc.returncode, proc.stdout + proc.stderr


def worker_startup_s(cwd: Path | str, select: str) -> float:
    """Seconds a fuzz worker needs, on this machine and under its load right now, before its first case:
    a fresh interpreter importing torch, the plugin and the suite, and collecting `-k select`."""
    started = time.monotonic()
    proc = run_process([sys.executable, "-m", "pytest", "--pyargs", "conformance.suite", "--collect-only", "-q",
                        "-p", "no:cacheprovider", "--backend", "emulated", "-k", select], cwd, cli_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return time.monotonic() - started


def fuzz_budget(fuzzing_s: float, startup_s: float) -> str:
    """A --budget for one worker giving `fuzzing_s` seconds of fuzzing on top of its startup: the session's
    clock starts before the worker does, so a fixed budget is all startup on a loaded machine (about 20 s of
    a 20 s budget at a load of 7 on 2 cores: one case, or none). `startup_s` (worker_startup_s) counts
    twice: the load may grow between the measurement and the session."""
    return f"{math.ceil(fuzzing_s + 2 * startup_s)}s"
