"""Which kernels run the layer: the real NPU ones or the CPU op emulator.

Importing this module registers the emulator as the kernel backend "emulated"; select it (or "npu")
with `npu_attention.kernels.use_backend(name)`. `auto` picks `npu` when the subprocess probe finds a
usable device, else `emulated`.
"""

from __future__ import annotations

from conformance.names import BACKENDS
from conformance.probe import NpuProbe, probe_npu
from npu_attention import kernels


def _load_emulated() -> kernels.KernelBackend:
    from conformance import emulator

    return kernels.KernelBackend("emulated", emulator.torch_npu, emulator.torchair)


kernels.register_backend("emulated", _load_emulated)


def resolve_backend(requested: str, probe: NpuProbe | None = None) -> tuple[str, str]:
    """(backend, reason) for a --backend choice. `npu` is returned as asked even when unusable:
    the caller decides whether that is a skip or, under --require-npu, a failure."""
    if requested not in BACKENDS:
        raise ValueError(f"--backend must be one of {BACKENDS}, got {requested!r}")
    if requested != "auto":
        return requested, f"requested with --backend {requested}"
    probe = probe or probe_npu()
    if probe.usable:
        return "npu", f"auto: torch_npu {probe.torch_npu_version} sees {probe.device_count} NPU(s)"
    return "emulated", f"auto: no usable NPU ({probe.error or 'torch.npu.is_available() is False'})"


def prepare_device(backend: str) -> None:
    """Make the backend's device usable in this process: "npu" tensors need torch_npu imported
    (CPU runs keep autoload off), so load the real kernels before any tensor goes to the device."""
    if backend == "npu":
        kernels.load_backend("npu")

