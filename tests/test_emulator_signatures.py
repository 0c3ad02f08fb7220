"""The emulated ops have the real signatures: same names, order, defaults and keyword-only split.

The schema strings are the public ones: Ascend/op-plugin op_plugin/config/op_plugin_functions.yaml
(v1, v2 as of L6194 at 517f2e7, scatter_update_), Ascend/torchair
python/torchair/ops/_npu_fused_infer_attention_score.py (the air op) and the atb registration of
_npu_reshape_and_cache (op_plugin/ops/atb/ReshapeAndCachAtb.cpp).
"""

import inspect
import re

import pytest

from conformance import emulator

FIA_V1 = (
    "npu_fused_infer_attention_score(Tensor query, Tensor key, Tensor value, *, Tensor? pse_shift=None, "
    "Tensor? atten_mask=None, SymInt[]? actual_seq_lengths=None, SymInt[]? actual_seq_lengths_kv=None, "
    "Tensor? dequant_scale1=None, Tensor? quant_scale1=None, Tensor? dequant_scale2=None, "
    "Tensor? quant_scale2=None, Tensor? quant_offset2=None, Tensor? antiquant_scale=None, "
    "Tensor? antiquant_offset=None, Tensor? key_antiquant_scale=None, Tensor? key_antiquant_offset=None, "
    "Tensor? value_antiquant_scale=None, Tensor? value_antiquant_offset=None, Tensor? block_table=None, "
    "Tensor? query_padding_size=None, Tensor? kv_padding_size=None, Tensor? key_shared_prefix=None, "
    "Tensor? value_shared_prefix=None, SymInt[]? actual_shared_prefix_len=None, Tensor? query_rope=None, "
    "Tensor? key_rope=None, Tensor? key_rope_antiquant_scale=None, int num_heads=1, float scale=1.0, "
    "int pre_tokens=2147483647, int next_tokens=2147483647, str input_layout=\"BSH\", "
    "int num_key_value_heads=0, int sparse_mode=0, int inner_precise=0, int block_size=0, "
    "int antiquant_mode=0, int key_antiquant_mode=0, int value_antiquant_mode=0, "
    "bool softmax_lse_flag=False) -> (Tensor, Tensor)"
)
FIA_V2 = (
    "npu_fused_infer_attention_score_v2(Tensor query, Tensor key, Tensor value, *, Tensor? query_rope=None, "
    "Tensor? key_rope=None, Tensor? pse_shift=None, Tensor? atten_mask=None, SymInt[]? actual_seq_qlen=None, "
    "SymInt[]? actual_seq_kvlen=None, Tensor? block_table=None, Tensor? dequant_scale_query=None, "
    "Tensor? dequant_scale_key=None, Tensor? dequant_offset_key=None, Tensor? dequant_scale_value=None, "
    "Tensor? dequant_offset_value=None, Tensor? dequant_scale_key_rope=None, Tensor? quant_scale_out=None, "
    "Tensor? quant_offset_out=None, Tensor? quant_scale_p=None, Tensor? learnable_sink=None, int num_query_heads=1, "
    "int num_key_value_heads=0, float softmax_scale=1.0, int pre_tokens=2147483647, "
    "int next_tokens=2147483647, str input_layout=\"BSH\", int sparse_mode=0, int block_size=0, "
    "int query_quant_mode=0, int key_quant_mode=0, int value_quant_mode=0, int inner_precise=0, "
    "bool return_softmax_lse=False, int? query_dtype=None, int? key_dtype=None, int? value_dtype=None, "
    "int? query_rope_dtype=None, int? key_rope_dtype=None, int? key_shared_prefix_dtype=None, "
    "int? value_shared_prefix_dtype=None, int? dequant_scale_query_dtype=None, "
    "int? dequant_scale_key_dtype=None, int? dequant_scale_value_dtype=None, "
    "int? dequant_scale_key_rope_dtype=None, int? out_dtype=None) -> (Tensor, Tensor)"
)
FIA_AIR = (
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
)
SCATTER_UPDATE_ = "scatter_update_(Tensor(a!) self, Tensor indices, Tensor updates, int axis) -> Tensor(a!)"
SCATTER_UPDATE = "scatter_update(Tensor self, Tensor indices, Tensor updates, int axis) -> Tensor"
RESHAPE_AND_CACHE = (
    "_npu_reshape_and_cache(Tensor key, Tensor value, Tensor(a!) key_cache, Tensor(b!) value_cache, "
    "Tensor slot_indices) -> ()"
)

NO_DEFAULT = inspect.Parameter.empty


def _default(text):
    if text == "None":
        return None
    if text in ("True", "False"):
        return text == "True"
    if text.startswith('"'):
        return text.strip('"')
    return float(text) if "." in text else int(text)


def parse_schema(schema):
    """[(name, kind, default)] from a torch schema string."""
    inner = re.match(r"[\w.]+\((.*)\) ->", schema).group(1)
    params, kind = [], inspect.Parameter.POSITIONAL_OR_KEYWORD
    for item in (part.strip() for part in inner.split(",")):
        if item == "*":
            kind = inspect.Parameter.KEYWORD_ONLY
            continue
        decl, _, default = item.partition("=")
        name = decl.split()[-1]
        params.append((name, kind, _default(default) if default else NO_DEFAULT))
    return params


CASES = [
    ("torch_npu.npu_fused_infer_attention_score", emulator.torch_npu.npu_fused_infer_attention_score, FIA_V1),
    ("torch_npu.npu_fused_infer_attention_score_v2", emulator.torch_npu.npu_fused_infer_attention_score_v2, FIA_V2),
    ("torchair.ops.npu_fused_infer_attention_score", emulator.torchair.ops.npu_fused_infer_attention_score, FIA_AIR),
    ("torch_npu.scatter_update_", emulator.torch_npu.scatter_update_, SCATTER_UPDATE_),
    ("torch_npu.scatter_update", emulator.torch_npu.scatter_update, SCATTER_UPDATE),
    ("torch_npu._npu_reshape_and_cache", emulator.torch_npu._npu_reshape_and_cache, RESHAPE_AND_CACHE),
]


@pytest.mark.parametrize("name, fn, schema", CASES, ids=[c[0] for c in CASES])
def test_signature_matches_schema(name, fn, schema):
    expected = parse_schema(schema)
    actual = [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]
    assert actual == expected


def test_parser_reads_keyword_only_split():
    parsed = parse_schema(FIA_V2)
    assert parsed[:3] == [(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, NO_DEFAULT) for n in ("query", "key", "value")]
    assert all(kind == inspect.Parameter.KEYWORD_ONLY for _, kind, _ in parsed[3:])
    assert ("input_layout", inspect.Parameter.KEYWORD_ONLY, "BSH") in parsed


def test_namespaces_mirror_the_real_modules():
    assert callable(emulator.torch_npu.npu_fused_infer_attention_score_v2)
    assert callable(emulator.torchair.ops.npu_fused_infer_attention_score)
    assert issubclass(emulator.ContractViolation, ValueError)
    assert issubclass(emulator.HazardError, emulator.ContractViolation)
    assert issubclass(emulator.EmulatorUnsupported, NotImplementedError)


def test_emulator_imports_neither_reference_nor_the_layer():
    import pathlib

    root = pathlib.Path(emulator.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "import reference" not in text and "from reference" not in text, path
        assert "import npu_attention" not in text and "from npu_attention" not in text, path
