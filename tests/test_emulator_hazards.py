"""One case per hazard: recorded per call (computation goes on), raised as HazardError in strict mode.

Notes (accepted, well-defined, informational) are recorded and never raised. Also the recording
machinery: nested `record_hazards()` blocks, `last_hazards()`, strict-mode scoping, and the graph op's
compiled-graph scope.
"""

import pytest
import torch
from emulator_ops import AIR, MASK, RAC, SCU, SPC, V1, V2  # noqa: E402  (tests/ is on sys.path)

from conformance import emulator
from conformance.emulator import ContractViolation, Hazard, HazardError, Note
from conformance.emulator.catalogue import HAZARDS as HAZARD_CODES
from conformance.emulator.catalogue import NOTES as NOTE_CODES

tn = emulator.torch_npu
air = emulator.torchair.ops
F16, BF16 = torch.float16, torch.bfloat16

def r(*shape, dtype=F16):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(7 + sum(shape))).to(dtype)


def table(rows):
    return torch.tensor(rows, dtype=torch.int32)


def decode(**over):
    kw = dict(num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", block_table=table([[4, -1], [1, 3]]),
              block_size=16, actual_seq_kvlen=[5, 20], softmax_scale=0.125, inner_precise=1)
    q, k, v = over.pop("query", r(2, 4, 1, 64)), over.pop("key", r(6, 16, 128)), over.pop("value", r(6, 16, 128))
    kw.update(over)
    return lambda: tn.npu_fused_infer_attention_score_v2(q, k, v, **kw)


def prefill(**over):
    kw = dict(num_query_heads=2, num_key_value_heads=1, input_layout="TND", softmax_scale=0.08, atten_mask=MASK,
              actual_seq_qlen=[3, 8], actual_seq_kvlen=[3, 8], sparse_mode=3, inner_precise=1)
    dtype = over.pop("dtype", BF16)
    d = over.pop("d", 128)
    q = over.pop("query", r(8, 2, d, dtype=dtype))
    k = over.pop("key", r(8, 1, d, dtype=dtype))
    v = over.pop("value", r(8, 1, d, dtype=dtype))
    kw.update(over)
    return lambda: tn.npu_fused_infer_attention_score_v2(q, k, v, **kw)


def paged_prefill(block_size=128, **over):
    """TND over a 3-D paged cache (the open kernel's paged TND templates)."""
    over.setdefault("key", r(4, block_size, 128, dtype=BF16))
    over.setdefault("value", r(4, block_size, 128, dtype=BF16))
    return prefill(block_size=block_size, actual_seq_kvlen=[4, 6], actual_seq_qlen=[3, 4],
                   query=r(4, 2, 128, dtype=BF16), block_table=table([[0], [2]]), **over)


def prompt(**over):
    kw = dict(num_heads=2, scale=0.1)
    q, k, v = over.pop("query", r(2, 4, 128)), over.pop("key", r(2, 6, 128)), over.pop("value", r(2, 6, 128))
    kw.update(over)
    return lambda: tn.npu_fused_infer_attention_score(q, k, v, **kw)


def graph(**over):
    kw = dict(num_heads=4, num_key_value_heads=2, input_layout="BNSD", scale=0.125,
              actual_seq_lengths_kv=torch.tensor([5, 20]), block_table=table([[4, -1], [1, 3]]), block_size=16,
              inner_precise=1)
    q, k, v = over.pop("query", r(2, 4, 1, 64)), over.pop("key", r(6, 16, 128)), over.pop("value", r(6, 16, 128))
    kw.update(over)
    return lambda: air.npu_fused_infer_attention_score(q, k, v, **kw)


def masked_row_prompt(ip):
    user = torch.zeros(4, 6, dtype=torch.bool)
    user[2] = True  # row 2 sees nothing
    return prompt(atten_mask=user, sparse_mode=1, inner_precise=ip)


def duplicate_slots():
    key = r(3, 2, 16)
    kc = torch.zeros(4, 4, 2, 16, dtype=F16)
    return lambda: tn._npu_reshape_and_cache(key, key, kc, kc.clone(), torch.tensor([5, 9, 5], dtype=torch.int32))


def duplicate_pairs():
    data = torch.zeros(6, 16, 128, dtype=F16)
    return lambda: tn.scatter_update_(data, table([[4, 3], [1, 15], [4, 3]]), r(3, 1, 128), -2)


HAZARDS = [
    # (id, call, op, argument, code)
    ("tnd_4d_cache", paged_prefill(key=r(4, 1, 128, 128, dtype=BF16), value=r(4, 1, 128, 128, dtype=BF16)), V2, "key",
     "fia/tnd-4d-cache"),
    ("tnd_paged", paged_prefill(), V2, "block_table", "fia/tnd-paged"),
    ("tnd_paged_block_size_doc", paged_prefill(block_size=256), V2, "block_size", "fia/tnd-paged-block-size"),
    ("tnd_inner_precise_2", prefill(inner_precise=2), V2, "inner_precise", "fia/tnd-inner-precise"),
    ("head_dim_alignment", decode(query=r(2, 4, 1, 40), key=r(6, 16, 80), value=r(6, 16, 80)), V2, "query",
     "fia/head-dim-alignment"),
    ("shared_blocks", decode(key=r(2, 16, 128), value=r(2, 16, 128), block_table=table([[0, -1], [0, 1]]),
                             actual_seq_kvlen=[16, 20]), V2, "key", "fia/shared-blocks"),
    ("prompt_block_size_over_512", prompt(key=r(2, 1024, 128), value=r(2, 1024, 128), block_size=1024,
                                          block_table=table([[1], [0]]), actual_seq_lengths_kv=[6, 9]), V1,
     "block_size", "fia/prompt-block-size"),
    ("tnd_mask_content", prefill(atten_mask=~MASK), V2, "atten_mask", "fia/mask-content"),
    ("prompt_mask_content", prompt(atten_mask=~MASK, sparse_mode=2), V1, "atten_mask", "fia/mask-content"),
    ("prompt_mask_unmodelled", prompt(atten_mask=~MASK, sparse_mode=2), V1, "atten_mask", "fia/mask-unmodelled"),
    ("decode_sliding_window", decode(query=r(2, 1, 256), input_layout="BSH", pre_tokens=8), V2, "pre_tokens",
     "fia/decode-sliding-window"),
    ("decode_compressed_mask", decode(atten_mask=MASK, sparse_mode=3), V2, "atten_mask",
     "fia/decode-compressed-mask"),
    ("air_tnd_tiling_sink", lambda: air.npu_fused_infer_attention_score(
        r(8, 2, 128, dtype=BF16), r(8, 1, 128, dtype=BF16), r(8, 1, 128, dtype=BF16), num_heads=2,
        num_key_value_heads=1, input_layout="TND", atten_mask=MASK, actual_seq_lengths=torch.tensor([3, 8]),
        actual_seq_lengths_kv=torch.tensor([3, 8]), sparse_mode=3), AIR, "input_layout", "fia/air-tnd-tiling-sink"),
    ("air_called_eagerly", graph(), AIR, "(call)", "fia/graph-op-eager"),
    ("user_mask_full_row", masked_row_prompt(1), V1, "atten_mask", "fia/user-mask-empty-rows"),
    ("decode_user_mask_full_row", decode(atten_mask=torch.cat([torch.ones(1, 32), torch.zeros(1, 32)]).bool()), V2,
     "atten_mask", "fia/user-mask-empty-rows"),
    ("duplicate_cache_slots", duplicate_slots(), RAC, "slot_indices", "rac/duplicate-slots"),
    ("duplicate_scatter_targets", duplicate_pairs(), SCU, "indices", "scu/overlapping-targets"),
    ("duplicate_scatter_pa_slots", lambda: tn.npu_scatter_pa_kv_cache(
        r(2, 1, 16), r(2, 1, 16), torch.zeros(2, 4, 1, 16, dtype=F16), torch.zeros(2, 4, 1, 16, dtype=F16),
        table([3, 3]), cache_mode="Norm"), SPC, "slot_mapping", "spc/duplicate-slots"),
    ("scatter_negative_axis", lambda: tn.scatter_update_(torch.zeros(6, 2, 16, 128, dtype=F16), table([[4, 1]]),
                                                          r(1, 1, 16, 128), -3), SCU, "axis", "scu/negative-axis"),
]
#: Hazards whose rule is read out of kernel code or practice, not stated by a document.
INFERRED = {"tnd_mask_content", "prompt_mask_content", "prompt_mask_unmodelled", "decode_compressed_mask"}

NOTES = [
    # (id, call, op, argument, code): accepted and well-defined, never raised, never a hazard
    ("fp32_fia", decode(query=r(2, 4, 1, 64, dtype=torch.float32), key=r(6, 16, 128, dtype=torch.float32),
                        value=r(6, 16, 128, dtype=torch.float32)), V2, "query", "fia/float32"),
    ("fp32_cache_write", lambda: tn._npu_reshape_and_cache(
        torch.ones(1, 2, 16), torch.ones(1, 2, 16), torch.zeros(2, 4, 2, 16), torch.zeros(2, 4, 2, 16),
        torch.tensor([1], dtype=torch.int32)), RAC, "key", "rac/float32"),
    ("tensor_for_symint_list", decode(actual_seq_kvlen=torch.tensor([5, 20], dtype=torch.int32)), V2,
     "actual_seq_kvlen", "fia/length-tensor"),
    ("tnd_bf16_inner_precise_1", prefill(), V2, "inner_precise", "fia/bf16-inner-precise"),
    ("scatter_pa_negative_slot", lambda: tn.npu_scatter_pa_kv_cache(
        r(2, 1, 16), r(2, 1, 16), torch.zeros(2, 4, 1, 16, dtype=F16), torch.zeros(2, 4, 1, 16, dtype=F16),
        table([3, -1]), cache_mode="Norm"), SPC, "slot_mapping", "spc/negative-slot"),
    ("cache_slot_below_doc_domain", lambda: tn._npu_reshape_and_cache(
        r(3, 2, 16), r(3, 2, 16), torch.zeros(4, 4, 2, 16, dtype=F16), torch.zeros(4, 4, 2, 16, dtype=F16),
        torch.tensor([3, -16, 9], dtype=torch.int32)), RAC, "slot_indices", "rac/negative-slot-outside-doc"),
]


def _found(log, op, argument, code):
    return [h for h in log if h.op == op and h.argument == argument and h.code == code]


@pytest.mark.parametrize("call, op, argument, code", [h[1:] for h in HAZARDS], ids=[h[0] for h in HAZARDS])
def test_hazard_is_recorded_and_the_call_completes(call, op, argument, code):
    with emulator.record_hazards() as log:
        call()
    matching = _found(log, op, argument, code)
    assert len(matching) == 1, [str(h) for h in log]
    hazard = matching[0]
    assert isinstance(hazard, Hazard) and hazard.source and code in HAZARD_CODES
    assert hazard in emulator.last_hazards()
    assert hazard.rule in str(hazard) and hazard.source in str(hazard)


@pytest.mark.parametrize("call, op, argument, code", [n[1:] for n in NOTES], ids=[n[0] for n in NOTES])
def test_note_is_recorded_but_never_a_hazard(call, op, argument, code):
    with emulator.record_hazards() as log, emulator.strict_contracts():
        call()  # strict mode raises hazards only
    assert list(log) == [], [str(h) for h in log]
    matching = [n for n in log.notes if n.op == op and n.argument == argument and n.code == code]
    assert len(matching) == 1 and isinstance(matching[0], Note) and code in NOTE_CODES, [str(n) for n in log.notes]


def test_every_catalogued_code_has_a_case():
    assert {h[4] for h in HAZARDS} == set(HAZARD_CODES)
    assert {n[4] for n in NOTES} == set(NOTE_CODES)


@pytest.mark.parametrize("call, op, argument, code", [h[1:] for h in HAZARDS], ids=[h[0] for h in HAZARDS])
def test_hazard_raises_in_strict_mode(call, op, argument, code):
    with emulator.strict_contracts(), pytest.raises(HazardError) as info:
        call()
    # The first hazard of the call raises; the one under test must be the first for its call, or an earlier
    # hazard of the same call must itself be in the table.
    first = info.value.hazard
    assert isinstance(info.value, ContractViolation)
    assert "hazard (strict mode)" in str(info.value)
    if not (first.op == op and first.argument == argument and first.code == code):
        assert any(first.op == h[2] and first.argument == h[3] and first.code == h[4] for h in HAZARDS), str(first)


def test_hazard_ids_are_unique_and_inferred_ones_are_marked():
    assert len({h[0] for h in HAZARDS}) == len(HAZARDS)
    for name, call, op, argument, code in HAZARDS:
        with emulator.record_hazards() as log:
            call()
        hazard = _found(log, op, argument, code)[0]
        assert hazard.inferred == (name in INFERRED), name


def test_user_masked_rows_are_zero_and_not_a_hazard_with_row_correction():
    with emulator.record_hazards() as log:
        out, lse = masked_row_prompt(2)()
    assert list(log) == []
    with emulator.record_hazards():
        out1, _ = masked_row_prompt(0)()
    assert out[:, 2].abs().sum() == 0 and torch.equal(out, out1)


def test_duplicates_resolve_last_writer_wins():
    key = r(3, 2, 16)
    kc = torch.zeros(4, 4, 2, 16, dtype=F16)
    with emulator.record_hazards():
        tn._npu_reshape_and_cache(key, key, kc, kc.clone(), torch.tensor([5, 9, 5], dtype=torch.int32))
    assert torch.equal(kc[1, 1], key[2]) and torch.equal(kc[2, 1], key[1])
    data = torch.zeros(6, 16, 128, dtype=F16)
    upd = r(3, 1, 128)
    with emulator.record_hazards():
        tn.scatter_update_(data, table([[4, 3], [1, 15], [4, 3]]), upd, -2)
    assert torch.equal(data[4, 3], upd[2, 0]) and torch.equal(data[1, 15], upd[1, 0])


def test_strict_mode_does_not_write_on_a_hazard():
    data = torch.zeros(6, 16, 128, dtype=F16)
    with emulator.strict_contracts(), pytest.raises(HazardError):
        tn.scatter_update_(data, table([[4, 3], [4, 3]]), r(2, 1, 128), -2)
    assert data.abs().sum() == 0


def test_nested_recorders_and_last_hazards():
    with emulator.record_hazards() as outer:
        graph()()
        with emulator.record_hazards() as inner:
            duplicate_pairs()()
        assert [h.op for h in inner] == [SCU]
        assert emulator.last_hazards() == tuple(inner)
    assert [h.op for h in outer] == [AIR, SCU]
    prefill()()  # a clean call resets last_hazards
    assert emulator.last_hazards() == ()


def test_nested_empty_recorders_close_in_order():
    with emulator.record_hazards() as outer:
        with emulator.record_hazards() as inner:
            pass  # both empty (equal as lists) when the inner block closes
        graph()()
    assert len(outer) == 1 and len(inner) == 0


def test_one_record_per_rule_per_call():
    data = torch.zeros(6, 16, 128, dtype=F16)
    with emulator.record_hazards() as log:
        tn.scatter_update_(data, table([[4, 3], [4, 3], [1, 2], [1, 2]]), r(4, 1, 128), -2)
    assert len(log) == 1


def test_strict_scope_and_set_strict():
    assert not emulator.is_strict()
    with emulator.strict_contracts():
        assert emulator.is_strict()
        with emulator.strict_contracts(False):
            graph()()  # recorded, not raised
        assert emulator.is_strict()
    assert not emulator.is_strict()
    previous = emulator.set_strict(True)
    try:
        assert previous is False
        with pytest.raises(HazardError):
            graph()()
    finally:
        emulator.set_strict(previous)


def test_graph_op_inside_a_compiled_graph_scope_is_not_a_hazard():
    with emulator.record_hazards() as log, emulator.compiled_graph():
        out, lse = graph()()
    assert list(log) == []
    with emulator.record_hazards():
        eager, _ = graph()()
    assert torch.equal(out, eager) and lse.shape == (0,)


def test_a_clean_pairs_call_leaves_no_finding():
    data = torch.zeros(6, 16, 128, dtype=F16)
    with emulator.record_hazards() as log:
        tn.scatter_update_(data, table([[4, 3]]), r(1, 1, 128), -2)
    assert list(log) == [] and log.notes == []


def test_rules_md_lists_every_code_and_cites_lines_for_every_rule():
    import re
    from pathlib import Path

    text = (Path(emulator.__file__).parent / "RULES.md").read_text(encoding="utf-8")
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
             for line in text.splitlines() if line.startswith("| ")]
    rules = [r for r in cells if len(r) == 5 and r[0] not in ("rule", "---")]
    assert len(rules) > 60
    codes = {c.strip().strip("`") for r in rules if r[2] for c in r[2].split(",")}
    assert codes == set(HAZARD_CODES) | set(NOTE_CODES)
    for rule, kind, code, source, read_at in rules:
        assert read_at, f"no commit for {rule!r}"
        if any(k in kind for k in ("V", "H", "N")) or kind == "compute":
            assert re.search(r"\bL\d+", source), f"no line cited for {rule!r}: {source!r}"
        if code and "," not in code:  # the kind column agrees with the catalogue
            assert ("H" in kind) == (code.strip("`") in HAZARD_CODES), rule
