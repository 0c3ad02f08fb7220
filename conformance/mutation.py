"""A planted bug, applied without editing any file: the hooks a run offers to change the layer.

A Mutation can replace the layer class (a subclass of Attention), wrap the kernel backend's ops, or
transform the Context the runner builds. The harness applies it inside run_layer; the validator and
the tolerance policy then have to catch it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from npu_attention import Attention, Context, kernels


@dataclass(frozen=True)
class Mutation:
    name: str
    layer_class: type[Attention] | None = None
    wrap_kernels: Callable[[kernels.KernelBackend], kernels.KernelBackend] | None = None
    transform_context: Callable[[object, Context], Context] | None = None


def mutated_kernel_backend(base: str, mutation: Mutation) -> str:
    """Register (once) and name a kernel backend whose ops are `base`'s wrapped by the mutation."""
    name = f"{base}+{mutation.name}"
    if name not in kernels.available_backends():
        kernels.register_backend(name, lambda: mutation.wrap_kernels(kernels.load_backend(base)))
    return name
