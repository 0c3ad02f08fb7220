"""Prefill: FIA-v2 TND output vs the reference, and the cache write bit-exact over the whole cache."""

import pytest
from hypothesis import example, given

from conformance.cases.case import Case
from conformance.harness.verify import verify_case
from conformance.suite import _given

pytestmark = pytest.mark.suite

# Always run, on every profile and backend: batch 3 with unequal lengths at block boundaries
# (127/128/129 with block 128), shuffled blocks, GQA 4, the hardware's TND head_dim.
BOUNDARIES = Case(phase="prefill", num_heads=8, num_kv_heads=2, head_dim=128, dtype="bfloat16", block_size=128,
                  num_blocks=9, seq_lens=(127, 129, 1), block_tables=((5,), (2, 7), (3,)), seed=11,
                  outlier_rows=(130,))

# Past the 2048-wide mask, with few heads to stay cheap: 5 query tiles of 512 rows, where the kernel reads
# the compressed mask per diagonal tile (a mask bug that hides inside one tile shows here). Blocks reversed.
LONG = Case(phase="prefill", num_heads=2, num_kv_heads=1, head_dim=64, dtype="bfloat16", block_size=128,
            num_blocks=21, seq_lens=(2100, 37), block_tables=(tuple(range(18, 1, -1)), (20,)), seed=23,
            outlier_rows=(2050,))


@given(case=_given.prefill)
@example(case=BOUNDARIES)
@example(case=LONG)
def test_prefill_output_and_cache_write(case):
    verify_case(case, "prefill")
