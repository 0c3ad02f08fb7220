"""The kernel seam: the ONLY module of the project that imports torch_npu or torchair.

The layer writes its calls exactly as the real API reads::

    from npu_attention.kernels import torch_npu, torchair as tng
    torch_npu.npu_fused_infer_attention_score_v2(q, k, v, ...)
    tng.ops.npu_fused_infer_attention_score(q, k_cache, v_cache, ...)

`torch_npu` and `torchair` here are proxies: each attribute lookup is resolved, at call time, against
the selected kernel backend. "npu" (the default) loads the real torch_npu and torchair lazily; other
backends (the CPU op emulator registers itself as "emulated") supply objects with the same names.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

#: The ops the layer calls, by module. A backend must provide at least these names.
REQUIRED_OPS = {
    "torch_npu": ("npu_fused_infer_attention_score_v2", "_npu_reshape_and_cache", "scatter_update_"),
    "torchair": ("ops.npu_fused_infer_attention_score",),
}

DEFAULT_BACKEND_ENV = "NPU_ATTENTION_KERNELS"
#: An attribute set on module objects that only stand in for torch_npu / torchair (a CPU op emulator
#: installed in sys.modules by a test harness): the real-kernel loader refuses such a module.
EMULATED_MARKER = "__npu_emulated__"


class KernelUnavailable(RuntimeError):
    """The requested kernel backend cannot be loaded on this machine."""


@dataclass(frozen=True)
class KernelBackend:
    name: str
    torch_npu: Any  # an object with the torch_npu op names
    torchair: Any  # an object with `.ops.npu_fused_infer_attention_score`


def _load_real_kernels() -> KernelBackend:
    try:
        import torch_npu as real_torch_npu
    except (ImportError, OSError, RuntimeError) as exc:
        raise KernelUnavailable(
            f"the 'npu' kernel backend needs a usable torch_npu, and importing it failed: {exc!r}. "
            "On an Ascend machine with the CANN toolkit, install the matching pair with "
            "`pip install 'npu-attention-conformance[npu]'` and source CANN's set_env.sh; "
            "on any other machine use the emulated backend (`--backend emulated`, or "
            "`import conformance.platform.backends` then `npu_attention.kernels.use_backend('emulated')`)."
        ) from exc
    # torchair must be imported after torch_npu: torch_npu installs the bundled copy as `torchair`
    # (Ascend/torchair docs/zh/ascend_ir/quick_start.md; Ascend/pytorch torch_npu/dynamo/__init__.py).
    try:
        import torchair as real_torchair
    except (ImportError, OSError, RuntimeError) as exc:
        raise KernelUnavailable(
            f"torch_npu imported but torchair did not: {exc!r}. The decode graph path needs the "
            "torchair that ships inside torch_npu; reinstall the `npu` extra."
        ) from exc
    stand_ins = [m.__name__ for m in (real_torch_npu, real_torchair) if getattr(m, EMULATED_MARKER, False)]
    if stand_ins:
        raise KernelUnavailable(
            f"the 'npu' kernel backend needs the real torch_npu, but {', '.join(stand_ins)} in sys.modules is a "
            "CPU emulator standing in for it (installed by a test harness for the emulated backend)"
        )
    return KernelBackend("npu", real_torch_npu, real_torchair)


_LOADERS: dict[str, Callable[[], KernelBackend]] = {"npu": _load_real_kernels}
_loaded: dict[str, KernelBackend] = {}
_selected: str | None = None


def register_backend(name: str, loader: Callable[[], KernelBackend]) -> None:
    """Make `name` selectable. `loader` is called once, on first use."""
    _LOADERS[name] = loader
    _loaded.pop(name, None)


def available_backends() -> tuple[str, ...]:
    return tuple(_LOADERS)


def select_backend(name: str) -> None:
    """Select the kernels that the proxies resolve to from now on (loaded on first use)."""
    if name not in _LOADERS:
        raise ValueError(
            f"unknown kernel backend {name!r}: choose one of {sorted(_LOADERS)} "
            "(import conformance.platform.backends to register 'emulated')"
        )
    global _selected
    _selected = name


def selected_backend_name() -> str:
    return _selected or os.environ.get(DEFAULT_BACKEND_ENV, "npu")


def load_backend(name: str) -> KernelBackend:
    """The backend `name`, loaded now if it was not yet (e.g. before torch.compile traces a call)."""
    if name not in _LOADERS:
        select_backend(name)  # raises the explanatory ValueError
    if name not in _loaded:
        backend = _LOADERS[name]()
        missing = [f"{module}.{op}" for module, ops in REQUIRED_OPS.items() for op in ops
                   if not _has_path(getattr(backend, module), op)]
        if missing:
            raise KernelUnavailable(f"kernel backend {name!r} lacks ops the layer calls: {missing}")
        _loaded[name] = backend
    return _loaded[name]


def _has_path(obj: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def active_backend() -> KernelBackend:
    return load_backend(selected_backend_name())


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Select a backend for the duration of a block (loaded on first use), then restore the previous one."""
    global _selected
    previous = _selected
    select_backend(name)
    try:
        yield name
    finally:
        _selected = previous


def torchair_compile_backend(mode: str = "max-autotune"):
    """The torch.compile backend of the decode graph on real kernels: torchair's NPU backend in `mode`.
    "max-autotune" (GE graphs) is the only mode that lowers the air:: attention op (Ascend/torchair docs,
    npu_fused_infer_attention_score.md: graph mode only); "reduce-overhead" is aclgraph capture."""
    tng = active_backend().torchair
    config = tng.CompilerConfig()
    config.mode = mode
    return tng.get_npu_backend(compiler_config=config)


class _ModuleProxy:
    """Stands for a kernel module; resolves every attribute against the active backend."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, name: str) -> Any:
        target = getattr(active_backend(), self._module)
        try:
            return getattr(target, name)
        except AttributeError:
            raise AttributeError(
                f"kernel backend {selected_backend_name()!r} has no {self._module}.{name}"
            ) from None

    def __repr__(self) -> str:
        return f"<{self._module} of kernel backend {selected_backend_name()!r}>"


torch_npu = _ModuleProxy("torch_npu")
torchair = _ModuleProxy("torchair")


def namespace(**ops: Any) -> SimpleNamespace:
    """Build a module-like object from functions, for backends that are not real modules."""
    return SimpleNamespace(**ops)
