"""Decode (eager): FIA-v2 BNSD over the paged cache vs the reference, and the [B, 2] slot write."""

import pytest
from hypothesis import example, given

from conformance.cases.case import Case
from conformance.harness.verify import verify_case
from conformance.suite import _given

pytestmark = pytest.mark.suite

# Batch 4, unequal lengths (one single token, one at a block boundary), blocks shuffled in a pool
# with block 0 unused: a single sequence in block 0 would hide every indexing error.
RAGGED = Case(phase="decode_eager", num_heads=8, num_kv_heads=2, head_dim=128, dtype="bfloat16", block_size=128,
              num_blocks=10, seq_lens=(300, 1, 128, 129), block_tables=((6, 2, 8), (4,), (1,), (7, 3)), seed=5,
              outlier_rows=(2,))

# A context past 2048 positions (17 blocks, reversed), few heads to stay cheap.
LONG = Case(phase="decode_eager", num_heads=2, num_kv_heads=1, head_dim=64, dtype="bfloat16", block_size=128,
            num_blocks=21, seq_lens=(2100, 5), block_tables=(tuple(range(18, 1, -1)), (20,)), seed=29)


@given(case=_given.decode_eager)
@example(case=RAGGED)
@example(case=LONG)
def test_decode_eager_output_and_cache_write(case):
    verify_case(case, "decode_eager")
