"""Contract: out-of-contract inputs are refused with a named rule before any kernel runs.

Random corruptions of a valid Context / cache / slot mapping must always be rejected by the
validator (real kernels do not check indices: they would corrupt memory). On the emulated backend,
a call that bypasses the validator must still fail, naming the op and the rule.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conformance.cases.case import Case
from conformance.emulator import ContractViolation
from conformance.judge.layer_run import run_layer
from conformance.judge.settings import settings
from conformance.suite import _given
from npu_attention import Attention, ContextError, kernels, use_context

pytestmark = pytest.mark.suite


def _replace(ctx, **fields):
    return dataclasses.replace(ctx, **fields)


def _clone_set(tensor: torch.Tensor, index, value) -> torch.Tensor:
    out = tensor.clone()
    out[index] = value
    return out


def _slot(prefill_rule: str, decode_rule: str):
    return lambda c: ("Context.slot_mapping", prefill_rule if c.is_prefill else decode_rule)


# name -> (applies to phase?, corrupt(case, ctx, k_cache, v_cache, draw) -> (ctx, k_cache, v_cache),
#          expected(case) -> (the field the ContextError must name, a fragment of its rule))
CORRUPTIONS = {
    "flat decode slot mapping": (lambda c: not c.is_prefill, lambda c, ctx, k, v, d: (
        _replace(ctx, slot_mapping=ctx.slot_mapping[:, 0] * c.block_size + ctx.slot_mapping[:, 1]), k, v),
        _slot("", "flat [B] mapping")),
    "4-D cache": (lambda c: True, lambda c, ctx, k, v, d: (
        ctx, k.view(c.num_blocks, c.block_size, c.num_kv_heads, c.head_dim), v), lambda c: ("k_cache", "4-D")),
    "missing block_size": (lambda c: True, lambda c, ctx, k, v, d: (_replace(ctx, block_size=None), k, v),
                           lambda c: ("Context.block_size", "is required")),
    "wrong block_size": (lambda c: True, lambda c, ctx, k, v, d: (_replace(ctx, block_size=c.block_size * 2), k, v),
                         lambda c: ("k_cache", "dim 1 must equal Context.block_size")),
    "cached prefix in prefill": (lambda c: c.is_prefill, lambda c, ctx, k, v, d: (
        _replace(ctx, cu_seqlens_k=ctx.cu_seqlens_k + torch.arange(c.batch + 1, dtype=torch.int32,
                                                                    device=ctx.cu_seqlens_k.device)), k, v),
        lambda c: ("Context.cu_seqlens_k", "must equal cu_seqlens_q")),
    "slot out of range": (lambda c: True, lambda c, ctx, k, v, d: (_replace(ctx, slot_mapping=_clone_set(
        ctx.slot_mapping, d(st.integers(0, ctx.slot_mapping.shape[0] - 1)),
        c.num_blocks * c.block_size if c.is_prefill else torch.tensor([c.num_blocks, 0], dtype=torch.int32))), k, v),
        _slot("prefill slots must be in [0, num_blocks*block_size", "block must be in [0,")),
    "negative slot": (lambda c: True, lambda c, ctx, k, v, d: (_replace(ctx, slot_mapping=_clone_set(
        ctx.slot_mapping, d(st.integers(0, c.batch - 1)) if not c.is_prefill else 0, -1)), k, v),
        _slot("no -1 padding in prefill", "block must be in [0,")),
    "block id out of range": (lambda c: not c.is_prefill, lambda c, ctx, k, v, d: (_replace(
        ctx, block_tables=_clone_set(ctx.block_tables, (d(st.integers(0, c.batch - 1)), 0),
                                     c.num_blocks + d(st.integers(0, 5)))), k, v),
        lambda c: ("Context.block_tables", "block id must be in [0,")),
    "block table too narrow": (lambda c: not c.is_prefill and max(len(t) for t in c.block_tables) > 1,
                               lambda c, ctx, k, v, d: (_replace(
                                   ctx, block_tables=ctx.block_tables[:, : max(len(t) for t in c.block_tables) - 1]),
                                   k, v),
                               lambda c: ("Context.block_tables", "but the table is")),
    "int64 slot mapping": (lambda c: True, lambda c, ctx, k, v, d: (
        _replace(ctx, slot_mapping=ctx.slot_mapping.long()), k, v), _slot("must be int32", "must be int32")),
    "context_lens past the table": (lambda c: not c.is_prefill, lambda c, ctx, k, v, d: (_replace(
        ctx, context_lens=_clone_set(ctx.context_lens, slice(0, c.batch),  # real rows only
                                     ctx.context_lens[:c.batch] + c.block_size * ctx.block_tables.shape[1])), k, v),
        lambda c: ("Context.block_tables", "but the table is")),
    "cache dtype mismatch": (lambda c: True, lambda c, ctx, k, v, d: (
        ctx, k, v.to(torch.float32 if v.dtype != torch.float32 else torch.float16)),
        lambda c: ("v_cache", "must match k_cache")),
    "head count not divisible": (lambda c: c.num_kv_heads > 1, None,
                                 lambda c: ("num_heads", "multiple of num_kv_heads")),
}


class _CallCounter:
    """A kernel backend that counts calls and computes nothing: proves no kernel ran."""

    def __init__(self):
        self.calls = 0

    def _op(self, *args, **kwargs):
        self.calls += 1
        raise AssertionError("a kernel was called with an out-of-contract context")

    def backend(self):
        ops = {name: self._op for name in ("npu_fused_infer_attention_score_v2", "_npu_reshape_and_cache",
                                            "scatter_update_")}
        air = kernels.namespace(ops=kernels.namespace(npu_fused_infer_attention_score=self._op))
        return kernels.KernelBackend("call-counter", kernels.namespace(**ops), air)


@given(case=st.one_of(_given.prefill, _given.decode_eager, _given.decode_graph), data=st.data())
def test_corrupted_contexts_are_refused_before_any_kernel_runs(case, data):
    applicable = sorted(name for name, (applies, _, _) in CORRUPTIONS.items() if applies(case))
    name = data.draw(st.sampled_from(applicable), label="corruption")
    counter = _CallCounter()
    kernels.register_backend("call-counter", counter.backend)
    tensors = case.materialise(settings().device)
    run = dataclasses.replace(settings(), backend="call-counter")
    if name == "head count not divisible":
        # Case refuses such heads itself; force one past it to prove the validator refuses it too.
        bad, ctx, bad_tensors = copy.copy(case), None, tensors
        object.__setattr__(bad, "num_heads", case.num_heads + 1)
    else:
        ctx, k, v = CORRUPTIONS[name][1](case, case.context(run.device), tensors.k_cache, tensors.v_cache,
                                         data.draw)
        bad, bad_tensors = case, dataclasses.replace(tensors, k_cache=k, v_cache=v)
    with pytest.raises(ContextError) as info:
        run_layer(bad, bad_tensors, run, context=ctx)
    assert counter.calls == 0, f"{name}: a kernel ran before the validator refused the context"
    field, fragment = CORRUPTIONS[name][2](case)
    assert (info.value.field, fragment in info.value.rule) == (field, True), (
        f"{name}: expected {field} with a rule containing {fragment!r}, got {info.value}")


UPSTREAM_FLAT_DECODE = Case(phase="decode_eager", num_heads=4, num_kv_heads=2, head_dim=64, dtype="float16",
                            block_size=16, num_blocks=10, seq_lens=(20, 7, 33), block_tables=((3, 5), (8,), (1, 6, 2)),
                            seed=1)


@pytest.mark.own_layer
@pytest.mark.skipif("config.getoption('backend') == 'npu'",
                    reason="would corrupt device memory on real kernels: the emulator proves the refusal")
def test_upstream_flat_decode_slots_fail_in_the_kernel_naming_op_and_rule():
    """Without the validator, upstream nano-vllm's flat decode slots reach scatter_update_ and must
    be caught there, not silently written i blocks too far."""
    case = UPSTREAM_FLAT_DECODE
    tensors = case.materialise("cpu")
    ctx = case.context()
    flat = ctx.slot_mapping[:, 0] * case.block_size + ctx.slot_mapping[:, 1]
    layer = Attention(case.num_heads, case.head_dim, None, case.num_kv_heads)
    layer.k_cache, layer.v_cache = tensors.k_cache.clone(), tensors.v_cache.clone()
    with kernels.use_backend("emulated"), use_context(dataclasses.replace(ctx, slot_mapping=flat)):
        with pytest.raises(ContractViolation) as info:
            layer(tensors.q, tensors.k, tensors.v)
    assert "scatter_update_" in info.value.op and info.value.argument == "indices", str(info.value)
