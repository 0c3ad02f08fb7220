"""`torch.ops.<namespace>.<op>` for every modelled op, implemented by the emulator (opt-in: `install()`).

`torch_npu.<op>` is `torch.ops.npu.<op>` (Ascend/pytorch torch_npu/__init__.py), so code written against
the real stack may call the dispatcher directly: `torch.ops.npu.npu_fused_infer_attention_score(...)`,
`torch.ops.npu.npu_fused_infer_attention_score.out(...)`. `install()` defines each modelled op with
torch.library under its real namespace and schema, implemented by the emulated op, so such a call reaches
the emulator on CPU torch without torch_npu. Nothing is registered at import; `install()` is idempotent
and refuses to shadow an op some other library (the real torch_npu) already defined.

Schemas are copied from their public definitions: the `npu` ops from Ascend/op-plugin
op_plugin/config/op_plugin_functions.yaml @517f2e7 (line per entry below); the ATB ops live in the `atb`
namespace (op_plugin/ops/atb/ReshapeAndCachAtb.cpp L59-60, ReshapeAndCacheSisoAtb.cpp L38), torchair's
graph op in `air` (Ascend/torchair python/torchair/ops/_npu_fused_infer_attention_score.py L13-27).
"""

from __future__ import annotations

import threading

import torch

from conformance.emulator import torch_npu as emulated_torch_npu
from conformance.emulator import torchair as emulated_torchair

#: The arguments of npu_fused_infer_attention_score (v1) and _v2, as op_plugin_functions.yaml spells them
#: for the op, its `.out` overload (plus workspace and the outputs) and its get_max_workspace twin.
_FIA_V1_ARGS = (
    "Tensor query, Tensor key, Tensor value, *, Tensor? pse_shift=None, Tensor? atten_mask=None, "
    "SymInt[]? actual_seq_lengths=None, SymInt[]? actual_seq_lengths_kv=None, "
    "Tensor? dequant_scale1=None, Tensor? quant_scale1=None, Tensor? dequant_scale2=None, "
    "Tensor? quant_scale2=None, Tensor? quant_offset2=None, Tensor? antiquant_scale=None, "
    "Tensor? antiquant_offset=None, Tensor? key_antiquant_scale=None, "
    "Tensor? key_antiquant_offset=None, Tensor? value_antiquant_scale=None, "
    "Tensor? value_antiquant_offset=None, Tensor? block_table=None, Tensor? query_padding_size=None, "
    "Tensor? kv_padding_size=None, Tensor? key_shared_prefix=None, Tensor? value_shared_prefix=None, "
    "SymInt[]? actual_shared_prefix_len=None, Tensor? query_rope=None, Tensor? key_rope=None, "
    "Tensor? key_rope_antiquant_scale=None, int num_heads=1, float scale=1.0, "
    "int pre_tokens=2147483647, int next_tokens=2147483647, str input_layout=\"BSH\", "
    "int num_key_value_heads=0, int sparse_mode=0, int inner_precise=0, int block_size=0, "
    "int antiquant_mode=0, int key_antiquant_mode=0, int value_antiquant_mode=0, "
    "bool softmax_lse_flag=False"
)
_FIA_V2_ARGS = (
    "Tensor query, Tensor key, Tensor value, *, Tensor? query_rope=None, Tensor? key_rope=None, "
    "Tensor? pse_shift=None, Tensor? atten_mask=None, SymInt[]? actual_seq_qlen=None, "
    "SymInt[]? actual_seq_kvlen=None, Tensor? block_table=None, Tensor? dequant_scale_query=None, "
    "Tensor? dequant_scale_key=None, Tensor? dequant_offset_key=None, "
    "Tensor? dequant_scale_value=None, Tensor? dequant_offset_value=None, "
    "Tensor? dequant_scale_key_rope=None, Tensor? quant_scale_out=None, Tensor? quant_offset_out=None, "
    "Tensor? quant_scale_p=None, Tensor? learnable_sink=None, int num_query_heads=1, "
    "int num_key_value_heads=0, float softmax_scale=1.0, int pre_tokens=2147483647, "
    "int next_tokens=2147483647, str input_layout=\"BSH\", int sparse_mode=0, int block_size=0, "
    "int query_quant_mode=0, int key_quant_mode=0, int value_quant_mode=0, int inner_precise=0, "
    "bool return_softmax_lse=False, int? query_dtype=None, int? key_dtype=None, int? value_dtype=None, "
    "int? query_rope_dtype=None, int? key_rope_dtype=None, int? key_shared_prefix_dtype=None, "
    "int? value_shared_prefix_dtype=None, int? dequant_scale_query_dtype=None, "
    "int? dequant_scale_key_dtype=None, int? dequant_scale_value_dtype=None, "
    "int? dequant_scale_key_rope_dtype=None, int? out_dtype=None"
)
_OUT_ARGS = "Tensor? workspace=None, Tensor(a!) attention_out, Tensor(b!) softmax_lse"
_OUT_RETURNS = "(Tensor(a!), Tensor(b!))"

#: (namespace, schema) of every modelled op, as its public definition reads.
SCHEMAS = (
    # op_plugin_functions.yaml L6177, L6182, L6186
    ("npu", f"npu_fused_infer_attention_score({_FIA_V1_ARGS}) -> (Tensor, Tensor)"),
    ("npu", f"npu_fused_infer_attention_score.out({_FIA_V1_ARGS}, {_OUT_ARGS}) -> {_OUT_RETURNS}"),
    ("npu", f"_npu_fused_infer_attention_score_get_max_workspace({_FIA_V1_ARGS}) -> Tensor"),
    # op_plugin_functions.yaml L6194, L6199, L6203
    ("npu", f"npu_fused_infer_attention_score_v2({_FIA_V2_ARGS}) -> (Tensor, Tensor)"),
    ("npu", f"npu_fused_infer_attention_score_v2.out({_FIA_V2_ARGS}, {_OUT_ARGS}) -> {_OUT_RETURNS}"),
    ("npu", f"_npu_fused_infer_attention_score_v2_get_max_workspace({_FIA_V2_ARGS}) -> Tensor"),
    # op_plugin_functions.yaml L6380
    ("npu", (
        "npu_incre_flash_attention(Tensor query, Tensor key, Tensor value, *, Tensor? padding_mask=None, "
        "Tensor? atten_mask=None, Tensor? pse_shift=None, SymInt[]? actual_seq_lengths=None, "
        "Tensor? antiquant_scale=None, Tensor? antiquant_offset=None, Tensor? block_table=None, "
        "Tensor? dequant_scale1=None, Tensor? quant_scale1=None, Tensor? dequant_scale2=None, "
        "Tensor? quant_scale2=None, Tensor? quant_offset2=None, Tensor? kv_padding_size=None, "
        "int num_heads=1, float scale_value=1.0, str input_layout=\"BSH\", int num_key_value_heads=0, "
        "int block_size=0, int inner_precise=1) -> Tensor"
    )),
    # op_plugin_functions.yaml L6759
    ("npu", (
        "npu_prompt_flash_attention(Tensor query, Tensor key, Tensor value, *, Tensor? padding_mask=None, "
        "Tensor? atten_mask=None, Tensor? pse_shift=None, int[]? actual_seq_lengths=None, "
        "Tensor? deq_scale1=None, Tensor? quant_scale1=None, Tensor? deq_scale2=None, "
        "Tensor? quant_scale2=None, Tensor? quant_offset2=None, int num_heads=1, float scale_value=1.0, "
        "int pre_tokens=2147483647, int next_tokens=0, str input_layout=\"BSH\", int num_key_value_heads=0, "
        "int[]? actual_seq_lengths_kv=None, int sparse_mode=0) -> Tensor"
    )),
    # op_plugin_functions.yaml L6950
    ("npu", (
        "npu_scatter_pa_kv_cache(Tensor key, Tensor value, Tensor(a!) key_cache, Tensor(b!) value_cache, "
        "Tensor slot_mapping, *, Tensor? compress_lens=None, Tensor? compress_seq_offsets=None, "
        "Tensor? seq_lens=None, str? cache_mode='PA_NZ') -> ()"
    )),
    # op_plugin_functions.yaml L7149
    ("npu", (
        "scatter_update(Tensor self, Tensor indices, Tensor updates, int axis) -> Tensor"
    )),
    # op_plugin_functions.yaml L7154
    ("npu", (
        "scatter_update_(Tensor(a!) self, Tensor indices, Tensor updates, int axis) -> Tensor(a!)"
    )),
    # op_plugin/ops/atb/ReshapeAndCachAtb.cpp L59-60 @517f2e7
    ("atb", (
        "_npu_reshape_and_cache(Tensor key, Tensor value, Tensor(a!) key_cache, Tensor(b!) value_cache, "
        "Tensor slot_indices) -> ()"
    )),
    # op_plugin/ops/atb/ReshapeAndCacheSisoAtb.cpp L38 @517f2e7
    ("atb", "_npu_reshape_and_cache_siso(Tensor key, Tensor(a!) key_cache, Tensor slot_indices) -> ()"),
    # Ascend/torchair python/torchair/ops/_npu_fused_infer_attention_score.py L13-27 @0d23897
    ("air", (
        "npu_fused_infer_attention_score(Tensor query, Tensor key, Tensor value, *, Tensor? pse_shift=None, "
        "Tensor? atten_mask=None, Tensor? actual_seq_lengths=None, Tensor? actual_seq_lengths_kv=None, "
        "Tensor? dequant_scale1=None, Tensor? quant_scale1=None, Tensor? dequant_scale2=None, "
        "Tensor? quant_scale2=None, Tensor? quant_offset2=None, Tensor? antiquant_scale=None, "
        "Tensor? antiquant_offset=None, Tensor? key_antiquant_scale=None, Tensor? key_antiquant_offset=None, "
        "Tensor? value_antiquant_scale=None, Tensor? value_antiquant_offset=None, Tensor? block_table=None, "
        "Tensor? query_padding_size=None, Tensor? kv_padding_size=None, Tensor? key_shared_prefix=None, "
        "Tensor? value_shared_prefix=None, Tensor? actual_shared_prefix_len=None, Tensor? query_rope=None, "
        "Tensor? key_rope=None, Tensor? key_rope_antiquant_scale=None, int num_heads=1, float scale=1.0, "
        "int pre_tokens=2147483647, int next_tokens=2147483647, str input_layout=\"BSH\", "
        "int num_key_value_heads=0, int sparse_mode=0, int inner_precise=0, int block_size=0, "
        "int antiquant_mode=0, int key_antiquant_mode=0, int value_antiquant_mode=0, "
        "bool softmax_lse_flag=False) -> (Tensor, Tensor)"
    )),
)

#: The dispatch key the emulated kernels are registered for: any backend, so CPU tensors reach them.
DISPATCH_KEY = "CompositeExplicitAutograd"

_lock = threading.Lock()
_libraries: dict[str, torch.library.Library] = {}  # kept alive: a Library deregisters when collected


class AlreadyDefined(RuntimeError):
    """An op `install()` would define exists already, defined by another library (the real torch_npu)."""


def op_name(schema: str) -> str:
    """The qualified-less name of a schema: "npu_fused_infer_attention_score.out" -> with its overload."""
    return schema.split("(", 1)[0]


def _emulated(namespace: str, name: str):
    """The emulated op behind `namespace::name` (an overload name selects the op's attribute)."""
    base, _, overload = name.partition(".")
    target = emulated_torchair.ops if namespace == "air" else emulated_torch_npu
    fn = getattr(target, base)
    return getattr(fn, overload) if overload else fn


def _exists(namespace: str, name: str) -> bool:
    base, _, overload = name.partition(".")
    try:
        packet = getattr(getattr(torch.ops, namespace), base)
        return overload in packet.overloads() if overload else "default" in packet.overloads()
    except (AttributeError, RuntimeError):
        return False


def _kernel(fn):
    def kernel(*args, **kwargs):
        return fn(*args, **kwargs)
    kernel.__name__ = getattr(fn, "__name__", "emulated")
    return kernel


def installed() -> bool:
    return bool(_libraries)


def install() -> tuple[str, ...]:
    """Define every modelled op under torch.ops (idempotent); returns the qualified names defined."""
    with _lock:
        if _libraries:
            return qualified_names()
        clashes = [f"{ns}::{op_name(s)}" for ns, s in SCHEMAS if _exists(ns, op_name(s))]
        if clashes:
            raise AlreadyDefined(f"not installing the emulated ops: {', '.join(clashes)} already defined (is the real "
                                 "torch_npu / torchair loaded?)")
        libraries = {ns: torch.library.Library(ns, "FRAGMENT") for ns, _ in SCHEMAS}
        for namespace, schema in SCHEMAS:
            name = op_name(schema)
            libraries[namespace].define(schema)
            libraries[namespace].impl(name, _kernel(_emulated(namespace, name)), DISPATCH_KEY)
        _libraries.update(libraries)
        return qualified_names()


def qualified_names() -> tuple[str, ...]:
    return tuple(f"{ns}::{op_name(s)}" for ns, s in SCHEMAS)
