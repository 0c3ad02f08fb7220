"""Graph decode sessions: one compile per engine configuration, every step replayed and judged, a
recompile named by its guard, the torchair op refused outside max-autotune, sessions that replay
from their case file and shrink to few steps."""

from __future__ import annotations

import json
import re

import pytest
import torch
from cli_helpers import run_cli
from hypothesis import find
from hypothesis import settings as hyp_settings

from conformance.cases.case import CaseError
from conformance.cases.contexts import decode_context
from conformance.cases.graph_session import GraphSession, SessionStep, run_session, step_cases
from conformance.cases.strategies import graph_sessions
from conformance.emulator import ContractViolation
from conformance.harness.case_files import read_case_file
from conformance.harness.verify import verify_session
from conformance.judge import graph
from conformance.judge.check import check_case
from conformance.judge.graph import CompiledDecode, GraphRecompiled, compiled_decode
from conformance.mutants import get
from npu_attention import Attention, use_context

# A configuration no other test uses (the compile cache is per process): 3 steps, then the batch
# shrinks from 2 to 1 live sequence.
SESSION = GraphSession(num_heads=2, num_kv_heads=1, head_dim=16, dtype="float16", block_size=16, num_blocks=11,
                       max_num_seqs=3, table_width=3, seed=1, block_order=tuple(range(1, 10)), start=(15, 33),
                       steps=(SessionStep(), SessionStep(leave=(1,)), SessionStep(join=(4,))))


def _judge(case, tensors, step):
    return check_case(case, tensors=tensors)


def test_a_configuration_compiles_once_and_replays_every_later_step(run_settings):
    run_settings(mutation=None)
    before = graph.compile_count()
    first = [o for _, o in run_session(SESSION, _judge)]
    again = [o for _, o in run_session(SESSION, _judge)]
    assert graph.compile_count() - before == 1, "one engine configuration, one compile"
    assert all(o.passed for o in first + again)
    assert [o.layer.graph["compiled"] for o in first + again] == [True] + [False] * 7
    assert [o.case.batch for o in first] == [2, 2, 1, 2]
    assert {o.layer.graph["mode"] for o in first} == {"max-autotune"}


def test_steps_run_on_the_cache_the_previous_step_left():
    engine_caches = []
    for _, case, engine in step_cases(SESSION):
        engine_caches.append(engine.k_cache)
        engine.k_cache = engine.k_cache.clone()  # what run_session does with the layer's result
        assert case.max_num_seqs == 3 and case.table_width == 3 and case.num_blocks == 11
    assert len(engine_caches) == 4 and engine_caches[1] is not engine_caches[0]
    # Sequence 1 (33 tokens) leaves before step 2; the sequence that joins at step 3 gets its first block
    # back, stale contents and all.
    tables = [c.block_tables for _, c, _ in step_cases(SESSION)]
    assert tables[0] == ((1,), (2, 3, 4)) and tables[2] == ((1, 5),) and tables[3] == ((1, 5), (2,))


def test_a_recompile_fails_and_names_the_guard_that_failed():
    layer = Attention(2, 16, None, 1)
    layer.k_cache = torch.zeros(6, 16, 16, dtype=torch.float16)
    layer.v_cache = torch.zeros(6, 16, 16, dtype=torch.float16)
    compiled = CompiledDecode(("test-recompile",), layer, "emulated-graph", "max-autotune")

    def step(rows: int):
        ctx = decode_context([5] * rows, [[1 + b] for b in range(rows)], 16, eager=False, max_num_seqs=rows,
                             dummy_block=5, table_width=2)
        qkv = [torch.randn(rows, h * 16, dtype=torch.float16) for h in (2, 1, 1)]
        with use_context(ctx):
            return compiled(*qkv)

    from npu_attention import kernels

    with kernels.use_backend("emulated-graph"):
        step(3)
        step(3)
        assert compiled.compiles == 1
        with pytest.raises(GraphRecompiled) as err:
            step(2)
    assert "size mismatch at index 0" in err.value.reason and "expected 3, actual 2" in err.value.reason
    assert "graph compile inside the decode loop" in str(err.value)


def test_the_configuration_cache_holds_one_compiled_graph_per_key():
    made = []

    def make():
        made.append(Attention(2, 16, None, 1))
        return made[-1]

    a = compiled_decode(("test-cache", 1), make, "emulated-graph", "max-autotune")
    b = compiled_decode(("test-cache", 1), make, "emulated-graph", "max-autotune")
    c = compiled_decode(("test-cache", 2), make, "emulated-graph", "max-autotune")
    assert a is b and a is not c and len(made) == 2


def test_reduce_overhead_mode_is_refused_as_the_torchair_op_refuses_it(run_settings):
    run_settings(mutation=None, graph_mode="reduce-overhead")
    with pytest.raises(ContractViolation) as err:
        list(run_session(SESSION, _judge))
    assert "max-autotune" in str(err.value) and "reduce-overhead" in str(err.value)
    assert "_npu_fused_infer_attention_score.py" in str(err.value)


def test_a_failing_step_replays_from_its_case_file_through_the_whole_session(run_settings, tmp_path):
    run_settings(mutation=get("graph_context_lens_frozen").mutation(), failures_dir=tmp_path)
    with pytest.raises(AssertionError):
        list(verify_session(SESSION, "decode_graph"))
    [path] = list(tmp_path.glob("*.json"))
    saved = read_case_file(path)
    assert saved.session == (SESSION, 1), "step 0 captures the lengths; step 1 replays them stale"
    proc = run_cli(None, "replay", path, "--backend", "emulated")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "step 1 of a graph session" in proc.stdout and "planted bug graph_context_lens_frozen" in proc.stdout
    assert "saved verdict: fail (output); replayed: fail" in proc.stdout


def test_a_recompile_is_saved_and_replayed_as_a_recompile(run_settings, tmp_path):
    run_settings(mutation=get("graph_host_list_lengths").mutation(), failures_dir=tmp_path)
    with pytest.raises(GraphRecompiled):
        list(verify_session(SESSION, "decode_graph"))
    [path] = list(tmp_path.glob("*.json"))
    saved = json.loads(path.read_text())
    assert saved["verdict"]["verdict"] == "error" and "GraphRecompiled" in saved["verdict"]["error"]
    assert "context_lens[0] == 15" in saved["verdict"]["error"], "the guard names the frozen host value"


def test_shrinking_removes_steps_and_sequences_first():
    smallest = find(graph_sessions(), lambda s: len(s.steps) >= 2 and sum(map(len, (st.join for st in s.steps))),
                    settings=hyp_settings(database=None, max_examples=300))
    assert len(smallest.steps) == 2 and len(smallest.start) == 1
    assert sum(len(st.join) for st in smallest.steps) == 1 and not any(st.leave for st in smallest.steps)


@pytest.mark.parametrize("change, message", [
    ({"block_order": (1, 2, 2)}, "GraphSession.block_order must be a permutation of blocks 1..3"),
    ({"num_blocks": 3, "block_order": (1,)}, "GraphSession.num_blocks (3) must be >= max_num_seqs + 2 (4)"),
    ({"start": (0,)}, "GraphSession.start[0] must be >= 1, got 0"),
    ({"steps": (SessionStep(join=(2.5,)),)}, "GraphSession.steps[0].join[0] must be an int, got float 2.5"),
    ({"steps": ({"join": (2,)},)}, "GraphSession.steps must be a list of"),
    ({"max_num_seqs": 0}, "GraphSession.max_num_seqs must be >= 1, got 0"),
    ({"num_heads": "8"}, "GraphSession.num_heads must be an int, got str '8'"),
    ({"dtype": "int8"}, "GraphSession.dtype must be one of"),
    ({"seed": 2**70}, "GraphSession.seed must be in"),
    ({"num_heads": 3}, "num_heads (3) must be a multiple of num_kv_heads (2)"),
    ({"block_size": 2**24}, "over the 4 GiB budget"),
])
def test_a_malformed_session_is_refused_by_name(change, message):
    fields = dict(num_heads=4, num_kv_heads=2, head_dim=16, dtype="float16", block_size=16, num_blocks=5,
                  max_num_seqs=2, table_width=2, seed=0, block_order=(1, 2, 3), start=(3,))
    with pytest.raises(CaseError, match=re.escape(message)):
        GraphSession(**{**fields, **change})


@pytest.mark.parametrize("data, message", [
    ([1, 2], "must be an object"),
    ({"num_heads": 2}, "not a graph session"),
    ({**SESSION.to_dict(), "steps": [{"join": 3}]}, "not a graph session"),
])
def test_a_malformed_session_in_a_case_file_is_refused(data, message):
    with pytest.raises(CaseError, match=message):
        GraphSession.from_dict(data)


def test_a_session_round_trips_through_its_dict():
    assert GraphSession.from_dict(json.loads(json.dumps(SESSION.to_dict()))) == SESSION
