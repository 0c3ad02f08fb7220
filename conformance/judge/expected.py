"""What the layer should give, from the independent reference (the oracle).

The reference sees the same dtype-rounded inputs as the layer. Golden = float64; baseline = the kernel
dtype with a different operation order; the caches after a correct write come from reference.scatter_kv.
Everything comes from the case's engine step (which tokens each sequence holds, where the block manager
put them), never from a Context: a runner that encodes the step wrongly fails against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import reference
from conformance.cases.case import Case, Tensors
from conformance.cases.engine import new_token_slots
from conformance.judge.stopwatch import Stopwatch, timing


@dataclass
class Expected:
    golden: torch.Tensor  # [rows, Hq, D] float64; rows = every row forward() returns
    baseline: torch.Tensor  # same rows, kernel dtype
    row_seq: list[int]  # sequence of each row (padded graph rows get their own index)
    empty_rows: list[int]  # rows that see no key, must be exactly 0: the graph padding rows
    k_cache: torch.Tensor  # 3-D cache after a correct write (CPU)
    v_cache: torch.Tensor


def expected_results(case: Case, t: Tensors, stopwatch: Stopwatch | None = None) -> Expected:
    """The reference's answer for `case` on tensors `t`: golden and baseline output, caches after a correct write."""
    with timing(stopwatch, "reference"):
        return _expected(case, t)


def _expected(case: Case, t: Tensors) -> Expected:
    q, k, v = (x.cpu() for x in (t.q, t.k, t.v))
    k_cache, v_cache = t.k_cache.cpu(), t.v_cache.cpu()
    step = case.engine_step()  # the ground truth: where the block manager put every token
    slots = torch.tensor([slot for _, _, slot in new_token_slots(step)], dtype=torch.int64)
    if case.is_prefill:
        cu = torch.tensor([0, *torch.tensor(case.seq_lens).cumsum(0).tolist()], dtype=torch.int32)
        new_k, new_v = reference.scatter_kv(k_cache, v_cache, k, v, slots)

        def attend(dtype, reorder):
            return reference.varlen_attention(q, k, v, cu_seqlens_q=cu, cu_seqlens_k=cu, scale=case.softmax_scale,
                                              compute_dtype=dtype, reorder_ops=reorder)
        row_seq, empty = t.row_seq, []
    else:
        batch = case.batch
        new_k, new_v = reference.scatter_kv(k_cache, v_cache, k[:batch], v[:batch], slots)
        width = max(len(blocks) for blocks in case.block_tables)
        tables = torch.tensor([list(blocks) + [-1] * (width - len(blocks)) for blocks in case.block_tables],
                              dtype=torch.int64)

        def attend(dtype, reorder):
            real = reference.paged_attention(q[:batch], new_k, new_v, query_lens=[1] * batch,
                                             context_lens=list(case.seq_lens), block_tables=tables,
                                             scale=case.softmax_scale, compute_dtype=dtype, reorder_ops=reorder)
            # Padded graph rows have context_lens 0: the kernel returns zeros for them.
            pad = torch.zeros(case.num_new_tokens - batch, *real.shape[1:], dtype=real.dtype)
            return torch.cat([real, pad])
        row_seq, empty = list(range(case.num_new_tokens)), list(range(batch, case.num_new_tokens))
    return Expected(attend(torch.float64, False), attend(case.torch_dtype, True), row_seq, empty, new_k, new_v)
