"""Call the layer under test exactly as the runner would: the runner under test builds the Context of
the case's engine step, the validator checks it, then the layer runs on the run's kernels (a planted bug
applied), its Context installed the way its adapter says, the emulator's findings collected, the decode
graph compiled once per engine configuration (conformance.judge.graph) and replayed.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field

import torch

from conformance import emulator
from conformance.adapters.layer import LayerAdapter, as_contract_context
from conformance.adapters.runner import describe_step
from conformance.cases.case import Case, Tensors
from conformance.emulator import cann
from conformance.judge.graph import compiled_decode
from conformance.judge.mutation import mutated_kernel_backend
from conformance.judge.settings import RunSettings
from conformance.judge.stopwatch import Stopwatch, timing
from conformance.platform.backends import graph_kernel_backend
from conformance.platform.npu_modules import npu_device
from npu_attention import ContextError, kernels, validate_context


@functools.lru_cache(maxsize=8)
def _layer(build, num_heads: int, head_dim: int, scale: float | None, num_kv_heads: int, device: str):
    # The 2048x2048 mask is built once per configuration, not per example.
    with torch.device(device), npu_device(device):
        return build(num_heads, head_dim, scale, num_kv_heads)


def _findings_scope(backend: str):
    """A context manager giving the log of the emulator's hazards, notes and refusals; real kernels
    report none. Hazards are recorded, never raised: the verdict (judge) decides whether they fail."""
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
    #: calls an emulated op refused that the layer caught (a layer falling back to plain PyTorch)
    refusals: list[str] = field(default_factory=list)


def runner_context(case: Case, t: Tensors, run: RunSettings, context=None):
    """The Context the runner under test builds for the case's engine step (a planted runner bug
    applied), validated: an out-of-contract one raises ContextError naming the field, the rule and the
    engine step, before anything else runs. `context` replaces the runner's (contract tests pass
    corrupted ones). Returns the runner's own object (what the layer is given)."""
    step = case.engine_step()
    if context is None and run.mutation and run.mutation.runner:  # a planted runner bug
        context = run.mutation.runner(step)  # planted bugs run on the emulated backend: CPU tensors
    if context is None and run.runner.own:
        context = run.runner.context_for(step, run.layer.context, run.device)
    if context is None:
        with npu_device(run.device):  # a runner from an NPU engine builds its tensors on "npu"
            context = run.runner.context_for(step, run.layer.context, run.device)
    if run.mutation and run.mutation.transform_context:
        context = run.mutation.transform_context(case, context)
    try:
        validate_context(as_contract_context(context), t.k_cache, t.v_cache, case.num_heads, case.num_kv_heads,
                         case.head_dim, num_tokens=case.num_new_tokens)
    except ContextError as exc:
        if run.runner.own:
            raise
        raise ContextError(exc.field, f"{exc.rule} [runner {run.runner.name}, {describe_step(step)}]",
                           exc.got) from None
    return context


def run_layer(case: Case, t: Tensors, run: RunSettings, context=None, *, validated=None,
              stopwatch: Stopwatch | None = None) -> LayerRun:
    """Validate the runner contract, then call the layer under test exactly as the runner would.
    `context` replaces the runner's Context; `validated` is one runner_context() already returned."""
    with timing(stopwatch, "layer"):
        return _run_layer(case, t, run, validated if validated is not None else runner_context(case, t, run, context))


def _build(adapter: LayerAdapter, run: RunSettings):
    """How layers are built in this run: a planted bug's subclass of the own layer, or the adapter's."""
    if run.mutation and run.mutation.layer_class:
        return run.mutation.layer_class
    return adapter.build


def _run_layer(case: Case, t: Tensors, run: RunSettings, ctx) -> LayerRun:
    mutation, adapter = run.mutation, run.layer
    build = _build(adapter, run)
    graph = case.phase == "decode_graph" and run.compile_graph
    kernel_backend = graph_kernel_backend(run.backend) if graph else run.backend
    if mutation and mutation.wrap_kernels:
        kernel_backend = mutated_kernel_backend(kernel_backend, mutation)
    compiled = _compiled(case, run, build, kernel_backend) if graph else None
    layer = compiled.layer if compiled is not None else _layer(
        build, case.num_heads, case.head_dim, case.scale, case.num_kv_heads, run.device)
    adapter.caches.assign(layer, t.k_cache.clone(), t.v_cache.clone())

    def call(context, q, k, v):
        with adapter.context.install(context):  # outside the compiled graph, as a runner installs it
            return (compiled or layer)(q, k, v)

    # No device mapping around the forward: a layer places its tensors on the device of its inputs and its
    # buffers (built under npu_device), and a torch function mode on every op of every step is costly.
    with kernels.use_backend(kernel_backend), _findings_scope(run.backend) as log, \
            cann.emulated_version(run.cann_version):
        if compiled is not None and mutation and mutation.graph_call:  # a capture/replay bug
            out = mutation.graph_call(compiled.capture, call, ctx, t.q, t.k, t.v)
        else:
            out = _forward_off_npu_device(call, ctx, t)
    out = out.reshape(case.num_new_tokens, case.num_heads, case.head_dim).cpu()
    hazards = [_finding_dict(h) for h in (log or [])]
    notes = [_finding_dict(n) for n in getattr(log, "notes", [])]
    refusals = [f"{type(exc).__name__}: {exc}" for exc in getattr(log, "refusals", [])]
    graph_info = None if compiled is None else {"mode": compiled.mode, "compiled": compiled.compiled_now}
    k_cache, v_cache = adapter.caches.read(layer)
    return LayerRun(out, k_cache.cpu(), v_cache.cpu(), hazards, notes, graph_info, refusals)


class LayerMadeNpuTensor(RuntimeError):
    """The layer under test created a tensor on "npu" inside forward, which the CPU emulation cannot place."""


def _forward_off_npu_device(call, ctx, t: Tensors):
    try:
        return call(ctx, t.q, t.k, t.v)
    except NotImplementedError as exc:
        # torch's dispatcher names the backend in a 50-line message; say in one line what the layer did.
        if "from the 'npu' backend" not in str(exc):
            raise
        first = str(exc).split(". ")[0]  # "Could not run 'aten::<op>' with arguments from the 'npu' backend"
        raise LayerMadeNpuTensor(f"the layer created a tensor on device 'npu' inside forward ({first}); under the "
                                 "emulator, put new tensors on the inputs' device (device=q.device), as portable "
                                 "layers do") from None


def _compiled(case: Case, run: RunSettings, build, kernel_backend: str):
    """The compiled decode graph of this case's engine configuration (compiled on first use)."""
    key = (build, case.num_heads, case.num_kv_heads, case.head_dim, case.scale, case.dtype, case.block_size,
           case.num_blocks, case.max_num_seqs, case.table_width, run.device, kernel_backend, run.graph_mode,
           run.mutation.name if run.mutation else None)

    def make_layer():
        with torch.device(run.device), npu_device(run.device):
            return build(case.num_heads, case.head_dim, case.scale, case.num_kv_heads)

    return compiled_decode(key, make_layer, kernel_backend, run.graph_mode)


def _finding_dict(finding) -> dict:
    return {"op": finding.op, "argument": finding.argument, "rule": finding.rule, "code": finding.code,
            "source": finding.source, "inferred": finding.inferred, "detail": finding.detail}
