"""One-shot probes that settle, on a real device, the rules the emulator marks *inferred*.

Skipped without an NPU (they need the real kernels); under --require-npu a skip is a failure.
Each probe uses small tensors whose every index is in bounds, so a wrong reading cannot corrupt memory.
"""

from __future__ import annotations

import pytest
import torch

from npu_attention import kernels

pytestmark = [pytest.mark.npu, pytest.mark.suite]
DEVICE = "npu"


def test_scatter_update_pairs_write_block_and_offset():
    """The [n, 2] index form: row i goes to data[idx[i, 0], idx[i, 1]] (inferred from practice)."""
    with kernels.use_backend("npu"):
        data = torch.zeros(4, 4, 8, dtype=torch.float16, device=DEVICE)
        idx = torch.tensor([[1, 1], [2, 2]], dtype=torch.int32, device=DEVICE)
        updates = torch.stack([torch.full((1, 8), 1.0), torch.full((1, 8), 2.0)]).half().to(DEVICE)
        kernels.torch_npu.scatter_update_(data, idx, updates, -2)
    flat = data.cpu().view(16, 8)
    written = {r: float(flat[r, 0]) for r in range(16) if flat[r].abs().sum() > 0}
    assert written == {5: 1.0, 10: 2.0}, f"pairs (1,1),(2,2) wrote rows {written}"


def test_scatter_update_1d_indices_are_per_row_offsets():
    """The documented 1-D form: updates row i goes to data row i at offset idx[i] along the axis."""
    with kernels.use_backend("npu"):
        data = torch.zeros(4, 4, 8, dtype=torch.float16, device=DEVICE)
        idx = torch.tensor([1, 2], dtype=torch.int32, device=DEVICE)
        updates = torch.stack([torch.full((1, 8), 1.0), torch.full((1, 8), 2.0)]).half().to(DEVICE)
        kernels.torch_npu.scatter_update_(data, idx, updates, -2)
    flat = data.cpu().view(16, 8)
    written = {r: float(flat[r, 0]) for r in range(16) if flat[r].abs().sum() > 0}
    assert written == {1: 1.0, 6: 2.0}, f"offsets [1, 2] wrote rows {written}"


def test_eager_fia_accepts_an_int32_length_tensor():
    """The seed passes context_lens (an int32 device tensor) where the schema says SymInt[]; the
    emulator records that as an inferred hazard. This settles whether this torch_npu accepts it."""
    with kernels.use_backend("npu"):
        q = torch.randn(2, 8, 1, 128, dtype=torch.bfloat16, device=DEVICE)
        cache = torch.randn(4, 128, 2 * 128, dtype=torch.bfloat16, device=DEVICE)
        table = torch.tensor([[1], [2]], dtype=torch.int32, device=DEVICE)
        lens = torch.tensor([5, 100], dtype=torch.int32, device=DEVICE)
        out, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q, cache, cache, num_query_heads=8, num_key_value_heads=2, input_layout="BNSD",
            softmax_scale=128**-0.5, block_table=table, block_size=128, actual_seq_kvlen=lens,
            sparse_mode=0, inner_precise=1)
    assert out.shape == (2, 8, 1, 128) and torch.isfinite(out.float()).all()
