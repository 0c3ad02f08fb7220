"""Call the layer under test exactly as the runner would: the Context validated first, the kernels of
the run's backend (a planted bug applied), the emulator's findings collected, the decode graph
compiled once per engine configuration (conformance.judge.graph) and replayed.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field

import torch

from conformance import emulator
from conformance.cases.case import Case, Tensors
from conformance.judge.graph import compiled_decode
from conformance.judge.mutation import mutated_kernel_backend
from conformance.judge.settings import RunSettings
from conformance.judge.stopwatch import Stopwatch, timing
from conformance.platform.backends import graph_kernel_backend
from npu_attention import Attention, Context, kernels, use_context, validate_context


@functools.lru_cache(maxsize=8)
def _layer(layer_class: type[Attention], num_heads: int, head_dim: int, scale: float | None, num_kv_heads: int,
           device: str) -> Attention:
    # The 2048x2048 mask is built once per configuration, not per example.
    with torch.device(device):
        return layer_class(num_heads, head_dim, scale, num_kv_heads)


def _findings_scope(backend: str):
    """A context manager giving the log of the emulator's hazards and notes; real kernels report none.
    Hazards are recorded, never raised: the verdict (judge) decides whether they fail the case."""
    if backend != "emulated":
        return contextlib.nullcontext([])
    return emulator.record_hazards()


@dataclass
class LayerRun:
    out: torch.Tensor  # [rows, Hq, D], CPU
    k_cache: torch.Tensor  # 3-D, CPU, after the layer's write
    v_cache: torch.Tensor
    hazards: list[dict]
    notes: list[dict] = field(default_factory=list)
    graph: dict | None = None  # decode_graph: {"mode", "compiled": this call compiled the graph}


def runner_context(case: Case, t: Tensors, run: RunSettings, context: Context | None = None) -> Context:
    """The Context the runner would hand the layer (a planted runner bug applied), validated: an
    out-of-contract one raises ContextError naming the field and rule before anything else runs.
    `context` replaces the case's own Context (contract tests pass corrupted ones)."""
    ctx = context if context is not None else case.context(run.device)
    if run.mutation and run.mutation.transform_context:
        ctx = run.mutation.transform_context(case, ctx)
    validate_context(ctx, t.k_cache, t.v_cache, case.num_heads, case.num_kv_heads, case.head_dim,
                     num_tokens=case.num_new_tokens)
    return ctx


def run_layer(case: Case, t: Tensors, run: RunSettings, context: Context | None = None, *,
              validated: Context | None = None, stopwatch: Stopwatch | None = None) -> LayerRun:
    """Validate the runner contract, then call the production layer exactly as the runner would.
    `context` replaces the case's own Context; `validated` is one runner_context() already returned."""
    with timing(stopwatch, "layer"):
        return _run_layer(case, t, run, validated if validated is not None else runner_context(case, t, run, context))


def _run_layer(case: Case, t: Tensors, run: RunSettings, ctx: Context) -> LayerRun:
    mutation = run.mutation
    layer_class = mutation.layer_class if mutation and mutation.layer_class else Attention
    graph = case.phase == "decode_graph" and run.compile_graph
    kernel_backend = run.backend
    if graph:
        kernel_backend = graph_kernel_backend(run.backend)
    if mutation and mutation.wrap_kernels:
        kernel_backend = mutated_kernel_backend(kernel_backend, mutation)
    compiled = _compiled(case, run, layer_class, kernel_backend) if graph else None
    layer = compiled.layer if compiled is not None else _layer(
        layer_class, case.num_heads, case.head_dim, case.scale, case.num_kv_heads, run.device)
    layer.k_cache, layer.v_cache = t.k_cache.clone(), t.v_cache.clone()

    def call(context: Context, q, k, v):
        with use_context(context):
            return (compiled or layer)(q, k, v)

    with kernels.use_backend(kernel_backend), _findings_scope(run.backend) as log:
        if compiled is not None and mutation and mutation.graph_call:  # a capture/replay bug
            out = mutation.graph_call(compiled.capture, call, ctx, t.q, t.k, t.v)
        else:
            out = call(ctx, t.q, t.k, t.v)
    out = out.reshape(case.num_new_tokens, case.num_heads, case.head_dim).cpu()
    hazards = [_finding_dict(h) for h in (log or [])]
    notes = [_finding_dict(n) for n in getattr(log, "notes", [])]
    graph_info = None if compiled is None else {"mode": compiled.mode, "compiled": compiled.compiled_now}
    return LayerRun(out, layer.k_cache.cpu(), layer.v_cache.cpu(), hazards, notes, graph_info)


def _compiled(case: Case, run: RunSettings, layer_class: type, kernel_backend: str):
    """The compiled decode graph of this case's engine configuration (compiled on first use)."""
    key = (layer_class, case.num_heads, case.num_kv_heads, case.head_dim, case.scale, case.dtype, case.block_size,
           case.num_blocks, case.max_num_seqs, case.table_width, run.device, kernel_backend, run.graph_mode,
           run.mutation.name if run.mutation else None)

    def make_layer():
        with torch.device(run.device):
            return layer_class(case.num_heads, case.head_dim, case.scale, case.num_kv_heads)

    return compiled_decode(key, make_layer, kernel_backend, run.graph_mode)


def _finding_dict(finding) -> dict:
    return {"op": finding.op, "argument": finding.argument, "rule": finding.rule, "code": finding.code,
            "source": finding.source, "inferred": finding.inferred, "detail": finding.detail}
