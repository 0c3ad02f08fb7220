"""Which kernels run the layer: the real NPU ones or the CPU op emulator.

Importing this module registers the emulator as the kernel backends "emulated" (the ops as they are)
and "emulated-graph" (the same ops as custom ops a compiled decode graph can hold,
conformance.emulator.graph_ops); select one (or "npu") with `npu_attention.kernels.use_backend(name)`.
`auto` picks `npu` when the subprocess probe finds a usable device, else `emulated`.
"""

from __future__ import annotations

from conformance import emulator
from conformance.emulator import graph_ops
from conformance.names import BACKENDS
from conformance.platform.probe import NpuProbe, probe_npu
from npu_attention import kernels

kernels.register_backend("emulated", lambda: kernels.KernelBackend("emulated", emulator.torch_npu, emulator.torchair))
kernels.register_backend("emulated-graph",
                         lambda: kernels.KernelBackend("emulated-graph", graph_ops.torch_npu, graph_ops.torchair))


def graph_kernel_backend(backend: str) -> str:
    """The kernel backend a compiled decode runs on: the real one, or the traceable emulation."""
    return "npu" if backend == "npu" else "emulated-graph"


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
