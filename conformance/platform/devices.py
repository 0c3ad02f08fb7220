"""One worker per NPU: which cards a machine has, and pinning worker K to one of them.

A process sees the cards `ASCEND_RT_VISIBLE_DEVICES` lists (physical ids, read by the Ascend runtime
when torch_npu initialises, so it must be set before `import torch`). Worker K of a run gets card
`devices[K % len(devices)]` as its only visible device (then `npu:0` inside the worker). No torch here:
the pytest plugin pins an xdist worker at import, before anything loads torch.

Where the list comes from, first match wins: `--devices` (e.g. `0-7`, `0,2,4`); the parent's
`ASCEND_RT_VISIBLE_DEVICES`; the `/dev/davinciN` nodes the Ascend driver creates, one per card
(*inferred* from Ascend's container instructions, which pass `--device=/dev/davinciN` per card). No
cards (a CPU machine): no pinning, every worker runs the emulated backend.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

VISIBLE = "ASCEND_RT_VISIBLE_DEVICES"
#: The device list a parent hands its pytest-xdist workers (comma-separated physical ids).
WORKER_DEVICES = "NPU_CONFORMANCE_DEVICES"
#: Set in a worker once pinned: the card it was given.
PINNED = "NPU_CONFORMANCE_PINNED_DEVICE"
#: Where the device nodes live; tests point it at a folder of fake nodes to fake a card count.
DEV_DIR = "NPU_CONFORMANCE_DEV_DIR"
_NODE = re.compile(r"davinci(\d+)$")


class DeviceSpecError(ValueError):
    """A --devices value that is not a list of card ids."""


def parse_devices(spec: str) -> list[str]:
    """`0-7` -> ['0', ..., '7']; `0,2,5-6` -> ['0', '2', '5', '6']. Ids are non-negative integers, each once."""
    out: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise DeviceSpecError(f"--devices {spec!r}: {part!r} is not a card id or a range like 0-7")
        lo, hi = int(m.group(1)), int(m.group(2) if m.group(2) is not None else m.group(1))
        if hi < lo:
            raise DeviceSpecError(f"--devices {spec!r}: range {part!r} runs backwards")
        out += [str(i) for i in range(lo, hi + 1)]
    if len(set(out)) != len(out):
        raise DeviceSpecError(f"--devices {spec!r}: a card is listed twice")
    return out


def detect_devices(environ=os.environ) -> list[str]:
    """The cards this process may use: its ASCEND_RT_VISIBLE_DEVICES, else the davinci device nodes."""
    visible = environ.get(VISIBLE, "").strip()
    if visible:
        return [d.strip() for d in visible.split(",") if d.strip()]
    folder = Path(environ.get(DEV_DIR, "/dev"))
    try:
        ids = sorted(int(m.group(1)) for p in folder.iterdir() if (m := _NODE.match(p.name)))
    except OSError:
        return []
    return [str(i) for i in ids]


def device_for_worker(index: int, devices: list[str]) -> str | None:
    """The card worker `index` runs on (round robin), or None on a machine without cards."""
    return devices[index % len(devices)] if devices else None


def pin_environment(env: dict, index: int, devices: list[str]) -> str | None:
    """Make `env` (a worker's environment, before it starts) see only its card; returns the card."""
    device = device_for_worker(index, devices)
    if device is not None:
        env[VISIBLE] = device
        env[PINNED] = device
    return device


def pin_this_xdist_worker() -> str | None:
    """In a pytest-xdist worker (PYTEST_XDIST_WORKER=gwK, set before plugins load) whose parent handed
    down a device list: see only card K. Must run before torch is imported; a no-op elsewhere."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    devices = [d for d in os.environ.get(WORKER_DEVICES, "").split(",") if d]
    if not worker.startswith("gw") or not worker[2:].isdigit() or not devices or PINNED in os.environ:
        return os.environ.get(PINNED)
    return pin_environment(os.environ, int(worker[2:]), devices)
