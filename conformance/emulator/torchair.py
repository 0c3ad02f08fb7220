"""Emulated torchair: `ops.npu_fused_infer_attention_score` (the `air::` graph-mode op).

Same schema as torch_npu's v1 op except that `actual_seq_lengths`, `actual_seq_lengths_kv` and
`actual_shared_prefix_len` are `Tensor?` (Ascend/torchair python/torchair/ops/_npu_fused_infer_attention_score.py),
and the doc asks for int64 length tensors (docs/zh/ascend_ir/api/ops/npu_fused_infer_attention_score.md).

On hardware the op runs only inside a torchair-compiled (max-autotune) graph; its CPU/PrivateUse1
eager implementations raise NotImplementedError ("本接口只支持图模式，不支持Eager模式"). The emulator
computes the result in eager mode too, so a layer can be exercised without compiling, but records the
hazard "graph op called outside a compiled graph" (a HazardError in strict mode).

"Inside a compiled graph" means `torch.compiler.is_compiling()` (the op is being traced) or an open
`compiled_graph(mode)` block: a harness that wraps the emulated op as a `torch.library.custom_op` runs the
implementation when the compiled graph executes, where tracing is over, so it declares the graph run
with `with compiled_graph(mode): compiled_fn(...)`. Only torchair's GE converter lowers the op: a graph
in "max-autotune" runs it; in any other mode (torchair's "reduce-overhead" aclgraph capture) the call
reaches the op's NPU implementation, which raises NotImplementedError ("only support in max-autotune
mode", Ascend/torchair python/torchair/ops/_npu_fused_infer_attention_score.py L37-43; the converter
is registered for GE only, L59). The emulator refuses such a call the same way (a violation).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import torch

from conformance.emulator import sources as src
from conformance.emulator.fia import fused_infer_attention, v1_call
from conformance.emulator.fia_args import AIR_OP, V1_NAMES
from conformance.emulator.findings import Checker, op_call

LOWERING_MODE = "max-autotune"


class _GraphState(threading.local):
    def __init__(self) -> None:
        self.modes: list[str] = []


_graph = _GraphState()


@contextlib.contextmanager
def compiled_graph(mode: str = LOWERING_MODE) -> Iterator[None]:
    """Declare that emulated graph ops called inside the block run as part of a graph compiled in `mode`."""
    _graph.modes.append(mode)
    try:
        yield
    finally:
        _graph.modes.pop()


def in_compiled_graph() -> bool:
    return torch.compiler.is_compiling() or bool(_graph.modes)


def graph_mode() -> str | None:
    """The mode of the graph running now (None outside compiled_graph(); tracing is mode-neutral)."""
    return _graph.modes[-1] if _graph.modes else None


def npu_fused_infer_attention_score(
    query, key, value, *, pse_shift=None, atten_mask=None, actual_seq_lengths=None, actual_seq_lengths_kv=None,
    dequant_scale1=None, quant_scale1=None, dequant_scale2=None, quant_scale2=None, quant_offset2=None,
    antiquant_scale=None, antiquant_offset=None, key_antiquant_scale=None, key_antiquant_offset=None,
    value_antiquant_scale=None, value_antiquant_offset=None, block_table=None, query_padding_size=None,
    kv_padding_size=None, key_shared_prefix=None, value_shared_prefix=None, actual_shared_prefix_len=None,
    query_rope=None, key_rope=None, key_rope_antiquant_scale=None, num_heads=1, scale=1.0,
    pre_tokens=2147483647, next_tokens=2147483647, input_layout="BSH", num_key_value_heads=0, sparse_mode=0,
    inner_precise=0, block_size=0, antiquant_mode=0, key_antiquant_mode=0, value_antiquant_mode=0,
    softmax_lse_flag=False,
):
    """Emulated torchair.ops.npu_fused_infer_attention_score. Returns (attention_out, softmax_lse)."""
    with op_call():
        arguments = dict(locals())
        mode = graph_mode()
        if mode is not None and mode != LOWERING_MODE:
            raise Checker(AIR_OP, V1_NAMES).violation(
                "(call)", f"runs only in a graph compiled in {LOWERING_MODE} mode (GE); in {mode} the call reaches "
                "the op's NPU implementation, which raises NotImplementedError",
                src.at(src.TORCHAIR_OP, "37-43"), detail=f"graph mode {mode}; the GE converter: "
                                                           f"{src.at(src.TORCHAIR_OP, '59')}")
        if not in_compiled_graph():
            Checker(AIR_OP, V1_NAMES).hazard(
                "fia/graph-op-eager", "(call)", "graph op called outside a compiled graph: on hardware the eager call "
                "raises NotImplementedError (graph mode only)", src.TORCHAIR_DOC, detail=f"see also {src.TORCHAIR_OP}")
        return fused_infer_attention(v1_call(AIR_OP, arguments, lengths_are_tensors=True))


#: `torchair.ops`, as the layer reaches it (`tng.ops.npu_fused_infer_attention_score`).
ops = SimpleNamespace(npu_fused_infer_attention_score=npu_fused_infer_attention_score)
