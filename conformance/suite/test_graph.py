"""Decode (graph): the torchair op over a batch padded to max_num_seqs with the reserved dummy block.

Real rows must match the reference; padded rows (context_lens 0) must be 0 and write nothing outside
the dummy block; no NaN may reach a real row (the dummy block and unused slots are NaN-poisoned).
"""

import pytest
from hypothesis import example, given

from conformance.cases import Case
from conformance.suite import _given
from conformance.verify import verify_case

pytestmark = [pytest.mark.suite, pytest.mark.graph]

PADDED = Case(phase="decode_graph", num_heads=8, num_kv_heads=2, head_dim=128, dtype="bfloat16", block_size=128,
              num_blocks=9, seq_lens=(200, 1, 129), block_tables=((5, 2), (3,), (6, 1)), seed=3,
              max_num_seqs=6, table_width=4)


@given(case=_given.decode_graph)
@example(case=PADDED)
def test_decode_graph_padded_batch(case):
    verify_case(case, "decode_graph")
