"""One-shot probes that settle, on a real device, the rules the emulator marks *inferred*.

Skipped without an NPU (they need the real kernels); under --require-npu a skip is a failure. Each
probe uses small tensors whose every index is in bounds, so a wrong reading cannot corrupt memory,
and asserts values: hard-coded ones where the emulator's model predicts them exactly (the same
numbers are pinned on the emulator by tests/test_emulator_documented.py), or the CPU reference.
A failing probe means the emulator's rule is wrong for this CANN / torch_npu: fix the emulator.
"""

from __future__ import annotations

import pytest
import torch

import reference
from npu_attention import kernels

pytestmark = [pytest.mark.npu, pytest.mark.suite]
#: Where the probes run. tests/test_hardware_probes_emulated.py points them at the emulator on CPU, which
#: must pass every probe too: a probe the emulator fails is a probe (or an emulator rule) to fix.
BACKEND, DEVICE = "npu", "npu"
#: A kernel refusal: a RuntimeError from torch_npu, a ContractViolation (ValueError) from the emulator.
REFUSED = (RuntimeError, ValueError)
BF16 = torch.bfloat16
#: The optimized mask of sparse_mode 2-4: True strictly above the diagonal.
CAUSAL = torch.triu(torch.ones(2048, 2048, dtype=torch.bool), diagonal=1)


def _npu(*tensors):
    return [t.to(DEVICE) for t in tensors]


def _sync():
    """Kernel errors surface asynchronously on a device: wait for them inside the raises block."""
    if DEVICE == "npu":
        torch.npu.synchronize()


def test_scatter_update_pairs_write_block_and_offset():
    """The [n, 2] index form: row i goes to data[idx[i, 0], idx[i, 1]] (TIK kernel rank-2 branch)."""
    with kernels.use_backend(BACKEND):
        data = torch.zeros(4, 4, 8, dtype=torch.float16, device=DEVICE)
        idx = torch.tensor([[1, 1], [2, 2]], dtype=torch.int32, device=DEVICE)
        updates = torch.stack([torch.full((1, 8), 1.0), torch.full((1, 8), 2.0)]).half().to(DEVICE)
        kernels.torch_npu.scatter_update_(data, idx, updates, -2)
    flat = data.cpu().view(16, 8)
    written = {r: float(flat[r, 0]) for r in range(16) if flat[r].abs().sum() > 0}
    assert written == {5: 1.0, 10: 2.0}, f"pairs (1,1),(2,2) wrote rows {written}"


def test_scatter_update_1d_indices_are_per_row_offsets():
    """The documented 1-D form: updates row i goes to data row i at offset idx[i] along the axis."""
    with kernels.use_backend(BACKEND):
        data = torch.zeros(4, 4, 8, dtype=torch.float16, device=DEVICE)
        idx = torch.tensor([1, 2], dtype=torch.int32, device=DEVICE)
        updates = torch.stack([torch.full((1, 8), 1.0), torch.full((1, 8), 2.0)]).half().to(DEVICE)
        kernels.torch_npu.scatter_update_(data, idx, updates, -2)
    flat = data.cpu().view(16, 8)
    written = {r: float(flat[r, 0]) for r in range(16) if flat[r].abs().sum() > 0}
    assert written == {1: 1.0, 6: 2.0}, f"offsets [1, 2] wrote rows {written}"


def _decode_case(lens, seed=0, heads=8, kv_heads=2, d=128, bs=128):
    g = torch.Generator().manual_seed(seed)
    batch = len(lens)
    q = torch.randn(batch, heads, 1, d, generator=g).to(BF16)
    cache_k = torch.randn(batch + 1, bs, kv_heads * d, generator=g).to(BF16)
    cache_v = torch.randn(batch + 1, bs, kv_heads * d, generator=g).to(BF16)
    table = torch.tensor([[b + 1] for b in range(batch)], dtype=torch.int32)
    return q, cache_k, cache_v, table


def _decode_golden(q, cache_k, cache_v, table, lens, heads=8, d=128):
    """float64 [B, N, D] from the CPU reference (all keys below kv_len)."""
    batch = q.shape[0]
    out = reference.paged_attention(q.view(batch, heads, d), cache_k, cache_v, query_lens=[1] * batch,
                                    context_lens=list(lens), block_tables=table, scale=d ** -0.5)
    return out


def _decode_npu(q, cache_k, cache_v, table, lens, **extra):
    q_n, k_n, v_n, t_n = _npu(q, cache_k, cache_v, table)
    with kernels.use_backend(BACKEND):
        return kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q_n, k_n, v_n, num_query_heads=8, num_key_value_heads=2, input_layout="BNSD", softmax_scale=128 ** -0.5,
            block_table=t_n, block_size=128, inner_precise=1, **extra)


def test_eager_fia_accepts_an_int32_length_tensor_and_computes_with_it():
    """The seed passes context_lens (an int32 device tensor) where the schema says SymInt[]: the emulator
    notes that the dispatcher converts it. The result must equal the CPU reference for those lengths."""
    lens = [5, 100]
    q, ck, cv, table = _decode_case(lens)
    out, _ = _decode_npu(q, ck, cv, table, lens, actual_seq_kvlen=torch.tensor(lens, dtype=torch.int32,
                                                                                device=DEVICE))
    gold = _decode_golden(q, ck, cv, table, lens)
    torch.testing.assert_close(out.cpu().double().squeeze(2), gold, atol=2e-2, rtol=2e-2)


def test_decode_with_kv_len_zero_gives_zeros_and_lse_minus_3_4e38():
    """IFA InitAllZeroOutput: a batch with kv_len 0 writes zeros and LSE -3.40e38 (not +inf)."""
    lens = [0, 7]
    q, ck, cv, table = _decode_case(lens, seed=1)
    out, lse = _decode_npu(q, ck, cv, table, lens, actual_seq_kvlen=lens, return_softmax_lse=True)
    out, lse = out.cpu().float(), lse.cpu()
    assert out[0].abs().sum() == 0
    assert torch.equal(lse[0], torch.full_like(lse[0], -3.40e38)), lse[0].flatten()[:4]
    torch.testing.assert_close(out[1].double().squeeze(1), _decode_golden(q, ck, cv, table, lens)[1],
                               atol=2e-2, rtol=2e-2)


def test_decode_mask_without_a_batch_dim_is_refused():
    """The open IFA tiling refuses a decode mask whose dim 0 is not B ("batchSize of atten_mask must be
    equal to batchSize of query"); another stack accepted [1, 1, 1, S] and ignored it past 512."""
    lens = [5, 7]
    q, ck, cv, table = _decode_case(lens, seed=2)
    mask = torch.zeros(1, 1, 1, 128, dtype=torch.bool, device=DEVICE)
    with pytest.raises(REFUSED):
        _decode_npu(q, ck, cv, table, lens, actual_seq_kvlen=lens, atten_mask=mask)
        _sync()


def test_decode_with_the_2048_mask_and_sparse_mode_3_reads_it_as_a_flat_key_mask():
    """IFA accepts the 2-D (2048, 2048) mask with sparse_mode 3 but never sets the mask size, so (the
    emulator infers from the kernel code) every batch reads key j's bit at mask.flatten()[j]: with
    triu(1) the one query row attends to key 0 only, and its output is exactly V of key 0."""
    lens = [5, 100]
    q, ck, cv, table = _decode_case(lens, seed=3)
    out, _ = _decode_npu(q, ck, cv, table, lens, actual_seq_kvlen=lens, atten_mask=CAUSAL.to(DEVICE), sparse_mode=3)
    out = out.cpu().squeeze(2)  # [B, N, D]
    for b in range(len(lens)):
        v0 = cv[table[b, 0], 0].view(2, 128).repeat_interleave(4, 0)  # query head h reads KV head h // 4
        assert torch.equal(out[b], v0), f"batch {b}: not exactly V of key 0"


def test_gqa_query_head_h_reads_kv_head_h_over_group():
    """4 query heads on 2 KV heads: heads 0, 1 read KV head 0, heads 2, 3 read KV head 1 (the emulator
    infers h // group). Each KV head's V is constant, so the output names the head that was read."""
    q = torch.zeros(1, 4, 1, 64, dtype=BF16)
    cache = torch.zeros(2, 128, 2 * 64, dtype=BF16)
    cache_v = cache.clone()
    cache_v[1, :, :64] = 1.0  # KV head 0
    cache_v[1, :, 64:] = 2.0  # KV head 1
    table = torch.tensor([[1]], dtype=torch.int32)
    q_n, k_n, v_n, t_n = _npu(q, cache, cache_v, table)
    with kernels.use_backend(BACKEND):
        out, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q_n, k_n, v_n, num_query_heads=4, num_key_value_heads=2, input_layout="BNSD", softmax_scale=0.125,
            block_table=t_n, block_size=128, actual_seq_kvlen=[9])
    assert out.cpu().float()[0, :, 0, 0].tolist() == [1.0, 1.0, 2.0, 2.0]


def test_float16_with_layout_tnd_is_refused():
    """The TND tiling takes bfloat16 only ("When layout is TND, inputDataType should be bf16"), while the
    op-plugin v2 doc lists float16 for MHA: the emulator follows the code and refuses it."""
    q = torch.randn(8, 2, 128).half().to(DEVICE)
    with kernels.use_backend(BACKEND), pytest.raises(REFUSED):
        kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q, q, q, num_query_heads=2, num_key_value_heads=2, input_layout="TND", softmax_scale=0.08,
            atten_mask=CAUSAL.to(DEVICE), actual_seq_qlen=[3, 8], actual_seq_kvlen=[3, 8], sparse_mode=3)
        _sync()


def _tnd_uniform(v: torch.Tensor, mask: torch.Tensor, length: int) -> torch.Tensor:
    """TND sparse_mode 3 with q = k = 0 (every score equal): row i is the mean of V over the keys it
    attends to, so one-hot V rows spell out the visible set."""
    q = torch.zeros(length, 1, 64, dtype=BF16, device=DEVICE)
    with kernels.use_backend(BACKEND):
        out, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(
            q, q, v.to(DEVICE), num_query_heads=1, num_key_value_heads=1, input_layout="TND", softmax_scale=1.0,
            atten_mask=mask.to(DEVICE), actual_seq_qlen=[length], actual_seq_kvlen=[length], sparse_mode=3,
            inner_precise=1)
    return out.cpu().float()


def test_inverted_mask_is_read_as_tiles_l4():
    """~triu(1) with L = 4 (one tile): the tile model predicts rows {1,2,3}, {2,3}, {3} and, for row 3
    (every computed key masked, -FLT_MAX fill), the uniform average over keys 0..3."""
    v = torch.zeros(4, 1, 64, dtype=BF16)
    v[torch.arange(4), 0, torch.arange(4)] = 1
    out = _tnd_uniform(v, ~CAUSAL, 4)[:, 0, :4]
    expected = torch.tensor([[0, 1 / 3, 1 / 3, 1 / 3], [0, 0, 0.5, 0.5], [0, 0, 0, 1], [0.25] * 4])
    torch.testing.assert_close(out, expected, atol=4e-3, rtol=0)


def test_inverted_mask_past_one_tile_keeps_tiles_below_the_diagonal_l700():
    """~triu(1) with L = 700: 512-row / 512-key tiles; row 600 sees keys 0..511 (a tile wholly below the
    diagonal is not masked) and 601..699 (its own tile read at the diagonal offset)."""
    v = torch.zeros(700, 1, 64, dtype=BF16)
    v[:512, 0, 0] = 1
    v[512:601, 0, 1] = 1
    v[601:, 0, 2] = 1
    out = _tnd_uniform(v, ~CAUSAL, 700)
    torch.testing.assert_close(out[600, 0, :3], torch.tensor([512 / 611, 0.0, 99 / 611]), atol=8e-3, rtol=0)


def test_canonical_mask_gives_exact_causal_attention_past_2048():
    """With triu(1) the kernel's tile reading equals bottom-right causal attention, also past the
    2048-wide mask (the emulator short-cuts the canonical mask to the documented result)."""
    g = torch.Generator().manual_seed(4)
    length = 2100
    q = torch.randn(length, 2, 64, generator=g).to(BF16)
    k = torch.randn(length, 1, 64, generator=g).to(BF16)
    v = torch.randn(length, 1, 64, generator=g).to(BF16)
    with kernels.use_backend(BACKEND):
        out, _ = kernels.torch_npu.npu_fused_infer_attention_score_v2(
            *_npu(q, k, v), num_query_heads=2, num_key_value_heads=1, input_layout="TND", softmax_scale=0.125,
            atten_mask=CAUSAL.to(DEVICE), actual_seq_qlen=[length], actual_seq_kvlen=[length], sparse_mode=3,
            inner_precise=1)
    gold = reference.varlen_attention(q, k, v, cu_seqlens_q=[0, length], cu_seqlens_k=[0, length], scale=0.125)
    torch.testing.assert_close(out.cpu().double(), gold, atol=3e-2, rtol=3e-2)
