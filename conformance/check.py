"""Run one Case through the production layer and the reference, and judge it.

The reference sees the same dtype-rounded inputs. Golden = float64; baseline = the kernel dtype with a
different operation order. Caches are judged bit-exactly against reference.scatter_kv.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

import reference
from conformance.acknowledgements import judge_hazards
from conformance.ascend_standard import AscendMetrics, compare_ascend
from conformance.backends import prepare_device  # importing it also registers the emulated backend
from conformance.cases import Case, Tensors
from conformance.determinism import DeterminismResult, compare_runs
from conformance.mutation import mutated_kernel_backend
from conformance.report.model import fmt_ratio
from conformance.session import RunSettings, settings as current_settings
from conformance.tolerance import (CacheMetrics, Gating, OutputMetrics, bits_equal, compare_cache,
                                   compare_output)
from npu_attention import Attention, Context, kernels, use_context, validate_context


#: Seconds this process spent in the reference (golden and baseline) and in the layer (kernels
#: included), whoever called them: a fuzz session reports its share of time doing the work that matters.
timing = {"reference": 0.0, "layer": 0.0}


def _timed(kind: str):
    def wrap(fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timing[kind] += time.perf_counter() - started
        return timed
    return wrap


@dataclass
class Expected:
    golden: torch.Tensor  # [rows, Hq, D] float64; rows = every row forward() returns
    baseline: torch.Tensor  # same rows, kernel dtype
    row_seq: list[int]  # sequence of each row (padded graph rows get their own index)
    empty_rows: list[int]  # rows that see no key, must be exactly 0: the graph padding rows
    k_cache: torch.Tensor  # 3-D cache after a correct write (CPU)
    v_cache: torch.Tensor


@_timed("reference")
def expected_results(case: Case, t: Tensors) -> Expected:
    q, k, v = (x.cpu() for x in (t.q, t.k, t.v))
    k_cache, v_cache = t.k_cache.cpu(), t.v_cache.cpu()
    if case.is_prefill:
        cu = torch.tensor([0, *torch.tensor(case.seq_lens).cumsum(0).tolist()], dtype=torch.int32)
        slots = case.context().slot_mapping
        new_k, new_v = reference.scatter_kv(k_cache, v_cache, k, v, slots)

        def attend(dtype, reorder):
            return reference.varlen_attention(q, k, v, cu_seqlens_q=cu, cu_seqlens_k=cu, scale=case.softmax_scale,
                                              compute_dtype=dtype, reorder_ops=reorder)
        row_seq, empty = t.row_seq, []
    else:
        batch = case.batch
        ctx = case.context()
        new_k, new_v = reference.scatter_kv(k_cache, v_cache, k[:batch], v[:batch], ctx.slot_mapping[:batch])
        tables = ctx.block_tables[:batch]

        def attend(dtype, reorder):
            real = reference.paged_attention(q[:batch], new_k, new_v, query_lens=[1] * batch,
                                             context_lens=list(case.seq_lens), block_tables=tables,
                                             scale=case.softmax_scale, compute_dtype=dtype, reorder_ops=reorder)
            # Padded graph rows have context_lens 0: the kernel returns zeros for them.
            pad = torch.zeros(case.num_new_tokens - batch, *real.shape[1:], dtype=real.dtype)
            return torch.cat([real, pad])
        row_seq, empty = list(range(case.num_new_tokens)), list(range(batch, case.num_new_tokens))
    return Expected(attend(torch.float64, False), attend(case.torch_dtype, True), row_seq, empty, new_k, new_v)


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
    from conformance import emulator

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


@_timed("layer")
def run_layer(case: Case, t: Tensors, run: RunSettings, context: Context | None = None, *,
              validated: Context | None = None) -> LayerRun:
    """Validate the runner contract, then call the production layer exactly as the runner would.
    `context` replaces the case's own Context; `validated` is one runner_context() already returned."""
    mutation = run.mutation
    ctx = validated if validated is not None else runner_context(case, t, run, context)
    layer_class = mutation.layer_class if mutation and mutation.layer_class else Attention
    graph = case.phase == "decode_graph" and run.compile_graph
    kernel_backend = run.backend
    if graph:
        from conformance.graph import graph_kernel_backend

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
    from conformance.graph import compiled_decode

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


@dataclass
class Outcome:
    case: Case
    backend: str
    output: OutputMetrics
    caches: list[CacheMetrics]
    hazards: list[dict]  # each with `acknowledgement` and `accepted` (conformance.acknowledgements)
    notes: list[dict] = field(default_factory=list)
    layer: LayerRun | None = field(default=None, repr=False)  # raw results, for metamorphic checks
    ascend: AscendMetrics | None = None  # Ascend's benchmark standard on the same output
    determinism: DeterminismResult | None = None  # a second run on the same inputs
    gating: Gating = Gating()

    @property
    def failed_checks(self) -> list[str]:
        """What failed among the checks that gate: "output" (the dual reference), "ascend" (the
        benchmark standard), a cache name, "hazards" (an unacknowledged hazard), "determinism"."""
        failed = [] if self.output.passed or not self.gating.gates("dual") else ["output"]
        if self.ascend is not None and not self.ascend.passed and self.gating.gates("ascend"):
            failed.append("ascend")
        failed += [c.name for c in self.caches if not c.passed]
        failed += ["hazards"] if any(not h["accepted"] for h in self.hazards) else []
        if self.determinism is not None and not self.determinism.passed and self.gating.gates("determinism"):
            failed.append("determinism")
        return failed

    @property
    def verdicts(self) -> dict:
        """Every standard's own verdict, gating or not ("not run" when it was not computed)."""
        return {"dual": self.output.verdict,
                "ascend": self.ascend.verdict if self.ascend is not None else "not run",
                "determinism": self.determinism.verdict if self.determinism is not None else "not run"}

    @property
    def passed(self) -> bool:
        return not self.failed_checks

    @property
    def verdict(self) -> str:
        return "pass" if self.passed else "fail"

    @property
    def ratio(self) -> float:
        """The case's worst error/tolerance ratio over the gating standards (the dual reference's max and
        mean rules, the Ascend standard's worst metric / limit): <= 1 passes."""
        ratios = [max(self.output.ratio, self.output.mean_ratio)] if self.gating.gates("dual") else []
        if self.ascend is not None and self.gating.gates("ascend"):
            ratios.append(self.ascend.margin)
        return max(ratios) if ratios else max(self.output.ratio, self.output.mean_ratio)  # nothing else computed

    def record(self) -> dict:
        case = self.case
        return {
            "case_id": case.case_id, "phase": case.phase, "dtype": case.dtype, "backend": self.backend,
            "shape": {"num_heads": case.num_heads, "num_kv_heads": case.num_kv_heads,
                      "head_dim": case.head_dim, "block_size": case.block_size},
            "lengths": {"batch": case.batch, "min": min(case.seq_lens), "max": max(case.seq_lens),
                        "total": sum(case.seq_lens)},
            "ratio": self.ratio, "bound": self.output.bound, "verdict": self.verdict,
            "failed_checks": self.failed_checks, "verdicts": self.verdicts,
            "ascend_ratio": self.ascend.margin if self.ascend is not None else None,
            "output": self.output.as_dict(), "caches": [c.as_dict() for c in self.caches],
            "ascend": self.ascend.as_dict() if self.ascend is not None else None,
            "determinism": self.determinism.as_dict() if self.determinism is not None else None,
            "hazards": self.hazards, "notes": self.notes, "case": case.to_dict(),
            **({"graph": self.layer.graph} if self.layer is not None and self.layer.graph else {}),
        }

    def explain(self, replay_file: Path | None = None) -> str:
        """A failure that reads well: the case, the worst spot with values, the numbers, hazards, replay."""
        o = self.output
        lines = [f"{self.case.summary()}  (case {self.case.case_id}, backend {self.backend})",
                 f"  output, dual reference{'' if self.gating.gates('dual') else ' (reported, not gating)'}: "
                 f"{o.verdict.upper()}  max err {o.max_abs_err:.3e} / bound {o.bound:.3e} "
                 f"(ratio {fmt_ratio(o.ratio)}; baseline max {o.baseline_max_abs_err:.3e}; the {o.bound_term} term "
                 f"binds), mean err {o.mean_abs_err:.3e} / {o.mean_bound:.3e} (ratio {fmt_ratio(o.mean_ratio)})"]
        lines += [f"    - {reason}" for reason in o.reasons]
        if o.worst_row >= 0:
            lines.append(f"    worst: sequence {o.worst_seq}, head {o.worst_head} (row {o.worst_row}); "
                         f"per-sequence ratios [{', '.join(fmt_ratio(r) for r in o.per_seq_ratio)}]")
        for w in o.worst_values[:3]:
            lines.append(f"      row {w['row']} head {w['head']} dim {w['dim']}: out {w['out']:.6g}  golden "
                         f"{w['golden']:.6g}  baseline {w['baseline']:.6g}")
        if self.ascend is not None:
            a = self.ascend
            gate = "" if self.gating.gates("ascend") else " (reported, not gating)"
            lines.append(f"  output, Ascend benchmark standard {a.level}{gate}: {a.verdict.upper()}  "
                         + ", ".join(f"{m} {fmt_ratio(a.ratios[m])}/{a.limits[m]:g}" for m in a.ratios))
            lines += [f"    - {reason}" for reason in a.reasons]
        if self.determinism is not None and not self.determinism.passed:
            gate = "" if self.gating.gates("determinism") else " (reported, not gating)"
            lines.append(f"  determinism over {self.determinism.runs} runs{gate}: FAIL")
            lines += [f"    - {reason}" for reason in self.determinism.reasons]
        for c in self.caches:
            lines.append(f"  {c.name}: {c.verdict.upper()} ({c.mismatched_slots}/{c.slots} slots differ)")
            lines += [f"    - {reason}" for reason in c.reasons]
        for h in self.hazards:
            if h["accepted"]:
                status = f"acknowledged ({h['acknowledgement']})"
            elif h["acknowledgement"]:
                status = f"FAILS: --strict-contracts ignores its acknowledgement {h['acknowledgement']}"
            else:
                status = "FAILS: not acknowledged"
            lines.append(f"  hazard [{h['code']}] {status}: {h['op']} {h['argument']}: {h['rule']}")
            if h.get("detail"):
                lines.append(f"    ({h['detail']})")
        if replay_file is not None:
            lines.append(f"  replay: npu-conformance replay {replay_file}   (the file holds the settings that judged it)")
        return "\n".join(lines)


def judge(case: Case, t: Tensors, run: LayerRun, expected: Expected, policy, backend: str,
          settings: RunSettings | None = None, rerun: LayerRun | None = None) -> Outcome:
    """Judge the layer's `run` (and `rerun`, the same inputs run again, for determinism)."""
    settings = settings or current_settings()
    gating = settings.policies.gating
    output = compare_output(run.out, expected.golden, expected.baseline, dtype=case.torch_dtype,
                            row_seq=expected.row_seq, empty_rows=expected.empty_rows, policy=policy)
    ascend = compare_ascend(run.out, expected.golden, expected.baseline, dtype=case.torch_dtype,
                            level=gating.ascend_level)
    determinism = None if rerun is None else compare_runs([run, rerun], expected.row_seq, case.head_dim)
    caches = []
    for name, actual, want in (("k_cache", run.k_cache, expected.k_cache), ("v_cache", run.v_cache, expected.v_cache)):
        if expected.empty_rows:  # graph padding rows write the dummy slot
            want = _accept_dummy_write(want, actual, case, t, name, expected.empty_rows)
        caches.append(compare_cache(name, actual, want))
    hazards = judge_hazards(run.hazards, case.phase, settings.acknowledgements, settings.strict_contracts)
    return Outcome(case, backend, output, caches, hazards, run.notes, run, ascend, determinism, gating)


def _accept_dummy_write(want, actual, case: Case, t: Tensors, name: str, rows: list[int]) -> torch.Tensor:
    """Padded graph rows all write slot (dummy, 0); the winner among duplicates is undefined, so that
    slot may hold any padded row's value (or stay untouched). Every other slot stays bit-exact."""
    source = (t.k if name == "k_cache" else t.v).cpu()
    got = actual[case.dummy_block, 0]
    candidates = [want[case.dummy_block, 0]] + [source[r].reshape(-1) for r in rows]
    if any(bits_equal(got, c) for c in candidates):
        want = want.clone()
        want[case.dummy_block, 0] = got
    return want


def check_case(case: Case, run: RunSettings | None = None, tensors: Tensors | None = None) -> Outcome:
    """Run and judge `case`; `tensors` overrides the case's own (e.g. a live engine's cache state)."""
    run = run or current_settings()
    prepare_device(run.backend)
    tensors = tensors if tensors is not None else case.materialise(run.device)
    ctx = runner_context(case, tensors, run)  # before the oracle: out-of-contract input is named, not crashed on
    expected = expected_results(case, tensors)
    layer_run = run_layer(case, tensors, run, validated=ctx)
    # The same inputs again (the layer writes to clones of the starting caches, so this run starts
    # where the first did): on the emulator this costs one more layer call per case.
    rerun = run_layer(case, tensors, run, validated=ctx)
    return judge(case, tensors, layer_run, expected, run.policies.for_dtype(case.torch_dtype), run.backend, run,
                 rerun)
