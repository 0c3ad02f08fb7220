"""Metamorphic relations: answers that must not change when the question is rephrased.

Batch order and physical block placement must not change any output bit; decoding the last token of
a prompt must agree with prefill's row for it; eager and graph decode must agree over whole sessions.
"""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conformance.cases.case import Tensors
from conformance.cases.metamorphic import permute_batch, relabel_blocks, unrelabel_cache
from conformance.harness.verify import verify_case, verify_session
from conformance.judge.bits import bits_equal
from conformance.judge.layer_run import run_layer
from conformance.judge.settings import settings
from conformance.suite import _given

pytestmark = pytest.mark.suite


def _bitwise(what: str, ok: bool, case, detail: str) -> None:
    assert ok, f"{what} changed the result of case {case.case_id} ({case.summary()}): {detail}"


@given(case=st.one_of(_given.prefill, _given.decode_eager), data=st.data())
def test_batch_order_does_not_change_any_bit(case, data):
    tensors = case.materialise(settings().device)
    base = verify_case(case, "metamorphic/batch_order", tensors=tensors)
    order = data.draw(st.permutations(range(case.batch)), label="order")
    new_case, new_t, rows = permute_batch(case, tensors, list(order))
    moved = run_layer(new_case, new_t, settings())
    _bitwise("reordering the batch", bits_equal(moved.out, base.layer.out[rows]), case, f"order {list(order)}")
    _bitwise("reordering the batch", bits_equal(moved.k_cache, base.layer.k_cache)
             and bits_equal(moved.v_cache, base.layer.v_cache), case, f"cache write differs, order {list(order)}")


@given(case=st.one_of(_given.prefill, _given.decode_eager, _given.decode_graph), data=st.data())
def test_physical_block_relabelling_does_not_change_any_bit(case, data):
    tensors = case.materialise(settings().device)
    base = verify_case(case, "metamorphic/block_relabel", tensors=tensors)
    movable = list(range(1, case.num_blocks - (1 if case.phase == "decode_graph" else 0)))
    target = data.draw(st.permutations(movable), label="relabel")
    mapping = dict(zip(movable, target))
    new_case, new_t, _ = relabel_blocks(case, tensors, mapping)
    moved = run_layer(new_case, new_t, settings())
    _bitwise("relabelling physical blocks", bits_equal(moved.out, base.layer.out), case, f"mapping {mapping}")
    restored = [unrelabel_cache(case, c, mapping) for c in (moved.k_cache, moved.v_cache)]
    _bitwise("relabelling physical blocks", bits_equal(restored[0], base.layer.k_cache)
             and bits_equal(restored[1], base.layer.v_cache), case, f"cache write differs, mapping {mapping}")


@given(case=_given.prefill)
def test_decode_of_the_last_token_matches_its_prefill_row(case):
    tensors = case.materialise(settings().device)
    prefill = verify_case(case, "metamorphic/decode_vs_prefill", tensors=tensors)
    last = [sum(case.seq_lens[: b + 1]) - 1 for b in range(case.batch)]
    decode_case = dataclasses.replace(case, phase="decode_eager", outlier_rows=())
    # The decode step re-writes the last token into the slot prefill wrote; everything else is history.
    decode_t = Tensors(decode_case, tensors.q[last], tensors.k[last], tensors.v[last],
                       prefill.layer.k_cache.to(tensors.q.device), prefill.layer.v_cache.to(tensors.q.device))
    decode = verify_case(decode_case, "metamorphic/decode_vs_prefill", tensors=decode_t)
    gap = float((decode.layer.out.double() - prefill.layer.out[last].double()).abs().max())
    allowed = prefill.output.bound + decode.output.bound
    assert gap <= allowed, (f"decode of each prompt's last token differs from prefill's row by {gap:.3e} > "
                            f"{allowed:.3e} (sum of both bounds): case {case.case_id} ({case.summary()})")


@pytest.mark.graph
@given(session=_given.graph_session)
def test_eager_and_graph_decode_agree_over_a_session(session):
    """The same steps eagerly (unpadded, FIA-v2 BNSD) and through the session's compiled graph (padded,
    the torchair op), each on the cache its own previous steps left: outputs agree within the two
    bounds, and the caches stay bit-identical outside the dummy block only padded rows write."""
    name = "metamorphic/eager_vs_graph"
    dummy = session.num_blocks - 1
    steps = zip(verify_session(session, name), verify_session(session, name, eager=True))
    for (index, graph), (_, eager) in steps:
        b = eager.case.batch
        gap = float((eager.layer.out.double() - graph.layer.out[:b].double()).abs().max())
        allowed = eager.output.bound + graph.output.bound
        where = f"step {index} of session seed {session.seed} ({graph.case.summary()})"
        assert gap <= allowed, f"eager and graph decode differ by {gap:.3e} > {allowed:.3e} at {where}"
        for name_, g, e in (("k_cache", graph.layer.k_cache, eager.layer.k_cache),
                            ("v_cache", graph.layer.v_cache, eager.layer.v_cache)):
            assert bits_equal(g[:dummy], e[:dummy]), f"eager and graph decode wrote {name_} differently at {where}"
