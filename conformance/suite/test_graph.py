"""Decode (graph) as the engine runs it: one compiled graph per engine configuration, replayed for every
step of a session in which sequences join, grow across block boundaries, leave and hand their blocks
(stale contents and all) to others, while the batch stays padded to max_num_seqs.

Every step is judged against the reference: real rows match, padded rows (context_lens 0) are exactly 0,
and the whole cache is bit-exact (padded rows write only the reserved dummy block); a recompile of the
graph on a later step fails (GraphRecompiled names the guard). Sessions with one configuration share
one compile, across hypothesis examples too (conformance.judge.graph).
"""

import pytest
from hypothesis import example, given

from conformance.cases.graph_session import GraphSession, SessionStep
from conformance.harness.verify import verify_session
from conformance.suite import _given

pytestmark = [pytest.mark.suite, pytest.mark.graph]

# max_num_seqs 6 with 3, then 2, then 4 live sequences: lengths cross block boundaries (128 -> 129), one
# sequence leaves and its blocks go to the next one to join, the padding count changes under the fixed shape.
PADDED = GraphSession(num_heads=8, num_kv_heads=2, head_dim=128, dtype="bfloat16", block_size=128, num_blocks=16,
                      max_num_seqs=6, table_width=4, seed=3,
                      block_order=(5, 2, 11, 3, 6, 1, 9, 13, 4, 12, 7, 10, 14, 8),
                      start=(200, 1, 128), steps=(SessionStep(), SessionStep(leave=(1,)),
                                                  SessionStep(join=(127, 300)), SessionStep()))


@given(session=_given.graph_session)
@example(session=PADDED)
def test_decode_graph_session(session):
    for _ in verify_session(session, "decode_graph"):
        pass
