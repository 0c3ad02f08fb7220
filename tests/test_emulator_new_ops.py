"""The ops added beside FIA: PFA and IFA, the out/workspace variants of graph capture, the key-only and
scatter_pa_kv_cache cache writes, and their torch.ops registration.

Signatures are checked against the schemas the emulator registers (conformance.emulator.torch_ops.SCHEMAS,
copied from Ascend/op-plugin op_plugin/config/op_plugin_functions.yaml @517f2e7). Each violation row starts
from a valid call, changes one thing, and expects the rule's fragment.
"""

import inspect
import re
import subprocess
import sys

import pytest
import torch

from conformance import emulator
from conformance.emulator import ContractViolation, EmulatorUnsupported, catalogue, torch_ops

tn = emulator.torch_npu
F16, BF16 = torch.float16, torch.bfloat16
PFA = "torch_npu.npu_prompt_flash_attention"
IFA = "torch_npu.npu_incre_flash_attention"
V1_OUT = "torch_npu.npu_fused_infer_attention_score.out"
V2_OUT = "torch_npu.npu_fused_infer_attention_score_v2.out"
SPC = "torch_npu.npu_scatter_pa_kv_cache"
SISO = "torch_npu._npu_reshape_and_cache_siso"
MASK = torch.triu(torch.ones(2048, 2048, dtype=torch.bool), diagonal=1)


def r(*shape, dtype=F16, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed + sum(shape))).to(dtype)


# ---- signatures


def _default(text):
    text = text.strip()
    if text == "None":
        return None
    if text in ("True", "False"):
        return text == "True"
    if text[0] in "\"'":
        return text[1:-1]
    return float(text) if "." in text else int(text)


def parse_schema(schema):
    inner = re.match(r"[\w.]+\((.*)\) ->", schema).group(1)
    params, kind = [], inspect.Parameter.POSITIONAL_OR_KEYWORD
    for item in (part.strip() for part in inner.split(", ")):
        if item == "*":
            kind = inspect.Parameter.KEYWORD_ONLY
            continue
        decl, _, default = item.partition("=")
        params.append((decl.split()[-1], kind, _default(default) if default else inspect.Parameter.empty))
    return params


def _emulated(namespace, name):
    return torch_ops._emulated(namespace, name)


@pytest.mark.parametrize("namespace, schema", torch_ops.SCHEMAS,
                         ids=[torch_ops.op_name(s) for _, s in torch_ops.SCHEMAS])
def test_every_registered_schema_matches_the_emulated_signature(namespace, schema):
    expected = parse_schema(schema)
    actual = [(p.name, p.kind, p.default) for p in inspect.signature(_emulated(namespace, torch_ops.op_name(schema)))
              .parameters.values()]
    if torch_ops.op_name(schema).endswith(".out"):
        # torch_npu also takes the outputs as out=[attention_out, softmax_lse] (op-plugin's own tests, L44-47):
        # the emulated out variant adds `out` and lets the two named outputs default to None.
        assert actual[-1][0] == "out"
        actual = [(n, k, inspect.Parameter.empty if n in ("attention_out", "softmax_lse") else d)
                  for n, k, d in actual[:-1]]
    assert actual == expected


def test_modelled_ops_list_every_export_once():
    names = [name for name, _ in catalogue.MODELLED_OPS]
    assert len(names) == len(set(names)) and all(summary for _, summary in catalogue.MODELLED_OPS)
    exported = {f"torch_npu.{n}" for n in tn.__all__} | {"torchair.ops.npu_fused_infer_attention_score",
                                                         V1_OUT, V2_OUT}
    assert set(names) == exported
    assert {f"{ns}::{torch_ops.op_name(s)}" for ns, s in torch_ops.SCHEMAS} == {
        ("air::" if n.startswith("torchair") else "atb::" if n.split(".")[1].startswith("_npu_reshape") else "npu::")
        + n.split(".", 1)[1].removeprefix("ops.") for n in names}


# ---- PFA and IFA share the FIA kernels


def _bnsd(q_s=1, kv_s=7, seed=0):
    return r(2, 4, q_s, 64, seed=seed), r(2, 2, kv_s, 64, seed=seed + 1), r(2, 2, kv_s, 64, seed=seed + 2)


def test_ifa_equals_fia_decode():
    q, k, v = _bnsd()
    ifa = tn.npu_incre_flash_attention(q, k, v, num_heads=4, num_key_value_heads=2, input_layout="BNSD",
                                       scale_value=0.125, actual_seq_lengths=[3, 7])
    fia, _ = tn.npu_fused_infer_attention_score(q, k, v, num_heads=4, num_key_value_heads=2, input_layout="BNSD",
                                                scale=0.125, actual_seq_lengths_kv=[3, 7], inner_precise=1)
    assert ifa.shape == q.shape and torch.equal(ifa, fia)


def test_pfa_next_tokens_default_0_is_causal_with_a_mask():
    # PFA's schema default next_tokens=0 (FIA's is INT_MAX): with sparse_mode 0 and a mask the window
    # -pre <= j - i <= 0 is top-left causal.
    q, k, v = _bnsd(q_s=5, kv_s=5)
    mask = torch.zeros(5, 5, dtype=torch.bool)
    pfa = tn.npu_prompt_flash_attention(q, k, v, num_heads=4, num_key_value_heads=2, input_layout="BNSD",
                                        scale_value=0.125, atten_mask=mask)
    fia, _ = tn.npu_fused_infer_attention_score(q, k, v, num_heads=4, num_key_value_heads=2, input_layout="BNSD",
                                                scale=0.125, atten_mask=MASK, sparse_mode=2, inner_precise=1)
    torch.testing.assert_close(pfa, fia, atol=0, rtol=0)


def test_pfa_with_q_s_1_runs_the_prompt_kernel():
    # The PFA op never routes to the decode kernel: sparse_mode 12 (mode 2 with the (2048, 2048) mask) is
    # taken here, while the decode path refuses that mask (its dim 0 must be the batch size).
    q, k, v = _bnsd(q_s=1)
    out = tn.npu_prompt_flash_attention(q, k, v, num_heads=4, num_key_value_heads=2, input_layout="BNSD",
                                        scale_value=0.125, sparse_mode=12, atten_mask=MASK)
    assert out.shape == q.shape


def test_pfa_sparse_mode_10_is_mode_0_at_high_precision():
    q, k, v = (x.to(torch.bfloat16) for x in _bnsd(q_s=3))
    kw = dict(num_heads=4, num_key_value_heads=2, input_layout="BNSD", scale_value=0.125)
    with emulator.record_hazards() as high:
        a = tn.npu_prompt_flash_attention(q, k, v, sparse_mode=10, **kw)
    with emulator.record_hazards() as default:
        b = tn.npu_prompt_flash_attention(q, k, v, **kw)
    assert torch.equal(a, b)  # mode 0 either way
    # inner_precise 0 with mode 10, 1 otherwise: only the latter sets the bit bfloat16 ignores.
    assert [n.code for n in high.notes] == [] and [n.code for n in default.notes] == ["fia/bf16-inner-precise"]


# ---- out variants and the workspace query


def _v2_kwargs():
    q, k, v = _bnsd()
    return dict(query=q, key=k, value=v, num_query_heads=4, num_key_value_heads=2, input_layout="BNSD",
                softmax_scale=0.125, actual_seq_kvlen=[3, 7])


@pytest.mark.parametrize("by_name", [False, True])
def test_v2_out_writes_the_preallocated_outputs(by_name):
    kw = _v2_kwargs()
    expected, lse = tn.npu_fused_infer_attention_score_v2(**kw, return_softmax_lse=True)
    workspace = tn._npu_fused_infer_attention_score_v2_get_max_workspace(**kw)
    out, out_lse = torch.empty_like(expected), torch.empty(2, 4, 1, 1)
    outputs = dict(attention_out=out, softmax_lse=out_lse) if by_name else dict(out=[out, out_lse])
    result = tn.npu_fused_infer_attention_score_v2.out(**kw, return_softmax_lse=True, workspace=workspace, **outputs)
    assert result[0] is out and result[1] is out_lse
    assert torch.equal(out, expected) and torch.equal(out_lse, lse)


def test_out_leaves_softmax_lse_untouched_without_the_flag():
    kw = _v2_kwargs()
    lse = torch.full((1,), 7.0, dtype=F16)  # what graph-capture layers pass: one element of the query dtype
    tn.npu_fused_infer_attention_score_v2.out(**kw, out=[torch.empty(2, 4, 1, 64, dtype=F16), lse])
    assert lse.item() == 7.0


def test_workspace_query_checks_the_call():
    kw = _v2_kwargs()
    kw["num_key_value_heads"] = 3
    with pytest.raises(ContractViolation, match="must divide"):
        tn._npu_fused_infer_attention_score_v2_get_max_workspace(**kw)


# ---- cache writes


def test_scatter_pa_kv_cache_norm_writes_key_and_value_of_different_head_sizes():
    key, value = r(3, 2, 64), r(3, 2, 32)
    kc, vc = torch.zeros(4, 16, 2, 64, dtype=F16), torch.zeros(4, 16, 2, 32, dtype=F16)
    with emulator.record_hazards() as log:
        tn.npu_scatter_pa_kv_cache(key, value, kc, vc, torch.tensor([5, -1, 17], dtype=torch.int64),
                                   cache_mode="Norm")
    assert torch.equal(kc[0, 5], key[0]) and torch.equal(vc[1, 1], value[2])
    assert kc.abs().sum() == key[0].abs().sum() + key[2].abs().sum()  # token 1 (slot -1) skipped
    assert [n.code for n in log.notes] == ["spc/negative-slot"] and list(log) == []


def test_siso_writes_the_key_only():
    key = r(3, 2, 16)
    kc = torch.zeros(4, 4, 2, 16, dtype=F16)
    assert tn._npu_reshape_and_cache_siso(key, kc, torch.tensor([3, -1, 9], dtype=torch.int32)) is None
    assert torch.equal(kc[0, 3], key[0]) and torch.equal(kc[2, 1], key[2])


def test_duplicate_scatter_pa_slots_are_a_hazard():
    key = r(2, 1, 16)
    kc = torch.zeros(2, 4, 1, 16, dtype=F16)
    with emulator.record_hazards() as log:
        tn.npu_scatter_pa_kv_cache(key, key, kc, kc.clone(), torch.tensor([3, 3], dtype=torch.int32),
                                   cache_mode="Norm")
    assert [h.code for h in log] == ["spc/duplicate-slots"] and torch.equal(kc[0, 3], key[1])


# ---- violations and unmodelled features


def pfa(**over):
    q, k, v = _bnsd(q_s=4, kv_s=6)
    kw = dict(query=q, key=k, value=v, num_heads=4, num_key_value_heads=2, input_layout="BNSD", scale_value=0.125)
    kw.update(over)
    return tn.npu_prompt_flash_attention, kw


def ifa(**over):
    kw = dict(query=r(2, 4, 1, 64), key=r(6, 16, 128), value=r(6, 16, 128), num_heads=4, num_key_value_heads=2,
              input_layout="BNSD", scale_value=0.125, block_table=torch.tensor([[4, -1], [1, 3]], dtype=torch.int32),
              block_size=16, actual_seq_lengths=[5, 20])
    kw.update(over)
    return tn.npu_incre_flash_attention, kw


def v1_out(**over):
    q, k, v = _bnsd()
    kw = dict(query=q, key=k, value=v, num_heads=4, num_key_value_heads=2, input_layout="BNSD", scale=0.125,
              out=[torch.empty(2, 4, 1, 64, dtype=F16), torch.empty(1)])
    kw.update(over)
    return tn.npu_fused_infer_attention_score.out, kw


def spc(**over):
    kw = dict(key=r(3, 2, 16), value=r(3, 2, 16), key_cache=torch.zeros(4, 4, 2, 16, dtype=F16),
              value_cache=torch.zeros(4, 4, 2, 16, dtype=F16), slot_mapping=torch.tensor([3, 5, 9], dtype=torch.int32),
              cache_mode="Norm")
    kw.update(over)
    return tn.npu_scatter_pa_kv_cache, kw


def siso(**over):
    kw = dict(key=r(3, 2, 16), key_cache=torch.zeros(4, 4, 2, 16, dtype=F16),
              slot_indices=torch.tensor([3, 5, 9], dtype=torch.int32))
    kw.update(over)
    return tn._npu_reshape_and_cache_siso, kw


def invoke(fn, kw):
    kw = dict(kw)
    if fn in (tn.npu_scatter_pa_kv_cache, tn._npu_reshape_and_cache_siso):
        return fn(**kw)
    return fn(kw.pop("query"), kw.pop("key"), kw.pop("value"), **kw)


@pytest.mark.parametrize("base", [pfa, ifa, v1_out, spc, siso])
def test_bases_are_valid_and_hazard_free(base):
    with emulator.strict_contracts():
        invoke(*base())


VIOLATIONS = [
    ("pfa_gqa", pfa(num_key_value_heads=3), PFA, "num_key_value_heads", "must divide"),
    ("pfa_value_dim", pfa(value=r(2, 2, 6, 32)), PFA, "value", "need the value head dim equal to D"),
    ("pfa_tnd_float16", pfa(query=r(8, 2, 128), key=r(8, 1, 128), value=r(8, 1, 128), num_heads=2,
                            num_key_value_heads=1, input_layout="TND", actual_seq_lengths=[3, 8],
                            actual_seq_lengths_kv=[3, 8], sparse_mode=3, atten_mask=MASK), PFA, "query",
     "layout TND needs bfloat16"),
    ("pfa_mode_3_mask", pfa(sparse_mode=3), PFA, "atten_mask", "is required when sparse_mode is 3"),
    ("pfa_q_lengths", pfa(actual_seq_lengths=[5]), PFA, "actual_seq_lengths", "lengths must be in [0, Q_S]"),
    ("pfa_length_tensor", pfa(actual_seq_lengths=torch.tensor([3, 4])), PFA, "actual_seq_lengths",
     "schema 'int[]?': the dispatcher refuses a Tensor"),
    ("ifa_query_s_over_16", ifa(query=r(2, 4, 17, 64)), IFA, "query", "S of the query must be 1"),
    ("ifa_inner_precise", ifa(inner_precise=2), IFA, "inner_precise", "must be 0 or 1 when Q_S == 1"),
    ("ifa_block_size", ifa(key=r(6, 24, 128), value=r(6, 24, 128), block_size=24), IFA, "block_size",
     "multiple of 16"),
    ("ifa_needs_lengths_with_table", ifa(actual_seq_lengths=None), IFA, "actual_seq_lengths",
     "is required with block_table"),
    ("ifa_dense_value_dim", ifa(key=r(2, 2, 7, 64), value=r(2, 2, 7, 32), block_table=None, actual_seq_lengths=None),
     IFA, "value", "decode (Q_S == 1) needs key and value of identical shapes"),
    ("out_wrong_shape", v1_out(out=[torch.empty(2, 4, 1, 32, dtype=F16), torch.empty(1)]), V1_OUT, "attention_out",
     "must have the output's shape"),
    ("out_wrong_dtype", v1_out(out=[torch.empty(2, 4, 1, 64), torch.empty(1)]), V1_OUT, "attention_out",
     "must have the output's dtype"),
    ("out_lse_shape", v1_out(softmax_lse_flag=True), V1_OUT, "softmax_lse", "must be float32 of the LSE shape"),
    ("out_missing", v1_out(out=None), V1_OUT, "attention_out", "is required"),
    ("out_both_forms", v1_out(attention_out=torch.empty(2, 4, 1, 64, dtype=F16)), V1_OUT, "out",
     "either as out=[...]"),
    ("spc_rank", spc(key=r(3, 32)), SPC, "key", "must be 3-D"),
    ("spc_dtypes", spc(value_cache=torch.zeros(4, 4, 2, 16, dtype=BF16)), SPC, "key_cache", "share one dtype"),
    ("spc_float32", spc(key=r(3, 2, 16, dtype=torch.float32), value=r(3, 2, 16, dtype=torch.float32),
                        key_cache=torch.zeros(4, 4, 2, 16), value_cache=torch.zeros(4, 4, 2, 16)), SPC, "key",
     "float16, bfloat16 or int8"),
    ("spc_slot_dtype", spc(slot_mapping=torch.tensor([3, 5, 9], dtype=torch.int16)), SPC, "slot_mapping",
     "int32 or int64"),
    ("spc_slot_count", spc(slot_mapping=torch.tensor([3, 5], dtype=torch.int32)), SPC, "slot_mapping",
     "one slot per token"),
    ("spc_value_tokens", spc(value=r(2, 2, 16)), SPC, "value", "first two dims"),
    ("spc_cache_heads", spc(key_cache=torch.zeros(4, 4, 1, 16, dtype=F16)), SPC, "key_cache",
     "[num_blocks, block_size, num_head, head_size]"),
    ("spc_cache_blocks", spc(value_cache=torch.zeros(5, 4, 2, 16, dtype=F16)), SPC, "value_cache",
     "same num_blocks and block_size"),
    ("spc_noncontiguous", spc(key_cache=torch.zeros(4, 2, 4, 16, dtype=F16).transpose(1, 2)), SPC, "key_cache",
     "contiguous"),
    ("spc_slot_past_end", spc(slot_mapping=torch.tensor([3, 16, 9], dtype=torch.int32)), SPC, "slot_mapping",
     "slots must be < num_blocks*block_size"),
    ("siso_rank", siso(key_cache=torch.zeros(4, 4, 32, dtype=F16)), SISO, "key_cache", "must be 4-D"),
    ("siso_dtype", siso(key_cache=torch.zeros(4, 4, 2, 16, dtype=BF16)), SISO, "key_cache", "share one dtype"),
    ("siso_slot_dtype", siso(slot_indices=torch.tensor([3, 5, 9])), SISO, "slot_indices", "dtype must be int32"),
    ("siso_slot_count", siso(slot_indices=torch.tensor([3, 5], dtype=torch.int32)), SISO, "slot_indices",
     "one slot per token"),
    ("siso_cache_heads", siso(key_cache=torch.zeros(4, 4, 1, 16, dtype=F16)), SISO, "key_cache",
     "must equal key's"),
    ("siso_slot_past_end", siso(slot_indices=torch.tensor([3, 16, 9], dtype=torch.int32)), SISO, "slot_indices",
     "slots must be < num_blocks*block_size"),
]


@pytest.mark.parametrize("call, op, argument, fragment", [v[1:] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS])
def test_violation(call, op, argument, fragment):
    fn, kw = call
    with pytest.raises(ContractViolation) as info:
        invoke(fn, kw)
    exc = info.value
    assert exc.op == op and exc.argument == argument and fragment in exc.rule, str(exc)
    assert exc.source and exc.source in str(exc)


def test_violation_ids_are_unique_and_cover_every_new_op():
    assert len({v[0] for v in VIOLATIONS}) == len(VIOLATIONS)
    assert {v[2] for v in VIOLATIONS} == {PFA, IFA, V1_OUT, SPC, SISO}


UNSUPPORTED = [
    ("spc_nz_default", spc(cache_mode="PA_NZ"), "cache_mode"),
    ("spc_compressed", spc(seq_lens=torch.tensor([3], dtype=torch.int32)), "seq_lens"),
    ("ifa_mtp", ifa(query=r(2, 4, 2, 64)), "query"),
    ("ifa_tnd", ifa(query=r(2, 4, 64), input_layout="TND", block_table=None, key=r(2, 2, 64), value=r(2, 2, 64),
                    actual_seq_lengths=None), "input_layout"),
    ("pfa_quant", pfa(quant_scale2=torch.ones(1)), "quant_scale2"),
    ("ifa_antiquant", ifa(antiquant_scale=torch.ones(1)), "antiquant_scale"),
]


@pytest.mark.parametrize("call, argument", [u[1:] for u in UNSUPPORTED], ids=[u[0] for u in UNSUPPORTED])
def test_unmodelled_feature_is_refused_clearly(call, argument):
    fn, kw = call
    with pytest.raises(EmulatorUnsupported) as info:
        invoke(fn, kw)
    assert info.value.argument == argument and "not modelled by the CPU op emulator" in str(info.value)


# ---- torch.ops registration


def test_torch_ops_are_registered_only_by_install_and_reach_the_emulator():
    # In a fresh interpreter: importing the emulator registers nothing; install() twice is one install.
    script = (
        "import torch\n"
        "from conformance import emulator\n"
        "from conformance.emulator import torch_ops\n"
        "assert not hasattr(torch.ops.npu, 'npu_fused_infer_attention_score')\n"
        "names = torch_ops.install()\n"
        "assert torch_ops.install() == names and len(names) == len(torch_ops.SCHEMAS)\n"
        "q = torch.randn(2, 4, 1, 64).half(); k = torch.randn(2, 2, 7, 64).half()\n"
        "o, _ = torch.ops.npu.npu_fused_infer_attention_score(q, k, k, num_heads=4, num_key_value_heads=2,\n"
        "    input_layout='BNSD', scale=0.125, actual_seq_lengths_kv=[3, 7])\n"
        "e, _ = emulator.torch_npu.npu_fused_infer_attention_score(q, k, k, num_heads=4, num_key_value_heads=2,\n"
        "    input_layout='BNSD', scale=0.125, actual_seq_lengths_kv=[3, 7])\n"
        "assert torch.equal(o, e)\n"
        "a = torch.empty_like(q)\n"
        "r = torch.ops.npu.npu_fused_infer_attention_score.out(q, k, k, num_heads=4, num_key_value_heads=2,\n"
        "    input_layout='BNSD', scale=0.125, actual_seq_lengths_kv=[3, 7], attention_out=a,\n"
        "    softmax_lse=torch.empty(1))\n"
        "assert r[0] is a and torch.equal(a, e)\n"
        "c = torch.zeros(4, 4, 2, 16).half(); key = torch.randn(1, 2, 16).half()\n"
        "torch.ops.atb._npu_reshape_and_cache_siso(key, c, torch.tensor([5], dtype=torch.int32))\n"
        "assert torch.equal(c[1, 1], key[0])\n"
        "try:\n"
        "    torch.ops.npu.npu_incre_flash_attention(q, k, k, num_heads=4, num_key_value_heads=3,\n"
        "        input_layout='BNSD')\n"
        "except ValueError as exc:\n"
        "    assert 'must divide' in str(exc)\n"
        "else:\n"
        "    raise AssertionError('no violation')\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"TORCH_DEVICE_BACKEND_AUTOLOAD": "0", "PATH": "/usr/bin:/bin",
                               "PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_install_refuses_to_shadow_an_existing_definition(monkeypatch):
    monkeypatch.setattr(torch_ops, "_libraries", {})
    monkeypatch.setattr(torch_ops, "_exists", lambda namespace, name: name == "scatter_update_")
    with pytest.raises(torch_ops.AlreadyDefined, match="npu::scatter_update_ already defined"):
        torch_ops.install()
