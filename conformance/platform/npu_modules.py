"""`torch_npu` and `torchair` as modules on a CPU machine: the emulator, installed for a layer from another
code base, which imports them by their real names.

`install()` puts three module objects in `sys.modules` — `torch_npu`, `torchair`, `torchair.ops` — before
the user's layer module is imported, and only on the emulated backend (the harness never calls it under
`--backend npu`). Every op name resolves at call time against the kernel backend the harness selected
for that call (npu_attention.kernels: the emulated ops, their graph-traceable custom ops inside a compiled
decode graph, or a planted bug's wrapped ops), so `import torch_npu`, `import torchair as tng`,
`from torch_npu import npu_fused_infer_attention_score` and `tng.ops.npu_fused_infer_attention_score`
all reach the emulator. A name the emulator does not model fails at its first call with one line naming
it (`npu-conformance info` lists what is modelled). The modules carry EMULATED_MARKER, which the real
kernel loader refuses (npu_attention.kernels), so the emulator can never pose as the real torch_npu.
`uninstall()` removes them again.

`npu_device(device)` maps `device="npu"` (and `.npu()`, `.to("npu")`) to the run's device while the
harness builds a layer and while a runner from another code base builds a Context (not around every
forward: a torch function mode on each op of each step would cost more than the step). That needs the
device name "npu" to exist in torch: the first install renames torch's PrivateUse1 backend to "npu"
(irreversible for the process, as importing the real torch_npu is) and registers a minimal `torch.npu`
device module.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from conformance.emulator import torch_npu as emulated_torch_npu
from conformance.emulator import torch_ops
from conformance.emulator import torchair as emulated_torchair
from conformance.emulator.findings import record_refusal
from npu_attention import kernels

#: Set on every module object this file installs; the real kernel loader refuses a module carrying it.
EMULATED_MARKER = kernels.EMULATED_MARKER
MODULE_NAMES = ("torch_npu", "torchair", "torchair.ops")
#: What an installed torch_npu reports as its version (a layer may print or compare it).
EMULATED_VERSION = "2.13.0+conformance.emulated"


class NotModelled(NotImplementedError):
    """A torch_npu / torchair name the CPU op emulator does not model, called by the layer under test."""


def modelled_names() -> dict[str, tuple[str, ...]]:
    """The op names each emulated module resolves (the rest fail at their first call)."""
    return {"torch_npu": tuple(emulated_torch_npu.__all__),
            "torchair.ops": tuple(n for n in vars(emulated_torchair.ops) if not n.startswith("_"))}


class _NotModelled:
    """A torch_npu / torchair name the emulator does not model: looking it up (and its attributes, as in
    `torch_npu.npu.set_device`) is allowed, calling it fails with one line naming it."""

    def __init__(self, qualified: str):
        self._qualified = qualified

    def __getattr__(self, name: str) -> _NotModelled:
        if name.startswith("__"):
            raise AttributeError(name)
        return _NotModelled(f"{self._qualified}.{name}")

    def __call__(self, *args, **kwargs):
        listed = ", ".join(f"{m}.{n}" for m, names in modelled_names().items() for n in names)
        exc = NotModelled(f"{self._qualified} is not modelled by the CPU op emulator (modelled: {listed}; see "
                          "`npu-conformance info`)")
        record_refusal(exc)  # a layer that catches it and falls back still fails the case
        raise exc

    def __repr__(self) -> str:
        return f"<{self._qualified}: not modelled by the CPU op emulator>"


def _target(module: str, name: str):
    backend = kernels.active_backend()
    return getattr(backend.torch_npu if module == "torch_npu" else backend.torchair.ops, name)


def _late_bound(module: str, name: str, overload: str | None = None):
    """`module.name` (or its `.out` overload) of the kernel backend selected when it is called, not when
    it was looked up: a `from torch_npu import op` at import time must still reach the graph ops inside a
    compiled graph, and a planted bug's wrapped ops."""
    def call(*args, **kwargs):
        op = _target(module, name)
        try:
            return (getattr(op, overload) if overload else op)(*args, **kwargs)
        except TypeError as exc:  # arguments the op does not take: on a device the binding refuses them too
            record_refusal(exc)
            raise
    call.__name__ = name if overload is None else f"{name}.{overload}"
    call.__qualname__ = f"{module}.{call.__name__}"
    if overload is None:
        call.out = _late_bound(module, name, "out")  # the preallocated-output overload (graph capture)
    return call


class _EmulatedModule(types.ModuleType):
    def __init__(self, name: str, modelled: tuple[str, ...]):
        super().__init__(name, f"CPU op emulator standing in for {name} (npu-attention-conformance)")
        self._modelled = modelled
        setattr(self, EMULATED_MARKER, True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system probes __path__, __file__, ...: not there
            raise AttributeError(name)
        if name in self._modelled:
            return _late_bound(self.__name__, name)
        return _NotModelled(f"{self.__name__}.{name}")


def _modules() -> dict[str, types.ModuleType]:
    names = modelled_names()
    torch_npu = _EmulatedModule("torch_npu", names["torch_npu"])
    torch_npu.__version__ = EMULATED_VERSION
    ops = _EmulatedModule("torchair.ops", names["torchair.ops"])
    torchair = _EmulatedModule("torchair", ())
    torchair.ops = ops
    return {"torch_npu": torch_npu, "torchair": torchair, "torchair.ops": ops}


_saved: dict[str, types.ModuleType | None] = {}


def installed() -> bool:
    return any(getattr(sys.modules.get(name), EMULATED_MARKER, False) for name in MODULE_NAMES)


def install() -> None:
    """Put the emulated modules in sys.modules (idempotent). Refuses when a real torch_npu is imported."""
    if installed():
        return
    real = [name for name in MODULE_NAMES if name in sys.modules]
    if real:
        raise RuntimeError(f"{', '.join(real)} already imported in this process: the emulated modules cannot "
                           "replace a real torch_npu (run the emulated backend in a process without it)")
    _ensure_npu_device_name()
    torch_ops.install()  # torch.ops.npu.<op> (and atb / air) reach the emulator too
    for name, module in _modules().items():
        _saved[name] = sys.modules.get(name)
        sys.modules[name] = module


def uninstall() -> None:
    """Remove the emulated modules (and put back whatever was there before install)."""
    for name in MODULE_NAMES:
        if getattr(sys.modules.get(name), EMULATED_MARKER, False):
            previous = _saved.pop(name, None)
            if previous is None:
                del sys.modules[name]
            else:
                sys.modules[name] = previous


# --- device="npu" -----------------------------------------------------------------------------------
def _ensure_npu_device_name() -> None:
    if torch._C._get_privateuse1_backend_name() == "npu":
        return
    torch.utils.rename_privateuse1_backend("npu")
    torch.utils.generate_methods_for_privateuse1_backend()  # Tensor.npu(), Tensor.is_npu, Module.npu()
    device_module = types.ModuleType("torch.npu", "the run's device standing in for an NPU (npu-attention-conformance)")
    # False: torch.accelerator (and Dynamo, which asks it for a current stream) must not take "npu" for a
    # device with its own runtime: its tensors are the run device's
    device_module.is_available = lambda: False
    device_module.device_count = lambda: 1
    device_module.current_device = lambda: 0
    device_module.set_device = lambda device: None
    device_module.synchronize = lambda device=None: None
    torch._register_device_module("npu", device_module)


def _maps(value: Any) -> bool:
    return (isinstance(value, torch.device) and value.type == "npu") or \
        (isinstance(value, str) and value.split(":", 1)[0] == "npu")


class _NpuAsDevice(TorchFunctionMode):
    """Rewrites an "npu" device in any torch call to `target`."""

    def __init__(self, target: torch.device):
        super().__init__()
        self.target = target

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if _maps(kwargs.get("device")):
            kwargs["device"] = self.target
        if getattr(func, "__name__", "") == "wrap_tensor_to":  # Tensor.npu(): the run's device instead
            return args[0].to(self.target, non_blocking=kwargs.get("non_blocking", False))
        args = tuple(self.target if _maps(a) else a for a in args)
        return func(*args, **kwargs)


@contextlib.contextmanager
def npu_device(device: str) -> Iterator[None]:
    """Inside the block, "npu" devices in the layer's code mean `device` (a no-op when not installed)."""
    if not installed():
        yield
        return
    with _NpuAsDevice(torch.device(device)):
        yield
