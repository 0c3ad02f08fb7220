"""Run metadata for the report: backend, device, versions, hypothesis profile and seed, git commit."""

from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from hypothesis import settings as hyp_settings

from conformance.adapters.loading import identity
from conformance.emulator import cann
from conformance.harness.run import RUN_STATE
from conformance.judge.settings import settings
from conformance.platform.probe import probe_npu


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=8)
def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD of the git checkout at `cwd`, or None (not a repository, no git, no commit yet)."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = proc.stdout.strip()
    return commit if proc.returncode == 0 and commit else None


def run_metadata(config, *, started_at: str, duration_s: float, finished_at: str | None,
                 exitstatus: int | None) -> dict:
    """Everything a reader needs to know about where and how the cases ran."""
    s = settings()
    probe = probe_npu()  # cached per process; no subprocess at all when torch-npu is not installed
    if s.backend == "npu":
        device = probe.device_name or "npu (no device name)"
    else:
        device = f"cpu ({platform.machine() or 'unknown'}, emulated kernels)"
    seed = config.getoption("hypothesis_seed", default=None)
    if isinstance(seed, str) and seed.lstrip("-").isdigit():
        seed = int(seed)  # hypothesis keeps --hypothesis-seed as text; a number is a number
    workers = getattr(config.option, "numprocesses", None)
    return {
        "tool_version": _version("npu-attention-conformance"),
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": round(max(duration_s, 0.0), 3),
        "backend": s.backend,
        "backend_requested": config.getoption("backend", default=None),
        "backend_reason": s.backend_reason,
        "device": device,
        "npu": {"usable": probe.usable, "device_count": probe.device_count, "device_name": probe.device_name,
                "error": probe.error},
        "versions": {"python": sys.version.split()[0], "torch": probe.torch_version,
                     "torch_npu": probe.torch_npu_version, "cann": probe.cann_version,
                     "hypothesis": _version("hypothesis"), "pytest": _version("pytest")},
        "hypothesis": {"profile": state.profile if (state := config.stash.get(RUN_STATE, None)) else None,
                       "seed": seed if seed is None or isinstance(seed, int) else str(seed),
                       "max_examples": hyp_settings.default.max_examples},
        "strict_contracts": s.strict_contracts,
        "graph_mode": s.graph_mode,
        "shape_space": s.shape_space,
        "acknowledgements_source": s.acknowledgements.source,
        "require_npu": s.require_npu,
        "tolerance_policy": s.policies.as_dict(),
        "git_commit": git_commit(Path(__file__).resolve().parent),  # the harness under test
        "host": platform.node(),
        "platform": platform.platform(terse=True),
        "workers": workers if isinstance(workers, int) else None,
        "pytest_args": [str(a) for a in config.invocation_params.args],
        "pytest_exitstatus": None if exitstatus is None else int(exitstatus),
        "failures_dir": str(s.failures_dir),
        "cann_emulated": {"version": s.cann_version, "source": cann.source_of(s.cann_version)}
        if s.backend == "emulated" else None,
        "planted": s.mutation.name if s.mutation else None,  # a planted bug (mutants, fuzz --plant)
        "layer": identity(s.layer),  # what was judged: spec, file, sha256, git commit and dirty flag
        "runner": identity(s.runner),
    }
