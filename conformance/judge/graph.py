"""The decode graph path: compile the layer once per engine configuration and replay it, as the runner does.

The runner compiles decode at warm-up (torch.compile(..., dynamic=False, fullgraph=True) with
torchair's backend, for a batch padded to max_num_seqs and a fixed-width block table) and replays
that one graph for every decode step of the engine's life. Here `compiled_decode(key, ...)` keeps one
CompiledDecode per configuration (every static shape, layer class, kernel backend, graph mode), so a
run compiles once per configuration it draws; a second compile of the same configuration is a
GraphRecompiled failure naming the failed guard, because on hardware it is a graph compile inside the
decode loop. On hardware the backend is torchair's in the chosen mode; on CPU "aot_eager" over the
emulated ops as custom ops (conformance.emulator.graph_ops, the kernel backend "emulated-graph"), and
the emulated torchair op is told which mode its graph runs in. fullgraph=True: a graph break is an
error, never a fallback to eager.
"""

from __future__ import annotations

import torch

from conformance import emulator
from npu_attention import kernels


class GraphRecompiled(RuntimeError):
    """The compiled decode graph was compiled again while the engine was decoding: on hardware each
    recompile is a new graph compile inside the decode loop (seconds to minutes per step). `reason`
    is the guard that failed, as Dynamo reports it."""

    def __init__(self, key: tuple, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"the decode graph recompiled on a later step (a graph compile inside the decode loop); "
                         f"guard that failed: {reason}")


class CompiledDecode:
    """One engine configuration's decode graph: compiled on the first call, then replayed. Counts its
    own compiles (through its compile backend), so a second one is caught and named."""

    def __init__(self, key: tuple, layer: torch.nn.Module, kernel_backend: str, mode: str):
        self.key = key
        self.layer = layer
        self.mode = mode
        self.compiles = 0
        self.calls = 0
        self.capture: dict = {}  # state a planted capture-time bug keeps between replays (conformance.judge.mutation)
        kernels.load_backend(kernel_backend)  # loading is not something to trace
        if kernel_backend == "npu":
            with kernels.use_backend("npu"):
                inner = kernels.torchair_compile_backend(mode)
        else:
            from torch._dynamo.backends.registry import lookup_backend

            inner = lookup_backend("aot_eager")  # the emulated ops trace as custom ops; no aclgraph on CPU

        def counting_backend(gm, example_inputs):
            self.compiles += 1
            return inner(gm, example_inputs)

        self.fn = torch.compile(layer, backend=counting_backend, dynamic=False, fullgraph=True)

    def __call__(self, q, k, v):
        """Run (the first call compiles): returns the output; raises GraphRecompiled on a recompile."""
        before = self.compiles
        with emulator.torchair.compiled_graph(self.mode):
            out = self.fn(q, k, v)
        self.calls += 1
        if self.compiles > 1 and self.compiles > before:
            raise GraphRecompiled(self.key, _last_recompile_reason())
        return out

    @property
    def compiled_now(self) -> bool:
        return self.calls == 1


def _last_recompile_reason() -> str:
    from torch._dynamo.utils import get_compilation_metrics

    reasons = [m.recompile_reason for m in get_compilation_metrics() if m.recompile_reason]
    return " ".join((reasons[-1] if reasons else "unknown (Dynamo gave no reason)").split())[:500]


#: At most this many configurations stay compiled; past it everything is dropped and Dynamo reset (a
#: run that draws more configurations compiles them again, one per configuration still).
MAX_CONFIGURATIONS = 16
_cache: dict[tuple, CompiledDecode] = {}
_stats = {"compiles": 0}


def compiled_decode(key: tuple, make_layer, kernel_backend: str, mode: str) -> CompiledDecode:
    """The compiled decode graph of an engine configuration `key` (every static shape, the layer
    class, the kernel backend and the graph mode), made with `make_layer()` on first use and reused
    for every later case and step with the same configuration, as the runner compiles once at warm-up."""
    entry = _cache.get(key)
    if entry is None:
        if len(_cache) >= MAX_CONFIGURATIONS:
            reset()
        # One code object (Attention.forward) is compiled per configuration: let Dynamo keep them all.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 2 * MAX_CONFIGURATIONS)
        entry = _cache[key] = CompiledDecode(key, make_layer(), kernel_backend, mode)
        _stats["compiles"] += 1
    return entry


def compile_count() -> int:
    """Decode graphs compiled in this process (a run's report sums its records' `graph.compiled`)."""
    return _stats["compiles"]


def reset() -> None:
    """Forget every compiled configuration (the next use of each compiles again)."""
    _cache.clear()
    torch._dynamo.reset()
