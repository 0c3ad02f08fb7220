"""A planted bug, applied without editing any file: the hooks a run offers to change the layer.

A Mutation can replace the layer class (a subclass of Attention), wrap the kernel backend's ops,
transform the Context the runner builds, replace the runner (an adapter with one mistake), or stand
between the runner and its compiled decode graph
(`graph_call`: a bug of graph capture and replay, such as a value frozen at capture or a wrong padded
batch; it gets a dict that lives as long as the compiled graph). The harness applies it inside
run_layer; the validator, the tolerance policy and the recompile check then have to catch it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from npu_attention import Attention, Context, kernels


@dataclass(frozen=True)
class Mutation:
    name: str
    # The hooks are keyword-only, so that a subclass (a catalogue entry) can add fields without defaults.
    _: KW_ONLY
    layer_class: type[Attention] | None = None
    wrap_kernels: Callable[[kernels.KernelBackend], kernels.KernelBackend] | None = None
    #: (case, Context) -> Context
    transform_context: Callable[[object, Context], Context] | None = None
    #: (capture state, replay, Context, q, k, v) -> output, instead of replay(Context, q, k, v) for every
    #: compiled-graph call; replay runs the compiled graph with that Context installed
    graph_call: Callable | None = None
    #: EngineStep -> Context: a runner adapter with one mistake, used instead of the project's own runner
    runner: Callable | None = None


def mutated_kernel_backend(base: str, mutation: Mutation) -> str:
    """Register (once) and name a kernel backend whose ops are `base`'s wrapped by the mutation."""
    name = f"{base}+{mutation.name}"
    if name not in kernels.available_backends():
        kernels.register_backend(name, lambda: mutation.wrap_kernels(kernels.load_backend(base)))
    return name
