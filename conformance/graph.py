"""The decode graph path: compile the layer once per engine configuration and replay it, as the runner does.

The runner compiles decode at warm-up (torch.compile(..., dynamic=False, fullgraph=True) with
torchair's backend, for a batch padded to max_num_seqs and a fixed-width block table) and replays
that one graph for every decode step of the engine's life. Here `compiled_decode(key, ...)` keeps one
CompiledDecode per configuration (every static shape, layer class, kernel backend, graph mode), so a
run compiles once per configuration it draws; a second compile of the same configuration is a
GraphRecompiled failure naming the failed guard, because on hardware it is a graph compile inside the
decode loop. On hardware the backend is torchair's in the chosen mode; on CPU "aot_eager" over the
emulated ops, registered here as torch.library custom ops so Dynamo traces them as single graph nodes
(their contract checks read tensor values, which a trace cannot), and the emulated torchair op is told
which mode its graph runs in. fullgraph=True: a graph break is an error, never a fallback to eager.
"""

from __future__ import annotations

from typing import Optional

import torch

from conformance import emulator
from conformance.emulator.fia_checks import output_meta
from npu_attention import kernels

_LIB = "npu_conformance"


@torch.library.custom_op(f"{_LIB}::scatter_update_", mutates_args=("data",))
def _scatter_update_op(data: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor, axis: int) -> None:
    emulator.torch_npu.scatter_update_(data, indices, updates, axis)


@_scatter_update_op.register_fake
def _(data, indices, updates, axis):
    return None


@torch.library.custom_op(f"{_LIB}::air_fused_infer_attention_score", mutates_args=())
def _air_fia_op(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, atten_mask: Optional[torch.Tensor],
    actual_seq_lengths: Optional[torch.Tensor], actual_seq_lengths_kv: Optional[torch.Tensor],
    block_table: Optional[torch.Tensor], num_heads: int, scale: float, pre_tokens: int, next_tokens: int,
    input_layout: str, num_key_value_heads: int, sparse_mode: int, inner_precise: int, block_size: int,
    softmax_lse_flag: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    # This body runs when the compiled graph executes, inside CompiledDecode's compiled_graph(mode) block.
    out, lse = emulator.torchair.ops.npu_fused_infer_attention_score(
        query, key, value, atten_mask=atten_mask, actual_seq_lengths=actual_seq_lengths,
        actual_seq_lengths_kv=actual_seq_lengths_kv, block_table=block_table, num_heads=num_heads, scale=scale,
        pre_tokens=pre_tokens, next_tokens=next_tokens, input_layout=input_layout,
        num_key_value_heads=num_key_value_heads, sparse_mode=sparse_mode, inner_precise=inner_precise,
        block_size=block_size, softmax_lse_flag=softmax_lse_flag)
    return out.clone(), lse.clone()  # custom ops may not return views of their inputs


@_air_fia_op.register_fake
def _(query, key, value, atten_mask, actual_seq_lengths, actual_seq_lengths_kv, block_table, num_heads, scale,
      pre_tokens, next_tokens, input_layout, num_key_value_heads, sparse_mode, inner_precise, block_size,
      softmax_lse_flag):
    out_shape, out_dtype, lse_shape = output_meta(query, value, input_layout=input_layout, num_heads=num_heads,
                                                  num_key_value_heads=num_key_value_heads,
                                                  paged=block_table is not None, return_lse=softmax_lse_flag)
    return query.new_empty(out_shape, dtype=out_dtype), query.new_empty(lse_shape, dtype=torch.float32)


def _graph_scatter_update_(self, indices, updates, axis):
    _scatter_update_op(self, indices, updates, axis)
    return self


_GRAPH_MODELLED = ("query", "key", "value", "atten_mask", "actual_seq_lengths", "actual_seq_lengths_kv",
                   "block_table", "num_heads", "scale", "pre_tokens", "next_tokens", "input_layout",
                   "num_key_value_heads", "sparse_mode", "inner_precise", "block_size", "softmax_lse_flag")


def _graph_air_fia(query, key, value, *, atten_mask=None, actual_seq_lengths=None, actual_seq_lengths_kv=None,
                   block_table=None, num_heads=1, scale=1.0, pre_tokens=2147483647, next_tokens=2147483647,
                   input_layout="BSH", num_key_value_heads=0, sparse_mode=0, inner_precise=0, block_size=0,
                   softmax_lse_flag=False, **unmodelled):
    """torchair.ops.npu_fused_infer_attention_score for graph emulation: the arguments the decode
    path can use; anything else must stay at its default (None)."""
    extra = sorted(name for name, value in unmodelled.items() if value is not None)
    if extra:
        raise NotImplementedError(f"graph emulation of npu_fused_infer_attention_score does not model {extra}")
    return _air_fia_op(query, key, value, atten_mask, actual_seq_lengths, actual_seq_lengths_kv, block_table,
                       num_heads, float(scale), pre_tokens, next_tokens, input_layout, num_key_value_heads,
                       sparse_mode, inner_precise, block_size, softmax_lse_flag)


def _load_emulated_graph() -> kernels.KernelBackend:
    ops = {name: getattr(emulator.torch_npu, name) for name in
           ("npu_fused_infer_attention_score_v2", "npu_fused_infer_attention_score", "_npu_reshape_and_cache",
            "scatter_update")}
    torch_npu = kernels.namespace(**ops, scatter_update_=_graph_scatter_update_)
    torchair = kernels.namespace(ops=kernels.namespace(npu_fused_infer_attention_score=_graph_air_fia))
    return kernels.KernelBackend("emulated-graph", torch_npu, torchair)


kernels.register_backend("emulated-graph", _load_emulated_graph)


def graph_kernel_backend(backend: str) -> str:
    """The kernel backend a compiled decode runs on: the real one, or the traceable emulation."""
    return "npu" if backend == "npu" else "emulated-graph"


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
        self.capture: dict = {}  # state a planted capture-time bug keeps between replays (conformance.mutation)
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
