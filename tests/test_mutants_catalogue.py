"""The planted-bug catalogue itself: well-formed entries with public sources, and every mutant is a
real change of behaviour (killed on a hand-picked case of its phase), never an equivalent mutant."""

from __future__ import annotations

import json

import pytest

from conformance import cli
from conformance.cases.case import Case
from conformance.cases.graph_session import GraphSession, SessionStep, run_session
from conformance.cli import mutants as command
from conformance.emulator import ContractViolation
from conformance.judge.check import check_case
from conformance.judge.graph import GraphRecompiled
from conformance.judge.settings import configure
from conformance.mutants import CATALOGUE, call_bugs, get
from conformance.mutants.report import markdown_source, short_source
from npu_attention import ContextError

PHASES = {"prefill", "decode", "graph", "all"}

PREFILL = Case(phase="prefill", num_heads=8, num_kv_heads=2, head_dim=64, dtype="bfloat16", block_size=16,
               num_blocks=12, seq_lens=(19, 1, 33), block_tables=((7, 2), (5,), (9, 3, 10)), seed=4,
               outlier_rows=(20,))
DECODE = Case(phase="decode_eager", num_heads=6, num_kv_heads=2, head_dim=32, dtype="bfloat16", block_size=16,
              num_blocks=12, seq_lens=(40, 1, 16, 17), block_tables=((4, 9, 2), (6,), (1,), (8, 3)), seed=9)
GRAPH = Case(phase="decode_graph", num_heads=4, num_kv_heads=2, head_dim=32, dtype="float16", block_size=16,
             num_blocks=12, seq_lens=(21, 5), block_tables=((3, 7), (5,)), seed=2, max_num_seqs=4, table_width=3)
# Four steps through one graph: 3 live sequences, then 2 (one leaves), then 3 (one joins with freed blocks).
SESSION = GraphSession(num_heads=4, num_kv_heads=2, head_dim=32, dtype="float16", block_size=16, num_blocks=9,
                       max_num_seqs=4, table_width=3, seed=5, block_order=(3, 6, 1, 5, 2, 7, 4), start=(16, 5, 30),
                       steps=(SessionStep(), SessionStep(leave=(0,)), SessionStep(join=(9,))))
CASES = {"prefill": [PREFILL], "decode": [DECODE, GRAPH], "graph": [GRAPH], "all": [PREFILL, DECODE, GRAPH]}
# Kernel bugs that need a shape the cases above lack: a wide batch, a long prompt, 128-token blocks.
DECODE_WIDE = Case(phase="decode_eager", num_heads=4, num_kv_heads=2, head_dim=32, dtype="float16", block_size=16,
                   num_blocks=12, seq_lens=(20, 3, 17, 1, 9, 33),
                   block_tables=((1, 2), (3,), (4, 5), (6,), (7,), (8, 9, 10)), seed=3)
PREFILL_LONG = Case(phase="prefill", num_heads=4, num_kv_heads=2, head_dim=64, dtype="bfloat16", block_size=128,
                    num_blocks=8, seq_lens=(300, 20), block_tables=((5, 2, 6), (3,)), seed=6)
DECODE_128 = Case(phase="decode_eager", num_heads=4, num_kv_heads=1, head_dim=64, dtype="bfloat16", block_size=128,
                  num_blocks=8, seq_lens=(200, 70, 5), block_tables=((4, 1), (6,), (2,)), seed=8)
# max_model_len 40 is no multiple of block_size 16: a sequence at max_model_len needs ceil(40/16) = 3 blocks
AT_MODEL_LEN = Case(phase="decode_graph", num_heads=4, num_kv_heads=2, head_dim=32, dtype="float16", block_size=16,
                    num_blocks=8, seq_lens=(40, 3), block_tables=((3, 1, 5), (2,)), seed=9, max_num_seqs=3,
                    table_width=3, max_model_len=40)
EXTRA_CASES = {"paged_attention_not_run_large_batch": [DECODE_WIDE], "prefill_output_buffer_reused": [PREFILL_LONG],
               "paged_read_kernel_block_size": [DECODE_128], "runner_table_width_floored": [AT_MODEL_LEN]}


def test_catalogue_has_at_least_twenty_well_formed_entries():
    assert len(CATALOGUE) >= 20
    names = [m.name for m in CATALOGUE]
    assert len(set(names)) == len(names), "mutant names must be unique"
    for m in CATALOGUE:
        assert m.phase in PHASES and m.via in {"layer", "call", "context", "runner", "replay", "op"}, m.name
        assert m.location in {"layer", "runner", "kernel"}, m.name
        hooks = {"layer": m.layer_class, "call": m.wrap_kernels if m.via == "call" else None,
                 "op": m.wrap_kernels if m.via == "op" else None, "context": m.transform_context,
                 "runner": m.runner, "replay": m.graph_call}
        assert hooks[m.via] is not None, f"{m.name}: planted via {m.via} but that hook is empty"
        # A replay bug may come with the layer code that reads what the runner hands the graph.
        others = [name for name, h in hooks.items() if h is not None and name != m.via]
        assert others in ([], ["layer"] if m.via == "replay" else []), f"{m.name}: one hook, got {others}"
        assert (m.via == "replay") == (m.graph_call is not None and m.phase == "graph"), m.name
        assert m.bug_class and m.summary and m.needs, m.name
        assert m.mutation().name == m.name


def test_every_phase_has_mutants():
    assert {m.phase for m in CATALOGUE} == PHASES
    assert sum(m.phase == "graph" for m in CATALOGUE) >= 3


def test_sources_are_public():
    for m in CATALOGUE:
        assert m.sources, f"{m.name} has no source"
        for source in m.sources:
            assert "/work/" not in source and "shared" not in source and "notes/" not in source, source
            assert source.startswith("https://github.com/") or ": " in source, f"{m.name}: {source!r}"


def test_source_labels():
    assert short_source("https://github.com/vllm-project/vllm/pull/43869") == "vllm-project/vllm#43869"
    assert short_source("https://github.com/a/b (x.py)") == "a/b (x.py)"
    assert markdown_source("https://github.com/a/b/issues/3") == "[a/b#3](https://github.com/a/b/issues/3)"
    assert markdown_source("Ascend/op-plugin: docs/x.md") == "Ascend/op-plugin: docs/x.md"


def test_gqa_modulo_order_reads_head_mod_kv():
    order, inverse = call_bugs._modulo_order(num_heads=8, num_kv_heads=2)
    group = 4
    for slot, head in enumerate(order):
        assert slot // group == head % 2  # the kernel reads KV head slot // g: here h % n_kv
    assert [order[inverse[h]] for h in range(8)] == list(range(8))


@pytest.fixture
def planted_mutation():
    yield lambda m: configure(mutation=m.mutation())
    configure(mutation=None)


@pytest.mark.parametrize("name", [m.name for m in CATALOGUE])
def test_mutant_changes_behaviour_on_a_case_of_its_phase(name, planted_mutation):
    """No equivalent mutants: each is caught on at least one small case of its phase."""
    mutant = get(name)
    planted_mutation(mutant)
    caught = []
    if mutant.via == "replay":  # shows on a later step through the same compiled graph
        try:
            caught.append(not all(o.passed for _, o in run_session(SESSION, _judge)))
        except (ContextError, ContractViolation, GraphRecompiled):
            caught.append(True)
    for case in CASES[mutant.phase] + EXTRA_CASES.get(name, []):
        try:
            caught.append(not check_case(case).passed)
        except (ContextError, ContractViolation):
            caught.append(True)
    assert any(caught), f"{name} passes every case of its phase: an equivalent mutant?"


def _judge(case, tensors, step):
    return check_case(case, tensors=tensors)


def test_hand_picked_session_passes_unmutated():
    configure(mutation=None)
    outcomes = [o for _, o in run_session(SESSION, _judge)]
    assert len(outcomes) == 4 and all(o.passed for o in outcomes)
    assert [o.case.batch for o in outcomes] == [3, 3, 2, 3]


@pytest.mark.parametrize("case", [PREFILL, DECODE, GRAPH, DECODE_WIDE, PREFILL_LONG, DECODE_128, AT_MODEL_LEN],
                         ids=["prefill", "decode", "graph", "decode-wide", "prefill-long", "decode-128",
                              "at-model-len"])
def test_hand_picked_cases_pass_unmutated(case):
    configure(mutation=None)
    assert check_case(case).passed


def test_command_writes_the_matrix_and_ends_with_the_count(tmp_path, capsys):
    code = cli.main(["mutants", "--only", "prefill_causal_disabled", "--no-baseline", "--suite", "test_prefill",
                         "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.rstrip().splitlines()[-1] == "killed 1/1"
    data = json.loads((tmp_path / "mutants.json").read_text())
    assert data["summary"]["killed"] == 1 and data["mutants"][0]["status"] == "killed"
    assert data["mutants"][0]["sources"] and data["profile"] == "dev"
    assert "| `prefill_causal_disabled` |" in (tmp_path / "mutants.md").read_text()


def test_command_refuses_unknown_names(capsys):
    assert cli.main(["mutants", "--only", "no_such_bug", "--no-baseline"]) == 2
    assert "no mutant named" in capsys.readouterr().err


def test_add_parser_registers_mutants_without_importing_torch():
    """The CLI registers `mutants` at parser build time: that must not import torch (the NPU probe
    runs before torch is imported) or pytest."""
    import subprocess
    import sys

    code = ("import argparse, sys\n"
            "from conformance.cli.mutants import add_parser\n"
            "parser = argparse.ArgumentParser(); sub = parser.add_subparsers(dest='command')\n"
            "add_parser(sub)\n"
            "args = parser.parse_args(['mutants', '--profile', 'ci', '--only', 'a,b', '--generated-only'])\n"
            "assert args.func.__name__ == 'run' and args.profile == 'ci' and args.generated_only\n"
            "print(sorted(m for m in ('torch', 'pytest') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_command_profiles_are_the_runner_profiles():
    from conformance.mutants.runner import PROFILES

    assert command.PROFILES == PROFILES
