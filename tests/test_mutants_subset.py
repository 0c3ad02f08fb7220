"""CI subset of the planted-bug catalogue: each is killed by the suite, for the right reason, and the
unmutated layer passes the very same runs (no false kills).

Each mutant runs only the suite module that exercises its phase (the runs are derandomized, so a
module sees the same cases whichever modules run with it); `npu-conformance mutants` runs them all.
"""

from __future__ import annotations

import pytest
from hypothesis import settings as hyp_settings

from conformance.judge.settings import settings
from conformance.mutants import get
from conformance.mutants.catalogue import Mutant
from conformance.mutants.runner import mutant_profile, run_suite, suite_modules
from npu_attention import Attention

PREFILL, DECODE, GRAPH = (f"conformance.suite.{m}" for m in ("test_prefill", "test_decode", "test_graph"))

# mutant -> (suite module it runs, what must catch it)
SUBSET = {
    "prefill_causal_disabled": (PREFILL, "out of tolerance"),
    # The kernel reads the compressed mask as tiles (emulator F1): the wrong polarity is out of tolerance
    # on the first explicit example, besides the unacknowledged mask-content hazard.
    "prefill_mask_polarity_inverted": (PREFILL, "out of tolerance"),
    "prefill_slot_off_by_one": (PREFILL, "cache bit-exact"),
    "decode_newest_token_dropped": (DECODE, "out of tolerance"),
    "decode_block_table_of_row0": (DECODE, "out of tolerance"),
    "graph_padding_to_block0": (GRAPH, "cache bit-exact"),
    "graph_empty_rows_nan": (GRAPH, "NaN in output"),
    # Bugs of graph capture and replay: they show on a later step through the same compiled graph.
    "graph_context_lens_frozen": (GRAPH, "out of tolerance"),
    "graph_block_tables_frozen": (GRAPH, "emulator contract"),
    "graph_stale_length_tail": (GRAPH, "emulator contract"),
    "graph_wrong_padded_count": (GRAPH, "graph recompile"),
    "graph_host_list_lengths": (GRAPH, "graph recompile"),
    # Kernel bugs: the layer's call is right, the emulated op misbehaves as a real kernel did.
    "fia_block16_corrupts_output": (DECODE, "NaN in output"),
    "paged_attention_not_run_large_batch": (DECODE, "out of tolerance"),
    "cache_scatter_skipped_some_calls": (DECODE, "nondeterministic"),
    "prefill_output_buffer_reused": (PREFILL, "out of tolerance"),
    "slot_mapping_int64_read_as_int32": (PREFILL, "cache bit-exact"),
    "paged_read_kernel_block_size": (DECODE, "emulator contract"),
    "fia_nondeterministic_reduction": (PREFILL, "nondeterministic"),
    # Runner bugs: the runner's own code turns an engine step into a Context with one mistake. Those that
    # break the contract die in the validator; those that encode the step wrongly but consistently die
    # against the ground truth (the engine step), on the output or the bit-exact cache.
    "runner_stale_decode_lengths": (DECODE, "cache bit-exact"),
    "runner_cu_seqlens_shifted": (PREFILL, "validator: Context.cu_seqlens_q"),
    "runner_block_table_padded_with_zero": (GRAPH, "validator: Context.block_tables"),
    "runner_finished_length_in_padding": (GRAPH, "validator: Context.real_bs"),
    "runner_padded_count_off_by_one": (GRAPH, "validator: Context.slot_mapping"),
    "runner_prefill_blocks_in_id_order": (PREFILL, "cache bit-exact"),
    "runner_table_width_floored": (GRAPH, "validator: Context.block_tables"),
}


@pytest.mark.parametrize("name", sorted(SUBSET))
def test_planted_bug_is_killed(name, tmp_path):
    module, caught_as = SUBSET[name]
    result = run_suite(get(name), profile="dev", modules=[module], failures_dir=tmp_path)
    assert result.status == "killed", f"{name} {result.status}:\n{result.message or result.log[-2000:]}"
    assert result.killed_by.startswith(module.replace(".", "/") + ".py::"), result.killed_by
    assert caught_as in result.how, f"{name} was caught as {result.how!r}, expected {caught_as!r}"
    assert result.cases_run >= result.cases_to_kill >= 1
    ce = result.counterexample
    assert ce is not None and ce.batch >= 1 and ce.total_tokens >= ce.batch
    assert ce.case_file is not None, "the failing case must be saved for replay"


def test_unmutated_layer_passes_the_same_runs(tmp_path):
    result = run_suite(None, profile="dev", modules=sorted({m for m, _ in SUBSET.values()}), failures_dir=tmp_path)
    assert result.status == "survived", f"the unmutated layer fails: {result.killed_by}\n{result.message}"
    assert result.cases_run >= 3 * 8, f"only {result.cases_run} cases ran: the runs are not the real properties"


def test_runs_leave_no_trace_in_the_session(tmp_path):
    def loaded():
        current = hyp_settings.default
        return current.max_examples, current.derandomize, repr(current.database)

    before_settings, before_profile = settings(), loaded()
    run_suite(get("prefill_causal_disabled"), profile="dev", modules=[PREFILL], failures_dir=tmp_path)
    assert settings() == before_settings and settings().mutation is None
    assert loaded() == before_profile, "the outer session's hypothesis profile must be loaded again"
    assert hyp_settings.get_profile(mutant_profile("dev")).database is None
    assert hyp_settings.get_profile(mutant_profile("dev", explicit=False)).database is None


def test_a_broken_run_is_an_error_not_a_kill(tmp_path):
    result = run_suite(get("prefill_causal_disabled"), modules=["conformance.suite.no_such_module"],
                       failures_dir=tmp_path)
    assert result.status == "error" and not result.killed


def test_suite_order_runs_cheap_properties_first():
    order = [m.rsplit(".", 1)[1] for m in suite_modules()]
    assert order[:3] == ["test_prefill", "test_decode", "test_graph"]
    assert order[-1] == "test_engine"


class _CrashingForward(Attention):
    """A planted bug whose own code breaks: it must be reported as an error, never as a kill."""

    def forward(self, q, k, v):
        raise TypeError("planted code bug: unsupported operand")


class _CrashingConstructor(Attention):
    def __init__(self, *args):
        raise TypeError("planted code bug in the constructor")


@pytest.mark.parametrize("layer_class", [_CrashingForward, _CrashingConstructor])
def test_a_planted_bug_that_crashes_is_an_error_not_a_kill(layer_class, tmp_path):
    mutant = Mutant("crashing", "prefill", "layer", "test only", ("https://github.com/x/y",), "crashes", "any",
                    layer_class=layer_class)
    result = run_suite(mutant, profile="dev", modules=[PREFILL], failures_dir=tmp_path)
    assert result.status == "error" and not result.killed, (result.status, result.how)
    assert result.how.startswith("the run raised TypeError: planted code bug"), result.how
