"""Cases are plain data that replay bit-identically; strategies only draw in-contract, useful cases."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from conformance.cases.case import Case
from conformance.cases.strategies import NPU_HEAD_DIMS, PREFILL_HEAD_DIMS, decode_cases, graph_cases, prefill_cases
from conformance.judge.check import check_case
from npu_attention import validate_context

DECODE = Case(phase="decode_graph", num_heads=8, num_kv_heads=2, head_dim=16, dtype="bfloat16", block_size=16,
              num_blocks=12, seq_lens=(40, 3, 20), block_tables=((5, 2, 9), (3,), (7, 1)), seed=7,
              outlier_rows=(1,), max_num_seqs=5, table_width=4)


def test_case_round_trips_through_json_and_rebuilds_identical_tensors():
    again = Case.from_json(json.dumps(json.loads(DECODE.to_json())))
    assert again == DECODE and again.case_id == DECODE.case_id
    a, b = DECODE.materialise(), again.materialise()
    for name in ("q", "k", "v", "k_cache", "v_cache"):
        x, y = getattr(a, name), getattr(b, name)
        assert torch.equal(x.view(torch.int16), y.view(torch.int16)), name


def test_tensors_are_the_same_in_a_fresh_process():
    code = ("import json,sys,torch; from conformance.cases.case import Case; "
            "t = Case.from_json(sys.stdin.read()).materialise(); "
            "print(json.dumps([float(t.q.double().sum()), float(t.k_cache.nan_to_num().double().sum())]))")
    out = subprocess.run([sys.executable, "-c", code], input=DECODE.to_json(), capture_output=True, text=True,
                         check=True)
    t = DECODE.materialise()
    assert json.loads(out.stdout) == [float(t.q.double().sum()), float(t.k_cache.nan_to_num().double().sum())]


def test_history_is_in_the_cache_and_every_other_slot_is_poisoned():
    t = DECODE.materialise()
    cache = t.k_cache.view(DECODE.num_blocks, DECODE.block_size, -1)
    history = {(blocks[p // 16], p % 16) for length, blocks in zip(DECODE.seq_lens, DECODE.block_tables)
               for p in range(length - 1)}
    for block in range(DECODE.num_blocks):
        for offset in range(DECODE.block_size):
            finite = bool(torch.isfinite(cache[block, offset]).all())
            assert finite == ((block, offset) in history), (block, offset)


def test_outlier_rows_are_large():
    t = DECODE.materialise()
    assert t.q[1].abs().max() > 4 * t.q[0].abs().max()


@pytest.mark.parametrize("changes, message", [
    ({"phase": "chunked"}, "phase"),
    ({"dtype": "float64"}, "dtype"),
    ({"seq_lens": (10, 3)}, "one entry per sequence"),
    ({"seq_lens": (60, 3, 20)}, "need 4 blocks"),
    ({"block_tables": ((5, 2, 12), (3,), (7, 1))}, "block ids"),
    ({"max_num_seqs": 2}, "max_num_seqs"),
])
def test_bad_cases_are_refused(changes, message):
    data = DECODE.to_dict() | changes
    with pytest.raises(ValueError, match=message):
        Case.from_dict(data)


def _check_structure(case: Case, backend: str) -> None:
    t = case.materialise()
    validate_context(case.context(), t.k_cache, t.v_cache, case.num_heads, case.num_kv_heads, case.head_dim,
                     num_tokens=case.num_new_tokens)
    blocks = [b for row in case.block_tables for b in row]
    assert len(blocks) == len(set(blocks)), "blocks are not shared between sequences"
    assert 0 not in blocks, "block 0 is the null block"
    if not case.is_prefill:
        assert case.dummy_block not in blocks, "the dummy block is reserved"
    assert case.num_heads % case.num_kv_heads == 0 and 1 <= case.num_heads // case.num_kv_heads <= 8
    if case.is_prefill:  # what the TND kernel takes: bf16 (float32 is the emulator's note), D 64/128
        assert case.dtype in (("bfloat16",) if backend == "npu" else ("bfloat16", "float32"))
        assert case.head_dim in PREFILL_HEAD_DIMS
    if backend == "npu":
        assert case.dtype in ("float16", "bfloat16") and case.block_size == 128
        assert case.head_dim in NPU_HEAD_DIMS["prefill" if case.is_prefill else "decode"]
    if case.phase == "decode_graph":
        assert case.max_num_seqs > case.batch and case.num_blocks >= case.max_num_seqs


@pytest.mark.parametrize("backend", ["emulated", "npu"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_strategies_draw_in_contract_cases(backend, data):
    case = data.draw(st.one_of(prefill_cases(backend), decode_cases(backend), graph_cases(backend)))
    _check_structure(case, backend)


def test_strategies_reach_the_interesting_regions():
    """Over a fixed sample: batch >= 2 with unequal lengths, block-boundary lengths, single tokens,
    GQA with n_kv >= 2 and group >= 2, MQA, long sequences, all three dtypes."""
    seen = set()

    @settings(max_examples=300, deadline=None, database=None, derandomize=True)
    @given(case=st.one_of(prefill_cases(), decode_cases()))
    def sample(case):
        lens = case.seq_lens
        if case.batch >= 2 and len(set(lens)) > 1:
            seen.add("ragged")
        if any(n % case.block_size in (0, 1, case.block_size - 1) and n > 1 for n in lens):
            seen.add("boundary")
        if 1 in lens:
            seen.add("single")
        if case.num_kv_heads >= 2 and case.num_heads // case.num_kv_heads >= 2:
            seen.add("gqa")
        if case.num_kv_heads == 1 and case.num_heads > 1:
            seen.add("mqa")
        if max(lens) > 512:
            seen.add("long")
        seen.add(case.dtype)

    sample()
    assert seen >= {"ragged", "boundary", "single", "gqa", "mqa", "long", "float16", "bfloat16", "float32"}


def test_long_draws_happen_as_often_as_the_docstring_says():
    """sequence_lengths: about 1 draw in 20 has a sequence > 512 positions, ~1 in 100 one > 2048."""
    longest = []

    @settings(max_examples=400, deadline=None, database=None, derandomize=True, phases=[Phase.generate])
    @given(case=prefill_cases())
    def sample(case):
        longest.append(max(case.seq_lens))

    sample()
    over_512 = sum(n > 512 for n in longest) / len(longest)
    over_2048 = sum(n > 2048 for n in longest) / len(longest)
    assert 0.02 <= over_512 <= 0.10 and 0.0025 <= over_2048 <= 0.04, (over_512, over_2048)


def test_a_failing_case_explains_itself():
    """Wrong answers read well: the case, the worst sequence/head with values, the bound, replay."""
    from conformance.judge.mutation import Mutation
    from conformance.judge.settings import settings as run_settings
    from npu_attention import Attention

    class DoubleScale(Attention):
        def __init__(self, *args):
            super().__init__(*args)
            self.scale *= 2

    import dataclasses

    run = dataclasses.replace(run_settings(), mutation=Mutation("double-scale", layer_class=DoubleScale))
    outcome = check_case(dataclasses.replace(DECODE, phase="decode_eager", max_num_seqs=0, table_width=0), run)
    assert not outcome.passed
    text = outcome.explain(replay_file="conformance-failures/x.json")
    assert outcome.case.summary() in text and "worst: sequence" in text and "golden" in text
    assert "bound" in text and "replay: npu-conformance replay conformance-failures/x.json" in text
    assert math.isfinite(outcome.ratio) and outcome.ratio > 1
