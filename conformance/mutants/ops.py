"""Op wrapping, shared by the bugs planted in a kernel call (`call_bugs`) and in the op itself (`kernel_bugs`).

`wrap_ops` builds a `wrap_kernels` hook (conformance.judge.mutation) from per-op wrappers: a wrapper
takes the base backend's op and returns what the layer calls instead.

Wrappers must stay traceable: in the graph phase the layer is compiled with
torch.compile(aot_eager, fullgraph=True), so they use plain tensor ops and Python ints from
arguments, never `.tolist()` or data-dependent Python branches.
"""

from __future__ import annotations

from collections.abc import Callable

from npu_attention import kernels

# The ops the layer calls, by their names in torch_npu (V2, RESHAPE_AND_CACHE, SCATTER) or torchair.ops (AIR).
V2 = "npu_fused_infer_attention_score_v2"
AIR = "npu_fused_infer_attention_score"  # the graph decode op
RESHAPE_AND_CACHE = "_npu_reshape_and_cache"
SCATTER = "scatter_update_"

OpWrapper = Callable[[Callable], Callable]
WrapKernels = Callable[[kernels.KernelBackend], kernels.KernelBackend]


def _public(obj) -> dict:
    return {name: getattr(obj, name) for name in dir(obj) if not name.startswith("__")}


def _wrapped(namespace, wrappers: dict[str, OpWrapper]) -> dict:
    ops = _public(namespace)
    for name, wrapper in wrappers.items():
        ops[name] = wrapper(getattr(namespace, name))
    return ops


def wrap_ops(torch_npu_ops: dict[str, OpWrapper] | None = None,
             air_ops: dict[str, OpWrapper] | None = None) -> WrapKernels:
    """A `wrap_kernels` hook: the base backend with the named ops replaced by `wrapper(original)`.
    `torch_npu_ops` name torch_npu ops; `air_ops` name torchair.ops ops."""
    torch_npu_ops, air_ops = torch_npu_ops or {}, air_ops or {}

    def wrap(base: kernels.KernelBackend) -> kernels.KernelBackend:
        npu = kernels.namespace(**_wrapped(base.torch_npu, torch_npu_ops))
        air = _public(base.torchair)
        air["ops"] = kernels.namespace(**_wrapped(base.torchair.ops, air_ops))
        return kernels.KernelBackend(f"{base.name}+planted", npu, kernels.namespace(**air))

    return wrap


def attention_ops(wrapper: OpWrapper) -> WrapKernels:
    """Both attention ops, eager FIA-v2 and the graph torchair op, wrapped the same way."""
    return wrap_ops({V2: wrapper}, {AIR: wrapper})
