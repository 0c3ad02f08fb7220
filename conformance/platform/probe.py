"""Is an Ascend NPU usable here? Asked in a subprocess, never in this interpreter.

`import torch_npu` without CANN can raise ImportError or RuntimeError, and old releases print a
traceback and call sys.exit(); a failed import can also leave torch unusable in the process that
tried. So the question goes to a child Python, which answers with one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata

# Runs in the child. It must print exactly one JSON object on its last stdout line.
_CHILD = r"""
import json, sys
out = {"torch_npu_importable": False, "npu_available": False, "device_count": 0,
       "device_name": None, "error": None}
try:
    import torch
    import torch_npu  # noqa: F401
    out["torch_npu_importable"] = True
    out["npu_available"] = bool(torch.npu.is_available())
    out["device_count"] = int(torch.npu.device_count())
    if out["device_count"]:
        out["device_name"] = torch.npu.get_device_name(0)
except BaseException as exc:  # report, do not hide: the parent shows this text
    out["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


@dataclass(frozen=True)
class NpuProbe:
    torch_version: str | None
    torch_npu_version: str | None
    cann_version: str | None
    torch_npu_importable: bool
    npu_available: bool
    device_count: int
    device_name: str | None
    error: str | None

    @property
    def usable(self) -> bool:
        return self.npu_available and self.device_count > 0

    def as_dict(self) -> dict:
        return asdict(self) | {"usable": self.usable}


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cann_version(environ=os.environ) -> str | None:
    """CANN toolkit version from the install info files that set_env.sh points at, if any."""
    for var in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH"):
        home = environ.get(var)
        if not home:
            continue
        for name in ("version.cfg", "ascend_toolkit_install.info", "version.info"):
            path = os.path.join(home, name)
            if os.path.isfile(path):
                with open(path, encoding="utf-8", errors="replace") as fh:
                    for line in fh:
                        key, _, value = line.strip().partition("=")
                        if key.strip().lower() in ("version", "toolkit_version") and value.strip():
                            return value.strip().strip('"')
    return None


@lru_cache(maxsize=1)
def probe_npu(timeout: float = 180.0) -> NpuProbe:
    """Ask a child interpreter whether torch_npu imports and sees a device (cached per process)."""
    torch_npu_version = _dist_version("torch-npu") or _dist_version("torch_npu")
    child_result: dict = {"torch_npu_importable": False, "npu_available": False, "device_count": 0,
                          "device_name": None, "error": None}
    if torch_npu_version is None:
        child_result["error"] = "torch-npu is not installed"
    else:
        try:
            proc = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            child_result["error"] = f"the NPU probe did not answer within {timeout:.0f} s"
        else:
            lines = proc.stdout.strip().splitlines()
            try:
                child_result = json.loads(lines[-1])
            except (IndexError, json.JSONDecodeError):
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                child_result["error"] = f"probe exited with status {proc.returncode}: {tail}"
    return NpuProbe(
        torch_version=_dist_version("torch"),
        torch_npu_version=torch_npu_version,
        cann_version=cann_version(),
        **child_result,
    )
