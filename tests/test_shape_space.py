"""--shape-space npu: the emulated run draws only what the real kernels accept (a CPU preview of a
hardware run), and the corpus cases from the emulator's wider space are left out of it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings

from conformance.cases import strategies
from conformance.cases.strategies import outside_npu_space
from conformance.harness import corpus
from conformance.harness.case_files import read_case_file
from conformance.judge.settings import settings
from conformance.suite import _given
from conformance.suite import test_regression as regression


@pytest.fixture
def npu_space(run_settings):
    run_settings(shape_space="npu")


@pytest.mark.parametrize("factory", [strategies.prefill_cases, strategies.decode_cases, strategies.graph_cases])
def test_npu_space_on_the_emulator_draws_only_npu_shapes(factory, npu_space):
    assert settings().backend == "emulated" and _given.shape_space() == "npu"
    seen = []

    # A fresh deferred strategy, as the suite's are before a run's first draw (the plugin configures the
    # shape space before collection; a deferred strategy fixes its space when first drawn from).
    @hyp_settings(max_examples=25, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=_given.cases(factory))
    def draw(case):
        seen.append(case)
        assert outside_npu_space(case) is None, (outside_npu_space(case), case.summary())

    draw()
    assert len(seen) >= 10 and {c.block_size for c in seen} == {128}


def test_the_default_space_on_the_emulator_is_wider():
    assert settings().shape_space == "auto" and _given.shape_space() == "emulated"


def test_corpus_cases_outside_the_npu_space_are_left_out_under_it(npu_space, run_settings):
    wide = [p for p in corpus.case_paths() if outside_npu_space(read_case_file(p).case) is not None]
    assert wide, "the corpus holds the float32 decode case"
    assert not any(regression._applies(p) for p in wide)
    run_settings(shape_space="auto")
    assert all(regression._applies(p) for p in wide)
