"""The runner under test: Contexts built by an engine's own runner code (--runner), from engine steps the
harness drives, judged against the ground truth of the engine model (conformance.cases.engine)."""

from __future__ import annotations

from pathlib import Path

from cli_helpers import cli
from hypothesis import HealthCheck, Phase, given, settings

from conformance.cases.case import Case
from conformance.cases.edges import EDGES, session_edges
from conformance.cases.engine import EngineConfig, EngineModel
from conformance.cases.strategies import MODEL_LEN_EDGES, graph_sessions
from conformance.cli import exit_codes
from conformance.judge.check import check_case
from conformance.mutants import get
from conformance.report import load_report

FIXTURES = Path(__file__).resolve().parent / "fixture_layers"
NANOPORT = ("--layer", "nanoport.layers.attention:Attention", "--layer-path", FIXTURES)


def test_an_engines_own_runner_builds_the_contexts_and_passes_every_phase(tmp_path):
    out = tmp_path / "report"
    code, text = cli(tmp_path, "run", "--backend", "emulated", "--profile", "dev", "--seed", "3", "--out", out,
                     "-k", "test_prefill_output or test_decode_eager_output or test_decode_graph_session", *NANOPORT,
                     "--runner", "nanoport_runner_adapter:build_context")
    assert code == exit_codes.PASSED, text[-3000:]
    report = load_report(out / "report.json")
    assert report["run"]["runner"]["spec"] == "nanoport_runner_adapter:build_context"
    assert report["run"]["runner"]["file"] == str(FIXTURES / "nanoport_runner_adapter.py")
    assert {r["phase"] for r in report["records"]} == {"prefill", "decode_eager", "decode_graph"}


def test_a_runner_that_breaks_the_contract_fails_as_a_runner_defect_naming_field_rule_and_step(tmp_path):
    out = tmp_path / "report"
    code, text = cli(tmp_path, "run", "--backend", "emulated", "--profile", "dev", "--out", out,
                     "-k", "test_decode_eager_output", *NANOPORT,
                     "--runner", "nanoport_runner_adapter:build_context_flat_decode")
    assert code == exit_codes.FAILED, text[-3000:]
    errors = [r["error"] for r in load_report(out / "report.json")["records"] if r["verdict"] == "error"]
    assert errors, "the validator refuses the runner's Context before the layer runs"
    assert errors[0].startswith("ContextError: Context.slot_mapping: decode slots must be [B, 2] rows")
    assert "[runner build_context_flat_decode, eager decode step (block_size" in errors[0]
    assert "seq 0:" in errors[0] and "tokens in blocks" in errors[0]


def test_a_consistent_but_wrong_context_fails_against_the_ground_truth_naming_sequence_and_token(run_settings):
    """Prefill blocks taken in id order: the Context is self-consistent (the validator passes it), but every
    token lands in the wrong block; the cache check names the sequence and the token of a differing slot."""
    run_settings(mutation=get("runner_prefill_blocks_in_id_order").mutation())
    case = Case(phase="prefill", num_heads=2, num_kv_heads=1, head_dim=64, dtype="bfloat16", block_size=16,
                num_blocks=6, seq_lens=(20, 5), block_tables=((4, 2), (3,)), seed=1)
    outcome = check_case(case)
    assert outcome.failed_checks == ["k_cache", "v_cache"], outcome.failed_checks
    text = outcome.explain()
    assert "block 2 offset 0 (sequence 0, token 16)" in text, text


def test_the_engine_model_is_the_block_manager():
    config = EngineConfig(block_size=4, num_blocks=6, max_num_seqs=2, max_model_len=9, enforce_eager=True,
                          dummy_block=5)
    engine = EngineModel(config, [1, 2, 3, 4])
    a = engine.admit(4)
    assert engine.live[a].block_table == [1] and engine.admit(10) is None, "over max_model_len: refused"
    b = engine.admit(8)
    assert engine.live[b].block_table == [2, 3] and engine.admit(1) is None, "max_num_seqs live: refused"
    assert engine.grow(a) and engine.live[a].block_table == [1, 4], "token 5 opens a block"
    assert not engine.grow(b) and engine.live[b].num_tokens == 8, "token 9 opens a block, and none is free"
    engine.finish(a)
    assert engine.free == [1, 4], "freed blocks are handed out next, stale contents and all"
    assert engine.grow(b) and engine.live[b].block_table == [2, 3, 1]
    assert not engine.grow(b), "at max_model_len it cannot grow"
    step = engine.step([b], is_prefill=False)
    assert step.phase == "decode_eager" and step.sequences[0].num_tokens == 9
    assert step.sequences[0].num_scheduled_tokens == 1 and step.sequences[0].first_new_position == 8


def test_every_engine_edge_is_drawn():
    """Each edge a runner must get right appears among generated sessions (bench/draw_shares.py prints
    each one's share over the dev profile's draws)."""
    sessions = []

    @settings(max_examples=300, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(session=graph_sessions())
    def sample(session):
        sessions.append(session)

    sample()
    found = {edge for s in sessions for edge in session_edges(s)}
    assert set(EDGES) <= found, f"never drawn: {sorted(set(EDGES) - found)}"
    assert set(MODEL_LEN_EDGES) <= set(EDGES)
