"""The regression corpus (conformance/harness/corpus.py): every promoted find, replayed before anything else
(the plugin orders these tests first) and judged with this run's settings. On the npu backend (or under
--shape-space npu) a case drawn from the emulator's wider shape space (float32, small head dims or block
sizes) is not collected: the real kernels refuse those shapes by contract, so it can only guard the
emulated runs."""

from __future__ import annotations

import pytest

from conformance.cases.strategies import outside_npu_space
from conformance.harness import corpus
from conformance.harness.case_files import read_case_file
from conformance.harness.verify import verify_case, verify_session
from conformance.judge.settings import settings
from conformance.suite._given import shape_space


def _applies(path) -> bool:
    return shape_space() != "npu" or outside_npu_space(read_case_file(path).case) is None


PATHS = [p for p in corpus.case_paths() if _applies(p)]  # the plugin chose the backend before collection
_NONE = pytest.param(None, id="none", marks=pytest.mark.skip(
    reason="no regression case applies: every corpus case lies outside the npu shape space (the real kernels "
           "refuse those shapes), or the corpus is empty"))


@pytest.mark.suite
@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem) for p in PATHS] or [_NONE])
def test_regression_case(path):
    saved = read_case_file(path)
    if saved.session is not None:  # a graph session step: its steps before it are part of the find
        session, last = saved.session
        steps = list(verify_session(session, "regression", eager=saved.case.phase == "decode_eager", stop_after=last))
        assert steps and steps[-1][0] == last, f"{path.name}: the session no longer reaches step {last}"
        return
    tensors = saved.tensors(settings().device) if saved.state is not None else None
    verify_case(saved.case, "regression", tensors=tensors)
